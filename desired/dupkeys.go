package desired

import (
	"fmt"
	"strconv"

	"cuelang.org/go/cue/ast"
)

// duplicateKeys finds the keys that appear twice in one mapping of a YAML
// document: Kubernetes refuses them (a YAML mapping's keys are unique),
// where unifying them would merge equal values silently or report
// "conflicting values". Each is named with both lines.
func duplicateKeys(file string, expr ast.Expr) Errors {
	var errs Errors
	type seen struct {
		name string
		f    *ast.Field
	}
	var names []seen // the names of the mappings being walked, outermost first
	var walk func(e ast.Expr, path string)
	walk = func(e ast.Expr, path string) {
		switch x := e.(type) {
		case *ast.StructLit:
			// Mappings are small: a scan of the names seen so far costs
			// less than a map per mapping.
			start := len(names)
			for _, d := range x.Elts {
				f, ok := d.(*ast.Field)
				if !ok {
					continue
				}
				name, _, err := ast.LabelName(f.Label)
				if err != nil {
					continue
				}
				var first *ast.Field
				for _, s := range names[start:] {
					if s.name == name {
						first = s.f
						break
					}
				}
				if first != nil {
					pos := f.Label.Pos()
					errs = append(errs, &Error{File: file, Line: pos.Line(), Col: pos.Column(), Field: join(path, name),
						Msg: fmt.Sprintf("duplicate key %q (also on line %d): a mapping's keys must be unique", name, first.Label.Pos().Line())})
					continue
				}
				names = append(names, seen{name, f})
				if needsWalk(f.Value) {
					walk(f.Value, join(path, name))
				}
			}
			names = names[:start]
		case *ast.ListLit:
			for i, el := range x.Elts {
				if needsWalk(el) {
					walk(el, path+"["+strconv.Itoa(i)+"]")
				}
			}
		}
	}
	walk(expr, "")
	return errs
}

// needsWalk reports whether e may hold a mapping.
func needsWalk(e ast.Expr) bool {
	switch e.(type) {
	case *ast.StructLit, *ast.ListLit:
		return true
	}
	return false
}

// listItems returns the items of a `kind: List` document (apiVersion v1),
// and whether it is one.
func listItems(expr ast.Expr) ([]ast.Expr, bool) {
	st, ok := expr.(*ast.StructLit)
	if !ok {
		return nil, false
	}
	var kind, apiVersion string
	var items *ast.ListLit
	for _, d := range st.Elts {
		f, ok := d.(*ast.Field)
		if !ok {
			continue
		}
		name, _, err := ast.LabelName(f.Label)
		if err != nil {
			continue
		}
		switch name {
		case "kind", "apiVersion":
			if lit, ok := f.Value.(*ast.BasicLit); ok {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					if name == "kind" {
						kind = s
					} else {
						apiVersion = s
					}
				}
			}
		case "items":
			items, _ = f.Value.(*ast.ListLit)
		}
	}
	if kind != "List" || apiVersion != "v1" || items == nil {
		return nil, false
	}
	return items.Elts, true
}
