package gitsource

import (
	"context"
	"strings"
	"testing"
)

// TestRevertAndNotes pushes over smart HTTP (git-http-backend behind basic
// auth on loopback) a revert of the branch's tip and git notes, and reads
// them back with the git command line.
func TestRevertAndNotes(t *testing.T) {
	ctx := context.Background()
	r, root := servedRepo(t)
	r.git("config", "http.receivepack", "true")
	r.git("config", "receive.denyCurrentBranch", "updateInstead")
	good := r.commit("web 1.4", map[string][]byte{"web.yaml": []byte("image: web:1.4\n")})
	bad := r.commit("web 1.5\n\nthe new build", map[string][]byte{"web.yaml": []byte("image: web:1.5\n"), "extra.yaml": []byte("x: 1\n")})
	srv := newGitHTTP(t, root, false)
	by := Signature{Name: "Baton", Email: "baton@localhost"}
	s, _ := New(Config{URL: srv.URL + "/config", CacheDir: t.TempDir(), Auth: Auth{Username: httpUser, Password: httpPass}})
	if snap, err := s.Fetch(ctx); err != nil || snap.Revision != bad {
		t.Fatalf("fetch: %v", err)
	}

	rev, err := s.Revert(ctx, bad, "web: no progress for 10m0s", by)
	if err != nil || len(rev) != 40 {
		t.Fatalf("revert: %q %v", rev, err)
	}
	if tip := r.git("rev-parse", "main"); tip != rev {
		t.Fatalf("main is %s, want the revert %s", tip, rev)
	}
	if d := r.git("diff", "--stat", good, rev); d != "" {
		t.Fatalf("the revert's tree differs from %s: %s", good[:12], d)
	}
	msg := r.git("log", "-1", "--format=%an <%ae>%n%B", rev)
	for _, want := range []string{"Baton <baton@localhost>", `Revert "web 1.5"`, "This reverts commit " + bad, "web: no progress"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("revert commit lacks %q:\n%s", want, msg)
		}
	}
	// The branch moved past it: nothing to do.
	if rev2, err := s.Revert(ctx, bad, "again", by); err != nil || rev2 != "" {
		t.Fatalf("second revert: %q %v", rev2, err)
	}

	// Notes, read by git log --notes=baton.
	if err := s.Note(ctx, good, "baton: converged\n", by); err != nil {
		t.Fatal(err)
	}
	if err := s.Note(ctx, bad, "baton: failed\nreason: no progress\n", by); err != nil {
		t.Fatal(err)
	}
	// Someone else adds a note meanwhile: ours goes on top of theirs.
	r.git("notes", "--ref=baton", "add", "-m", "reviewed by ops", rev)
	if err := s.Note(ctx, good, "baton: converged in 2s\n", by); err != nil {
		t.Fatal(err)
	}
	for c, want := range map[string]string{good: "baton: converged in 2s", bad: "baton: failed\nreason: no progress", rev: "reviewed by ops"} {
		if got := r.git("log", "-1", "--notes=baton", "--format=%N", c); got != want {
			t.Fatalf("note of %s: %q, want %q", c[:12], got, want)
		}
	}
	if n := r.git("notes", "--ref=baton", "list"); strings.Count(n, "\n") != 2 {
		t.Fatalf("notes: %s", n)
	}

	// Without push rights (a wrong password): a clear error, no secret in it.
	ro, _ := New(Config{URL: srv.URL + "/config", CacheDir: t.TempDir(), Auth: Auth{Username: httpUser, Password: "not-the-password"}})
	if err := ro.Note(ctx, good, "x", by); err == nil || strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("note with bad credentials: %v", err)
	}
}

func TestParseSignature(t *testing.T) {
	if s, err := ParseSignature("Baton Bot <baton@example.com>"); err != nil || s.Name != "Baton Bot" || s.Email != "baton@example.com" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"", "Baton", "<a@b>", "Baton <>"} {
		if _, err := ParseSignature(bad); err == nil {
			t.Errorf("ParseSignature(%q) accepted", bad)
		}
	}
}
