package reconciler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/store"
)

// revisions is a RevisionReader over files kept in memory (the git cache's
// stand-in for this unit test; cmd/baton tests the real one).
type revisions map[string]map[string][]byte

func (rs revisions) At(_ context.Context, rev string) (map[string][]byte, error) {
	if f, ok := rs[rev]; ok {
		return f, nil
	}
	return nil, errors.New("not in the cache")
}

// recordingGit is a Noter and Reverter that records what it is asked.
type recordingGit struct {
	mu      sync.Mutex
	notes   map[string]string
	reverts []string
}

func (g *recordingGit) Note(_ context.Context, rev, text string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notes[rev] = text
	return nil
}

func (g *recordingGit) Revert(_ context.Context, rev, _ string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reverts = append(g.reverts, rev)
	return "revert-of-" + rev, nil
}

func (g *recordingGit) note(rev string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.notes[rev]
}

// TestBadRevisionNotReapplied: a revision whose rollout failed is
// remembered in KV; when the branch points at it again (after a pin and
// unpin, or for a new leader) it is not applied, the revision in force
// stays; a new commit is applied as usual; notes and a revert are asked of
// the Noter and Reverter.
func TestBadRevisionNotReapplied(t *testing.T) {
	nc := startJetStream(t)
	kv := openStore(t, nc)
	node := &fakeNode{nc: nc, name: "n1", reps: map[string]protocol.Replica{}}
	node.serve(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			node.report()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	version := func(image string) map[string][]byte {
		m := strings.Replace(manifest, "image: web:1", "image: "+image, 1)
		m = strings.Replace(m, "spec:\n  replicas: 2", "spec:\n  replicas: 2\n  progressDeadlineSeconds: 1", 1)
		return map[string][]byte{"web.yaml": []byte(m)}
	}
	revs := revisions{"good": version("web:1"), "bad": version("web:bad"), "next": version("web:2")}
	git := &recordingGit{notes: map[string]string{}}
	start := func() (*Reconciler, context.CancelFunc) {
		rctx, stop := context.WithCancel(ctx)
		rec := New(Config{NATS: nc, Store: kv, Resync: 50 * time.Millisecond, Revisions: revs, Notes: git, Reverter: git, ID: "s1"})
		done := make(chan struct{})
		go func() { _ = rec.Run(rctx); close(done) }()
		return rec, func() { stop(); <-done }
	}
	outcome := func(rec *Reconciler, rev, want string) {
		t.Helper()
		waitStatus(t, rec, func(Status) bool {
			e, ok := rec.LastApplied()
			return ok && e.Revision == rev && e.Outcome == want
		})
	}
	images := func() map[string]int {
		node.mu.Lock()
		defer node.mu.Unlock()
		out := map[string]int{}
		for _, r := range node.reps {
			out[r.SpecHash]++
		}
		return out
	}

	rec, stop := start()
	set := func(rev string) {
		t.Helper()
		if err := rec.SetRevision(ctx, Revision{ID: rev}, revs[rev]); err != nil {
			t.Fatal(err)
		}
	}
	set("good")
	outcome(rec, "good", store.OutcomeConverged)
	goodHash := rec.Status().Workloads[0].SpecHash
	set("bad")
	outcome(rec, "bad", store.OutcomeFailed)
	if b := rec.BadRevisions(); len(b) != 1 || b[0].Revision != "bad" || !strings.Contains(b[0].Reason, "not found") {
		t.Fatalf("bad revisions %+v", b)
	}
	waitStatus(t, rec, func(Status) bool { return strings.Contains(git.note("bad"), "baton: failed") })
	if n := git.note("good"); !strings.Contains(n, "baton: converged") || !strings.Contains(n, "server: s1") {
		t.Fatalf("note of the good revision: %q", n)
	}
	waitStatus(t, rec, func(Status) bool {
		b := rec.BadRevisions()
		return len(b) == 1 && b[0].Reverted == "revert-of-bad"
	})

	// Pinned to the good revision, then unpinned: the branch still points at
	// the bad one, which is not applied again.
	rec.SetPinned(&store.Pin{Revision: "good"})
	if err := rec.SetRevision(ctx, Revision{ID: "good", Ref: PinnedRef}, revs["good"]); err != nil { // as the server applies a pin
		t.Fatal(err)
	}
	outcome(rec, "good", store.OutcomeConverged)
	set("next") // polled just as the pin landed: not applied while pinned
	testenv.WaitPasses(t, rec, 3)
	if st := rec.Status(); st.Synced.ID != "good" || st.Tip.ID != "next" {
		t.Fatalf("pinned to good, synced %s, the branch's tip %q (want next: the pin keeps it out, status names it)", st.Synced.ID, st.Tip.ID)
	}
	rec.SetPinned(nil)
	set("bad")
	st := waitStatus(t, rec, func(s Status) bool { return s.Refused != nil })
	if st.Synced.ID != "good" || st.Refused.Revision != "bad" || st.Synced.Ref == PinnedRef || st.Pin != nil {
		t.Fatalf("synced %s (%q), refused %+v, pin %+v: unpinned, the revision in force is no longer said pinned", st.Synced.ID, st.Synced.Ref, st.Refused, st.Pin)
	}
	testenv.WaitPasses(t, rec, 5)
	if im := images(); len(im) != 1 || im[goodHash] != 2 {
		t.Fatalf("replicas by template %v: want only the good one's 2", im)
	}

	// A new leader finds the branch at the bad revision: it stays on the
	// good one, loaded from the cache.
	stop()
	rec, stop = start()
	defer stop()
	set("bad")
	st = waitStatus(t, rec, func(s Status) bool {
		return s.Refused != nil && len(s.Workloads) == 1 && s.Workloads[0].SpecHash == goodHash
	})
	if st.Synced.ID != "good" {
		t.Fatalf("a new leader synced %s", st.Synced.ID)
	}
	if im := images(); len(im) != 1 || im[goodHash] != 2 {
		t.Fatalf("replicas by template %v: want only the good one's 2", im)
	}

	// The next commit is applied as usual.
	set("next")
	outcome(rec, "next", store.OutcomeConverged)
	if st := rec.Status(); st.Refused != nil || st.Synced.ID != "next" {
		t.Fatalf("after a new commit: refused %+v, synced %s", st.Refused, st.Synced.ID)
	}
	git.mu.Lock()
	defer git.mu.Unlock()
	if len(git.reverts) != 1 {
		t.Fatalf("reverts asked: %v (want one, not again by the new leader)", git.reverts)
	}
}
