package nodeagent

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/nodeagent/simruntime"
)

func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

type agentHarness struct {
	t       *testing.T
	nc      *nats.Conn
	rt      *simruntime.Runtime
	reports chan protocol.Report
}

func runTestAgent(t *testing.T) *agentHarness {
	nc := startNATS(t)
	h := &agentHarness{t: t, nc: nc, rt: simruntime.New(), reports: make(chan protocol.Report, 100)}
	_, err := nc.Subscribe(protocol.ReportSubject("n1"), func(m *nats.Msg) {
		var r protocol.Report
		if err := protocol.Decode(m.Data, &r); err != nil {
			t.Errorf("agent sent a bad report: %v", err)
			return
		}
		h.reports <- r
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Node: "n1", NATS: nc, Runtime: h.rt, HeartbeatInterval: 50 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	h.waitReport(func(r protocol.Report) bool { return true }) // the agent is subscribed once it reports
	return h
}

func (h *agentHarness) send(cmd protocol.Command) protocol.Reply {
	return h.sendRaw(protocol.Encode(cmd))
}

func (h *agentHarness) sendRaw(data []byte) protocol.Reply {
	h.t.Helper()
	m, err := h.nc.Request(protocol.CommandSubject("n1"), data, 5*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	var r protocol.Reply
	if err := protocol.Decode(m.Data, &r); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// waitReport waits for a report that satisfies ok.
func (h *agentHarness) waitReport(ok func(protocol.Report) bool) protocol.Report {
	h.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r := <-h.reports:
			if ok(r) {
				return r
			}
		case <-timeout:
			h.t.Fatal("no matching report")
		}
	}
}

func hasReplica(id string, st protocol.ReplicaState) func(protocol.Report) bool {
	return func(r protocol.Report) bool {
		return slices.ContainsFunc(r.Replicas, func(x protocol.Replica) bool { return x.ID == id && x.State == st })
	}
}

func spec(id string) *protocol.ReplicaSpec {
	return &protocol.ReplicaSpec{ID: id, Workload: "web", SpecHash: "abc",
		Pod: desired.PodSpec{Containers: []desired.Container{{Name: "app", Image: "web:1"}}}}
}

func TestAgentStartStop(t *testing.T) {
	h := runTestAgent(t)
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-1")}); !r.OK {
		t.Fatalf("start: %+v", r)
	}
	h.waitReport(hasReplica("web-1", protocol.StateRunning))
	// Idempotent: a second start of a running replica starts nothing new.
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-1")}); !r.OK {
		t.Fatalf("second start: %+v", r)
	}
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-1"}); !r.OK {
		t.Fatalf("stop: %+v", r)
	}
	h.waitReport(func(r protocol.Report) bool { return len(r.Replicas) == 0 })
	// Stopping what does not exist succeeds.
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-1"}); !r.OK {
		t.Fatalf("stop again: %+v", r)
	}
}

func TestAgentReportsCreatingThenFailed(t *testing.T) {
	h := runTestAgent(t)
	block := make(chan struct{})
	h.rt.SetStartHook(func(protocol.ReplicaSpec) error {
		<-block
		return errors.New("image web:1 not found")
	})
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-2")})
	h.waitReport(hasReplica("web-2", protocol.StateCreating))
	// A duplicate start while one is in flight is acknowledged and ignored.
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-2")})
	close(block)
	r := h.waitReport(hasReplica("web-2", protocol.StateFailed))
	if !strings.Contains(r.Replicas[0].Message, "not found") {
		t.Fatalf("message %q", r.Replicas[0].Message)
	}
	if starts := h.rt.Starts(); starts != 1 {
		t.Fatalf("runtime saw %d starts, want 1", starts)
	}
	// Stopping a failed replica clears it.
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-2"})
	h.waitReport(func(r protocol.Report) bool { return len(r.Replicas) == 0 })
}

func TestAgentReportsExitAtOnce(t *testing.T) {
	h := runTestAgent(t)
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-3")})
	h.waitReport(hasReplica("web-3", protocol.StateRunning))
	h.rt.Exit("web-3", 137)
	r := h.waitReport(hasReplica("web-3", protocol.StateExited))
	if r.Replicas[0].ExitCode != 137 {
		t.Fatalf("exit code %d", r.Replicas[0].ExitCode)
	}
}

func TestAgentRejectsBadCommands(t *testing.T) {
	h := runTestAgent(t)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not json", []byte("{"), "decode message"},
		{"future version", []byte(`{"version":9,"op":"start"}`), "unsupported message version"},
		{"unknown op", protocol.Encode(protocol.Command{Version: protocol.Version, Op: "reboot"}), "unknown op"},
		{"start without spec", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart}), "without a replica spec"},
		{"bad replica id", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("../etc")}), "invalid replica id"},
		{"no containers", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart,
			Start: &protocol.ReplicaSpec{ID: "web-4"}}), "1 to 32 containers"},
		{"bad stop id", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "A B"}), "invalid replica id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.sendRaw(tt.data)
			if r.OK || r.Code != protocol.CodeBadRequest || !strings.Contains(r.Error, tt.want) {
				t.Fatalf("reply %+v, want bad_request %q", r, tt.want)
			}
		})
	}
	// The agent still works.
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-5")}); !r.OK {
		t.Fatalf("start after bad commands: %+v", r)
	}
}

func TestAgentResync(t *testing.T) {
	h := runTestAgent(t)
	if err := h.nc.Publish(protocol.ResyncSubject, nil); err != nil {
		t.Fatal(err)
	}
	h.waitReport(func(r protocol.Report) bool { return r.Node == "n1" })
}

func TestNewRejectsBadNodeName(t *testing.T) {
	for _, name := range []string{"", "a.b", "a*", "a>", strings.Repeat("x", 64)} {
		if _, err := New(Config{Node: name}); err == nil {
			t.Errorf("node name %q accepted", name)
		}
	}
}

func TestAgentReportsAtOnceAfterReconnect(t *testing.T) {
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	port := s.Addr().(*net.TCPAddr).Port
	reconnect := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	agentNC, err := nats.Connect(s.ClientURL(), reconnect...)
	if err != nil {
		t.Fatal(err)
	}
	defer agentNC.Close()
	// Watching on the agent's own connection: nats.go resubscribes before it
	// calls the reconnect handler, so the report after the cut is seen.
	watcher := agentNC
	reports := make(chan struct{}, 100)
	if _, err := watcher.Subscribe(protocol.ReportSubject("n1"), func(*nats.Msg) { reports <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil { // the subscription is in place before the agent reports
		t.Fatal(err)
	}
	a, _ := New(Config{Node: "n1", NATS: agentNC, Runtime: simruntime.New(), ReportInterval: time.Hour, HeartbeatInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Run(ctx) }()
	select { // the first report
	case <-reports:
	case <-time.After(10 * time.Second):
		t.Fatal("no first report")
	}

	// The server goes away and comes back on the same port.
	s.Shutdown()
	s.WaitForShutdown()
	opts2 := *opts
	opts2.Port = port
	s2, err := server.NewServer(&opts2)
	if err != nil {
		t.Fatal(err)
	}
	go s2.Start()
	defer s2.Shutdown()
	if !s2.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not restart")
	}
	select {
	case <-reports:
	case <-time.After(10 * time.Second):
		t.Fatal("no report after the agent reconnected")
	}
}
