package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/natsserver"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/nodeagent/simruntime"
)

// startNATS starts the server Baton embeds (without JetStream: the agent
// needs none) and connects to it.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", Quiet: true})
	if err != nil {
		t.Fatal(err)
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

func runTestAgent(t *testing.T, opts ...func(*Config)) *agentHarness {
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
	cfg := Config{Node: "n1", NATS: nc, Runtime: h.rt, HeartbeatInterval: 50 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, ReportInterval: time.Hour}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := New(cfg)
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

func TestAgentReportsCreatingThenWaiting(t *testing.T) {
	h := runTestAgent(t, func(c *Config) { c.StartBackoff = Backoff{Base: time.Hour, Max: time.Hour} })
	block := make(chan struct{})
	h.rt.SetStartHook(func(protocol.ReplicaSpec) error {
		<-block
		return errors.New("containerd: snapshot failed")
	})
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-2")})
	h.waitReport(hasReplica("web-2", protocol.StateCreating))
	// A duplicate start while one is in flight is acknowledged and ignored.
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-2")})
	close(block)
	r := h.waitReport(hasReplica("web-2", protocol.StateWaiting))
	got := r.Replicas[0]
	if got.Code != protocol.CodeRuntimeError || got.Failures != 1 || !strings.Contains(got.Message, "snapshot failed") || got.RetryAt.IsZero() {
		t.Fatalf("failed start reported as %+v", got)
	}
	// A start of a replica whose start failed leaves it to the agent's back-off.
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-2")})
	if starts := h.rt.Starts(); starts != 1 {
		t.Fatalf("runtime saw %d starts, want 1", starts)
	}
	// Stopping a failed replica clears it, without a stop in the runtime.
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-2"})
	h.waitReport(func(r protocol.Report) bool { return len(r.Replicas) == 0 })
	if stops := h.rt.Stops(); stops != 0 {
		t.Fatalf("runtime ran %d stops of a replica it does not hold", stops)
	}
}

// TestAgentStartBackoffPerReplica: each failed start waits for its own
// back-off (10 s doubling, here 200 ms), however many fail at once, and
// is tried again by the agent itself.
func TestAgentStartBackoffPerReplica(t *testing.T) {
	base := 200 * time.Millisecond
	h := runTestAgent(t, func(c *Config) { c.StartBackoff = Backoff{Base: base, Max: 4 * base} })
	h.rt.SetStartHook(func(s protocol.ReplicaSpec) error {
		return &MissingImageError{Image: "docker.io/library/web:1", Detail: "is not present on the node"}
	})
	sent := time.Now()
	for _, id := range []string{"web-1", "web-2", "web-3"} {
		h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec(id)})
	}
	first := h.waitReport(func(r protocol.Report) bool {
		return len(r.Replicas) == 3 && !slices.ContainsFunc(r.Replicas, func(x protocol.Replica) bool { return x.State != protocol.StateWaiting })
	})
	for _, r := range first.Replicas {
		if r.Code != protocol.CodeImageNotFound || r.Failures != 1 || r.RetryAt.Sub(sent) > base+time.Second || r.RetryAt.Before(sent.Add(base)) {
			t.Fatalf("after one failure: %+v (want image_not_found, next try %s after the start)", r, base)
		}
		if !strings.Contains(r.Message, "image_not_found") || strings.Contains(r.Message, "exit code") {
			t.Fatalf("message %q", r.Message)
		}
	}
	second := h.waitReport(func(r protocol.Report) bool {
		return len(r.Replicas) == 3 && !slices.ContainsFunc(r.Replicas, func(x protocol.Replica) bool { return x.Failures != 2 || x.State != protocol.StateWaiting })
	})
	for i, r := range second.Replicas {
		if d := r.RetryAt.Sub(first.Replicas[i].RetryAt); d < 2*base {
			t.Fatalf("second back-off of %s lasted %s, want at least %s", r.ID, d, 2*base)
		}
	}
	if n := h.rt.Starts(); n != 6 && n != 7 && n != 8 && n != 9 {
		t.Fatalf("runtime saw %d starts, want two per replica", n)
	}
}

// TestAgentRetriesWhenTheImageArrives: a start waiting for an image is tried
// again as soon as that image arrives on the node, not at the end of its
// back-off; starts waiting for other images keep waiting.
func TestAgentRetriesWhenTheImageArrives(t *testing.T) {
	h := runTestAgent(t, func(c *Config) { c.StartBackoff = Backoff{Base: time.Hour, Max: time.Hour} })
	var mu sync.Mutex
	present := map[string]bool{}
	h.rt.SetStartHook(func(s protocol.ReplicaSpec) error {
		img := "docker.io/library/" + s.Pod.Containers[0].Image
		mu.Lock()
		defer mu.Unlock()
		if !present[img] {
			return &MissingImageError{Image: img, Detail: "is not present on the node"}
		}
		return nil
	})
	for id, image := range map[string]string{"web-1": "web:1", "web-2": "web:1", "api-1": "api:1"} {
		s := spec(id)
		s.Pod.Containers[0].Image = image
		h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: s})
	}
	h.waitReport(func(r protocol.Report) bool {
		return len(r.Replicas) == 3 && r.Replicas[2].State == protocol.StateWaiting
	})
	mu.Lock()
	present["docker.io/library/web:1"] = true
	mu.Unlock()
	arrived := time.Now()
	h.rt.ImageArrived("docker.io/library/web:1")
	r := h.waitReport(func(r protocol.Report) bool {
		return hasReplica("web-1", protocol.StateRunning)(r) && hasReplica("web-2", protocol.StateRunning)(r)
	})
	if d := time.Since(arrived); d > 2*time.Second {
		t.Fatalf("replicas ran %s after their image arrived", d)
	}
	if !hasReplica("api-1", protocol.StateWaiting)(r) {
		t.Fatalf("a start waiting for another image was retried: %+v", r.Replicas)
	}
}

// TestAgentTerminalFailure: a pod this node's policy refuses fails for good:
// reported failed with its code, never tried again.
func TestAgentTerminalFailure(t *testing.T) {
	h := runTestAgent(t, func(c *Config) { c.StartBackoff = Backoff{Base: 20 * time.Millisecond, Max: 20 * time.Millisecond} })
	h.rt.SetStartHook(func(protocol.ReplicaSpec) error {
		return fmt.Errorf("%w: volume data: /etc", ErrHostPathNotAllowed)
	})
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-1")})
	r := h.waitReport(hasReplica("web-1", protocol.StateFailed))
	if got := r.Replicas[0]; got.Code != protocol.CodeNotAllowed || !got.RetryAt.IsZero() {
		t.Fatalf("reported %+v", got)
	}
	time.Sleep(200 * time.Millisecond) // ten back-offs: none may retry
	if n := h.rt.Starts(); n != 1 {
		t.Fatalf("a terminal failure was tried %d times", n)
	}
}

// TestAgentStopsOnce: duplicate stops of a replica run one stop, and a stop
// of a replica already stopped is done without the runtime.
func TestAgentStopsOnce(t *testing.T) {
	h := runTestAgent(t)
	block := make(chan struct{})
	h.rt.SetStartHook(func(protocol.ReplicaSpec) error { return nil })
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-1")})
	h.waitReport(hasReplica("web-1", protocol.StateRunning))
	h.rt.SetListHook(func(r []protocol.Replica) []protocol.Replica { <-block; return r })
	for range 3 {
		if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-1"}); !r.OK {
			t.Fatalf("stop: %+v", r)
		}
	}
	h.rt.SetListHook(nil)
	close(block)
	h.waitReport(func(r protocol.Report) bool { return len(r.Replicas) == 0 })
	for range 3 {
		h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-1"})
	}
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "never-there"})
	if n := h.rt.Stops(); n != 1 {
		t.Fatalf("runtime ran %d stops, want 1", n)
	}
}

// TestAgentNeverReportsAStoppedReplicaAsFailed: a runtime list that began
// before a stop ended may show the replica half deleted (containerd's
// task NotFound): the agent does not report what it stopped as failed.
func TestAgentNeverReportsAStoppedReplicaAsFailed(t *testing.T) {
	h := runTestAgent(t)
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-1")})
	h.waitReport(hasReplica("web-1", protocol.StateRunning))
	listing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.rt.SetListHook(func(r []protocol.Replica) []protocol.Replica {
		once.Do(func() {
			close(listing)
			<-release
			for i := range r {
				r[i].State, r[i].ExitCode, r[i].Message = protocol.StateFailed, -1, "task: not found"
			}
		})
		return r
	})
	if err := h.nc.Publish(protocol.ResyncSubject, nil); err != nil { // a list begins...
		t.Fatal(err)
	}
	<-listing
	h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "web-1"}) // ...a stop ends meanwhile
	for h.rt.Stops() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	deadline := time.After(time.Second)
	for {
		select {
		case r := <-h.reports:
			if slices.ContainsFunc(r.Replicas, func(x protocol.Replica) bool { return x.ID == "web-1" && x.State != protocol.StateStopping }) {
				t.Fatalf("a stopped replica was reported %+v", r.Replicas)
			}
		case <-deadline:
			return
		}
	}
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
	probe0 := spec("web-6")
	probe0.Pod.Containers[0].LivenessProbe = &desired.Probe{TCPSocket: &desired.TCPSocket{Port: "80"}, PeriodSeconds: 0, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3}
	escape := spec("web-7")
	escape.Pod.Volumes = []desired.Volume{{Name: "../../../tmp", EmptyDir: &desired.EmptyDir{Memory: true}}}
	escape.Pod.Containers[0].VolumeMounts = []desired.VolumeMount{{Name: "../../../tmp", MountPath: "/x"}}
	claim := spec("web-8")
	claim.Pod.Volumes = []desired.Volume{{Name: "data", Claim: &desired.ClaimMount{Claim: "../../../etc"}}}
	nsClaim := spec("web-10")
	nsClaim.Pod.Volumes = []desired.Volume{{Name: "data", Claim: &desired.ClaimMount{Claim: "shop/../../etc"}}}
	otherNS := spec("web-11")
	otherNS.Pod.Volumes = []desired.Volume{{Name: "data", Claim: &desired.ClaimMount{Claim: "shop/data"}}}
	badNS := spec("web-9")
	badNS.Workload = "job/../web" // its namespace names the pods' resolv.conf file
	tests := []struct {
		name string
		data []byte
		code protocol.ErrorCode
		want string
	}{
		{"not json", []byte("{"), protocol.CodeBadRequest, "decode message"},
		{"future version", []byte(`{"version":9,"op":"start"}`), protocol.CodeBadRequest, "unsupported message version"},
		{"unknown op", protocol.Encode(protocol.Command{Version: protocol.Version, Op: "reboot"}), protocol.CodeBadRequest, "unknown op"},
		{"bad stop id", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "A B"}), protocol.CodeBadRequest, "invalid replica id"},
		{"start without spec", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart}), protocol.CodeInvalidSpec, "without a replica spec"},
		{"bad replica id", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("../etc")}), protocol.CodeInvalidSpec, "replica id"},
		{"no containers", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart,
			Start: &protocol.ReplicaSpec{ID: "web-4", Workload: "web", SpecHash: "abc"}}), protocol.CodeInvalidSpec, "1 to 32 containers"},
		{"probe period 0", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: probe0}), protocol.CodeInvalidSpec, "periodSeconds"},
		{"volume leaving the pod", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: escape}), protocol.CodeInvalidSpec, "volumes[0].name"},
		{"claim leaving the claims", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: claim}), protocol.CodeInvalidSpec, "claimName"},
		{"claim of a namespace leaving the claims", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: nsClaim}), protocol.CodeInvalidSpec, "claimName"},
		{"a claim of another namespace", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: otherNS}), protocol.CodeInvalidSpec, "not of the namespace"},
		{"a namespace that is not a name", protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: badNS}), protocol.CodeInvalidSpec, "workload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.sendRaw(tt.data)
			if r.OK || r.Code != tt.code || !strings.Contains(r.Error, tt.want) {
				t.Fatalf("reply %+v, want %s %q", r, tt.code, tt.want)
			}
		})
	}
	if n := h.rt.Starts(); n != 0 {
		t.Fatalf("%d refused starts reached the runtime", n)
	}
	// The agent still works.
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: spec("web-5")}); !r.OK {
		t.Fatalf("start after bad commands: %+v", r)
	}
}

// TestAgentRestoresReconnectHandler: the agent chains the connection's own
// reconnect handler while it runs and puts it back when it stops.
func TestAgentRestoresReconnectHandler(t *testing.T) {
	nc := startNATS(t)
	mine := func(*nats.Conn) {}
	nc.SetReconnectHandler(mine)
	a, err := New(Config{Node: "n1", NATS: nc, Runtime: simruntime.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); reflect.ValueOf(nc.ReconnectHandler()).Pointer() == reflect.ValueOf(mine).Pointer(); {
		if time.Now().After(deadline) {
			t.Fatal("the agent never set its handler")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(nc.ReconnectHandler()).Pointer() != reflect.ValueOf(mine).Pointer() {
		t.Fatal("the connection's reconnect handler was not put back")
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
	opts, err := natsserver.Options(natsserver.Config{Listen: "127.0.0.1:0", Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
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

// fakeRoutes records the routes an agent was given.
type fakeRoutes struct {
	mu  sync.Mutex
	got [][]protocol.Route
}

func (f *fakeRoutes) Apply(_ context.Context, routes []protocol.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, routes)
	return nil
}

// A network command hands its routes to the node's Routes; bad routes are
// refused before; a node without a pod network acknowledges it.
func TestAgentNetworkCommand(t *testing.T) {
	fr := &fakeRoutes{}
	h := runTestAgent(t, func(c *Config) { c.Routes = fr })
	routes := []protocol.Route{{Node: "n2", Subnet: "10.77.2.0/24", Via: "10.0.0.2"}}
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpNetwork, Network: &protocol.Network{Routes: routes}}); !r.OK {
		t.Fatalf("network command: %+v", r)
	}
	bad := []protocol.Route{{Node: "n2", Subnet: "10.77.2.0/24", Via: "127.0.0.1"}}
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpNetwork, Network: &protocol.Network{Routes: bad}}); r.OK || r.Code != protocol.CodeBadRequest {
		t.Fatalf("bad routes: %+v, want bad_request", r)
	}
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpNetwork}); r.OK {
		t.Fatalf("network without routes: %+v, want a refusal", r)
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if len(fr.got) != 1 || !slices.Equal(fr.got[0], routes) {
		t.Fatalf("routes applied %v, want once %v", fr.got, routes)
	}

	none := runTestAgent(t) // --network none: no Routes
	if r := none.send(protocol.Command{Version: protocol.Version, Op: protocol.OpNetwork, Network: &protocol.Network{Routes: routes}}); !r.OK {
		t.Fatalf("a node without a pod network: %+v, want it acknowledged", r)
	}
}

type fakeServices struct {
	mu  sync.Mutex
	got [][]protocol.ServiceRule
}

func (f *fakeServices) Apply(_ context.Context, rules []protocol.ServiceRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, rules)
	return nil
}

// A services command hands its rules to the node's ServiceRules; bad
// rules are refused before.
func TestAgentServicesCommand(t *testing.T) {
	fs := &fakeServices{}
	h := runTestAgent(t, func(c *Config) { c.Services = fs })
	rules := []protocol.ServiceRule{{Service: "web", IP: "10.78.0.1", Port: 80, Protocol: "TCP", Endpoints: []string{"10.77.1.2:8080"}}}
	if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpServices, Services: rules}); !r.OK {
		t.Fatalf("services command: %+v", r)
	}
	for _, bad := range [][]protocol.ServiceRule{
		{{Service: "web", IP: "10.78.0.1", Port: 80, Protocol: "TCP", Endpoints: []string{"10.77.1.2"}}},
		{{Service: "web", IP: "nowhere", Port: 80, Protocol: "TCP"}},
		{{Service: "web", IP: "10.78.0.1", Port: 0, Protocol: "TCP"}},
		{rules[0], rules[0]},
	} {
		if r := h.send(protocol.Command{Version: protocol.Version, Op: protocol.OpServices, Services: bad}); r.OK || r.Code != protocol.CodeBadRequest {
			t.Fatalf("bad rules %+v: %+v, want bad_request", bad, r)
		}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.got) != 1 || len(fs.got[0]) != 1 || fs.got[0][0].IP != "10.78.0.1" {
		t.Fatalf("rules applied %v, want once %v", fs.got, rules)
	}
}

// An exec request is answered only on an admin's inbox, and a runtime
// that cannot run commands says so; malformed and unbounded requests are
// refused.
func TestExecRefusals(t *testing.T) {
	h := runTestAgent(t)
	ask := func(inbox string, req protocol.ExecRequest) string {
		t.Helper()
		sub, err := h.nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		req.Version, req.Inbox = protocol.Version, inbox
		if err := h.nc.PublishRequest(protocol.ExecSubject("n1"), inbox, protocol.Encode(req)); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no answer on %s: %v", inbox, err)
		}
		var out protocol.ExecOutput
		if err := protocol.Decode(m.Data, &out); err != nil {
			t.Fatal(err)
		}
		return out.Error
	}
	ok := protocol.ExecRequest{Replica: "r1", Session: "abcdefgh12", Command: []string{"/bin/true"}}
	if got := ask("_INBOX.not-an-admin", ok); got != "exec is for admins" {
		t.Errorf("a server's or anyone's inbox: %q", got)
	}
	if got := ask("_I.viewer.vic.x1", ok); got != "exec is for admins" {
		t.Errorf("a viewer's inbox: %q", got)
	}
	if got := ask("_I.admin.root.x2", ok); got != "this node's runtime cannot run commands in containers" {
		t.Errorf("a runtime without exec: %q", got)
	}
	if got := ask("_I.admin.root.x3", protocol.ExecRequest{Replica: "r1", Session: "abcdefgh12"}); got != "exec: no command" {
		t.Errorf("no command: %q", got)
	}
	long := make([]string, protocol.MaxExecArgs+1)
	for i := range long {
		long[i] = "x"
	}
	if got := ask("_I.admin.root.x4", protocol.ExecRequest{Replica: "r1", Session: "abcdefgh12", Command: long}); !strings.Contains(got, "at most 256 arguments") {
		t.Errorf("too many arguments: %q", got)
	}
	if got := ask("_I.admin.root.x5", protocol.ExecRequest{Replica: "r1", Session: "a.b>", Command: []string{"x"}}); !strings.Contains(got, "session") {
		t.Errorf("a session that is not a subject token: %q", got)
	}
}
