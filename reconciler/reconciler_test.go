package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/store"
)

func startJetStream(t testing.TB) *nats.Conn { return testenv.NATS(t) }

func openStore(t testing.TB, nc *nats.Conn) *store.Store {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fakeNode answers commands and reports what it was told to run.
type fakeNode struct {
	nc   *nats.Conn
	name string
	mu   sync.Mutex
	reps map[string]protocol.Replica
	// minTerm: commands of older terms are refused, as a real node does
	// once it has seen a newer leader.
	minTerm uint64
	// stops counts the stop commands per replica; with stopDelay, a stopped
	// replica stays in the reports that long (a slow stop, stale reports).
	stops     map[string]int
	stopDelay time.Duration
	// failStopping reports the replicas being stopped as failed.
	failStopping bool
	stopped      map[string]bool
}

func (f *fakeNode) serve(t *testing.T) {
	_, err := f.nc.Subscribe(protocol.CommandSubject(f.name), func(m *nats.Msg) {
		var c protocol.Command
		if err := protocol.Decode(m.Data, &c); err != nil {
			t.Errorf("bad command: %v", err)
			return
		}
		f.mu.Lock()
		if c.Term < f.minTerm {
			f.mu.Unlock()
			_ = m.Respond(protocol.Encode(protocol.Reply{Version: protocol.Version, Code: protocol.CodeStaleTerm, Error: "old term"}))
			return
		}
		reply := protocol.Reply{Version: protocol.Version, OK: true}
		starts, stops := []protocol.ReplicaSpec{}, []string{}
		switch c.Op {
		case protocol.OpStart:
			starts = append(starts, *c.Start)
		case protocol.OpStop:
			stops = append(stops, c.StopID)
		case protocol.OpBatch:
			starts, stops = c.Batch.Starts, c.Batch.Stops
		}
		for _, id := range stops {
			f.stopLocked(id)
			reply.Results = append(reply.Results, protocol.ItemResult{ID: id, OK: true})
		}
		for _, s := range starts {
			rep := protocol.Replica{ID: s.ID, Workload: s.Workload, SpecHash: s.SpecHash, State: protocol.StateRunning, Ready: true}
			for _, ctr := range s.Pod.Containers { // images tagged "bad" never become ready
				if strings.HasSuffix(ctr.Image, ":bad") {
					rep.State, rep.Ready, rep.Message = protocol.StateWaiting, false, "image "+ctr.Image+" not found"
				}
			}
			f.reps[s.ID] = rep
			reply.Results = append(reply.Results, protocol.ItemResult{ID: s.ID, OK: true})
		}
		f.mu.Unlock()
		_ = m.Respond(protocol.Encode(reply))
		f.report()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// stopLocked stops a replica (f.mu held).
func (f *fakeNode) stopLocked(id string) {
	if f.stops == nil {
		f.stops = map[string]int{}
	}
	f.stops[id]++
	if f.stopDelay <= 0 {
		delete(f.reps, id)
		return
	}
	if f.stopped == nil {
		f.stopped = map[string]bool{}
	}
	f.stopped[id] = true
	time.AfterFunc(f.stopDelay, func() {
		f.mu.Lock()
		delete(f.reps, id)
		f.mu.Unlock()
		f.report()
	})
}

func (f *fakeNode) report() {
	f.mu.Lock()
	r := protocol.Report{Version: protocol.Version, Node: f.name}
	for _, rep := range f.reps {
		if f.failStopping && f.stopped[rep.ID] {
			rep.State, rep.Ready, rep.ExitCode, rep.Message = protocol.StateFailed, false, -1, "task: not found"
		}
		r.Replicas = append(r.Replicas, rep)
	}
	// Published under the lock: reports leave in the order of the states
	// they show, as an agent's (one goroutine) do.
	_ = f.nc.Publish(protocol.ReportSubject(f.name), protocol.Encode(r))
	f.mu.Unlock()
	_ = f.nc.Publish(protocol.HeartbeatSubject(f.name), protocol.Encode(protocol.Heartbeat{Version: protocol.Version, Node: f.name}))
}

func waitStatus(t *testing.T, r *Reconciler, ok func(Status) bool) Status {
	t.Helper()
	var st Status
	testenv.WaitFor(t, 10*time.Second, "the status", func() (bool, string) {
		st = r.Status()
		return ok(st), fmt.Sprintf("%+v", st)
	})
	return st
}

const manifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: app
          image: web:1
`

func TestReconcilerLoop(t *testing.T) {
	nc := startJetStream(t)
	kv := openStore(t, nc)
	node := &fakeNode{nc: nc, name: "n1", reps: map[string]protocol.Replica{}}
	node.serve(t)

	ctx, cancel := context.WithCancel(context.Background())
	rec := New(Config{NATS: nc, Store: kv, Resync: 50 * time.Millisecond})
	done := make(chan error)
	go func() { done <- rec.Run(ctx) }()

	// Malformed and spoofed messages are rejected without harm.
	_ = nc.Publish(protocol.ReportSubject("n1"), []byte("{not json"))
	_ = nc.Publish(protocol.HeartbeatSubject("n1"), protocol.Encode(protocol.Heartbeat{Version: protocol.Version, Node: "n2"}))
	_ = nc.Publish(protocol.ReportSubject("n1"), []byte(`{"version":99,"node":"n1"}`))

	if err := rec.SetRevision(ctx, Revision{ID: "rev1"}, map[string][]byte{"web.yaml": []byte(manifest)}); err != nil {
		t.Fatal(err)
	}
	go func() { // heartbeats until the test ends
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				node.report()
			}
		}
	}()
	st := waitStatus(t, rec, func(s Status) bool {
		return len(s.Workloads) == 1 && s.Workloads[0].Current == 2 && s.Synced.ID == "rev1"
	})
	if len(st.Nodes) != 1 || st.Nodes[0].Name != "n1" || !st.Nodes[0].Ready {
		t.Fatalf("nodes %+v (a spoofed heartbeat must not add n2)", st.Nodes)
	}
	// A replica of the template crash-looping (waiting out its restart
	// back-off) is still current, though neither running nor ready.
	node.mu.Lock()
	var looping protocol.Replica
	for id, r := range node.reps {
		looping = r
		r.State, r.Ready, r.Restarts, r.Message = protocol.StateWaiting, false, 3, "container web: back-off restarting (exited with code 1, 3 restarts)"
		node.reps[id] = r
		break
	}
	node.mu.Unlock()
	waitStatus(t, rec, func(s Status) bool {
		w := s.Workloads[0]
		return w.Running == 1 && w.Ready == 1 && w.Current == 2
	})
	node.mu.Lock()
	node.reps[looping.ID] = looping
	node.mu.Unlock()

	// A bad revision is reported; the good one stays in force.
	err := rec.SetRevision(ctx, Revision{ID: "rev2"}, map[string][]byte{"web.yaml": []byte(strings.Replace(manifest, "replicas: 2", "replicas: x", 1))})
	if err == nil {
		t.Fatal("bad revision accepted")
	}
	st = waitStatus(t, rec, func(s Status) bool { return s.Error != nil }) // the next pass shows it
	if st.Error == nil || st.Error.Revision != "rev2" || !strings.Contains(st.Error.Errors[0], "web.yaml:6:13: spec.replicas") || st.Synced.ID != "rev1" {
		t.Fatalf("status after a bad revision: %+v %+v", st.Synced, st.Error)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A new reconciler on the same bucket resumes: it knows the synced revision
	// and its assignments, and starts nothing new for replicas that run.
	node.mu.Lock()
	before := len(node.reps)
	node.mu.Unlock()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	rec2 := New(Config{NATS: nc, Store: kv, Resync: 50 * time.Millisecond})
	go func() { _ = rec2.Run(ctx2) }()
	go func() {
		for ctx2.Err() == nil {
			node.report()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if err := rec2.SetRevision(ctx2, Revision{ID: "rev1"}, map[string][]byte{"web.yaml": []byte(manifest)}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rec2, func(s Status) bool {
		return s.Synced.ID == "rev1" && len(s.Workloads) == 1 && s.Workloads[0].Current == 2
	})
	if as, err := store.List[nodeAssigned](ctx2, kv, assignmentPrefix, nil); err != nil || len(as) != 1 || len(as["n1"].Assignments) != 2 {
		t.Fatalf("assignments in KV %v %v, want 2; events %v", as, err, rec2.Status().Events)
	}
	testenv.WaitPasses(t, rec2, 5)
	node.mu.Lock()
	after := len(node.reps)
	node.mu.Unlock()
	if before != 2 || after != 2 {
		t.Fatalf("the node ran %d replicas, then %d after a new reconciler resumed; want 2 and 2", before, after)
	}
}

// TestReconcilerDeposed: a reconciler whose commands are refused for an old
// term stops acting (Run returns ErrDeposed) and sends its term with every
// command and resync.
func TestReconcilerDeposed(t *testing.T) {
	nc := startJetStream(t)
	kv := openStore(t, nc)
	node := &fakeNode{nc: nc, name: "n1", reps: map[string]protocol.Replica{}, minTerm: 8}
	node.serve(t)
	resyncs := make(chan protocol.Resync, 10)
	if _, err := nc.Subscribe(protocol.ResyncSubject, func(m *nats.Msg) {
		var rs protocol.Resync
		if err := protocol.Decode(m.Data, &rs); err != nil {
			t.Errorf("resync: %v", err)
		}
		resyncs <- rs
	}); err != nil {
		t.Fatal(err)
	}
	rec := New(Config{NATS: nc, Store: kv, Resync: 50 * time.Millisecond, Term: 7, ID: "old"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	if err := rec.SetRevision(ctx, Revision{ID: "rev1"}, map[string][]byte{"web.yaml": []byte(manifest)}); err != nil {
		t.Fatal(err)
	}
	if rs := <-resyncs; rs.Term != 7 || rs.Leader != "old" {
		t.Fatalf("resync %+v", rs)
	}
	go func() {
		for ctx.Err() == nil {
			node.report()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrDeposed) {
			t.Fatalf("Run returned %v, want ErrDeposed", err)
		}
	case <-ctx.Done():
		t.Fatal("the deposed reconciler kept running")
	}
	node.mu.Lock()
	defer node.mu.Unlock()
	if len(node.reps) != 0 {
		t.Fatalf("the node ran %d replicas for an old leader", len(node.reps))
	}
}

// TestReconcilerDeposedByStateConflict: a reconciler whose state another
// one has written since (a newer leader) stops acting at its next write.
func TestReconcilerDeposedByStateConflict(t *testing.T) {
	nc := startJetStream(t)
	kv := openStore(t, nc)
	node := &fakeNode{nc: nc, name: "n1", reps: map[string]protocol.Replica{}}
	node.serve(t)
	rec := New(Config{NATS: nc, Store: kv, Resync: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	go func() {
		for ctx.Err() == nil {
			node.report()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	if err := rec.SetRevision(ctx, Revision{ID: "rev1"}, map[string][]byte{"web.yaml": []byte(manifest)}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rec, func(s Status) bool {
		return s.Synced.ID == "rev1" && len(s.Workloads) == 1 && s.Workloads[0].Current == 2
	})

	// A newer leader reads the state and writes it.
	newer := openStore(t, nc)
	if _, err := newer.Synced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := newer.Put(ctx, store.KeySynced, store.SyncedRevision{Revision: "rev1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// The old one's next write conflicts: it stands down.
	if err := rec.SetRevision(ctx, Revision{ID: "rev2"}, map[string][]byte{"web.yaml": []byte(manifest)}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrDeposed) {
			t.Fatalf("Run returned %v, want ErrDeposed", err)
		}
	case <-ctx.Done():
		t.Fatal("the stale reconciler kept running")
	}
}

// TestPlan: a revision is compared with the live cluster: field changes,
// counts now → after, the rollout it would start, placements by the real
// scheduler, what would not fit, load errors; secret values never appear.
func TestPlan(t *testing.T) {
	nc := startJetStream(t)
	kv := openStore(t, nc)
	node := &fakeNode{nc: nc, name: "n1", reps: map[string]protocol.Replica{}}
	node.serve(t)
	rec := New(Config{NATS: nc, Store: kv, Resync: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = rec.Run(ctx) }()
	go func() {
		for ctx.Err() == nil {
			node.report()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	const canary = "canary-3b9f-secret-value"
	secret := "---\napiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: " + canary + "}\n"
	if err := rec.SetRevision(ctx, Revision{ID: "rev1"}, map[string][]byte{"web.yaml": []byte(manifest + secret)}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rec, func(s Status) bool { return len(s.Workloads) == 1 && s.Workloads[0].Current == 2 })

	next := strings.Replace(strings.Replace(manifest, "replicas: 2", "replicas: 3", 1), "web:1", "web:2", 1) +
		"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: big}\nspec:\n  template:\n    spec:\n      nodeSelector: {disk: nvme}\n      containers: [{name: a, image: 'big:1'}]\n" +
		strings.Replace(secret, canary, canary+"-rotated", 1)
	p, err := rec.Plan(ctx, map[string][]byte{"web.yaml": []byte(next)})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(p)
	if strings.Contains(string(js), "canary") {
		t.Fatalf("a secret value leaked into the plan: %s", js)
	}
	if !p.Changed() || p.Against.Revision != "rev1" || len(p.Against.Index) != 16 {
		t.Fatalf("plan base %+v", p.Against)
	}
	want := []string{
		"big: new, 1 replica (big:1); 1 would not fit: 0/1 nodes fit: 1 node selector mismatch",
		"web: image web:1 → web:2; rolling update of 3 replicas, 1 extra and 0 unavailable at a time; scaled 2 → 3 by git",
		"Secret db: changed",
	}
	if !slices.Equal(p.Summary, want) {
		t.Fatalf("summary %q\nwant    %q", p.Summary, want)
	}
	for _, wp := range p.Workloads {
		if wp.Name == "web" && wp.Placements["n1"] != 2 {
			t.Fatalf("web placements %v (3 wanted + maxSurge 1 - 2 old: two new replicas first)", wp.Placements)
		}
	}
	// A revision that does not load: errors with file:line:col.
	p, err = rec.Plan(ctx, map[string][]byte{"web.yaml": []byte(strings.Replace(manifest, "replicas:", "replicaz:", 1))})
	if err != nil || len(p.Errors) == 0 || !strings.Contains(p.Errors[0], "web.yaml:6:3: spec.replicaz") {
		t.Fatalf("plan of a bad revision: %v %+v", err, p.Errors)
	}
}

// TestStopSentOnce: a stop is sent once per replica, however many reports
// still show it while it stops, and a replica being stopped is never read
// as failed.
func TestStopSentOnce(t *testing.T) {
	nc := startJetStream(t)
	kv := openStore(t, nc)
	node := &fakeNode{nc: nc, name: "n1", reps: map[string]protocol.Replica{}, stopDelay: 400 * time.Millisecond}
	node.serve(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := New(Config{NATS: nc, Store: kv, Resync: 20 * time.Millisecond})
	go func() { _ = rec.Run(ctx) }()
	go func() {
		for ctx.Err() == nil {
			node.report()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	twenty := strings.Replace(manifest, "replicas: 2", "replicas: 20", 1)
	if err := rec.SetRevision(ctx, Revision{ID: "r1"}, map[string][]byte{"web.yaml": []byte(twenty)}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rec, func(s Status) bool { return len(s.Workloads) == 1 && s.Workloads[0].Current == 20 })
	// The stopping replicas show as failed in the reports meanwhile, as a
	// node's list does when it reads a task being deleted.
	node.mu.Lock()
	node.failStopping = true
	node.mu.Unlock()
	if err := rec.SetRevision(ctx, Revision{ID: "r2"}, map[string][]byte{"other.yaml": []byte(strings.Replace(manifest, "name: web", "name: other", 1))}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rec, func(s Status) bool {
		for _, w := range s.Workloads {
			if w.Name == "web" {
				return false
			}
		}
		return true
	})
	node.mu.Lock()
	defer node.mu.Unlock()
	if len(node.stops) != 20 {
		t.Fatalf("stops sent to %d replicas, want 20", len(node.stops))
	}
	for id, n := range node.stops {
		if n != 1 {
			t.Errorf("%d stops of %s, want 1; events %v", n, id, rec.Status().Events)
		}
	}
}

// TestSealedSecretWithoutKey: a server without the cluster's key refuses a
// revision whose SealedSecret it cannot decrypt (its pods would get empty
// values); the last good revision stays in force. With the key it loads.
func TestSealedSecretWithoutKey(t *testing.T) {
	nc := startJetStream(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ct, err := desired.Seal(id.Recipient(), []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"web.yaml": []byte(manifest), "db.yaml": []byte("apiVersion: baton.dev/v1\nkind: SealedSecret\nmetadata: {name: db}\nspec:\n  encryptedData:\n    password: " + ct + "\n")}
	ctx := context.Background()
	rec := New(Config{NATS: nc, Store: openStore(t, nc)})
	if err := rec.SetRevision(ctx, Revision{ID: "r1"}, map[string][]byte{"web.yaml": []byte(manifest)}); err != nil {
		t.Fatal(err)
	}
	rec.pass(ctx)
	if err := rec.SetRevision(ctx, Revision{ID: "r2"}, files); err == nil {
		t.Fatal("a SealedSecret that cannot be decrypted was accepted")
	}
	rec.pass(ctx)
	st := rec.Status()
	if st.Synced.ID != "r1" || st.Error == nil || !strings.Contains(strings.Join(st.Error.Errors, "\n"), "db.yaml:6:5: spec.encryptedData.password: cannot be decrypted") {
		t.Fatalf("status: synced %q, error %+v", st.Synced.ID, st.Error)
	}
	withKey := New(Config{NATS: nc, Store: openStore(t, nc), Unsealer: desired.AgeUnsealer{Identities: []age.Identity{id}}})
	if err := withKey.SetRevision(ctx, Revision{ID: "r2"}, files); err != nil {
		t.Fatalf("with the key: %v", err)
	}
}

// TestRejectedMessagesBounded: a flood of bad messages is counted (a
// metric) and logged at a bounded rate, not once per message.
func TestRejectedMessagesBounded(t *testing.T) {
	nc := startJetStream(t)
	var logs lockedBuf
	ctx, cancel := context.WithCancel(zerolog.New(&logs).WithContext(context.Background()))
	defer cancel()
	rec := New(Config{NATS: nc, Store: openStore(t, nc)})
	go func() { _ = rec.Run(ctx) }()
	testenv.WaitPasses(t, rec, 1) // subscribed (the first pass follows the subscriptions)
	for i := range 50 {
		_ = nc.Publish(protocol.ReportSubject("n1"), []byte(fmt.Sprintf("{bad %d", i)))
	}
	testenv.WaitFor(t, 5*time.Second, "50 rejected messages", func() (bool, string) {
		n := rec.Stats().Rejected
		return n >= 50, fmt.Sprintf("%d counted", n)
	})
	if n := strings.Count(logs.String(), "report rejected"); n != 1 {
		t.Fatalf("%d log lines for 50 bad messages, want 1", n)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
