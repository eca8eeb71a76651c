package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
)

// fakeMachines mints tokens and records removals.
type fakeMachines struct {
	mu      sync.Mutex
	tokens  []string
	removed []string
}

func (m *fakeMachines) JoinToken(_ context.Context, node string, ttl time.Duration) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens = append(m.tokens, node)
	return "token-for-" + node, nil
}

func (m *fakeMachines) JoinAddress() string { return "127.0.0.1:8421" }

func (m *fakeMachines) RemoveNode(_ context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed = append(m.removed, node)
	return nil
}

// recordingProvisioner is a real executable provisioner (a shell script)
// that logs each request and answers the machines it was asked for.
func recordingProvisioner(t *testing.T) (script, log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	script = filepath.Join(dir, "provision.sh")
	body := `#!/bin/sh
req=$(cat)
echo "$req" >> ` + log + `
ms=$(echo "$req" | grep -o '"name":"[^"]*"' | sed 's/^/{/; s/$/}/' | paste -sd, -)
echo "{\"machines\":[${ms}]}"
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, log
}

func calls(t *testing.T, log, op string) int {
	b, _ := os.ReadFile(log)
	return strings.Count(string(b), `"op":"`+op+`"`)
}

// A new leader resumes the pools from KV: machines asked for by the last
// leader are not asked for again; those that never join are deleted by the
// new one at their deadline, and the pool backs off.
func TestPoolsResumeAfterLeaderChange(t *testing.T) {
	nc := startJetStream(t)
	kv := openStore(t, nc)
	script, log := recordingProvisioner(t)
	pool := fmt.Sprintf(`apiVersion: baton.dev/v1
kind: NodePool
metadata: {name: workers}
spec:
  min: 2
  max: 4
  template: {capacity: {cpu: "2", memory: 4Gi}, labels: {zone: z1}}
  provisioner: {command: [%q], timeout: 2s}
  scaleUp: {joinTimeout: 3s}
`, script)
	files := map[string][]byte{"pool.yaml": []byte(pool)}
	machines := &fakeMachines{}
	run := func() (*Reconciler, context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		rec := New(Config{NATS: nc, Store: kv, Resync: 50 * time.Millisecond, Machines: machines, ID: "s", NodeGrace: 300 * time.Millisecond,
			ProvisionerDirs: []string{filepath.Dir(script)}})
		done := make(chan error, 1)
		go func() { done <- rec.Run(ctx) }()
		if err := rec.SetRevision(ctx, Revision{ID: "rev1"}, files); err != nil {
			t.Fatal(err)
		}
		return rec, cancel, done
	}
	a, stopA, doneA := run()
	st := waitStatus(t, a, func(s Status) bool {
		return len(s.Pools) == 1 && len(s.Pools[0].Joining) == 2 && strings.Contains(s.Pools[0].Last, "the provisioner made 2 machines")
	})
	joining := st.Pools[0].Joining
	if n := calls(t, log, "create"); n != 1 {
		t.Fatalf("%d create calls, want 1", n)
	}
	b, _ := os.ReadFile(log)
	for _, want := range []string{`"pool":"workers"`, `"join":"127.0.0.1:8421"`, `"joinToken":"token-for-` + joining[0], `"baton.dev/pool":"workers"`, `"zone":"z1"`, `"cpuMilli":2000`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("the request lacks %s: %s", want, b)
		}
	}
	stopA()
	<-doneA

	// The next leader knows both machines: it asks for none.
	b2, stopB, doneB := run()
	defer func() { stopB(); <-doneB }()
	testenv.WaitPasses(t, b2, 20) // past its NodeGrace (300 ms): it decides
	if st := b2.Status(); len(st.Pools) != 1 || strings.Join(st.Pools[0].Joining, ",") != strings.Join(joining, ",") || calls(t, log, "create") != 1 {
		t.Fatalf("after the leader change: %+v, %d create calls", st.Pools, calls(t, log, "create"))
	}
	// They never join: deleted at their deadline (3 s), then the pool
	// backs off before asking again.
	st = waitStatus(t, b2, func(s Status) bool {
		return len(s.Pools) == 1 && len(s.Pools[0].Joining)+len(s.Pools[0].Deleting) == 0 && s.Pools[0].Failures == 2
	})
	if calls(t, log, "delete") != 2 || !strings.Contains(strings.Join(st.Events, "\n"), "did not join within 3s: deleting it") {
		t.Fatalf("%d delete calls; events %q", calls(t, log, "delete"), st.Events)
	}
	testenv.WaitPasses(t, b2, 10)
	if n := calls(t, log, "create"); n != 1 {
		t.Fatalf("asked again within the back-off: %d create calls", n)
	}
	machines.mu.Lock()
	defer machines.mu.Unlock()
	if len(machines.removed) != 2 || len(machines.tokens) != 2 {
		t.Fatalf("tokens %v, removed %v", machines.tokens, machines.removed)
	}
}
