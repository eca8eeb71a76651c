package desired

import (
	"strconv"
	"strings"

	"cuelang.org/go/cue"
)

// unknownFields finds every field of doc that def does not allow, walking
// the document itself: CUE reports a field not allowed only where the
// struct around it has no other error, so one wrong value would hide the
// unknown fields beside it and fixing a file would take several rounds.
// It is called only for a document that failed.
func unknownFields(file string, doc, def cue.Value) Errors {
	var errs Errors
	var walk func(v, d cue.Value, path []string)
	walk = func(v, d cue.Value, path []string) {
		switch v.Kind() {
		case cue.StructKind:
			it, err := v.Fields()
			if err != nil {
				return
			}
			for it.Next() {
				sel := it.Selector()
				name := sel.Unquoted()
				if !d.Allows(cue.Str(name)) {
					p := append(append([]string{}, path...), name)
					e := &Error{File: file, Field: indexPath(strings.Join(p, ".")), Msg: notAllowed(def, p)}
					pos := it.Value().Pos()
					e.Line, e.Col = pos.Line(), pos.Column()
					errs = append(errs, e)
					continue
				}
				if next := defStep(d, name); next.Exists() {
					walk(it.Value(), next, append(path, name))
				}
			}
		case cue.ListKind:
			list, err := v.List()
			if err != nil {
				return
			}
			for i := 0; list.Next(); i++ {
				if el := defStep(d, strconv.Itoa(i)); el.Exists() {
					walk(list.Value(), el, append(path, strconv.Itoa(i)))
				}
			}
		}
	}
	walk(doc, def, nil)
	return errs
}

// defAt is the definition of the field at sel (names, and numbers for
// list elements) in def; it does not exist when def has none.
func defAt(def cue.Value, sel []string) cue.Value {
	v := def
	for _, s := range sel {
		if v = defStep(v, s); !v.Exists() {
			break
		}
	}
	return v
}

// defStep is the definition of field s of d, or of its element s (a
// number) when d is a list: through a conjunction with a list builtin
// ([...#T] & list.MinItems(1)), or the first element's ([#T, ...#T]).
func defStep(d cue.Value, s string) cue.Value {
	n, err := strconv.Atoi(s)
	if err != nil || strings.Trim(s, "0123456789") != "" {
		next := d.LookupPath(cue.MakePath(cue.Str(s)))
		if !next.Exists() { // an optional field
			next = d.LookupPath(cue.MakePath(cue.Str(s).Optional()))
		}
		return next
	}
	next := d.LookupPath(cue.MakePath(cue.AnyIndex))
	if op, args := d.Expr(); !next.Exists() && op == cue.AndOp {
		for _, a := range args {
			if e := a.LookupPath(cue.MakePath(cue.AnyIndex)); e.Exists() {
				next = e
			}
		}
	}
	for _, i := range []int{n, 0} {
		if !next.Exists() {
			next = d.LookupPath(cue.MakePath(cue.Index(i)))
		}
	}
	return next
}

// notAllowed says that the field at sel may not be there: with the fields
// that may, and the one meant when only its case differs (Kubernetes
// matches names exactly; so does Baton).
func notAllowed(def cue.Value, sel []string) string {
	msg := "field not allowed"
	allowed := fieldsOf(def, sel[:len(sel)-1])
	if len(allowed) == 0 {
		return msg
	}
	for _, a := range allowed {
		if strings.EqualFold(a, sel[len(sel)-1]) {
			msg += ": did you mean " + a + "?"
		}
	}
	return msg + " (allowed: " + strings.Join(allowed, ", ") + ")"
}
