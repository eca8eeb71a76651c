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
					e := &Error{File: file, Field: indexPath(strings.Join(p, ".")), Msg: "field not allowed"}
					if allowed := fieldsOf(def, path); len(allowed) > 0 {
						for _, a := range allowed {
							if strings.EqualFold(a, name) {
								e.Msg += ": did you mean " + a + "?"
							}
						}
						e.Msg += " (allowed: " + strings.Join(allowed, ", ") + ")"
					}
					pos := it.Value().Pos()
					e.Line, e.Col = pos.Line(), pos.Column()
					errs = append(errs, e)
					continue
				}
				next := d.LookupPath(cue.MakePath(cue.Str(name)))
				if !next.Exists() {
					next = d.LookupPath(cue.MakePath(cue.Str(name).Optional()))
				}
				if next.Exists() {
					walk(it.Value(), next, append(path, name))
				}
			}
		case cue.ListKind:
			list, err := v.List()
			if err != nil {
				return
			}
			for i := 0; list.Next(); i++ {
				el := fieldsOfElem(d, i)
				if el.Exists() {
					walk(list.Value(), el, append(path, strconv.Itoa(i)))
				}
			}
		}
	}
	walk(doc, def, nil)
	return errs
}

// fieldsOfElem is the definition of a list's element i.
func fieldsOfElem(d cue.Value, i int) cue.Value {
	next := d.LookupPath(cue.MakePath(cue.AnyIndex))
	if op, args := d.Expr(); !next.Exists() && op == cue.AndOp {
		for _, a := range args {
			if e := a.LookupPath(cue.MakePath(cue.AnyIndex)); e.Exists() {
				next = e
			}
		}
	}
	if !next.Exists() {
		next = d.LookupPath(cue.MakePath(cue.Index(i)))
	}
	return next
}
