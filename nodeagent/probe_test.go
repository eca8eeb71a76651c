package nodeagent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

func probe(p desired.Probe) *desired.Probe {
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 1
	}
	p.TimeoutSeconds, p.SuccessThreshold = 1, 1
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	return &p
}

// replicaNow lists the runtime (which also runs the probers) and returns one replica.
func replicaNow(t *testing.T, rt *nodeagent.Containerd, id string) protocol.Replica {
	t.Helper()
	if _, _, err := rt.Supervise(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	reps, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.ID == id {
			return r
		}
	}
	return protocol.Replica{}
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, d, what, func() (bool, string) { return cond(), "" })
}

func TestProbes(t *testing.T) {
	rt := newRuntime(t)
	defer rt.StopProbes()
	metrics := nodeagent.NewMetrics("n1")
	rt.SetMetrics(metrics)
	rt.SetBackoff(nodeagent.Backoff{Base: time.Second, Max: time.Second, ResetAfter: time.Hour})
	ctx := context.Background()
	start := func(id string, c desired.Container) {
		t.Helper()
		spec := podSpec(id, c)
		spec.Pod.RestartPolicy = "Always"
		if err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	http := []desired.Port{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}}

	// Readiness over HTTP on a named port, after an exec startup probe.
	start("hello-probe-1", desired.Container{Name: "a", Image: testenv.HelloImage, Ports: http,
		StartupProbe:   probe(desired.Probe{Exec: []string{"/hello", "-h"}}),
		ReadinessProbe: probe(desired.Probe{HTTPGet: &desired.HTTPGet{Path: "/healthz", Port: "http", Scheme: "HTTP"}})})
	// Readiness that never passes: nothing listens on 9999.
	start("hello-probe-2", desired.Container{Name: "a", Image: testenv.HelloImage,
		ReadinessProbe: probe(desired.Probe{TCPSocket: &desired.TCPSocket{Port: "9999"}})})
	// Liveness that fails: the container is killed and restarted.
	start("hello-probe-3", desired.Container{Name: "a", Image: testenv.HelloImage,
		LivenessProbe: probe(desired.Probe{TCPSocket: &desired.TCPSocket{Port: "9999"}, FailureThreshold: 1})})
	// A failing exec readiness probe.
	start("hello-probe-4", desired.Container{Name: "a", Image: testenv.HelloImage,
		ReadinessProbe: probe(desired.Probe{Exec: []string{"/hello", "-listen", "bad"}})})

	// Readiness over gRPC's health service, which turns NOT_SERVING.
	start("hello-probe-5", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-grpc-listen", ":9090"},
		ReadinessProbe: probe(desired.Probe{GRPC: &desired.GRPCProbe{Port: 9090}})})
	// A gRPC service the server does not know: never ready.
	start("hello-probe-6", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-grpc-listen", ":9090"},
		ReadinessProbe: probe(desired.Probe{GRPC: &desired.GRPCProbe{Port: 9090, Service: "nosuch"}})})

	eventually(t, "probe-1 ready", 20*time.Second, func() bool { return replicaNow(t, rt, "hello-probe-1").Ready })
	eventually(t, "probe-5 ready over gRPC", 20*time.Second, func() bool { return replicaNow(t, rt, "hello-probe-5").Ready })
	if r := replicaNow(t, rt, "hello-probe-6"); r.Ready {
		t.Error("probe-6 ready although its gRPC service is unknown")
	}
	pids, _ := rt.Debug(ctx, "hello-probe-5")
	if out := testenv.GetPathIn(t, fmt.Sprintf("/proc/%d/ns/net", pids["a"]), "127.0.0.1:8080", "/unready"); !strings.Contains(out, "not ready from now on") {
		t.Fatalf("make probe-5 unready: %s", out)
	}
	eventually(t, "probe-5 not ready once NOT_SERVING", 20*time.Second, func() bool { return !replicaNow(t, rt, "hello-probe-5").Ready })
	eventually(t, "probe-3 restarted by its liveness probe", 20*time.Second, func() bool {
		return replicaNow(t, rt, "hello-probe-3").Restarts >= 1
	})
	// Its last exit says the probe killed it, not only "exited with code 137".
	if r := replicaNow(t, rt, "hello-probe-3"); !strings.Contains(r.LastExit, "killed: liveness probe failed 1 times") {
		t.Errorf("probe-3's last exit %q, want the liveness probe named", r.LastExit)
	}
	for _, id := range []string{"hello-probe-2", "hello-probe-4"} {
		r := replicaNow(t, rt, id)
		if r.State != protocol.StateRunning || r.Ready {
			t.Errorf("%s: state %s ready %v, want running and not ready", id, r.State, r.Ready)
		}
	}
	if r := replicaNow(t, rt, "hello-probe-1"); r.Restarts != 0 {
		t.Errorf("a healthy container was restarted: %+v", r)
	}
	// The agent's metrics counted the restart and the failed probes.
	for series, least := range map[string]float64{
		`baton_agent_container_restarts_total{node="n1"}`:               1,
		`baton_agent_probe_failures_total{node="n1",probe="liveness"}`:  1,
		`baton_agent_probe_failures_total{node="n1",probe="readiness"}`: 3,
	} {
		if v := scrape(t, metrics.Handler(), series); v < least {
			t.Errorf("%s = %v, want at least %v", series, v, least)
		}
	}
}

// scrape reads one series' value from a metrics handler (-1: absent).
func scrape(t *testing.T, h http.Handler, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// Lifecycle hooks on real containerd: a postStart command that succeeds
// leaves the container be, one that fails kills it (and its restart policy
// starts it again); a preStop sleep runs before SIGTERM, within the grace.
func TestLifecycleHooks(t *testing.T) {
	rt := newRuntime(t)
	defer rt.StopProbes()
	rt.SetBackoff(nodeagent.Backoff{Base: time.Second, Max: time.Second, ResetAfter: time.Hour})
	ctx := context.Background()
	start := func(id string, lc *desired.Lifecycle) {
		t.Helper()
		spec := podSpec(id, desired.Container{Name: "a", Image: testenv.HelloImage, Lifecycle: lc})
		spec.Pod.RestartPolicy, spec.Pod.TerminationGracePeriodSeconds = "Always", 10
		if err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	start("hello-hook-1", &desired.Lifecycle{PostStart: &desired.Handler{Exec: []string{"/hello", "-h"}}, PreStop: &desired.Handler{SleepSeconds: 2}})
	start("hello-hook-2", &desired.Lifecycle{PostStart: &desired.Handler{Exec: []string{"/hello", "-listen", "bad"}}})
	eventually(t, "hello-hook-2 killed by its failing postStart hook and started again", 20*time.Second, func() bool {
		return replicaNow(t, rt, "hello-hook-2").Restarts >= 1
	})
	if r := replicaNow(t, rt, "hello-hook-1"); r.State != protocol.StateRunning || r.Restarts != 0 {
		t.Fatalf("hello-hook-1: %s, %d restarts", r.State, r.Restarts)
	}
	began := time.Now()
	if err := rt.Stop(ctx, "hello-hook-1", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 2*time.Second || took > 9*time.Second {
		t.Fatalf("stop with a 2 s preStop sleep took %s", took)
	}
}
