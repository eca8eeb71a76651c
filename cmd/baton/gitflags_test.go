package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/gitsource"
)

func TestGitFlags(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("tok3n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg gitsource.Config
	g := gitFlags{passwordFile: pw, username: "bot", semver: "^1"}
	if err := g.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Password != "tok3n" || cfg.Auth.Username != "bot" || cfg.SemVer != "^1" {
		t.Fatalf("config %+v", cfg)
	}
	if s := cfg.Auth.String(); strings.Contains(s, "tok3n") {
		t.Fatalf("Auth.String shows the secret: %s", s)
	}
	t.Setenv("BATON_TEST_TOKEN", "from-env")
	g = gitFlags{passwordEnv: "BATON_TEST_TOKEN"}
	if err := g.apply(&cfg); err != nil || cfg.Auth.Password != "from-env" {
		t.Fatalf("env: %v %q", err, cfg.Auth.Password)
	}
	for _, bad := range []gitFlags{
		{passwordFile: pw, passwordEnv: "X"},
		{passwordEnv: "BATON_TEST_UNSET_VARIABLE"},
		{passwordFile: filepath.Join(dir, "missing")},
		{webhookListen: "127.0.0.1:0"},
	} {
		if err := bad.apply(&gitsource.Config{}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
