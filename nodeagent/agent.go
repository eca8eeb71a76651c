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
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

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
	// TermFile keeps the newest leader term seen across agent restarts
	// ("": memory only).
	TermFile string
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
}

// NodeName is the pattern of node names: they are NATS subject tokens.
var NodeName = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_]{0,62}$`)

var replicaID = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// op is a start or stop in flight, or a start that failed.
type op struct {
	state protocol.ReplicaState // creating, stopping or failed
	spec  protocol.ReplicaSpec
	msg   string
}

// Agent runs one node.
type Agent struct {
	cfg  Config
	kick chan struct{}
	sem  chan struct{}
	wg   sync.WaitGroup

	terms *termGuard

	mu    sync.Mutex
	ops   map[string]*op
	locks map[string]*refLock
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
	return &Agent{cfg: cfg, kick: make(chan struct{}, 1), sem: make(chan struct{}, cfg.MaxParallel), ops: map[string]*op{}, locks: map[string]*refLock{}, terms: terms}, nil
}

// Run serves commands and sends heartbeats and reports until ctx ends. The
// containers keep running after it returns: an agent's exit never stops them.
func (a *Agent) Run(ctx context.Context) error {
	log := zerolog.Ctx(ctx).With().Str("node", a.cfg.Node).Logger()
	ctx = log.WithContext(ctx)
	sub, err := a.cfg.NATS.Subscribe(protocol.CommandSubject(a.cfg.Node), func(m *nats.Msg) { a.onCommand(ctx, m) })
	if err != nil {
		return fmt.Errorf("subscribe to commands: %w", err)
	}
	defer a.wg.Wait()
	defer func() { _ = sub.Unsubscribe() }()
	logs := &logServer{nc: a.cfg.NATS, files: a.cfg.Runtime.LogFiles}
	lsub, err := a.cfg.NATS.Subscribe(protocol.LogsSubject(a.cfg.Node), func(m *nats.Msg) { logs.serve(ctx, m) })
	if err != nil {
		return fmt.Errorf("subscribe to logs: %w", err)
	}
	defer func() { _ = lsub.Unsubscribe() }()
	resync := make(chan struct{}, 1)
	rsub, err := a.cfg.NATS.Subscribe(protocol.ResyncSubject, func(m *nats.Msg) {
		if len(m.Data) > 0 {
			var rs protocol.Resync
			if err := protocol.Decode(m.Data, &rs); err != nil {
				log.Warn().Err(err).Msg("resync request rejected")
				return
			}
			if ok, cur := a.terms.admit(&log, rs.Term); !ok {
				log.Warn().Uint64("term", rs.Term).Uint64("current", cur).Str("leader", rs.Leader).Msg("resync from an old leader ignored")
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
	// this node lost and must see what still runs here.
	prev := a.cfg.NATS.Opts.ReconnectedCB
	a.cfg.NATS.SetReconnectHandler(func(nc *nats.Conn) {
		log.Info().Msg("reconnected to nats: sending a full report")
		select {
		case resync <- struct{}{}:
		default:
		}
		if prev != nil {
			prev(nc)
		}
	})
	log.Info().Msg("agent running")

	changes := a.cfg.Runtime.Changes(ctx)
	hb := time.NewTicker(a.cfg.HeartbeatInterval)
	defer hb.Stop()
	poll := time.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	a.heartbeat(ctx)
	var last []protocol.Replica
	var lastSent time.Time
	var due <-chan time.Time // the next pending restart
	report := func(force bool) {
		if _, next, err := a.cfg.Runtime.Supervise(ctx, time.Now()); err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("supervise containers")
			}
		} else if next > 0 {
			due = time.After(next)
		}
		reps, err := a.replicas(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn().Err(err).Msg("read replicas")
			}
			return
		}
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
			report(false)
		case <-resync:
			report(true)
		case <-due:
			due = nil
			report(false)
		case _, ok := <-changes:
			if !ok {
				changes = nil
			}
			report(false)
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	hb := protocol.Heartbeat{
		Version: protocol.Version, Node: a.cfg.Node, Labels: a.cfg.Labels, AgentVersion: a.cfg.Version,
		Capacity: protocol.Resources{CPUMilli: int64(runtime.NumCPU()) * 1000, MemoryBytes: memTotal()},
		Time:     time.Now().UTC(),
	}
	if err := a.cfg.NATS.Publish(protocol.HeartbeatSubject(a.cfg.Node), protocol.Encode(hb)); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("publish heartbeat")
	}
}

// replicas is the runtime's list with the operations in flight laid over it.
func (a *Agent) replicas(ctx context.Context) ([]protocol.Replica, error) {
	reps, err := a.cfg.Runtime.List(ctx)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for i := range reps {
		seen[reps[i].ID] = true
		if o, ok := a.ops[reps[i].ID]; ok {
			reps[i].State, reps[i].Message = o.state, o.msg
		}
	}
	for id, o := range a.ops {
		if !seen[id] && o.state != protocol.StateStopping {
			reps = append(reps, protocol.Replica{ID: id, Workload: o.spec.Workload, SpecHash: o.spec.SpecHash, State: o.state, Message: o.msg})
		}
	}
	sortReplicas(reps)
	return reps, nil
}

func (a *Agent) onCommand(ctx context.Context, m *nats.Msg) {
	log := zerolog.Ctx(ctx)
	reply := func(err error) {
		r := protocol.Reply{Version: protocol.Version, OK: err == nil}
		if err != nil {
			r.Code, r.Error = protocol.CodeBadRequest, err.Error()
			if errors.Is(err, errStaleTerm) {
				r.Code = protocol.CodeStaleTerm
			}
		}
		if err := m.Respond(protocol.Encode(r)); err != nil {
			log.Warn().Err(err).Msg("reply to command")
		}
	}
	var cmd protocol.Command
	if err := protocol.Decode(m.Data, &cmd); err != nil {
		log.Warn().Err(err).Msg("command rejected")
		reply(err)
		return
	}
	if ok, cur := a.terms.admit(log, cmd.Term); !ok {
		log.Warn().Uint64("term", cmd.Term).Uint64("current", cur).Str("op", string(cmd.Op)).Msg("command of an old leader refused")
		reply(fmt.Errorf("%w: term %d, the node has seen term %d", errStaleTerm, cmd.Term, cur))
		return
	}
	switch cmd.Op {
	case protocol.OpStart:
		if err := validateSpec(cmd.Start); err != nil {
			log.Warn().Err(err).Msg("start rejected")
			reply(err)
			return
		}
		a.start(ctx, *cmd.Start)
		reply(nil)
	case protocol.OpStop:
		if !replicaID.MatchString(cmd.StopID) {
			reply(fmt.Errorf("invalid replica id %q", cmd.StopID))
			return
		}
		a.stop(ctx, cmd.StopID)
		reply(nil)
	default:
		reply(fmt.Errorf("unknown op %q", cmd.Op))
	}
}

// errStaleTerm refuses a command of an older leader.
var errStaleTerm = errors.New("stale leader term")

func validateSpec(s *protocol.ReplicaSpec) error {
	if s == nil {
		return errors.New("start without a replica spec")
	}
	if !replicaID.MatchString(s.ID) {
		return fmt.Errorf("invalid replica id %q", s.ID)
	}
	if len(s.Pod.Containers) == 0 || len(s.Pod.Containers) > 32 {
		return fmt.Errorf("replica %s: a pod needs 1 to 32 containers", s.ID)
	}
	for _, c := range s.Pod.Containers {
		if !replicaID.MatchString(c.Name) || strings.TrimSpace(c.Image) == "" {
			return fmt.Errorf("replica %s: container %q needs a valid name and an image", s.ID, c.Name)
		}
	}
	return nil
}

// start begins starting a replica in the background. A replica already being
// started or stopped is left alone: commands are idempotent.
func (a *Agent) start(ctx context.Context, spec protocol.ReplicaSpec) {
	a.mu.Lock()
	if o, busy := a.ops[spec.ID]; busy && o.state != protocol.StateFailed {
		a.mu.Unlock()
		return
	}
	mine := &op{state: protocol.StateCreating, spec: spec}
	a.ops[spec.ID] = mine
	a.mu.Unlock()
	a.background(func() {
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
		a.mu.Lock()
		if err != nil {
			a.ops[spec.ID] = &op{state: protocol.StateFailed, spec: spec, msg: err.Error()}
		} else if a.ops[spec.ID] != nil && a.ops[spec.ID].state == protocol.StateCreating {
			delete(a.ops, spec.ID)
		}
		a.mu.Unlock()
		if err != nil {
			log.Error().Err(err).Msg("start replica")
		} else {
			log.Info().Msg("replica started")
		}
	})
}

// stop begins stopping a replica in the background.
func (a *Agent) stop(ctx context.Context, id string) {
	a.mu.Lock()
	if o, busy := a.ops[id]; busy && o.state == protocol.StateStopping {
		a.mu.Unlock()
		return
	}
	a.ops[id] = &op{state: protocol.StateStopping}
	a.mu.Unlock()
	a.background(func() {
		defer a.lockReplica(id)()
		log := zerolog.Ctx(ctx).With().Str("replica", id).Logger()
		err := a.cfg.Runtime.Stop(context.WithoutCancel(ctx), id, a.cfg.StopGrace)
		a.mu.Lock()
		delete(a.ops, id)
		a.mu.Unlock()
		if err != nil {
			log.Error().Err(err).Msg("stop replica")
		} else {
			log.Info().Msg("replica stopped")
		}
	})
}

func (a *Agent) background(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.sem <- struct{}{}
		defer func() { <-a.sem }()
		f()
		select {
		case a.kick <- struct{}{}:
		default:
		}
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
