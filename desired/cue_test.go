package desired

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadDir(t *testing.T, dir string) *State {
	t.Helper()
	files, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Load(files)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// withoutSources blanks the file positions, which differ between YAML and CUE.
func withoutSources(t *testing.T, st *State) string {
	for i := range st.Workloads {
		st.Workloads[i].Source = ""
	}
	for i := range st.ConfigMaps {
		st.ConfigMaps[i].Source = ""
	}
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCUEProducesTheSameObjectsAsYAML(t *testing.T) {
	fromCUE, fromYAML := loadDir(t, "testdata/cue"), loadDir(t, "testdata/yamlequiv")
	if len(fromCUE.Workloads) != 2 || len(fromCUE.ConfigMaps) != 1 {
		t.Fatalf("CUE gave %d workloads and %d config maps", len(fromCUE.Workloads), len(fromCUE.ConfigMaps))
	}
	if !strings.HasPrefix(fromCUE.Workloads[0].Source, "app.cue:") {
		t.Fatalf("source %q", fromCUE.Workloads[0].Source)
	}
	if a, b := withoutSources(t, fromCUE), withoutSources(t, fromYAML); a != b {
		t.Fatalf("CUE and YAML differ:\nCUE:  %s\nYAML: %s", a, b)
	}
}

func TestKubernetesExamplesGolden(t *testing.T) {
	st := loadDir(t, "testdata/k8s")
	got := checkGolden(t, filepath.Join("testdata", "k8s.golden.json"), st)
	if strings.Contains(string(got), "t0p-Secret") || strings.Contains(string(got), "YWRtaW4=") {
		t.Fatal("a secret value is in the rendered output")
	}
}

func TestCUEErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown field", map[string]string{"a/x.cue": `package a
import "baton.dev/schema"
web: schema.#Deployment & {metadata: name: "web", spec: {replicaz: 2, template: spec: containers: [{name: "a", image: "i"}]}}
`}, "a/x.cue:3:58: web.spec.replicaz: field not allowed"},
		{"tool import", map[string]string{"a/x.cue": "package a\nimport \"tool/exec\"\nx: exec.Run\n"}, `a/x.cue:2:8: import "tool/exec": only "baton.dev/schema" and CUE's standard library`},
		{"remote import", map[string]string{"a/x.cue": "package a\nimport \"example.com/m\"\nx: m.y\n"}, `a/x.cue:2:8: import "example.com/m"`},
		{"syntax", map[string]string{"a/x.cue": "package a\nx: {\n"}, "a/x.cue"},
		{"conflict", map[string]string{"a/x.cue": "package a\nx: 1\nx: 2\n"}, "conflicting values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{}
			for k, v := range tt.files {
				files[k] = []byte(v)
			}
			_, err := Load(files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCUETimeLimitWithoutChild(t *testing.T) {
	// Binaries that do not call ServeChild abandon the evaluation in-process
	// at the limit. The input takes a few seconds, not forever, so the
	// abandoned goroutine does not outlive the test run.
	childReady.Store(false)
	defer childReady.Store(true)
	slow := "package a\nimport \"list\"\nn: list.Range(0, 1000, 1)\nx: [for a in n for b in n if a+b < 0 {a}]\n"
	_, err := LoadWith(t.Context(), map[string][]byte{"a/x.cue": []byte(slow)}, Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestCUETimeLimitKillsTheEvaluation(t *testing.T) {
	if !childReady.Load() {
		t.Fatal("TestMain did not call ServeChild")
	}
	slow := "package a\nimport \"list\"\nn: list.Range(0, 3000, 1)\nx: [for a in n for b in n for c in n {a+b+c}]\n"
	// The child is what refuses it: it evaluates the revision and is killed.
	if err := checkInChild(t.Context(), map[string][]byte{"a/x.cue": []byte(slow)}, time.Second); !errors.Is(err, ErrTimeout) {
		t.Fatalf("child: err = %v, want ErrTimeout", err)
	}
	if err := checkInChild(t.Context(), map[string][]byte{"a/x.cue": []byte("package a\nx: 1\n")}, 10*time.Second); err != nil {
		t.Fatalf("child on a good revision: %v", err)
	}
	start := time.Now()
	_, err := LoadWith(t.Context(), map[string][]byte{"a/x.cue": []byte(slow)}, Options{Timeout: time.Second})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	// The child was killed: no evaluation goes on in this process, so a
	// normal revision loads at normal speed right after.
	if _, err := Load(map[string][]byte{"d/x.cue": []byte("package d\nx: 1\n")}); err != nil {
		t.Fatal(err)
	}
}
