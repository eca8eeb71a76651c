package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
	"github.com/batonhq/baton/reconciler/store"
)

// TestStatusAt100kReplicas: 500 simulated nodes report 200 replicas each
// over real NATS; the status works at that size through NATS (a summary by
// default, every replica in chunks on request: far past the 1 MiB payload
// limit) and through the API (a summary, the full list, and pages).
func TestStatusAt100kReplicas(t *testing.T) {
	const nodes, perNode, workloads = 500, 200, 1000
	nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kv, err := store.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec := reconciler.New(reconciler.Config{NATS: nc, Store: kv, NodeGrace: time.Hour, Resync: time.Hour})
	go func() { _ = rec.Run(ctx) }()
	testenv.WaitPasses(t, rec, 1) // subscribed (on nc, whose publications follow in order)
	now := time.Now().UTC()
	for n := range nodes {
		name := fmt.Sprintf("n%03d", n)
		rep := protocol.Report{Version: protocol.Version, Node: name, Time: now}
		for i := range perNode {
			id := n*perNode + i
			rep.Replicas = append(rep.Replicas, protocol.Replica{ID: fmt.Sprintf("w%d-%06d", id%workloads, id), Workload: fmt.Sprintf("w%d", id%workloads),
				SpecHash: "0123456789abcdef", State: protocol.StateRunning, Ready: true, PodIP: "10.77.0.2", StartedAt: now})
		}
		if err := nc.Publish(protocol.HeartbeatSubject(name), protocol.Encode(protocol.Heartbeat{Version: protocol.Version, Node: name, Time: now})); err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(protocol.ReportSubject(name), protocol.Encode(rep)); err != nil {
			t.Fatal(err)
		}
	}
	running := func(st reconciler.Status) int {
		n := 0
		for _, w := range st.Workloads {
			n += w.Running
		}
		return n
	}
	testenv.WaitFor(t, time.Minute, "every report", func() (bool, string) {
		n := running(rec.StatusWith(reconciler.StatusRequest{Replicas: reconciler.ReplicasNone}))
		return n == nodes*perNode, fmt.Sprintf("%d running", n)
	})
	listed := func(st reconciler.Status) int {
		n := 0
		for _, w := range st.Workloads {
			n += len(w.Replicas)
		}
		return n
	}

	// NATS: a summary by default; every replica when asked, in chunks.
	sum, err := reconciler.FetchStatus(ctx, nc, reconciler.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if listed(sum) != 0 || sum.ReplicasOmitted != nodes*perNode || len(sum.Workloads) != workloads || len(sum.Nodes) != nodes || running(sum) != nodes*perNode {
		t.Fatalf("summary: %d listed, %d omitted, %d workloads, %d nodes", listed(sum), sum.ReplicasOmitted, len(sum.Workloads), len(sum.Nodes))
	}
	full, err := reconciler.FetchStatus(ctx, nc, reconciler.StatusRequest{Replicas: reconciler.ReplicasAll})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(full); listed(full) != nodes*perNode || len(b) < 8*protocol.MaxMessageBytes {
		t.Fatalf("full status over NATS: %d replicas in %d bytes", listed(full), len(b))
	}
	one, err := reconciler.FetchStatus(ctx, nc, reconciler.StatusRequest{Replicas: reconciler.ReplicasAll, Workload: "w7"})
	if err != nil || len(one.Workloads) != 1 || listed(one) != nodes*perNode/workloads {
		t.Fatalf("one workload: %v, %d workloads, %d replicas", err, len(one.Workloads), listed(one))
	}

	// The API: a summary, the full list, and pages.
	api := httpapi.New(httpapi.Config{JS: js, ID: "s1", Tokens: nil, Log: zerolog.Nop()})
	api.SetLeader(rec)
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	var st reconciler.Status
	getJSON(t, srv, "/api/v1/status", &st)
	if listed(st) != 0 || st.ReplicasOmitted != nodes*perNode {
		t.Fatalf("API summary: %d listed, %d omitted", listed(st), st.ReplicasOmitted)
	}
	getJSON(t, srv, "/api/v1/status?replicas=all", &st)
	if listed(st) != nodes*perNode {
		t.Fatalf("API full status: %d replicas", listed(st))
	}
	seen := map[string]bool{}
	pages := 0
	for next := "0"; next != ""; pages++ {
		var page httpapi.ReplicaPage
		getJSON(t, srv, "/api/v1/replicas?limit=10000&continue="+next, &page)
		for _, r := range page.Replicas {
			seen[r.ID] = true
		}
		next = page.Continue
		if page.Total != nodes*perNode || pages > 10 {
			t.Fatalf("page %d: total %d", pages, page.Total)
		}
	}
	if len(seen) != nodes*perNode || pages != 10 {
		t.Fatalf("%d replicas in %d pages, want %d in 10", len(seen), pages, nodes*perNode)
	}

	// Memory: the heap after a pass at 100,000 replicas (the test's own
	// reports included; the status above came from it), reported in the
	// metrics, under 1 GiB.
	heap := rec.Stats().HeapBytes
	if heap == 0 || heap > 1<<30 {
		t.Fatalf("heap after a pass at %d replicas: %d bytes", nodes*perNode, heap)
	}
	t.Logf("heap after a pass at %d replicas: %d MiB", nodes*perNode, heap>>20)
	if _, body := get(t, srv, "/metrics", ""); !strings.Contains(body, "\nbaton_heap_bytes ") {
		t.Fatalf("metrics without baton_heap_bytes:\n%s", body)
	}
}

func getJSON(t *testing.T, srv *httptest.Server, path string, v any) {
	t.Helper()
	code, body := get(t, srv, path, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body[:min(len(body), 300)])
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
