package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
	"github.com/batonhq/baton/reconciler/store"
)

// run runs the baton command line in-process.
func run(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	return runCtx(context.Background(), args...)
}

// runCtx runs a baton command until it ends or ctx does (a daemon).
func runCtx(ctx context.Context, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestValidateAndRender(t *testing.T) {
	out, _, err := run(t, "validate", "../../examples/hello")
	if err != nil || !strings.Contains(out, "ok: 1 workloads") {
		t.Fatalf("validate examples/hello: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bad := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  replicaz: 1\n  template: {spec: {containers: [{name: a, image: b}]}}\n"
	if err := os.WriteFile(filepath.Join(dir, "w.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := run(t, "validate", dir)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(errOut, "w.yaml:5:3: spec.replicaz: field not allowed") {
		t.Fatalf("validate bad: %v\n%s", err, errOut)
	}
	// A StatefulSet's ordinals and claims, by name.
	out, _, err = run(t, "validate", "../../desired/testdata/corpus/kubernetes-examples/databases/cassandra")
	if err != nil || !strings.Contains(out, "cassandra: StatefulSet, ordinals cassandra-0..cassandra-2, claims cassandra-data-cassandra-N, template") {
		t.Fatalf("validate a StatefulSet: %v\n%s", err, out)
	}
	out, _, err = run(t, "render", "-o", "json", "../../desired/testdata/k8s")
	if err != nil || !strings.Contains(out, `"cpuMilli": 250`) || strings.Contains(out, "t0p-Secret") {
		t.Fatalf("render: %v\n%s", err, out)
	}
	out, _, err = run(t, "render", "../../desired/testdata/k8s")
	// Quantities print as the integers they are (64Mi), not 6.7108864e+07.
	if err != nil || !strings.Contains(out, "name: nginx-deployment") || !strings.Contains(out, "memoryBytes: 67108864") {
		t.Fatalf("render yaml: %v\n%s", err, out)
	}
}

func TestSecretSealRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	pub, _, err := run(t, "secret", "keygen", key)
	if err != nil || !strings.HasPrefix(pub, "age1") {
		t.Fatalf("keygen: %v %q", err, pub)
	}
	if info, err := os.Stat(key); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	sealed, _, err := run(t, "secret", "seal", "--recipient", strings.TrimSpace(pub), "--name", "db", "password=hunter2")
	if err != nil || strings.Contains(sealed, "hunter2") {
		t.Fatalf("seal: %v\n%s", err, sealed)
	}
	app := sealed + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template: {spec: {containers: [{name: a, image: b, env: [{name: PW, valueFrom: {secretKeyRef: {name: db, key: password}}}]}]}}\n"
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := run(t, "validate", "--secret-key", key, dir); err != nil {
		t.Fatalf("validate with key: %v\n%s", err, errOut)
	}
	if _, errOut, err := run(t, "validate", dir); err != nil || !strings.Contains(errOut, "SealedSecret db not decrypted here (no --secret-key)") {
		t.Fatalf("validate without a key: %v\n%s", err, errOut)
	}
	other := filepath.Join(dir, "other.key")
	if _, _, err := run(t, "secret", "keygen", other); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := run(t, "validate", "--secret-key", other, dir); err == nil || !strings.Contains(errOut, "cannot decrypt") {
		t.Fatalf("validate with the wrong key: %v\n%s", err, errOut)
	}
	if _, _, err := run(t, "secret", "keygen", key); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}
}

func TestSchemaCommand(t *testing.T) {
	out, _, err := run(t, "schema")
	if err != nil || !strings.Contains(out, "#Deployment: {") {
		t.Fatalf("schema: %v", err)
	}
	out, _, err = run(t, "schema", "--fields")
	if err != nil || !strings.Contains(out, "apps/v1 Deployment: spec.template.spec.containers[].image") {
		t.Fatalf("schema --fields: %v\n%s", err, out[:min(len(out), 500)])
	}
}

// TestDiff: baton diff between two revisions of a real git repository
// (made with go-git) and between directories; exit codes 0, 2 and 1.
func TestDiff(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := repo.Worktree()
	commit := func(replicas string) string {
		t.Helper()
		body := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: " + replicas + "\n  template: {spec: {containers: [{name: a, image: 'web:1'}]}}\n"
		if err := os.MkdirAll(filepath.Join(dir, "apps"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "apps", "web.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add("apps/web.yaml"); err != nil {
			t.Fatal(err)
		}
		h, err := wt.Commit("web "+replicas, &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@localhost", When: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	first := commit("3")
	commit("5")
	out, _, err := run(t, "diff", "--repo", dir, "--path", "apps", first, "HEAD")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(out, "~ Deployment web") || !strings.Contains(out, "replicas: 3 → 5") {
		t.Fatalf("diff of two revisions: %v\n%s", err, out)
	}
	// As a pull-request comment, in the plan's Markdown.
	out, _, err = run(t, "diff", "-o", "markdown", "--repo", dir, "--path", "apps", first, "HEAD")
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(out, "### Baton diff `"+first+"` → `HEAD`") ||
		!strings.Contains(out, "0 added, 1 changed, 0 removed") || !strings.Contains(out, "<details><summary>Deployment <b>web</b>: changed</summary>") ||
		!strings.Contains(out, "```diff\n- replicas: 3\n+ replicas: 5\n```") {
		t.Fatalf("diff -o markdown: %v\n%s", err, out)
	}
	out, _, err = run(t, "diff", "--repo", dir, "--path", "apps", "HEAD", "HEAD")
	if err != nil || !strings.Contains(out, "No changes.") {
		t.Fatalf("diff of a revision with itself: %v\n%s", err, out)
	}
	if _, _, err := run(t, "diff", "--repo", dir, "HEAD", "no-such-branch"); err == nil || errors.As(err, &ee) {
		t.Fatalf("diff with an unknown revision: %v", err)
	}
	out, _, err = run(t, "diff", "-o", "json", filepath.Join(dir, "apps"), "../../examples/hello")
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(out, `"op": "added"`) || !strings.Contains(out, `"op": "removed"`) {
		t.Fatalf("diff of two directories: %v\n%s", err, out)
	}
}

// TestPlanCLI: baton plan posts a directory to the API and prints the plan
// as text, Markdown or JSON, with terraform's detailed exit codes.
func TestPlanCLI(t *testing.T) {
	nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := store.Open(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{JS: js, ID: "s1", Tokens: nil, Log: zerolog.Nop()})
	api.SetLeader(reconciler.New(reconciler.Config{NATS: nc, Store: kv}))
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()

	out, _, err := run(t, "plan", "../../examples/hello", "--server", srv.URL, "-o", "markdown")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(out, "### Baton plan") || !strings.Contains(out, "| hello | added | 0 → 3 | git |") {
		t.Fatalf("plan -o markdown: %v\n%s", err, out)
	}
	out, _, err = run(t, "plan", "../../examples/hello", "--server", srv.URL)
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(out, "+ hello: new, 3 replicas (baton.local/hello:v1); 3 would not fit: no nodes") {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	// --check-index: the plan's live index must still be the given one.
	out, _, err = run(t, "plan", "../../examples/hello", "--server", srv.URL, "-o", "json")
	var p reconciler.Plan
	if jerr := json.Unmarshal([]byte(out), &p); jerr != nil || len(p.Against.Index) != 16 {
		t.Fatalf("plan -o json: %v %v", err, jerr)
	}
	if _, _, err := run(t, "plan", "../../examples/hello", "--server", srv.URL, "--check-index", p.Against.Index); !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("plan --check-index with the current index: %v", err)
	}
	if _, _, err := run(t, "plan", "../../examples/hello", "--server", srv.URL, "--check-index", "0000000000000000"); err == nil || !strings.Contains(err.Error(), "the cluster moved") {
		t.Fatalf("plan --check-index with another index: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.yaml"), []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  replicaz: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := run(t, "plan", dir, "--server", srv.URL)
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(errOut, "w.yaml:5:3") {
		t.Fatalf("plan of a bad revision: %v\n%s", err, errOut)
	}
}
