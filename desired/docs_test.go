package desired

import (
	"os"
	"strings"
	"testing"
)

const fieldsDoc = "../docs/schema-fields.md"

// TestSchemaFieldsDoc keeps docs/schema-fields.md equal to the schema
// (go test ./desired -update rewrites it).
func TestSchemaFieldsDoc(t *testing.T) {
	fields, err := SchemaFields()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# Schema fields\n\n")
	b.WriteString("Generated from the embedded schema (`baton schema --fields`); `go test ./desired` fails when\n")
	b.WriteString("this page and the schema differ, and `go test ./desired -update` rewrites it. Every field\n")
	b.WriteString("Baton accepts is listed; any other field is refused with `field not allowed (allowed: ...)`\n")
	b.WriteString("at its file, line and column. `[]` marks list elements, `*` any key. After `#` is the schema's\n")
	b.WriteString("note on a field: what Baton does with it where it differs from Kubernetes or needs saying\n")
	b.WriteString("(accepted and not acted on, ignored, checked in Go); a field without a note does what it does\n")
	b.WriteString("in Kubernetes, and docs/workloads.md describes each kind.\n")
	kind := ""
	for _, f := range fields {
		k, path, _ := strings.Cut(f, ": ")
		if k != kind {
			if kind != "" {
				b.WriteString("```\n")
			}
			kind = k
			b.WriteString("\n## " + k + "\n\n```\n")
		}
		b.WriteString(path + "\n")
	}
	b.WriteString("```\n")
	if *update {
		if err := os.WriteFile(fieldsDoc, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(fieldsDoc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != b.String() {
		t.Fatalf("%s is out of date with the schema: run go test ./desired -update", fieldsDoc)
	}
}

// TestWorkloadsDocNamesEveryKind checks docs/workloads.md against the schema's kinds.
func TestWorkloadsDocNamesEveryKind(t *testing.T) {
	doc, err := os.ReadFile("../docs/workloads.md")
	if err != nil {
		t.Fatal(err)
	}
	fields, err := SchemaFields()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range fields {
		k, _, _ := strings.Cut(f, ": ")
		if seen[k] {
			continue
		}
		seen[k] = true
		av, kind, _ := strings.Cut(k, " ")
		if !strings.Contains(string(doc), "| `"+av+"` | `"+kind+"` |") {
			t.Errorf("docs/workloads.md has no row for %s %s", av, kind)
		}
	}
}
