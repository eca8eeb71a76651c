package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs the baton command line in-process.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
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
	out, _, err = run(t, "render", "-o", "json", "../../desired/testdata/k8s")
	if err != nil || !strings.Contains(out, `"cpuMilli": 250`) || strings.Contains(out, "t0p-Secret") {
		t.Fatalf("render: %v\n%s", err, out)
	}
	out, _, err = run(t, "render", "../../desired/testdata/k8s")
	if err != nil || !strings.Contains(out, "name: nginx-deployment") {
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
