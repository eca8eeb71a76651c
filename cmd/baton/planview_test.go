package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/reconciler"
)

var update = flag.Bool("update", false, "rewrite golden files")

// planGoldenJSON is the reconciler's golden plan (reconciler.TestPlanGolden):
// the API's answer that the CLI renders.
const planGoldenJSON = "../../reconciler/testdata/plan/plan.golden.json"

// TestPlanFormats renders the golden plan (a new image, a schedule
// window, an autoscaled workload, a new and a removed workload, a rotated
// secret, a pod that fits nowhere) as text, coloured text and Markdown,
// and compares with testdata/plan.*.golden.
func TestPlanFormats(t *testing.T) {
	b, err := os.ReadFile(planGoldenJSON)
	if err != nil {
		t.Fatal(err)
	}
	var p reconciler.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		golden string
		render func(*bytes.Buffer)
	}{
		{"plan.txt.golden", func(w *bytes.Buffer) { printPlan(w, p, palette{}) }},
		{"plan.color.golden", func(w *bytes.Buffer) { printPlan(w, p, ansi) }},
		{"plan.md.golden", func(w *bytes.Buffer) { printPlanMarkdown(w, p) }},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var got bytes.Buffer
			tc.render(&got)
			if strings.Contains(got.String(), "canary") {
				t.Fatalf("a secret value leaked:\n%s", got.String())
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("%s differs (go test -run TestPlanFormats -update to accept):\n%s", path, got.String())
			}
		})
	}
	// The text forms must carry the summary first and every workload.
	var txt bytes.Buffer
	printPlan(&txt, p, palette{})
	if first := strings.SplitN(txt.String(), "\n", 4)[2]; !strings.Contains(first, "api: no change") {
		t.Errorf("the summary does not come first: %q", first)
	}
	var md bytes.Buffer
	printPlanMarkdown(&md, p)
	// A section per workload that changes (cache, legacy-api, trainer, web,
	// worker) and per other object (the schedule, the secret); api, which
	// does not change, has none.
	if n := strings.Count(md.String(), "<details>"); n != 7 || strings.Contains(md.String(), "<b>api</b>") {
		t.Errorf("%d collapsible sections, want 7 and none for api", n)
	}
}
