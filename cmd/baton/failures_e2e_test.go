package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/ociarchive"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
)

// lateImage writes an OCI archive of the hello server named ref.
func lateImage(t *testing.T, ref string) string {
	archive := filepath.Join(t.TempDir(), "late.oci.tar")
	if err := ociarchive.WriteFile(archive, ociarchive.Image{Ref: ref,
		Files: []ociarchive.File{{Path: "/hello", Mode: 0o755, Data: testenv.HelloBinary(t)}}, Entrypoint: []string{"/hello"}}); err != nil {
		t.Fatal(err)
	}
	return archive
}

// hello replicas as the status lists them (none while no server answers).
func (c *cluster) helloReplicas() []reconciler.ReplicaStatus {
	nc := c.connect("status")
	defer nc.Close()
	st, err := fetchStatus(c.ctx, nc)
	if err != nil {
		return nil
	}
	for _, w := range st.Workloads {
		if w.Name == "hello" {
			return w.Replicas
		}
	}
	return nil
}

// TestImageArrivesAfterTheCommit: a Deployment is committed before its
// image is on the node (as a new user does: baton up, commit, then baton
// image import). Each replica's start fails with image_not_found and waits
// for its own back-off (10 s), but the import ends the wait at once: the
// replicas run within seconds of it.
func TestImageArrivesAfterTheCommit(t *testing.T) {
	c := newCluster(t, 8*time.Second)
	c.startAgent("n1")
	const ref = "baton.local/late:v1"
	files := rolloutManifest(ref, "late", false)
	hash := hashOf(t, files)
	c.commit("hello: an image not imported yet", files)
	testenv.WaitFor(t, 30*time.Second, "three starts waiting for their image", func() (bool, string) {
		reps := c.helloReplicas()
		waiting := 0
		for _, r := range reps {
			if r.State == protocol.StateWaiting && r.Code == protocol.CodeImageNotFound && !r.RetryAt.IsZero() &&
				strings.Contains(r.Message, ref) && !strings.Contains(r.Message, "exit code") {
				waiting++
			}
		}
		return waiting == 3, fmt.Sprintf("%+v", reps)
	})
	st := c.status()
	var nextTry time.Time // the earliest try their back-off allows
	for _, r := range c.helloReplicas() {
		if r.Failures != 1 || time.Until(r.RetryAt) < 5*time.Second {
			t.Fatalf("a replica's first back-off: %d failures, next try in %s (want 1 and about 10 s)", r.Failures, time.Until(r.RetryAt))
		}
		if nextTry.IsZero() || r.RetryAt.Before(nextTry) {
			nextTry = r.RetryAt
		}
	}
	archive := lateImage(t, ref)
	imported := time.Now()
	if _, err := nodeagent.Import(c.ctx, c.cli, c.namespace("n1"), archive); err != nil {
		t.Fatal(err)
	}
	importTook := time.Since(imported)
	// The import ends the waits: no replica waits for its image any more
	// before the back-off would have let it try (how long the starts then
	// take is the machine's load, not this test's concern).
	testenv.WaitFor(t, 30*time.Second, "no replica waiting for its image", func() (bool, string) {
		reps := c.helloReplicas()
		for _, r := range reps {
			if r.State == protocol.StateWaiting && r.Code == protocol.CodeImageNotFound {
				return false, fmt.Sprintf("%+v", reps)
			}
		}
		return len(reps) == 3, fmt.Sprintf("%+v", reps)
	})
	woke := time.Since(imported)
	if !time.Now().Before(nextTry) {
		t.Fatalf("the replicas stopped waiting %s after their image arrived, not before their back-off ended (%s after)", woke, nextTry.Sub(imported))
	}
	c.converged(t, 3, hash, "n1")
	t.Logf("image imported (in %s) → waits ended in %s, 3 replicas running in %s (their back-off allowed a try %s after the import began)",
		importTook.Round(10*time.Millisecond), woke.Round(10*time.Millisecond), time.Since(imported).Round(10*time.Millisecond), nextTry.Sub(imported).Round(10*time.Millisecond))
	if len(st.Workloads) == 0 || st.Workloads[0].Pending != 0 {
		t.Fatalf("a waiting start is not a pending replica: %+v", st.Workloads)
	}
}

// TestFixingForwardIsNotPunished: a bad image rolls back; an unrelated
// commit meanwhile converges (the rolled-back workload is named beside its
// outcome, not as its cause); the fix committed next starts at once (a new
// template has no back-off) and converges within its deadline.
func TestFixingForwardIsNotPunished(t *testing.T) {
	c := newCluster(t, 8*time.Second)
	c.startAgent("n1")
	good := rolloutManifest(testImage, "v1", true)
	c.commit("hello v1", good)
	c.converged(t, 3, hashOf(t, good), "n1")

	bad := c.commit("hello: missing image", rolloutManifest("baton.local/missing:v2", "v2", true))
	testenv.WaitFor(t, 30*time.Second, "rolled back", func() (bool, string) {
		ro := c.rollout(t)
		return ro != nil && ro.State == reconciler.RolloutRolledBack, fmt.Sprintf("%+v", ro)
	})
	if ro := c.rollout(t); !strings.Contains(ro.Reason, "image_not_found: baton.local/missing:v2 is not present on the node") {
		t.Fatalf("the rollout's reason does not name the replica's: %q", ro.Reason)
	}
	if out, err := c.baton("wait", bad[:12], "--timeout", "10s"); err == nil || !strings.Contains(err.Error(), "image_not_found: baton.local/missing:v2") {
		t.Fatalf("baton wait on the bad revision: %v\n%s", err, out)
	}

	// An unrelated commit while hello stays rolled back.
	other := c.commit("other: a new Deployment", map[string]string{"other.yaml": strings.NewReplacer("name: hello", "name: other", "replicas: 3", "replicas: 1").
		Replace(rolloutManifest(testImage, "other", false)["hello.yaml"])})
	out, err := c.baton("wait", other[:12], "--timeout", "30s")
	if err != nil || !strings.Contains(out, "converged") || !strings.Contains(out, "already failed before this revision") || !strings.Contains(out, "hello (rolled-back since revision "+bad[:12]) {
		t.Fatalf("baton wait on an unrelated commit: %v\n%s", err, out)
	}

	// The fix: a new template, started at once.
	fix := rolloutManifest(testImage, "v3", true)
	fixed := c.commit("hello: fixed forward", fix)
	start := time.Now()
	testenv.WaitFor(t, 30*time.Second, "the fix running", func() (bool, string) {
		reps := c.helloReplicas()
		n := 0
		for _, r := range reps {
			if r.SpecHash == hashOf(t, fix) && r.State == protocol.StateRunning {
				n++
			}
		}
		return n == 3 && len(reps) == 3 && c.running("n1", hashOf(t, fix)) == 3, fmt.Sprintf("%+v", reps)
	})
	t.Logf("fix committed → 3 replicas of the new template running in %s", time.Since(start).Round(10*time.Millisecond))
	if out, err := c.baton("wait", fixed[:12], "--timeout", "30s", "--progress", "always"); err != nil || !strings.Contains(out, "hello 3/3 updated, 3 ready") {
		t.Fatalf("baton wait on the fix (with its progress): %v\n%s", err, out)
	}
	h, _ := c.baton("history", "--wide")
	if strings.Count(h, " failed: ") != 1 || strings.Count(h, " converged") != 3 {
		t.Fatalf("only the bad commit may be failed:\n%s", h)
	}
}
