package desired

import (
	"sort"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

// SchemaFields lists every field path the schema allows, one per line, as
// "apiVersion Kind: path.to.field" ("[]" marks list elements, "*" any key),
// followed by "  # " and the schema's comment on the field when it has one.
// docs/workloads.md is checked against it, so the reference cannot drift.
func SchemaFields() ([]string, error) {
	sch, err := compileSchema(cuecontext.New())
	if err != nil {
		return nil, err
	}
	var out []string
	kinds, _ := sch.LookupPath(cue.ParsePath("kinds")).Fields()
	for kinds.Next() {
		av := kinds.Selector().Unquoted()
		ks, _ := kinds.Value().Fields()
		for ks.Next() {
			prefix := av + " " + ks.Selector().Unquoted() + ": "
			walkFields(ks.Value(), "", func(p string) { out = append(out, prefix+p) }, 0)
		}
	}
	sort.Strings(out)
	return out, nil
}

func walkFields(v cue.Value, path string, emit func(string), depth int) {
	if depth > 12 {
		return
	}
	// Unwrap disjunctions to the struct or list alternative, if any.
	if op, args := v.Expr(); op == cue.OrOp {
		for _, a := range args {
			if k := a.IncompleteKind(); k == cue.StructKind || k == cue.ListKind {
				v = a
				break
			}
		}
	}
	switch v.IncompleteKind() {
	case cue.StructKind:
		it, err := v.Fields(cue.Optional(true))
		if err != nil {
			return
		}
		n := 0
		for it.Next() {
			n++
			p := join(path, it.Selector().Unquoted())
			if note := fieldNote(it.Value()); note != "" {
				emit(p + "  # " + note)
			} else {
				emit(p)
			}
			walkFields(it.Value(), p, emit, depth+1)
		}
		if n == 0 {
			if e := v.LookupPath(cue.MakePath(cue.AnyString)); e.Exists() {
				walkFields(e, path+".*", emit, depth+1)
			}
		}
	case cue.ListKind:
		if e := v.LookupPath(cue.MakePath(cue.AnyIndex)); e.Exists() {
			walkFields(e, path+"[]", emit, depth+1)
		}
	}
}

// fieldNote is the schema's comment on a field, on one line: what Baton
// does with it where it differs from Kubernetes or needs saying.
func fieldNote(v cue.Value) string {
	var parts []string
	for _, cg := range v.Doc() {
		if t := strings.Join(strings.Fields(cg.Text()), " "); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, " ")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	if strings.ContainsAny(name, "./ ") {
		return path + "[" + name + "]"
	}
	return path + "." + name
}
