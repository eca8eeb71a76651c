package desired

import (
	"errors"
	"testing"
	"time"
)

// The loaders must return a State or Errors for any input: never panic,
// never hang. CI runs each for a bounded time (make fuzz).

func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\n"))
	f.Add([]byte("a: &a [x]\nb: [*a, *a]\n"))
	f.Add([]byte("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec: {schedule: '* * * * *'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, "f.yaml", data)
	})
}

func FuzzLoadCUE(f *testing.F) {
	f.Add([]byte("package a\nimport \"baton.dev/schema\"\nw: schema.#Deployment & {metadata: name: \"w\", spec: template: spec: containers: [{name: \"a\", image: \"b\"}]}\n"))
	f.Add([]byte("package a\nx: {kind: \"ConfigMap\", apiVersion: \"v1\", metadata: name: \"c\"}\n"))
	f.Add([]byte("package a\nx: [for i in [1,2] {i}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, "d/f.cue", data)
	})
}

func fuzzLoad(t *testing.T, name string, data []byte) {
	st, err := LoadWith(t.Context(), map[string][]byte{name: data}, Options{Timeout: 2 * time.Second})
	if errors.Is(err, ErrTimeout) {
		return // refused, as it must be: the time limit is the defence
	}
	if (st == nil) == (err == nil) {
		t.Fatalf("Load returned state %v and error %v", st != nil, err)
	}
}
