package nodeagent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/ratelog"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// Config configures an Agent. Zero durations take the defaults.
type Config struct {
	Node    string
	Labels  map[string]string
	NATS    *nats.Conn
	Runtime Runtime
	// Version is reported in heartbeats.
	Version string
	// Address (the node's address between nodes) and PodSubnet (its pods'
	// addresses) are reported in heartbeats.
	Address, PodSubnet string
	// Extra is what the node has of resources beyond cpu and memory
	// (ephemeral-storage, hugepages-<size>, extended resources), reported
	// in heartbeats for placement.
	Extra map[string]int64
	// Taints keep pods that do not tolerate them off the node.
	Taints []desired.Taint
	// Routes programs the routes to other nodes' pods (OpNetwork), and
	// Services the Services' virtual addresses (OpServices); nil: the node
	// has no pod network, and the command is acknowledged and ignored.
	Routes   Routes
	Services ServiceRules
	// DNS answers the pods' questions about Services (OpServices' names).
	DNS interface{ SetRecords([]protocol.DNSRecord) }
	// HeartbeatInterval (default 2s), ReportInterval: the longest time between
	// two reports (default 10s), PollInterval: how often the runtime is read
	// for changes that no event announced (default 5s).
	HeartbeatInterval time.Duration
	ReportInterval    time.Duration
	PollInterval      time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL (default 30s).
	StopGrace time.Duration
	// MaxParallel bounds concurrent starts and stops (default 8).
	MaxParallel int
	// StartBackoff spaces the tries of a start that failed (default
	// Kubernetes': 10 s doubling to 5 min); ResetAfter is unused.
	StartBackoff Backoff
	// TermFile keeps the newest leader term seen across agent restarts
	// ("": memory only).
	TermFile string
	// Metrics count the pods by state and how long starts take (nil:
	// none); the runtime counts the rest (Containerd.SetMetrics).
	Metrics *Metrics
}

func (c *Config) defaults() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 2 * time.Second
	}
	if c.ReportInterval <= 0 {
		c.ReportInterval = 10 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 30 * time.Second
	}
	if c.MaxParallel <= 0 {
		c.MaxParallel = 8
	}
	if c.StartBackoff.Base <= 0 {
		c.StartBackoff = DefaultBackoff
	}
}

// NodeName is the pattern of node names: they are NATS subject tokens.
var NodeName = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_]{0,62}$`)

// op is a start or stop in flight, or a start that failed: waiting for its
// next try, or failed for good.
type op struct {
	state    protocol.ReplicaState // creating, stopping, waiting or failed
	spec     protocol.ReplicaSpec
	msg      string
	code     protocol.ErrorCode
	failures int       // failed starts in a row
	retryAt  time.Time // with waiting
	image    string    // the missing image a waiting start needs
	expires  time.Time // a record of a removed half-made pod: dropped then
}

// reportCoalesce is how long the agent waits after an operation ends
// before it reports, so that the operations ending with it share the report.
const reportCoalesce = 5 * time.Millisecond

// tombstoneTTL is how long a finished stop is remembered: a runtime list
// that began before the stop ended may still show the replica.
const tombstoneTTL = time.Minute

// Agent runs one node.
type Agent struct {
	cfg  Config
	kick chan struct{}
	sem  chan struct{}
	wg   sync.WaitGroup

	terms    *termGuard
	rejected ratelog.Limiter // malformed or refused commands and resyncs

	mu      sync.Mutex
	ops     map[string]*op
	locks   map[string]*refLock
	stopped map[string]time.Time // replica → when its stop finished
}

// New returns an Agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	cfg.defaults()
	if !NodeName.MatchString(cfg.Node) {
		return nil, fmt.Errorf("node name %q: use letters, digits, '-' and '_' (at most 63)", cfg.Node)
	}
	terms, err := newTermGuard(cfg.TermFile)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, kick: make(chan struct{}, 1), sem: make(chan struct{}, cfg.MaxParallel), ops: map[string]*op{},
		locks: map[string]*refLock{}, stopped: map[string]time.Time{}, terms: terms}, nil
}

// Rejected counts the messages the agent refused (malformed, oversized,
// of an old leader).
func (a *Agent) Rejected() int64 { return a.rejected.Total() }

// reject logs a refused message at a bounded rate.
func (a *Agent) reject(log *zerolog.Logger, err error, what string) {
	if ok, held := a.rejected.Allow(time.Now()); ok {
		log.Warn().Err(err).Int64("heldBack", held).Int64("total", a.rejected.Total()).Msg(what)
	}
}

// Run serves commands and sends heartbeats and reports until ctx ends. The
// containers keep running after it returns: an agent's exit never stops them.
func (a *Agent) Run(ctx context.Context) error {
	log := zerolog.Ctx(ctx).With().Str("node", a.cfg.Node).Logger()
	ctx = log.WithContext(ctx)
	defer a.wg.Wait()
	a.recover(ctx)
	sub, err := a.cfg.NATS.Subscribe(protocol.CommandSubject(a.cfg.Node), func(m *nats.Msg) { a.onCommand(ctx, m) })
	if err != nil {
		return fmt.Errorf("subscribe to commands: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	logs := &logServer{nc: a.cfg.NATS, node: a.cfg.Node, files: a.cfg.Runtime.LogFiles}
	lsub, err := a.cfg.NATS.Subscribe(protocol.LogsSubject(a.cfg.Node), func(m *nats.Msg) { logs.serve(ctx, m) })
	if err != nil {
		return fmt.Errorf("subscribe to logs: %w", err)
	}
	defer func() { _ = lsub.Unsubscribe() }()
	execs := &execServer{nc: a.cfg.NATS, node: a.cfg.Node, rt: a.cfg.Runtime}
	esub, err := a.cfg.NATS.Subscribe(protocol.ExecSubject(a.cfg.Node), func(m *nats.Msg) { execs.serve(ctx, m) })
	if err != nil {
		return fmt.Errorf("subscribe to exec requests: %w", err)
	}
	defer func() { _ = esub.Unsubscribe() }()
	resync := make(chan struct{}, 1)
	rsub, err := a.cfg.NATS.Subscribe(protocol.ResyncSubject, func(m *nats.Msg) {
		if len(m.Data) > 0 {
			var rs protocol.Resync
			if err := protocol.Decode(m.Data, &rs); err != nil {
				a.reject(&log, err, "resync request rejected")
				return
			}
			if ok, cur := a.terms.admit(&log, rs.Term); !ok {
				a.reject(&log, fmt.Errorf("term %d, the node has seen term %d (leader %s)", rs.Term, cur, rs.Leader), "resync from an old leader ignored")
				return
			}
		}
		select {
		case resync <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to resync: %w", err)
	}
	defer func() { _ = rsub.Unsubscribe() }()
	// After a cut, a full report at once: the reconciler may have declared
	// this node lost and must see what still runs here. The connection's own
	// handler is called too, and put back when the agent stops.
	prev := a.cfg.NATS.ReconnectHandler()
	a.cfg.NATS.SetReconnectHandler(func(nc *nats.Conn) {
		log.Info().Msg("reconnected to nats: sending a heartbeat and a full report")
		// A heartbeat now: the reconciler heard of the disconnection and
		// counts the node lost if it is not heard from within seconds.
		go a.heartbeat(ctx)
		select {
		case resync <- struct{}{}:
		default:
		}
		if prev != nil {
			prev(nc)
		}
	})
	defer a.cfg.NATS.SetReconnectHandler(prev)
	log.Info().Msg("agent running")

	changes := a.cfg.Runtime.Changes(ctx)
	var images <-chan string
	if w, ok := a.cfg.Runtime.(ImageWatcher); ok {
		images = w.Images(ctx)
	}
	hb := time.NewTicker(a.cfg.HeartbeatInterval)
	defer hb.Stop()
	poll := time.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	a.heartbeat(ctx)
	var last []protocol.Replica
	var lastSent time.Time
	var due <-chan time.Time   // the next pending restart
	var retry <-chan time.Time // the next try of a failed start
	var soon <-chan time.Time  // a report after operations ended
	report := func(force bool) {
		if _, next, err := a.cfg.Runtime.Supervise(ctx, time.Now()); err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("supervise containers")
			}
		} else if next > 0 {
			due = time.After(next)
		}
		retry = nil
		if next, ok := a.nextRetry(time.Now()); ok {
			retry = time.After(next)
		}
		reps, err := a.replicas(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("read replicas")
			}
			return
		}
		a.cfg.Metrics.setPods(reps)
		if !force && lastSent.After(time.Now().Add(-a.cfg.ReportInterval)) && reflect.DeepEqual(reps, last) {
			return
		}
		msg := protocol.Report{Version: protocol.Version, Node: a.cfg.Node, Time: time.Now().UTC(), Replicas: reps, Volumes: a.cfg.Runtime.Claims()}
		if err := a.cfg.NATS.Publish(protocol.ReportSubject(a.cfg.Node), protocol.Encode(msg)); err != nil {
			log.Warn().Err(err).Msg("publish report")
			return
		}
		last, lastSent = reps, time.Now()
	}
	report(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hb.C:
			a.heartbeat(ctx)
		case <-poll.C:
			report(false)
		case <-a.kick:
			// Operations that end together (a batch's starts) make one
			// report: wait a moment for the others.
			if soon == nil {
				soon = time.After(reportCoalesce)
			}
		case <-soon:
			soon = nil
			report(false)
		case <-resync:
			report(true)
		case <-due:
			due = nil
			report(false)
		case <-retry:
			a.retryDue(ctx, time.Now(), "")
			report(false)
		case name, ok := <-images:
			if !ok {
				images = nil
				continue
			}
			a.retryDue(ctx, time.Now(), name)
			report(false)
		case _, ok := <-changes:
			if !ok {
				changes = nil
			}
			report(false)
		}
	}
}

// recover removes what an agent killed in the middle of a start left
// behind, and reports each such replica as failed for a while, so the
// reconciler replaces it at once instead of waiting for it.
func (a *Agent) recover(ctx context.Context) {
	rc, ok := a.cfg.Runtime.(Recoverer)
	if !ok {
		return
	}
	removed, err := rc.Recover(ctx)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("remove half-made pods")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range removed {
		a.ops[r.ID] = &op{state: protocol.StateFailed, spec: protocol.ReplicaSpec{ID: r.ID, Workload: r.Workload, SpecHash: r.SpecHash},
			code: protocol.CodeRuntimeError, msg: "left half made by an agent that stopped in the middle of its start: removed",
			expires: time.Now().Add(5 * time.Minute)}
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	hb := protocol.Heartbeat{
		Version: protocol.Version, Node: a.cfg.Node, Labels: a.cfg.Labels, AgentVersion: a.cfg.Version,
		Capacity: protocol.Resources{CPUMilli: int64(runtime.NumCPU()) * 1000, MemoryBytes: machineMemory(), Extra: a.cfg.Extra},
		Time:     time.Now().UTC(), Address: a.cfg.Address, PodSubnet: a.cfg.PodSubnet, Taints: a.cfg.Taints,
	}
	if err := a.cfg.NATS.Publish(protocol.HeartbeatSubject(a.cfg.Node), protocol.Encode(hb)); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("publish heartbeat")
	}
}

// replicas is the runtime's list with the operations in flight laid over it.
func (a *Agent) replicas(ctx context.Context) ([]protocol.Replica, error) {
	began := time.Now()
	reps, err := a.cfg.Runtime.List(ctx)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for id, at := range a.stopped {
		if now.Sub(at) > tombstoneTTL {
			delete(a.stopped, id)
		}
	}
	for id, o := range a.ops {
		if !o.expires.IsZero() && now.After(o.expires) {
			delete(a.ops, id)
		}
	}
	seen := map[string]bool{}
	kept := reps[:0]
	for _, r := range reps {
		if at, ok := a.stopped[r.ID]; ok && !at.Before(began) {
			continue // stopped while the list was read: what it shows is gone
		}
		seen[r.ID] = true
		if o, ok := a.ops[r.ID]; ok {
			o.overlay(&r)
		}
		kept = append(kept, r)
	}
	reps = kept
	for id, o := range a.ops {
		if !seen[id] && o.state != protocol.StateStopping {
			r := protocol.Replica{ID: id, Workload: o.spec.Workload, SpecHash: o.spec.SpecHash}
			o.overlay(&r)
			reps = append(reps, r)
		}
	}
	sortReplicas(reps)
	return reps, nil
}

// overlay shows an operation in flight, or a failed start, in a replica.
func (o *op) overlay(r *protocol.Replica) {
	r.State, r.Message, r.Code, r.Failures, r.RetryAt = o.state, o.msg, o.code, o.failures, o.retryAt
	r.Ready = false
	if o.code != "" && o.state != protocol.StateCreating {
		// The code and the error; Failures and RetryAt say the rest.
		r.Message = fmt.Sprintf("%s: %s", o.code, o.msg)
	}
}

func (a *Agent) onCommand(ctx context.Context, m *nats.Msg) {
	if err := m.Respond(protocol.Encode(a.handle(ctx, m.Data))); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("reply to command")
	}
}

// handle carries out one command and returns its reply. No command, however
// malformed, crashes the agent: a panic answers internal_error.
func (a *Agent) handle(ctx context.Context, data []byte) (reply protocol.Reply) {
	log := zerolog.Ctx(ctx)
	fail := func(err error) protocol.Reply {
		r := protocol.Reply{Version: protocol.Version, Code: protocol.CodeBadRequest, Error: err.Error()}
		switch {
		case errors.Is(err, errStaleTerm):
			r.Code = protocol.CodeStaleTerm
		case errors.Is(err, ErrInvalidSpec):
			r.Code = protocol.CodeInvalidSpec
		case errors.Is(err, errInternal):
			r.Code = protocol.CodeInternal
		}
		return r
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error().Interface("panic", p).Str("stack", string(debug.Stack())).Msg("command handler panicked")
			reply = fail(fmt.Errorf("%w: %v", errInternal, p))
		}
	}()
	var cmd protocol.Command
	if err := protocol.Decode(data, &cmd); err != nil {
		a.reject(log, err, "command rejected")
		return fail(err)
	}
	if ok, cur := a.terms.admit(log, cmd.Term); !ok {
		err := fmt.Errorf("%w: term %d, the node has seen term %d", errStaleTerm, cmd.Term, cur)
		a.reject(log, err, "command of an old leader refused")
		return fail(err)
	}
	switch cmd.Op {
	case protocol.OpStart:
		if cmd.Start == nil {
			return fail(fmt.Errorf("%w: start without a replica spec", ErrInvalidSpec))
		}
		if err := ValidateSpec(*cmd.Start); err != nil {
			a.reject(log, err, "start rejected")
			return fail(err)
		}
		a.start(ctx, *cmd.Start)
	case protocol.OpStop:
		if !replicaID.MatchString(cmd.StopID) {
			err := fmt.Errorf("invalid replica id %q", cutString(cmd.StopID))
			a.reject(log, err, "stop rejected")
			return fail(err)
		}
		a.stop(ctx, cmd.StopID)
	case protocol.OpNetwork:
		if cmd.Network == nil {
			return fail(errors.New("network without routes"))
		}
		if err := ValidRoutes(cmd.Network.Routes); err != nil {
			a.reject(log, err, "network rejected")
			return fail(err)
		}
		if a.cfg.Routes != nil {
			if err := a.cfg.Routes.Apply(ctx, cmd.Network.Routes); err != nil {
				log.Error().Err(err).Msg("program the routes to other nodes' pods")
				return fail(fmt.Errorf("%w: %v", errInternal, err))
			}
			log.Info().Int("routes", len(cmd.Network.Routes)).Msg("routes to other nodes' pods programmed")
		}
	case protocol.OpServices:
		if err := errors.Join(ValidServiceRules(cmd.Services), ValidDNSRecords(cmd.DNS)); err != nil {
			a.reject(log, err, "services rejected")
			return fail(err)
		}
		if a.cfg.DNS != nil {
			a.cfg.DNS.SetRecords(cmd.DNS)
		}
		if a.cfg.Services != nil {
			if err := a.cfg.Services.Apply(ctx, cmd.Services); err != nil {
				log.Error().Err(err).Msg("program the Services' addresses")
				return fail(fmt.Errorf("%w: %v", errInternal, err))
			}
			log.Debug().Int("rules", len(cmd.Services)).Msg("Services programmed")
		}
	case protocol.OpBatch:
		b := cmd.Batch
		if b == nil || len(b.Starts)+len(b.Stops) > protocol.MaxBatch {
			return fail(fmt.Errorf("a batch needs 1 to %d starts and stops", protocol.MaxBatch))
		}
		out := protocol.Reply{Version: protocol.Version, OK: true, Results: make([]protocol.ItemResult, 0, len(b.Starts)+len(b.Stops))}
		for _, id := range b.Stops {
			if !replicaID.MatchString(id) {
				err := fmt.Errorf("invalid replica id %q", cutString(id))
				a.reject(log, err, "stop rejected")
				out.Results = append(out.Results, protocol.ItemResult{ID: cutString(id), Code: protocol.CodeBadRequest, Error: err.Error()})
				continue
			}
			a.stop(ctx, id)
			out.Results = append(out.Results, protocol.ItemResult{ID: id, OK: true})
		}
		for _, s := range b.Starts {
			if err := ValidateSpec(s); err != nil {
				a.reject(log, err, "start rejected")
				out.Results = append(out.Results, protocol.ItemResult{ID: cutString(s.ID), Code: protocol.CodeInvalidSpec, Error: err.Error()})
				continue
			}
			a.start(ctx, s)
			out.Results = append(out.Results, protocol.ItemResult{ID: s.ID, OK: true})
		}
		return out
	default:
		err := fmt.Errorf("unknown op %q", cutString(string(cmd.Op)))
		a.reject(log, err, "command rejected")
		return fail(err)
	}
	return protocol.Reply{Version: protocol.Version, OK: true}
}

var (
	// errStaleTerm refuses a command of an older leader.
	errStaleTerm = errors.New("stale leader term")
	// errInternal: the agent failed to handle a command.
	errInternal = errors.New("internal error")
)

// start begins starting a replica in the background. A replica already
// being started or stopped, or whose start failed (the agent tries it
// again by itself), is left alone: commands are idempotent.
func (a *Agent) start(ctx context.Context, spec protocol.ReplicaSpec) {
	a.mu.Lock()
	if _, busy := a.ops[spec.ID]; busy {
		a.mu.Unlock()
		return
	}
	mine := &op{state: protocol.StateCreating, spec: spec}
	a.ops[spec.ID] = mine
	a.mu.Unlock()
	a.runStart(ctx, mine)
}

// runStart starts the replica of o, in the background. A failed start
// waits for its next try (back-off per replica, as the kubelet's), or fails
// for good when its error is terminal (an invalid spec, a pod this node's
// policy refuses).
func (a *Agent) runStart(ctx context.Context, mine *op) {
	spec := mine.spec
	taken := time.Now()
	a.background(ctx, spec.ID, func() {
		defer a.lockReplica(spec.ID)()
		log := zerolog.Ctx(ctx).With().Str("replica", spec.ID).Str("workload", spec.Workload).Logger()
		a.mu.Lock()
		superseded := a.ops[spec.ID] != mine
		a.mu.Unlock()
		if superseded {
			// A stop for this replica arrived after the start and ran first:
			// starting now would bring back a replica the reconciler dropped.
			log.Info().Msg("start skipped: the replica was stopped meanwhile")
			return
		}
		err := a.cfg.Runtime.Start(ctx, spec)
		if err != nil && ctx.Err() != nil {
			return // the agent is stopping: the next one sees what is left
		}
		a.cfg.Metrics.started(time.Since(taken), err)
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.ops[spec.ID] != mine {
			return
		}
		if err == nil {
			delete(a.ops, spec.ID)
			log.Info().Msg("replica started")
			return
		}
		a.ops[spec.ID] = a.failedStart(mine, err, time.Now())
		log.Error().Err(err).Str("code", string(a.ops[spec.ID].code)).Int("failures", mine.failures+1).Msg("start replica")
	})
}

// failedStart is the op that follows a start that failed with err.
func (a *Agent) failedStart(prev *op, err error, now time.Time) *op {
	o := &op{spec: prev.spec, code: Classify(err), msg: err.Error(), failures: prev.failures + 1}
	if o.code.Terminal() {
		o.state = protocol.StateFailed
		return o
	}
	var missing *MissingImageError
	if errors.As(err, &missing) {
		o.image, o.msg = missing.Image, missing.Error()
	}
	o.state = protocol.StateWaiting
	o.retryAt = now.Add(a.cfg.StartBackoff.after(o.failures))
	return o
}

// after is the wait before the try that follows the n-th failure: Base,
// doubling, at most Max.
func (b Backoff) after(n int) time.Duration {
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// nextRetry is how long until the next try of a failed start is due.
func (a *Agent) nextRetry(now time.Time) (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var next time.Time
	for _, o := range a.ops {
		if o.state == protocol.StateWaiting && (next.IsZero() || o.retryAt.Before(next)) {
			next = o.retryAt
		}
	}
	return max(next.Sub(now), 0), !next.IsZero()
}

// retryDue tries again the failed starts whose back-off ended, and, when
// image is set (an image arrived on the node), at once the ones that
// waited for it.
func (a *Agent) retryDue(ctx context.Context, now time.Time, image string) {
	var due []*op
	a.mu.Lock()
	for id, o := range a.ops {
		if o.state != protocol.StateWaiting {
			continue
		}
		if now.Before(o.retryAt) && (image == "" || o.image != image) {
			continue
		}
		retry := &op{state: protocol.StateCreating, spec: o.spec, failures: o.failures, code: o.code,
			msg: fmt.Sprintf("trying again after %d failed start(s): %s", o.failures, o.msg)}
		if image != "" && o.image == image {
			retry.msg = "image " + image + " arrived on the node: trying again"
		}
		a.ops[id] = retry
		due = append(due, retry)
	}
	a.mu.Unlock()
	for _, o := range due {
		zerolog.Ctx(ctx).Info().Str("replica", o.spec.ID).Int("failures", o.failures).Str("why", o.msg).Msg("trying a failed start again")
		a.runStart(ctx, o)
	}
}

// stop begins stopping a replica in the background. A replica the runtime
// holds nothing of (stopped already, or whose start failed and left
// nothing) is stopped at once, without taking a slot of the parallel ones.
func (a *Agent) stop(ctx context.Context, id string) {
	a.mu.Lock()
	prev, busy := a.ops[id]
	if busy && prev.state == protocol.StateStopping {
		a.mu.Unlock()
		return
	}
	mine := &op{state: protocol.StateStopping}
	a.ops[id] = mine
	a.mu.Unlock()
	if !busy || prev.state == protocol.StateWaiting || prev.state == protocol.StateFailed {
		if has, err := a.cfg.Runtime.Has(ctx, id); err == nil && !has {
			a.stopDone(id, mine)
			zerolog.Ctx(ctx).Debug().Str("replica", id).Msg("stop: nothing left of the replica")
			return
		}
	}
	a.background(ctx, id, func() {
		defer a.lockReplica(id)()
		log := zerolog.Ctx(ctx).With().Str("replica", id).Logger()
		// The stop outlives the agent's context (a replica is never left
		// half stopped), bounded by its grace and a deadline of its own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.StopGrace+cleanupTimeout)
		began := time.Now()
		err := a.cfg.Runtime.Stop(sctx, id, a.cfg.StopGrace)
		cancel()
		a.stopDone(id, mine)
		// The node's side of the reconciler's "stop replica": said apart,
		// so one stop does not read as two in a shared log (baton up).
		if err != nil {
			log.Error().Err(err).Msg("containers of the replica not stopped")
		} else {
			log.Info().Dur("took", time.Since(began)).Msg("containers of the replica stopped and removed")
		}
	})
}

// stopDone ends a stop: the op goes, and the replica is remembered as
// stopped for a while (a runtime list begun before may still show it).
func (a *Agent) stopDone(id string, mine *op) {
	a.mu.Lock()
	if a.ops[id] == mine {
		delete(a.ops, id)
	}
	a.stopped[id] = time.Now()
	a.mu.Unlock()
	a.kickReport()
}

func (a *Agent) kickReport() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// background runs f for a replica with a slot of the parallel ones; a
// panic in it fails the replica's operation instead of the agent.
func (a *Agent) background(ctx context.Context, id string, f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.sem <- struct{}{}
		defer func() { <-a.sem }()
		defer a.kickReport()
		defer func() {
			if p := recover(); p != nil {
				zerolog.Ctx(ctx).Error().Interface("panic", p).Str("replica", id).Str("stack", string(debug.Stack())).Msg("operation panicked")
				a.mu.Lock()
				if o, ok := a.ops[id]; ok {
					a.ops[id] = &op{state: protocol.StateFailed, spec: o.spec, code: protocol.CodeRuntimeError, msg: fmt.Sprintf("agent error: %v", p)}
				}
				a.mu.Unlock()
			}
		}()
		f()
	}()
}

func sortReplicas(reps []protocol.Replica) {
	sort.Slice(reps, func(i, j int) bool { return reps[i].ID < reps[j].ID })
}

// lockReplica serializes the operations on one replica: a stop that arrives
// while its start runs waits for the start to finish.
func (a *Agent) lockReplica(id string) func() {
	a.mu.Lock()
	l, ok := a.locks[id]
	if !ok {
		l = &refLock{}
		a.locks[id] = l
	}
	l.refs++
	a.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		a.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(a.locks, id)
		}
		a.mu.Unlock()
	}
}

type refLock struct {
	sync.Mutex
	refs int
}

// machineMemory is the machine's memory, read once per process as the
// kubelet reads its machine info at start (not at every heartbeat).
var machineMemory = sync.OnceValue(memTotal)

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
