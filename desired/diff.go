package desired

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Change is what happened to one object between two states.
type Change struct {
	Kind   string        `json:"kind"`
	Name   string        `json:"name"`
	Op     string        `json:"op"` // added, removed, changed
	Fields []FieldChange `json:"fields,omitempty"`
}

// FieldChange is one changed field of the normalized object, with its
// values as compact JSON ("" when absent). A Secret's values never appear:
// its data shows as "(changed)".
type FieldChange struct {
	Path string `json:"path"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// Diff compares two states object by object, field by field, on their
// normalized form: reordering and formatting in the files are not changes.
// Provenance (file:line) and derived hashes are left out.
func Diff(a, b *State) []Change {
	kinds := []struct {
		kind string
		of   func(*State) []any
	}{
		{"Deployment", func(s *State) []any { return anySlice(s.Workloads) }},
		{"Job", func(s *State) []any { return anySlice(s.Jobs) }},
		{"CronJob", func(s *State) []any { return anySlice(s.CronJobs) }},
		{"ConfigMap", func(s *State) []any { return anySlice(s.ConfigMaps) }},
		{"PersistentVolumeClaim", func(s *State) []any { return anySlice(s.Claims) }},
		{"Service", func(s *State) []any { return anySlice(s.Services) }},
		{"HorizontalPodAutoscaler", func(s *State) []any { return anySlice(s.Autoscalers) }},
		{"ScalingSchedule", func(s *State) []any { return anySlice(s.Schedules) }},
		{"PodDisruptionBudget", func(s *State) []any { return anySlice(s.Budgets) }},
		{"Namespace", func(s *State) []any { return anySlice(s.Namespaces) }},
		{"Endpoints", func(s *State) []any { return anySlice(s.Endpoints) }},
		{"NodePool", func(s *State) []any { return anySlice(s.Pools) }},
	}
	// Flattening is most of the work: both states on their own cores.
	flat := make([][2]map[string]map[string]string, len(kinds))
	var wg sync.WaitGroup
	for i, s := range []*State{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range kinds {
				flat[k][i] = objects(s, kinds[k].of)
			}
		}()
	}
	wg.Wait()
	var out []Change
	for i, k := range kinds {
		out = append(out, diffKind(k.kind, flat[i][0], flat[i][1])...)
	}
	// Secrets: by key names and a digest, never by value.
	return append(out, diffSecrets(a, b)...)
}

func anySlice[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i := range xs {
		out[i] = xs[i]
	}
	return out
}

// objects flattens each object of a kind into path → JSON value, by name.
func objects(s *State, get func(*State) []any) map[string]map[string]string {
	out := map[string]map[string]string{}
	if s == nil {
		return out
	}
	for _, o := range get(s) {
		b, err := json.Marshal(o)
		if err != nil {
			continue
		}
		var v any
		if json.Unmarshal(b, &v) != nil {
			continue
		}
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		flat := map[string]string{}
		flatten("", v, flat)
		out[name] = flat
	}
	return out
}

// ignored are fields that are provenance or derived, not intent.
var ignored = map[string]bool{"source": true, "hash": true, "revision": true}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && prefix != "" {
			out[prefix] = "{}"
		}
		for k, e := range x {
			if prefix == "" && ignored[k] {
				continue
			}
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	case []any:
		if len(x) == 0 {
			out[prefix] = "[]"
		}
		for i, e := range x {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}

func diffKind(kind string, a, b map[string]map[string]string) []Change {
	var out []Change
	for _, n := range unionKeys(a, b) {
		oa, inA := a[n]
		ob, inB := b[n]
		switch {
		case !inA:
			out = append(out, Change{Kind: kind, Name: n, Op: "added"})
		case !inB:
			out = append(out, Change{Kind: kind, Name: n, Op: "removed"})
		default:
			if f := diffFields(oa, ob); len(f) > 0 {
				out = append(out, Change{Kind: kind, Name: n, Op: "changed", Fields: f})
			}
		}
	}
	return out
}

func diffFields(a, b map[string]string) []FieldChange {
	var out []FieldChange
	for _, p := range unionKeys(a, b) {
		if a[p] != b[p] {
			out = append(out, FieldChange{Path: p, Old: a[p], New: b[p]})
		}
	}
	return out
}

// diffSecrets compares Secrets by key names, type and a digest of their
// data that never leaves this package: a changed value shows as
// "(hidden)" → "(changed)".
func diffSecrets(a, b *State) []Change {
	flat := func(s *State) map[string]map[string]string {
		m := map[string]map[string]string{}
		if s != nil {
			for _, x := range s.Secrets {
				m[x.Name] = map[string]string{"keys": strings.Join(x.Keys, ","), "data": x.digest, "type": x.Type}
			}
		}
		return m
	}
	out := diffKind("Secret", flat(a), flat(b))
	for _, c := range out {
		for i, f := range c.Fields {
			if f.Path == "data" {
				c.Fields[i].Old, c.Fields[i].New = "(hidden)", "(changed)"
			}
		}
	}
	return out
}

// unionKeys lists the keys of a and b, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
