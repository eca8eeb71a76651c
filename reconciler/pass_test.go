package reconciler

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/nats-io/nats.go"
)

// convergedLoop is a reconciler whose loop state holds a converged cluster
// of nodes × (workloads × replicas), as restored and reported: every
// replica assigned, running and ready, every rollout complete. Its clock
// stands still.
func convergedLoop(tb testing.TB, nodes, workloads, replicas int) *Reconciler {
	nc := startJetStream(tb)
	r := New(Config{NATS: nc, Store: openStore(tb, nc), NodeGrace: grace, Clock: func() time.Time { return t0 }})
	ws := make([]desired.Workload, workloads)
	st := r.st
	for i := range ws {
		ws[i] = workload(fmt.Sprintf("w%05d", i), replicas, "img:1")
		st.rollouts[ws[i].Name] = Rollout{Workload: ws[i].Name, Hash: ws[i].Hash, Revision: "r1", State: RolloutComplete}
	}
	st.desired = state(ws...)
	st.desired.Revision = "r1"
	names := make([]string, nodes)
	for i := range names {
		names[i] = fmt.Sprintf("node-%05d", i)
		st.views[names[i]] = sized(labeled(node(names[i]), "topology.kubernetes.io/zone", fmt.Sprint("zone-", i%3)), 64*gi)
	}
	k := 0
	for _, w := range ws {
		for j := range replicas {
			name := names[k%nodes]
			n := st.views[name]
			id := fmt.Sprintf("%s-%d", w.Name, j)
			n.Replicas = append(n.Replicas, rep(id, w, protocol.StateRunning, time.Hour))
			st.views[name] = n
			st.assignments[id] = assigned(id, w, name, time.Hour)
			k++
		}
	}
	for name, v := range st.views {
		st.nodes[name] = &nodeState{view: v}
	}
	st.started = t0.Add(-time.Hour)
	return r
}

// BenchmarkPass: one whole pass of the loop (its steps, Compute, the
// history, the snapshot) over a converged cluster: nothing to do, which is
// what a pass does most of the time.
//
//	go test -run '^$' -bench Pass -benchtime 20x -benchmem ./reconciler
func BenchmarkPass(b *testing.B) {
	for _, size := range []struct{ nodes, workloads, replicas int }{{1000, 1000, 3}, {5000, 10000, 10}} {
		b.Run(fmt.Sprintf("converged/nodes=%d/workloads=%d/replicas=%d", size.nodes, size.workloads, size.workloads*size.replicas), func(b *testing.B) {
			r := convergedLoop(b, size.nodes, size.workloads, size.replicas)
			ctx := context.Background()
			r.pass(ctx)
			if st := r.Status(); len(st.Workloads) != size.workloads || st.Workloads[0].Current != size.replicas {
				b.Fatalf("not converged: %d workloads", len(st.Workloads))
			}
			runtime.GC()
			for b.Loop() {
				r.pass(ctx)
			}
			if r.Stats().ActionErrors != 0 || len(r.st.pending) != 0 {
				b.Fatal("a converged pass acted")
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		})
	}
}

// TestDecodeReportsInParallel: many reports decode on every core, each
// kept under its node; one naming another node, or of another version, is
// rejected and counted, whichever worker meets it.
func TestDecodeReportsInParallel(t *testing.T) {
	r := New(Config{NodeGrace: grace, Clock: func() time.Time { return t0 }})
	raws := map[string]rawReport{}
	for i := range 200 {
		name := fmt.Sprintf("n%03d", i)
		rep := protocol.Report{Version: protocol.Version, Node: name, Replicas: []protocol.Replica{{ID: name + "-r", Workload: "w", State: protocol.StateRunning}}}
		switch i {
		case 17:
			rep.Node = "someone-else"
		case 99:
			rep.Version = protocol.Version + 1
		}
		raws[name] = rawReport{msg: &nats.Msg{Subject: protocol.ReportSubject(name), Data: protocol.Encode(rep)}, at: t0}
	}
	got := r.decodeReports(context.Background(), raws)
	if len(got) != 198 || r.rejected.Total() != 2 {
		t.Fatalf("%d reports decoded, %d rejected; want 198 and 2", len(got), r.rejected.Total())
	}
	for name, rep := range got {
		if rep.msg.Node != name || len(rep.msg.Replicas) != 1 || rep.msg.Replicas[0].ID != name+"-r" {
			t.Fatalf("report of %s: %+v", name, rep.msg)
		}
	}
	if _, ok := got["n017"]; ok {
		t.Fatal("a report naming another node was kept")
	}
}
