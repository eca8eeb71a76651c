package desired

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	const canary = "canary-7f3a9c1e-never-print-me"
	load := func(docs string) *State {
		t.Helper()
		st, err := Load(map[string][]byte{"all.yaml": []byte(docs)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	web := func(replicas, image string) string {
		return `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: ` + replicas + `
  template:
    spec:
      containers: [{name: app, image: "` + image + `"}]
`
	}
	secret := func(v string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: " + v + "}\n"
	}
	a := load(web("3", "web:1.4") + "---\n" + secret(canary) + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\ndata: {a: '1'}\n")
	// The same objects, reordered and reformatted: no change.
	same := load("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\ndata:\n  a: \"1\"\n---\n" + secret(canary) + "---\n" + web("3", "web:1.4"))
	if d := Diff(a, same); len(d) != 0 {
		t.Fatalf("reordering gave changes: %+v", d)
	}
	b := load(web("5", "web:1.5") + "---\n" + secret(canary+"-rotated") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: new}\ndata: {b: '2'}\n")
	d := Diff(a, b)
	js, _ := json.Marshal(d)
	got := string(js)
	for _, want := range []string{
		`{"kind":"Deployment","name":"web","op":"changed","fields":[{"path":"pod.containers[0].image","old":"\"web:1.4\"","new":"\"web:1.5\""},{"path":"replicas","old":"3","new":"5"}]}`,
		`{"kind":"ConfigMap","name":"new","op":"added"}`,
		`{"kind":"ConfigMap","name":"old","op":"removed"}`,
		`{"kind":"Secret","name":"db","op":"changed","fields":[{"path":"data","old":"(hidden)","new":"(changed)"}]}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %s\ngot %s", want, got)
		}
	}
	if strings.Contains(got, "canary") {
		t.Fatalf("a secret value leaked into the diff: %s", got)
	}
}
