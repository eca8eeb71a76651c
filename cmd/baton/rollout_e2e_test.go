package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/reconciler"
)

// rolloutManifest is a 3-replica Deployment with a 3 s progress deadline.
func rolloutManifest(image, message string, autoRollback bool) map[string]string {
	ann := ""
	if autoRollback {
		ann = "\n  annotations: {baton.dev/auto-rollback: \"true\"}"
	}
	return map[string]string{"hello.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello%s
spec:
  replicas: 3
  progressDeadlineSeconds: 3
  template:
    spec:
      containers:
        - name: web
          image: %s
          imagePullPolicy: Never
          args: ["-message", %q]
`, ann, image, message)}
}

func (c *cluster) rollout(t *testing.T) *reconciler.Rollout {
	t.Helper()
	for _, w := range c.status().Workloads {
		if w.Name == "hello" {
			return w.Rollout
		}
	}
	return nil
}

// TestRolloutFailsAndRollsBack: a template whose image does not exist makes
// no progress; past its deadline the rollout fails with the reason while the
// old replicas keep serving, and with auto-rollback it returns to the last
// healthy template by itself. Without it, git revert does the same.
func TestRolloutFailsAndRollsBack(t *testing.T) {
	c := newCluster(t, 8*time.Second)
	c.startAgent("n1")

	good := rolloutManifest(testImage, "v1", true)
	hash1 := hashOf(t, good)
	c.commit("hello v1", good)
	c.converged(t, 3, hash1, "n1")
	testenv.WaitFor(t, 10*time.Second, "rollout complete", func() (bool, string) {
		ro := c.rollout(t)
		return ro != nil && ro.State == reconciler.RolloutComplete, fmt.Sprintf("%+v", ro)
	})

	// A missing image with auto-rollback: failed, then rolled back.
	c.commit("hello: missing image", rolloutManifest("baton.local/missing:v1", "v2", true))
	testenv.WaitFor(t, 30*time.Second, "rolled back", func() (bool, string) {
		ro := c.rollout(t)
		return ro != nil && ro.State == reconciler.RolloutRolledBack, fmt.Sprintf("%+v", ro)
	})
	ro := c.rollout(t)
	if !strings.Contains(ro.Reason, "rolled back to template "+hash1) || !strings.Contains(ro.Reason, "no progress for 3s") {
		t.Fatalf("reason %q", ro.Reason)
	}
	c.converged(t, 3, hash1, "n1")
	c.waitPasses(t, 3) // stays rolled back: nothing new is tried
	c.converged(t, 3, hash1, "n1")

	// Without auto-rollback: failed and frozen, the old replicas serving;
	// git revert brings the good template back.
	c.commit("hello v1, no auto-rollback", rolloutManifest(testImage, "v1", false))
	hash1b := hashOf(t, rolloutManifest(testImage, "v1", false))
	if hash1b != hash1 {
		t.Fatal("an annotation must not change the pod template hash")
	}
	bad := c.commit("hello: missing image again", rolloutManifest("baton.local/missing:v1", "v3", false))[:12]
	testenv.WaitFor(t, 30*time.Second, "failed", func() (bool, string) {
		ro := c.rollout(t)
		return ro != nil && ro.State == reconciler.RolloutFailed, fmt.Sprintf("%+v", ro)
	})
	if n := c.running("n1", hash1); n != 3 {
		t.Fatalf("%d old replicas serving after the failed rollout, want 3", n)
	}
	start := time.Now()
	c.git("revert", "--no-edit", "HEAD")
	c.converged(t, 3, hash1, "n1")
	testenv.WaitFor(t, 10*time.Second, "rollout complete after the revert", func() (bool, string) {
		ro := c.rollout(t)
		return ro != nil && ro.State == reconciler.RolloutComplete && ro.Hash == hash1, fmt.Sprintf("%+v", ro)
	})
	t.Logf("git revert of the failed rollout → converged and complete in %s", time.Since(start).Round(10*time.Millisecond))

	// baton wait: the revert converged (exit 0); the bad revision failed (an error).
	if out, err := c.baton("wait", "--timeout", "30s"); err != nil || !strings.Contains(out, "converged in") {
		t.Fatalf("baton wait: %v\n%s", err, out)
	}
	if _, err := c.baton("wait", bad, "--timeout", "5s"); err == nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("baton wait on the failed revision: %v", err)
	}
	out, err := c.baton("history", "--wide")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"converged", "failed: hello: rolled back to template", "failed: hello: image_not_found", "hello: missing image again"} {
		if !strings.Contains(out, want) {
			t.Fatalf("baton history lacks %q:\n%s", want, out)
		}
	}
}

// TestAutoRevert: with --auto-revert and --git-notes, a revision whose
// rollout fails is reverted by Baton itself (a commit pushed onto the
// branch, so Git and the cluster agree), the revert is applied and
// converges, and every revision's outcome is a git note.
func TestAutoRevert(t *testing.T) {
	c := newCluster(t, 8*time.Second, func(o *serverOptions) {
		o.git.autoRevert, o.git.notes, o.git.author = true, true, "Baton CI <baton@localhost>"
	})
	// The config repository has a work tree: let pushes update it, as a
	// bare repository on a Git host would simply take them.
	c.git("config", "receive.denyCurrentBranch", "updateInstead")
	c.startAgent("n1")
	good := rolloutManifest(testImage, "v1", false)
	hash1 := hashOf(t, good)
	goodRev := c.commit("hello v1", good)
	c.converged(t, 3, hash1, "n1")

	deployed := time.Now()
	badRev := c.commit("hello: missing image", rolloutManifest("baton.local/missing:v1", "v2", false))
	var revert string
	testenv.WaitFor(t, 60*time.Second, "Baton pushed a revert", func() (bool, string) {
		revert = c.gitOut("rev-parse", "main")
		return revert != badRev, revert
	})
	pushed := time.Since(deployed)
	if parent := c.gitOut("rev-parse", "main^"); parent != badRev {
		t.Fatalf("the revert's parent is %s, want the bad commit %s", parent, badRev)
	}
	if msg := c.gitOut("log", "-1", "--format=%an%n%B", "main"); !strings.Contains(msg, "Baton CI") || !strings.Contains(msg, "This reverts commit "+badRev) || !strings.Contains(msg, "no progress for 3s") {
		t.Fatalf("revert commit:\n%s", msg)
	}
	if d := c.gitOut("diff", goodRev, revert); d != "" {
		t.Fatalf("the revert's tree is not the good revision's:\n%s", d)
	}
	c.converged(t, 3, hash1, "n1")
	testenv.WaitFor(t, 20*time.Second, "the revert converged", func() (bool, string) {
		st := c.status()
		return st.Synced.ID == revert && st.Refused == nil, st.Synced.ID
	})
	converged := time.Since(deployed)
	t.Logf("bad commit → revert pushed in %s → converged on the revert %s after the bad commit", pushed.Round(10*time.Millisecond), converged.Round(10*time.Millisecond))

	// Notes on every revision, as git log --notes=baton shows them.
	testenv.WaitFor(t, 20*time.Second, "notes", func() (bool, string) {
		out := c.gitOut("log", "--notes=baton", "--format=%h %N")
		return strings.Contains(out, goodRev[:7]+" baton: converged") && strings.Contains(out, badRev[:7]+" baton: failed") &&
			strings.Contains(out, revert[:7]+" baton: converged"), out
	})
	if out := c.gitOut("notes", "--ref=baton", "show", badRev); !strings.Contains(out, "reason: hello: image_not_found: baton.local/missing:v1 is not present on the node") {
		t.Fatalf("note of the bad revision:\n%s", out)
	}
}
