package reconciler_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/simruntime"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
)

// fleet is a reconciler and many real agents on simulated runtimes, all on
// one embedded NATS server.
type fleet struct {
	rec  *reconciler.Reconciler
	sims []*simruntime.Runtime
}

func startFleet(tb testing.TB, ctx context.Context, nodes int) *fleet {
	nc := testenv.NATS(tb)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	kv, err := store.Open(ctx, js, 1)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fleet{}
	for i := range nodes {
		conn, err := nats.Connect(nc.ConnectedUrl())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(conn.Close)
		sim := simruntime.New()
		a, err := nodeagent.New(nodeagent.Config{Node: fmt.Sprintf("node-%04d", i), NATS: conn, Runtime: sim,
			HeartbeatInterval: time.Second, PollInterval: 2 * time.Second})
		if err != nil {
			tb.Fatal(err)
		}
		f.sims = append(f.sims, sim)
		go func() { _ = a.Run(ctx) }()
	}
	f.rec = reconciler.New(reconciler.Config{NATS: nc, Store: kv, Resync: 500 * time.Millisecond})
	go func() { _ = f.rec.Run(ctx) }()
	testenv.WaitFor(tb, 60*time.Second, "every node ready", func() (bool, string) {
		ready := 0
		for _, n := range f.rec.Status().Nodes {
			if n.Ready {
				ready++
			}
		}
		return ready == nodes, fmt.Sprintf("%d of %d ready", ready, nodes)
	})
	return f
}

func manifests(workloads, replicas int) map[string][]byte {
	files := map[string][]byte{}
	for i := range workloads {
		files[fmt.Sprintf("w%04d.yaml", i)] = fmt.Appendf(nil, `apiVersion: apps/v1
kind: Deployment
metadata: {name: w%04d}
spec:
  replicas: %d
  template:
    spec:
      containers: [{name: app, image: "app:1", resources: {requests: {cpu: 10m, memory: 16Mi}}}]
`, i, replicas)
	}
	return files
}

// converge applies a revision and waits until every replica runs; it
// returns how long that took after the revision loaded.
func (f *fleet) converge(tb testing.TB, ctx context.Context, rev string, files map[string][]byte, total int) time.Duration {
	if err := f.rec.SetRevision(ctx, reconciler.Revision{ID: rev}, files); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	testenv.WaitFor(tb, 5*time.Minute, "every replica running and counted", func() (bool, string) {
		running := 0
		for _, s := range f.sims {
			running += s.Len()
		}
		if running != total {
			return false, fmt.Sprintf("%d of %d running", running, total)
		}
		current := 0
		for _, w := range f.rec.StatusWith(reconciler.StatusRequest{Replicas: reconciler.ReplicasNone}).Workloads {
			current += w.Current
		}
		return current == total, fmt.Sprintf("%d of %d counted", current, total)
	})
	return time.Since(start)
}

// TestFleet: 100 real agents (simulated pods) over real NATS take 1,000
// replicas from an empty cluster to converged, spread evenly; a bounded
// version of BenchmarkFleet.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := startFleet(t, ctx, 100)
	d := f.converge(t, ctx, "rev1", manifests(100, 10), 1000)
	for i, s := range f.sims {
		if n := s.Len(); n != 10 {
			t.Fatalf("node %d runs %d replicas, want 10 (even spread)", i, n)
		}
	}
	t.Logf("100 nodes, 1,000 replicas: converged in %s", d.Round(time.Millisecond))
}

// BenchmarkFleet: 1,000 nodes, 10,000 replicas from an empty cluster to
// converged, through real NATS with simulated pods.
//
//	go test -run '^$' -bench Fleet -benchtime 1x -timeout 30m ./reconciler
func BenchmarkFleet(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := startFleet(b, ctx, 1000)
	files := manifests(1000, 10)
	for i := range b.N {
		// Each iteration deploys 10,000 replicas, then removes them.
		d := f.converge(b, ctx, fmt.Sprintf("rev%d", i), files, 10000)
		b.ReportMetric(d.Seconds(), "s-to-converge")
		b.ReportMetric(10000/d.Seconds(), "placements/s")
		b.ReportMetric(10000/d.Seconds()/float64(runtime.GOMAXPROCS(0)), "placements/s/core")
		b.StopTimer()
		f.converge(b, ctx, fmt.Sprintf("empty%d", i), manifests(0, 0), 0)
		b.StartTimer()
	}
}
