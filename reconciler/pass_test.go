package reconciler

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
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
