package nodeagent_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

func TestLogs(t *testing.T) {
	rt := newRuntime(t)
	rt.SetMaxLogBytes(300)
	nc := testenv.NATS(t)
	a, err := nodeagent.New(nodeagent.Config{Node: "logs-node", NATS: nc, Runtime: rt, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	spec := podSpec("hello-logs-1",
		desired.Container{Name: "ticker", Image: testenv.HelloImage, Args: []string{"-listen", ":8080", "-tick", "20ms"}},
		desired.Container{Name: "quiet", Image: testenv.HelloImage, Args: []string{"-listen", ":8081", "-message", "shh"}})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)

	// The last line of one container.
	var got strings.Builder
	var mu sync.Mutex
	collect := func(c protocol.LogChunk) {
		mu.Lock()
		defer mu.Unlock()
		got.WriteString(c.Container + ": " + string(c.Data))
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got.Reset()
		req := protocol.LogsRequest{Replica: spec.ID, Container: "quiet", Tail: 1}
		if err := nodeagent.StreamLogs(ctx, nc, "logs-node", req, 5*time.Second, collect); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(got.String(), `"shh" listening on :8081`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := got.String(); !strings.HasPrefix(s, "quiet: ") || strings.Count(s, "\n") != 1 || !strings.Contains(s, `"shh" listening`) {
		t.Fatalf("tail 1 of quiet: %q", s)
	}

	// Follow: new lines keep coming, across a rotation.
	got.Reset()
	fctx, stop := context.WithTimeout(ctx, 2*time.Second)
	defer stop()
	req := protocol.LogsRequest{Replica: spec.ID, Container: "ticker", Tail: 1, Follow: true}
	if err := nodeagent.StreamLogs(fctx, nc, "logs-node", req, 5*time.Second, collect); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(got.String(), "tick "); n < 20 {
		t.Fatalf("followed %d tick lines in 2s: %q", n, got.String())
	}
	files, _ := rt.LogFiles(ctx, spec.ID)
	if _, err := os.Stat(files["ticker"] + ".1"); err != nil {
		t.Fatalf("the log was not rotated: %v", err)
	}
	if info, _ := os.Stat(files["ticker"]); info.Size() > 1000 {
		t.Fatalf("the log is %d bytes, over its cap", info.Size())
	}

	// Errors come back as errors.
	err = nodeagent.StreamLogs(ctx, nc, "logs-node", protocol.LogsRequest{Replica: "nope-1"}, 5*time.Second, collect)
	if err == nil || !strings.Contains(err.Error(), "has no containers on this node") {
		t.Fatalf("unknown replica: %v", err)
	}
	err = nodeagent.StreamLogs(ctx, nc, "no-such-node", protocol.LogsRequest{Replica: spec.ID}, 500*time.Millisecond, collect)
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("absent node: %v", err)
	}
}
