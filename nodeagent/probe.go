package nodeagent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/netns"
	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/batonhq/baton/desired"
)

// LabelProbes holds a container's probes, as JSON, so a restarted agent
// probes what it re-adopts.
const LabelProbes = "baton.probes"

// probes is what LabelProbes holds.
type probes struct {
	Liveness  *desired.Probe `json:"liveness,omitempty"`
	Readiness *desired.Probe `json:"readiness,omitempty"`
	Startup   *desired.Probe `json:"startup,omitempty"`
	Ports     map[string]int `json:"ports,omitempty"` // named ports
}

func probesLabel(c desired.Container) string {
	if c.LivenessProbe == nil && c.ReadinessProbe == nil && c.StartupProbe == nil {
		return ""
	}
	p := probes{Liveness: c.LivenessProbe, Readiness: c.ReadinessProbe, Startup: c.StartupProbe, Ports: map[string]int{}}
	for _, port := range c.Ports {
		if port.Name != "" {
			p.Ports[port.Name] = port.ContainerPort
		}
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// prober runs one container's probes while its task runs.
type prober struct {
	cancel context.CancelFunc
	pid    uint32 // the task it probes: a restarted task gets a new prober
	notify func() // readiness or start state changed
	// killedBy records why a failed probe kills the task, before it does.
	killedBy func(why string)
	metrics  *Metrics

	mu      sync.Mutex
	started bool // the startup probe passed (or there is none)
	ready   bool
}

func (p *prober) state() (started, ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started, p.ready
}

// probeOnce runs a probe against a container whose pod's network namespace is
// nsPath ("" for the host's).
func probeOnce(ctx context.Context, pr *desired.Probe, ports map[string]int, nsPath string, task client.Task) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(pr.TimeoutSeconds)*time.Second)
	defer cancel()
	port := func(p string) (int, error) {
		if n, err := strconv.Atoi(p); err == nil {
			return n, nil
		}
		if n, ok := ports[p]; ok {
			return n, nil
		}
		return 0, fmt.Errorf("no port named %q", p)
	}
	switch {
	case pr.HTTPGet != nil:
		n, err := port(pr.HTTPGet.Port)
		if err != nil {
			return err
		}
		conn, err := dialIn(ctx, nsPath, n)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Duration(pr.TimeoutSeconds) * time.Second))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+pr.HTTPGet.Path, nil)
		for k, v := range pr.HTTPGet.Headers {
			req.Header.Set(k, v)
		}
		req.Header.Set("User-Agent", "baton-probe")
		if err := req.Write(conn); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		n, err := port(pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		conn, err := dialIn(ctx, nsPath, n)
		if err != nil {
			return err
		}
		return conn.Close()
	case pr.GRPC != nil:
		return grpcProbe(ctx, nsPath, pr.GRPC)
	case len(pr.Exec) > 0:
		spec, err := task.Spec(ctx)
		if err != nil {
			return err
		}
		proc := *spec.Process
		proc.Args = pr.Exec
		proc.Terminal = false
		p, err := task.Exec(ctx, fmt.Sprintf("probe-%d", time.Now().UnixNano()), &proc, cio.NullIO)
		if err != nil {
			return err
		}
		defer func() {
			dctx, cancel := cleanupContext(ctx)
			defer cancel()
			_, _ = p.Delete(dctx, client.WithProcessKill)
		}()
		exited, err := p.Wait(ctx)
		if err != nil {
			return err
		}
		if err := p.Start(ctx); err != nil {
			return err
		}
		select {
		case st := <-exited:
			if st.ExitCode() != 0 {
				return fmt.Errorf("exit code %d", st.ExitCode())
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("timed out after %ds", pr.TimeoutSeconds)
		}
	}
	return fmt.Errorf("probe without a handler")
}

// dialIn connects to 127.0.0.1:port in the network namespace at nsPath.
func dialIn(ctx context.Context, nsPath string, port int) (net.Conn, error) {
	var d net.Dialer
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if nsPath == "" {
		return d.DialContext(ctx, "tcp", addr)
	}
	var conn net.Conn
	err := netns.LoadNetNS(nsPath).Do(func(cnins.NetNS) error {
		c, err := d.DialContext(ctx, "tcp", addr)
		conn = c
		return err
	})
	return conn, err
}

// run probes until ctx ends: the startup probe first, then liveness and
// readiness on their periods. A failed startup or liveness probe kills the
// task; the restart policy then decides.
func (p *prober) run(ctx context.Context, id string, spec probes, nsPath string, task client.Task) {
	log := zerolog.Ctx(ctx).With().Str("container", id).Logger()
	kill := func(why string) {
		kctx, cancel := cleanupContext(ctx)
		defer cancel()
		// Only the task this prober watches, still running: one that
		// ended by itself, or a restarted one, is not blamed on the probe.
		if st, err := task.Status(kctx); err != nil || st.Status != client.Running || task.Pid() != p.pid {
			return
		}
		log.Warn().Str("reason", why).Msg("probe failed: killing the container")
		if p.killedBy != nil {
			p.killedBy(why)
		}
		_ = task.Kill(kctx, syscall.SIGKILL)
	}
	loop := func(kind string, pr *desired.Probe, onResult func(ok bool, successes, failures int) bool) {
		if pr == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(pr.InitialDelaySeconds) * time.Second):
		}
		successes, failures := 0, 0
		t := time.NewTicker(time.Duration(pr.PeriodSeconds) * time.Second)
		defer t.Stop()
		for {
			err := probeOnce(ctx, pr, spec.Ports, nsPath, task)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				successes, failures = successes+1, 0
			} else {
				successes, failures = 0, failures+1
				p.metrics.probeFailed(kind)
				log.Debug().Err(err).Str("probe", kind).Int("failures", failures).Msg("probe failed")
			}
			if !onResult(err == nil, successes, failures) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
	// Startup: until it passes, nothing else runs.
	if spec.Startup != nil {
		passed := false
		loop("startup", spec.Startup, func(ok bool, s, f int) bool {
			if ok {
				passed = true
				return false
			}
			if f >= spec.Startup.FailureThreshold {
				kill(fmt.Sprintf("startup probe failed %d times", f))
				return false
			}
			return true
		})
		if !passed {
			return
		}
	}
	p.mu.Lock()
	p.started = true
	p.ready = spec.Readiness == nil
	p.mu.Unlock()
	p.notify()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		loop("liveness", spec.Liveness, func(ok bool, s, f int) bool {
			if !ok && f >= spec.Liveness.FailureThreshold {
				kill(fmt.Sprintf("liveness probe failed %d times", f))
				return false
			}
			return true
		})
	}()
	go func() {
		defer wg.Done()
		loop("readiness", spec.Readiness, func(ok bool, s, f int) bool {
			p.mu.Lock()
			was := p.ready
			if ok && s >= spec.Readiness.SuccessThreshold {
				p.ready = true
			}
			if !ok && f >= spec.Readiness.FailureThreshold {
				p.ready = false
			}
			changed := was != p.ready
			p.mu.Unlock()
			if changed {
				p.notify()
			}
			return true
		})
	}()
	wg.Wait()
}

// readProbes reads a container's probes from its label and checks them as
// desired.ValidatePod does: a label written by another agent, or damaged,
// is never trusted to run a prober (a zero period would panic it).
func readProbes(label string) (probes, error) {
	var spec probes
	if err := json.Unmarshal([]byte(label), &spec); err != nil {
		return probes{}, fmt.Errorf("stored probes unreadable: %w", err)
	}
	names := map[string]bool{}
	for n := range spec.Ports {
		names[n] = true
	}
	for _, p := range []struct {
		pr            *desired.Probe
		liveOrStartup bool
	}{{spec.Liveness, true}, {spec.Readiness, false}, {spec.Startup, true}} {
		if err := desired.ValidateProbe(p.pr, names, p.liveOrStartup); err != nil {
			return probes{}, fmt.Errorf("stored probes refused: %w", err)
		}
	}
	return spec, nil
}

// syncProbers starts a prober for each running container with probes and
// stops those whose task is gone or replaced; running holds the tasks of the
// running containers, by container ID. It returns, per replica, whether all
// its containers are ready, and why not when a container's stored probes
// cannot be run (the replica is then reported not ready, never fatal).
func (r *Containerd) syncProbers(ctx context.Context, cs []labeled, running map[string]client.Task) (map[string]bool, map[string]string) {
	r.probeMu.Lock()
	defer r.probeMu.Unlock()
	ready := map[string]bool{}
	problems := map[string]string{}
	seen := map[string]bool{}
	for _, c := range cs {
		id := c.labels[LabelReplica]
		if _, ok := ready[id]; !ok {
			ready[id] = true
		}
		t, ok := running[c.c.ID()]
		if !ok {
			ready[id] = false
			continue
		}
		label := c.labels[LabelProbes]
		if label == "" {
			continue
		}
		spec, err := readProbes(label)
		if err != nil {
			ready[id] = false
			problems[id] = fmt.Sprintf("container %s: %v", c.labels[LabelContainer], err)
			continue
		}
		seen[c.c.ID()] = true
		p, ok := r.probers[c.c.ID()]
		if ok && p.pid != t.Pid() {
			p.cancel()
			ok = false
		}
		if !ok {
			pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			cont := c.c
			p = &prober{cancel: cancel, pid: t.Pid(), notify: r.notifyChange, metrics: r.metrics, killedBy: func(why string) {
				kctx, cancel := cleanupContext(pctx)
				defer cancel()
				_, _ = cont.SetLabels(kctx, map[string]string{LabelKilledBy: why})
			}}
			r.probers[c.c.ID()] = p
			go func() {
				defer func() {
					if p := recover(); p != nil { // a prober never takes the agent down
						zerolog.Ctx(ctx).Error().Interface("panic", p).Str("container", c.c.ID()).Msg("prober panicked")
					}
				}()
				p.run(pctx, c.c.ID(), spec, c.labels[LabelNetNS], t)
			}()
		}
		if started, rdy := p.state(); !started || !rdy {
			ready[id] = false
		}
	}
	for cid, p := range r.probers {
		if !seen[cid] {
			p.cancel()
			delete(r.probers, cid)
		}
	}
	return ready, problems
}

// StopProbes stops every prober (the agent is stopping).
func (r *Containerd) StopProbes() {
	r.probeMu.Lock()
	defer r.probeMu.Unlock()
	for cid, p := range r.probers {
		p.cancel()
		delete(r.probers, cid)
	}
}

func (r *Containerd) notifyChange() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// grpcProbe asks the container's gRPC health service
// (grpc.health.v1.Health/Check) on 127.0.0.1 in the pod's network
// namespace, as the kubelet does: SERVING passes.
func grpcProbe(ctx context.Context, nsPath string, g *desired.GRPCProbe) error {
	cc, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(g.Port)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dialIn(ctx, nsPath, g.Port) }),
		grpc.WithUserAgent("baton-probe"))
	if err != nil {
		return err
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: g.Service})
	if err != nil {
		return fmt.Errorf("gRPC health check: %w", err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("gRPC health: %s", st)
	}
	return nil
}
