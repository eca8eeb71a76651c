package desired

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// TestLoaderMatchesLoad: a Loader that has seen earlier revisions gives, for
// each revision of a sequence, exactly what a load from nothing gives: the
// same state or the same errors, positions included, across changed, added,
// removed and renamed files, references broken and fixed in another file,
// and a name defined twice.
func TestLoaderMatchesLoad(t *testing.T) {
	deploy := func(name, image, cm string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s}
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: app
          image: %s
          env: [{name: X, valueFrom: {configMapKeyRef: {name: %s, key: x}}}]
`, name, image, cm)
	}
	cm := func(name, value string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {x: %q}\n", name, value)
	}
	rev := map[string][]byte{
		"a.yaml":    []byte(deploy("a", "a:1", "conf")),
		"b.yaml":    []byte(deploy("b", "b:1", "conf")),
		"conf.yaml": []byte(cm("conf", "1")),
	}
	steps := []struct {
		name   string
		change func(map[string][]byte)
		bad    bool
	}{
		{"first", func(map[string][]byte) {}, false},
		{"same again", func(map[string][]byte) {}, false},
		{"one image", func(f map[string][]byte) { f["a.yaml"] = []byte(deploy("a", "a:2", "conf")) }, false},
		{"the config map's data: both hashes move", func(f map[string][]byte) { f["conf.yaml"] = []byte(cm("conf", "2")) }, false},
		{"the config map loses its key: both references break", func(f map[string][]byte) {
			f["conf.yaml"] = []byte(strings.Replace(cm("conf", "2"), "{x:", "{y:", 1))
		}, true},
		{"the config map renamed: both wait for it", func(f map[string][]byte) { f["conf.yaml"] = []byte(cm("other", "2")) }, false},
		{"one fixed, one still waiting", func(f map[string][]byte) { f["a.yaml"] = []byte(deploy("a", "a:2", "other")) }, false},
		{"both fixed", func(f map[string][]byte) { f["b.yaml"] = []byte(deploy("b", "b:1", "other")) }, false},
		{"a file added", func(f map[string][]byte) { f["c.yaml"] = []byte(deploy("c", "c:1", "other")) }, false},
		{"a name defined twice", func(f map[string][]byte) { f["d.yaml"] = []byte(deploy("c", "c:9", "other")) }, true},
		{"the twin removed", func(f map[string][]byte) { delete(f, "d.yaml") }, false},
		{"a file renamed", func(f map[string][]byte) { f["z.yaml"] = f["a.yaml"]; delete(f, "a.yaml") }, false},
		{"a schema error", func(f map[string][]byte) { f["b.yaml"] = []byte(deploy("b", "b 1", "other")) }, true},
		{"back to the first revision's files", func(f map[string][]byte) {
			clear(f)
			f["a.yaml"] = []byte(deploy("a", "a:1", "conf"))
			f["b.yaml"] = []byte(deploy("b", "b:1", "conf"))
			f["conf.yaml"] = []byte(cm("conf", "1"))
		}, false},
	}
	l := NewLoader(Options{})
	render := func(st *State, err error) string {
		if err != nil {
			return "error: " + err.Error()
		}
		b, _ := json.Marshal(st)
		return string(b)
	}
	for _, s := range steps {
		s.change(rev)
		files := maps.Clone(rev)
		want := render(Load(files))
		got := render(l.Load(t.Context(), files))
		if got != want {
			t.Fatalf("%s: the loader gave\n%s\nwant\n%s", s.name, got, want)
		}
		if bad := want[:6] == "error:"; bad != s.bad {
			t.Fatalf("%s: %s", s.name, want)
		}
	}
}

// TestLoaderCachesUnchangedFiles: the next revision validates only the files
// that changed; the results of a changed state are new objects, the earlier
// state's untouched.
func TestLoaderCachesUnchangedFiles(t *testing.T) {
	files := yamlRepo(20)
	l := NewLoader(Options{})
	first, err := l.Load(t.Context(), files)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(first)
	files["apps/f001.yaml"] = []byte(string(files["apps/f001.yaml"]) + "\n# a comment\n")
	start := unitsValidated.Load()
	second, err := l.Load(t.Context(), files)
	if err != nil {
		t.Fatal(err)
	}
	if misses := unitsValidated.Load() - start; misses != 1 {
		t.Fatalf("%d files validated again, want 1", misses)
	}
	after, _ := json.Marshal(first)
	if string(before) != string(after) {
		t.Fatal("loading the next revision changed the state of the first")
	}
	if len(second.Workloads) != len(first.Workloads) {
		t.Fatalf("%d workloads, then %d", len(first.Workloads), len(second.Workloads))
	}
}
