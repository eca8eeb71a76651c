package desired

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// kind is the YAML shape a field must have.
type kind int

const (
	kString kind = iota
	kInt
	kStringList
	kStringMap
	kObject
	kObjectList
)

// field describes one allowed field. Objects are closed: a field not listed is
// an error, so nothing in a manifest is ever silently ignored.
type field struct {
	kind     kind
	required bool
	fields   map[string]*field // kObject, kObjectList
}

func obj(fields map[string]*field) *field  { return &field{kind: kObject, fields: fields} }
func list(fields map[string]*field) *field { return &field{kind: kObjectList, fields: fields} }
func req(f *field) *field                  { f.required = true; return f }
func str() *field                          { return &field{kind: kString} }

var metadataSchema = obj(map[string]*field{
	"name":        req(str()),
	"namespace":   str(),
	"labels":      {kind: kStringMap},
	"annotations": {kind: kStringMap},
})

var deploymentSchema = obj(map[string]*field{
	"apiVersion": req(str()),
	"kind":       req(str()),
	"metadata":   req(metadataSchema),
	"spec": req(obj(map[string]*field{
		"replicas": {kind: kInt},
		"selector": obj(map[string]*field{
			"matchLabels": {kind: kStringMap},
		}),
		"template": req(obj(map[string]*field{
			"metadata": obj(map[string]*field{
				"labels":      {kind: kStringMap},
				"annotations": {kind: kStringMap},
			}),
			"spec": req(obj(map[string]*field{
				"containers": req(list(map[string]*field{
					"name":    req(str()),
					"image":   req(str()),
					"command": {kind: kStringList},
					"args":    {kind: kStringList},
					"env": list(map[string]*field{
						"name":  req(str()),
						"value": str(),
					}),
				})),
			})),
		})),
	})),
})

// check walks n against f and appends an Error for every field that is not
// allowed, missing or of the wrong shape.
func check(file string, n *yaml.Node, f *field, path string, errs *Errors) {
	bad := func(at *yaml.Node, p, format string, args ...any) {
		*errs = append(*errs, &Error{File: file, Line: at.Line, Col: at.Column, Field: p, Msg: fmt.Sprintf(format, args...)})
	}
	switch f.kind {
	case kString:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			bad(n, path, "must be a string")
		}
	case kInt:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			bad(n, path, "must be an integer, got %q", n.Value)
		}
	case kStringList:
		if n.Kind != yaml.SequenceNode {
			bad(n, path, "must be a list of strings")
			return
		}
		for i, c := range n.Content {
			check(file, c, str(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case kStringMap:
		if n.Kind != yaml.MappingNode {
			bad(n, path, "must be a map of strings")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			check(file, n.Content[i+1], str(), join(path, n.Content[i].Value), errs)
		}
	case kObjectList:
		if n.Kind != yaml.SequenceNode {
			bad(n, path, "must be a list")
			return
		}
		elem := &field{kind: kObject, fields: f.fields}
		for i, c := range n.Content {
			check(file, c, elem, fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case kObject:
		if n.Kind != yaml.MappingNode {
			bad(n, path, "must be an object")
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if seen[k.Value] {
				bad(k, p, "duplicate field")
				continue
			}
			seen[k.Value] = true
			sub, ok := f.fields[k.Value]
			if !ok {
				bad(k, p, "field not allowed (supported: %s)", strings.Join(names(f.fields), ", "))
				continue
			}
			check(file, v, sub, p, errs)
		}
		for _, name := range names(f.fields) {
			if f.fields[name].required && !seen[name] {
				bad(n, join(path, name), "required field is missing")
			}
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	if strings.ContainsAny(name, ". ") {
		return path + "[" + strconv.Quote(name) + "]"
	}
	return path + "." + name
}

func names(m map[string]*field) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
