package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/ratelog"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/store"
	"github.com/batonhq/baton/schedule"
)

// Config configures a Reconciler. Zero durations take the defaults.
type Config struct {
	NATS  *nats.Conn
	Store *store.Store
	// NodeGrace is how long a node may miss heartbeats before its replicas are
	// placed elsewhere (default 10s).
	NodeGrace time.Duration
	// PendingTimeout is how long a started replica may take to appear in its
	// node's report before it is started again elsewhere (default 30s).
	PendingTimeout time.Duration
	// Resync is the period of passes when nothing happens (default 2s).
	Resync time.Duration
	// ServiceCIDR holds the Services' virtual addresses
	// (DefaultServiceCIDR).
	ServiceCIDR string
	// CommandTimeout bounds one command round trip (default 10s).
	CommandTimeout time.Duration
	// Clock is injected for tests (default time.Now).
	Clock func() time.Time
	// Events keeps every decision in a JetStream stream (nil: memory only).
	Events *store.EventLog
	// Revisions reads earlier revisions for auto-rollback (nil: none).
	Revisions RevisionReader
	// Strategy chooses among the nodes that fit (spread by default).
	Strategy schedule.Strategy
	// Term is the leadership term this reconciler acts in (from the lease),
	// sent with every command; 0 without leader election. ID names this server.
	Term uint64
	ID   string
	// Notes writes each revision's outcome back to the config repository
	// (--git-notes); Reverter reverts failed revisions (--auto-revert). Nil
	// turns either off.
	Notes    Noter
	Reverter Reverter
	// Observer is told how long passes, commands and convergence took
	// (metrics); nil: nobody.
	Observer Observer
	// Unsealer decrypts SealedSecrets (the cluster's private key); without
	// it, or with the wrong key, a revision holding a SealedSecret is refused
	// (an error in the status; the last good revision stays in force).
	Unsealer desired.Unsealer
	// Machines mints join tokens for node pools' new machines and removes
	// deleted ones' nodes (nil: pools cannot add machines, and say so).
	Machines Machines
	// ProvisionerDirs are the directories whose executables NodePools may
	// run as provisioners (none: only webhooks).
	ProvisionerDirs []string
}

func (c *Config) defaults() {
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.NodeGrace <= 0 {
		c.NodeGrace = 10 * time.Second
	}
	if c.PendingTimeout <= 0 {
		c.PendingTimeout = 30 * time.Second
	}
	if c.Resync <= 0 {
		c.Resync = 2 * time.Second
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 10 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Reconciler runs the control loop. One goroutine (Run's) runs the passes
// and owns the loop's state without a lock; what arrives between passes
// (node messages, revisions, the pin, git write-back results, plan
// requests) enters through its mailbox or channels, which the pass
// drains. Every pass ends by publishing an immutable snapshot, which the
// status, the API and the metrics read.
type Reconciler struct {
	cfg  Config
	wake chan struct{}
	mb   mailbox
	snap atomic.Pointer[snapshot]
	// pinned is the pin in force, for SetRevision's early filter.
	pinned atomic.Pointer[store.Pin]

	st     *loopState      // the loop goroutine's own
	loader *desired.Loader // keeps validated files between loads
	gitq   chan gitJob
	plans  chan planRequest

	deposed chan struct{} // closed when a node says a newer leader exists, or a KV write finds the state changed by another
	depose  sync.Once

	// Route updates for the nodes (network.go): queued by the pass, sent
	// by networkWorker, failures handed back to the next pass.
	poolq     chan poolJob // pool actions for poolWorker
	netq      chan netJob
	netMu     sync.Mutex
	netFailed map[netFailure]bool

	running      atomic.Bool     // Run was called: plans go through the loop
	rejected     ratelog.Limiter // node messages refused
	actionErrors atomic.Int64
	eventErrors  atomic.Int64
	passes       atomic.Int64
}

// ErrDeposed is returned by Run when a node refused a command because a
// leader of a newer term exists, or when a write to the KV state found it
// changed by another reconciler (store.ErrConflict).
var ErrDeposed = errors.New("a newer leader exists")

// New returns a Reconciler; Run starts it.
func New(cfg Config) *Reconciler {
	cfg.defaults()
	r := &Reconciler{cfg: cfg, wake: make(chan struct{}, 1), gitq: make(chan gitJob, gitQueue),
		plans: make(chan planRequest), deposed: make(chan struct{}), netq: make(chan netJob, networkQueue), poolq: make(chan poolJob, poolQueue), netFailed: map[netFailure]bool{}}
	r.mb.reset()
	r.st = newLoopState()
	r.loader = desired.NewLoader(r.loadOptions())
	return r
}

// loaded is a revision and its desired state.
type loaded struct {
	rev   Revision
	state *desired.State
}

// mailbox holds what arrived since the last pass. Node messages keep only
// the latest of each node: a pass needs nothing older.
type mailbox struct {
	mu sync.Mutex
	inbox
}

// inbox is what a mailbox holds.
type inbox struct {
	heartbeats map[string]received[protocol.Heartbeat]
	reports    map[string]rawReport // decoded by the pass: only the latest of a node
	next       *loaded
	tip        *Revision // the newest revision the source gave, taken or not
	revErr     *RevisionError
	revErrSet  bool
	sourceErr  *string
	pin        *pinChange
	gitDone    []store.BadRevision
	poolDone   []PoolResult
	lines      []string // events of other goroutines (the git worker)
	forget     []string // nodes removed (baton node rm)
	disconnect map[string]time.Time
	connect    map[string]time.Time
	controls   *map[string]store.NodeControl
}

type received[T any] struct {
	msg T
	at  time.Time
}

type pinChange struct{ pin *store.Pin }

// rawReport is a node's report as it arrived.
type rawReport struct {
	msg *nats.Msg
	at  time.Time
}

func (m *mailbox) reset() {
	m.inbox = inbox{heartbeats: map[string]received[protocol.Heartbeat]{}, reports: map[string]rawReport{}}
}

// take empties the mailbox and returns what it held.
func (m *mailbox) take() inbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.inbox
	m.reset()
	return out
}

// post hands events made off the loop's goroutine to the next pass.
func (r *Reconciler) post(lines ...string) {
	r.mb.mu.Lock()
	r.mb.lines = append(r.mb.lines, lines...)
	r.mb.mu.Unlock()
	r.kick()
}

// NodeDisconnected records that the bus closed node's connection at at:
// unless the node is heard from again, it is lost DisconnectGrace later.
func (r *Reconciler) NodeDisconnected(node string, at time.Time) {
	r.mb.mu.Lock()
	if r.mb.disconnect == nil {
		r.mb.disconnect = map[string]time.Time{}
	}
	r.mb.disconnect[node] = at
	r.mb.mu.Unlock()
	r.kick()
	// A pass right when the grace ends, not at the next resync.
	time.AfterFunc(time.Until(at.Add(DisconnectGrace+50*time.Millisecond)), r.kick)
}

// NodeConnected records that node connected to the bus at at: a
// disconnection before it no longer counts.
func (r *Reconciler) NodeConnected(node string, at time.Time) {
	r.mb.mu.Lock()
	if r.mb.connect == nil {
		r.mb.connect = map[string]time.Time{}
	}
	r.mb.connect[node] = at
	r.mb.mu.Unlock()
	r.kick()
}

// SetNodeControls sets the cordoned and draining nodes (all of them) for
// the next pass.
func (r *Reconciler) SetNodeControls(c map[string]store.NodeControl) {
	r.mb.mu.Lock()
	r.mb.controls = &c
	r.mb.mu.Unlock()
	r.kick()
}

// ForgetNode drops node from the live view at the next pass, as if it had
// been lost for longer than the grace: its replicas are placed elsewhere at
// once (baton node rm, after revoking its credential).
func (r *Reconciler) ForgetNode(node string) {
	r.mb.mu.Lock()
	r.mb.forget = append(r.mb.forget, node)
	r.mb.mu.Unlock()
	r.kick()
}

func (r *Reconciler) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// SetRevision renders files as the desired state of rev; the next pass puts
// it in force. A revision that does not load is recorded in the status and
// the last good one stays in force. While the cluster is pinned, any other
// revision is ignored.
func (r *Reconciler) SetRevision(ctx context.Context, rev Revision, files map[string][]byte) error {
	// The branch's tip, whether it loads, is refused or the pin keeps it out.
	r.mb.mu.Lock()
	r.mb.tip = &rev
	r.mb.mu.Unlock()
	if p := r.pinned.Load(); p != nil && p.Revision != rev.ID {
		zerolog.Ctx(ctx).Info().Str("revision", rev.ID).Str("pinned", p.Revision).Msg("revision not applied: the cluster is pinned (baton unpin)")
		r.kick()
		return nil
	}
	st, err := r.loader.Load(ctx, files)
	if err != nil {
		re := &RevisionError{Revision: rev.ID, Time: r.cfg.Clock()}
		var errs desired.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				re.Errors = append(re.Errors, e.Error())
			}
		} else {
			re.Errors = []string{err.Error()}
		}
		r.mb.mu.Lock()
		r.mb.revErr, r.mb.revErrSet = re, true
		r.mb.mu.Unlock()
		r.kick()
		zerolog.Ctx(ctx).Error().Str("revision", rev.ID).Strs("errors", re.Errors).Msg("revision does not load; the last good revision stays in force")
		return err
	}
	st.Revision = rev.ID
	for _, w := range st.Warnings {
		zerolog.Ctx(ctx).Warn().Str("revision", rev.ID).Msg(w)
	}
	r.mb.mu.Lock()
	r.mb.next = &loaded{rev: rev, state: st}
	r.mb.revErr, r.mb.revErrSet = nil, true
	r.mb.mu.Unlock()
	zerolog.Ctx(ctx).Info().Str("revision", rev.ID).Int("workloads", len(st.Workloads)).Msg("new desired state")
	r.kick()
	return nil
}

// loadOptions are how the reconciler loads a revision: SealedSecrets must
// decrypt with the cluster's key, or the revision is refused (the last good
// one stays in force).
func (r *Reconciler) loadOptions() desired.Options {
	return desired.Options{Unsealer: r.cfg.Unsealer, RequireUnsealed: true}
}

// SetSourceError records that the config repository could not be fetched,
// or with nil that it can be again.
func (r *Reconciler) SetSourceError(err error) {
	s := ""
	if err != nil {
		s = err.Error()
	}
	r.mb.mu.Lock()
	r.mb.sourceErr = &s
	r.mb.mu.Unlock()
	r.kick()
}

// PinnedRef is the Ref of a revision applied because the cluster is
// pinned to it.
const PinnedRef = "pinned"

// SetPinned records the pin in force (nil: none): while pinned, no other
// revision is taken (a revision loaded just before is dropped).
func (r *Reconciler) SetPinned(p *store.Pin) {
	r.pinned.Store(p)
	r.mb.mu.Lock()
	r.mb.pin = &pinChange{pin: p}
	r.mb.mu.Unlock()
	r.kick()
}

// Run subscribes to the nodes and reconciles until ctx ends; it returns
// ErrDeposed when it learns that it no longer leads. It starts, and waits
// for, every goroutine it needs: the passes and the git write-back.
func (r *Reconciler) Run(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	r.running.Store(true)
	if err := r.restore(ctx); err != nil {
		return err
	}
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for subject, handler := range map[string]nats.MsgHandler{
		protocol.HeartbeatWildcard: func(m *nats.Msg) { r.onHeartbeat(ctx, m) },
		protocol.ReportWildcard:    func(m *nats.Msg) { r.onReport(ctx, m) },
		protocol.StatusSubject:     func(m *nats.Msg) { r.onStatus(ctx, m) },
	} {
		s, err := r.cfg.NATS.Subscribe(subject, handler)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, s)
	}
	if err := r.resync(); err != nil {
		return fmt.Errorf("ask agents for reports: %w", err)
	}
	log.Info().Dur("nodeGrace", r.cfg.NodeGrace).Uint64("term", r.cfg.Term).Msg("reconciler running")
	g, gctx := errgroup.WithContext(ctx)
	if r.cfg.Notes != nil || r.cfg.Reverter != nil {
		g.Go(func() error { r.gitWorker(gctx); return nil })
	}
	g.Go(func() error { r.networkWorker(gctx); return nil })
	g.Go(func() error { r.poolWorker(gctx); return nil })
	g.Go(func() error { return r.loop(gctx) })
	return g.Wait()
}

// loop runs passes: on a wake-up (a report, a new revision, ...) and every
// Resync; between passes it answers plan requests with the loop's state.
func (r *Reconciler) loop(ctx context.Context) error {
	ticker := time.NewTicker(r.cfg.Resync)
	defer ticker.Stop()
	r.pass(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.deposed:
			return ErrDeposed
		case req := <-r.plans:
			req.reply <- r.plan(req.state)
		case <-r.wake:
			r.pass(ctx)
		case <-ticker.C:
			r.pass(ctx)
		}
	}
}

func (r *Reconciler) onHeartbeat(ctx context.Context, m *nats.Msg) {
	var hb protocol.Heartbeat
	if err := decodeFromNode(m, &hb, &hb.Node); err != nil {
		r.reject(ctx, err, m, "heartbeat rejected")
		return
	}
	if err := hb.Capacity.Valid(); err != nil || len(hb.Taints) > protocol.MaxTaints {
		if err == nil {
			err = fmt.Errorf("%d taints, at most %d", len(hb.Taints), protocol.MaxTaints)
		}
		r.reject(ctx, err, m, "heartbeat rejected")
		return
	}
	r.mb.mu.Lock()
	r.mb.heartbeats[hb.Node] = received[protocol.Heartbeat]{msg: hb, at: r.cfg.Clock()}
	r.mb.mu.Unlock()
	// A node that was not ready (new, silent, no report yet) wakes the loop;
	// other heartbeats wait for the next pass.
	if s := r.snap.Load(); s == nil || !s.ready(hb.Node) {
		r.kick()
	}
}

// onReport keeps a node's report for the next pass, which decodes the
// latest of each node only: a node reporting ten times between two passes
// costs one decode.
func (r *Reconciler) onReport(ctx context.Context, m *nats.Msg) {
	parts := strings.Split(m.Subject, ".")
	switch {
	case len(parts) != 4 || len(m.Data) > protocol.MaxMessageBytes:
		r.reject(ctx, fmt.Errorf("%w: %d bytes on %s", protocol.ErrTooLarge, len(m.Data), m.Subject), m, "report rejected")
		return
	case !json.Valid(m.Data): // every bad message is counted; the rest when decoded
		r.reject(ctx, errors.New("decode message: not JSON"), m, "report rejected")
		return
	}
	r.mb.mu.Lock()
	r.mb.reports[parts[2]] = rawReport{msg: m, at: r.cfg.Clock()}
	r.mb.mu.Unlock()
	r.kick()
}

// decodeFromNode decodes a node's message and checks that the node it names
// is the one in its subject, baton.node.<node>.<kind>.
func decodeFromNode[T *protocol.Heartbeat | *protocol.Report](m *nats.Msg, v T, node *string) error {
	if err := protocol.Decode(m.Data, v); err != nil {
		return err
	}
	parts := strings.Split(m.Subject, ".")
	if len(parts) != 4 || parts[2] != *node || *node == "" {
		return fmt.Errorf("node %q does not match subject %s", *node, m.Subject)
	}
	return nil
}

// reject logs a refused node message at a bounded rate: one bad message a
// second must not write a warning a second.
func (r *Reconciler) reject(ctx context.Context, err error, m *nats.Msg, what string) {
	if ok, held := r.rejected.Allow(time.Now()); ok {
		zerolog.Ctx(ctx).Warn().Err(err).Str("subject", m.Subject).Int64("heldBack", held).Int64("total", r.rejected.Total()).Msg(what)
	}
}

// resync asks every agent for a full report, telling them this leader's term.
func (r *Reconciler) resync() error {
	return r.cfg.NATS.Publish(protocol.ResyncSubject, protocol.Encode(protocol.Resync{Version: protocol.Version, Term: r.cfg.Term, Leader: r.cfg.ID}))
}

// stored passes a store error through; a conflict means another reconciler
// writes the state, so this one stops acting, as when a node says so.
func (r *Reconciler) stored(err error) error {
	if errors.Is(err, store.ErrConflict) {
		r.depose.Do(func() { close(r.deposed) })
	}
	return err
}

// isDeposed reports whether this reconciler learnt that it no longer leads.
func (r *Reconciler) isDeposed() bool {
	select {
	case <-r.deposed:
		return true
	default:
		return false
	}
}

// PassStats describe the reconciler's passes, for metrics.
type PassStats struct {
	Passes       int64
	LastDuration time.Duration
	TotalSeconds float64
	ActionErrors int64
	EventErrors  int64 // events the stream refused
	// Rejected counts the node messages refused (malformed, oversized, of
	// another version, naming another node than their subject).
	Rejected int64
	// HeapBytes is the Go heap in use after the last pass.
	HeapBytes uint64
}

// Stats returns the pass counters.
func (r *Reconciler) Stats() PassStats {
	var st PassStats
	if s := r.snap.Load(); s != nil {
		st = s.stats
	}
	st.Passes = r.passes.Load()
	st.ActionErrors = r.actionErrors.Load()
	st.EventErrors = r.eventErrors.Load()
	st.Rejected = r.rejected.Total()
	return st
}

// Passes is the number of passes run so far: a test waits for passes
// instead of sleeping.
func (r *Reconciler) Passes() int64 { return r.passes.Load() }
