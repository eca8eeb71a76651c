package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/ratelog"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/schedule"
)

// Config configures a Reconciler. Zero durations take the defaults.
type Config struct {
	NATS  *nats.Conn
	Store *Store
	// NodeGrace is how long a node may miss heartbeats before its replicas are
	// placed elsewhere (default 10s).
	NodeGrace time.Duration
	// PendingTimeout is how long a started replica may take to appear in its
	// node's report before it is started again elsewhere (default 30s).
	PendingTimeout time.Duration
	// Resync is the period of passes when nothing happens (default 2s).
	Resync time.Duration
	// CommandTimeout bounds one command round trip (default 10s).
	CommandTimeout time.Duration
	// Clock is injected for tests (default time.Now).
	Clock func() time.Time
	// Events keeps every decision in a JetStream stream (nil: memory only).
	Events *EventLog
	// Revisions reads earlier revisions for auto-rollback (nil: none).
	Revisions RevisionReader
	// Strategy chooses among the nodes that fit (spread by default).
	Strategy schedule.Strategy
	// Term is the leadership term this reconciler acts in (from Lease), sent
	// with every command; 0 without leader election. ID names this server.
	Term uint64
	ID   string
	// Notes writes each revision's outcome back to the config repository
	// (--git-notes); Reverter reverts failed revisions (--auto-revert). Nil
	// turns either off.
	Notes    Noter
	Reverter Reverter
	// Unsealer decrypts SealedSecrets (the cluster's private key); without
	// it, or with the wrong key, a revision holding a SealedSecret is refused
	// (an error in the status; the last good revision stays in force).
	Unsealer desired.Unsealer
}

func (c *Config) defaults() {
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

type nodeState struct {
	NodeView
	hb         protocol.Heartbeat
	readySince map[string]time.Time // replica → first report that showed it ready
}

// maxEvents bounds the decisions kept for `baton events` and the status.
const maxEvents = 200

// Reconciler runs the control loop.
type Reconciler struct {
	cfg  Config
	wake chan struct{}

	mu          sync.Mutex
	nodes       map[string]*nodeState
	assignments map[string]Assignment
	desired     *desired.State
	next        *loaded                // loaded by SetRevision, put in force by the next pass
	bad         map[string]BadRevision // revisions whose rollout failed
	refused     *BadRevision           // the newest revision seen, not applied because it is bad
	gitq        chan gitJob
	gitDone     chan BadRevision // reverts done, recorded by the next pass
	reloadAfter time.Time        // next try at loading the revision in force
	synced      Revision
	syncedAt    time.Time
	revErr      *RevisionError
	started     time.Time
	sourceErr   string
	events      []string
	pending     map[string]Action // workload → why some of its replicas fit nowhere
	hold        string            // disruption mode's reason, "" when off
	rollouts    map[string]Rollout
	hpa         map[string]HPAState   // by target workload
	rollbacks   map[string]RollbackTo // loaded healthy templates, by workload
	crons       map[string]CronState
	startFails  map[string]StartFailure // by workload: templates the nodes will not start
	stopping    map[string]stopSent     // replicas a stop was sent to
	history     *HistoryEntry           // the latest revision applied
	jobs        map[string]JobRecord
	stats       PassStats
	pin         *Pin
	withRuns    *desired.State // the desired state with the CronJobs' runs as Jobs

	deposed chan struct{} // closed when a node says a newer leader exists, or a KV write finds the state changed by another
	depose  sync.Once

	rejected ratelog.Limiter // node messages refused
}

// loaded is a revision and its desired state.
type loaded struct {
	rev   Revision
	state *desired.State
}

// ErrDeposed is returned by Run when a node refused a command because a
// leader of a newer term exists, or when a write to the KV state found it
// changed by another reconciler (ErrConflict).
var ErrDeposed = errors.New("a newer leader exists")

// New returns a Reconciler; Run starts it.
func New(cfg Config) *Reconciler {
	cfg.defaults()
	return &Reconciler{
		cfg:         cfg,
		wake:        make(chan struct{}, 1),
		nodes:       map[string]*nodeState{},
		assignments: map[string]Assignment{},
		pending:     map[string]Action{},
		rollouts:    map[string]Rollout{},
		hpa:         map[string]HPAState{},
		crons:       map[string]CronState{},
		startFails:  map[string]StartFailure{},
		stopping:    map[string]stopSent{},
		jobs:        map[string]JobRecord{},
		rollbacks:   map[string]RollbackTo{},
		bad:         map[string]BadRevision{},
		gitq:        make(chan gitJob, gitQueue),
		gitDone:     make(chan BadRevision, gitQueue),

		deposed: make(chan struct{}),
	}
}

// SetRevision renders files as the desired state of rev. A revision that does
// not load is recorded in the status and the last good one stays in force.
// While the cluster is pinned, any other revision is ignored.
func (r *Reconciler) SetRevision(ctx context.Context, rev Revision, files map[string][]byte) error {
	r.mu.Lock()
	p := r.pin
	r.mu.Unlock()
	if p != nil && p.Revision != rev.ID {
		zerolog.Ctx(ctx).Info().Str("revision", rev.ID).Str("pinned", p.Revision).Msg("revision not applied: the cluster is pinned (baton unpin)")
		return nil
	}
	st, err := desired.LoadWith(ctx, files, r.loadOptions())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sourceErr = ""
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
		r.revErr = re
		zerolog.Ctx(ctx).Error().Str("revision", rev.ID).Strs("errors", re.Errors).
			Str("running", r.synced.ID).Msg("revision does not load; the last good revision stays in force")
		return err
	}
	st.Revision = rev.ID
	r.next = &loaded{rev: rev, state: st} // the next pass puts it in force (takeRevision)
	r.revErr = nil
	for _, w := range st.Warnings {
		zerolog.Ctx(ctx).Warn().Str("revision", rev.ID).Msg(w)
	}
	zerolog.Ctx(ctx).Info().Str("revision", rev.ID).Int("workloads", len(st.Workloads)).Msg("new desired state")
	r.kick()
	return nil
}

// SetSourceError records that the config repository could not be fetched,
// or with nil that it can be again.
func (r *Reconciler) SetSourceError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sourceErr = ""
	if err != nil {
		r.sourceErr = err.Error()
	}
}

func (r *Reconciler) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run subscribes to the nodes and reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
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
	if r.cfg.Notes != nil || r.cfg.Reverter != nil {
		go r.gitWorker(ctx)
	}
	log.Info().Dur("nodeGrace", r.cfg.NodeGrace).Uint64("term", r.cfg.Term).Msg("reconciler running")
	ticker := time.NewTicker(r.cfg.Resync)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.deposed:
			return ErrDeposed
		case <-r.wake:
		case <-ticker.C:
		}
		r.pass(ctx)
	}
}

func (r *Reconciler) restore(ctx context.Context) error {
	r.cfg.Store.forget() // read everything again: writes compare with what is read now
	as, err := r.cfg.Store.Assignments(ctx)
	if err != nil {
		return err
	}
	sr, err := r.cfg.Store.Synced(ctx)
	if err != nil {
		return err
	}
	ros, err := r.cfg.Store.Rollouts(ctx)
	if err != nil {
		return err
	}
	hpa, err := r.cfg.Store.Autoscalers(ctx)
	if err != nil {
		return err
	}
	crons, err := r.cfg.Store.Crons(ctx)
	if err != nil {
		return err
	}
	hist, err := r.cfg.Store.History(ctx)
	if err != nil {
		return err
	}
	jobs, err := list[JobRecord](ctx, r.cfg.Store, jobPrefix, nil)
	if err != nil {
		return err
	}
	bad, err := list[BadRevision](ctx, r.cfg.Store, badPrefix, nil)
	if err != nil {
		return err
	}
	if r.cfg.Reverter != nil {
		for _, b := range bad {
			if b.Reverted == "" && b.RevertError == "" {
				r.writeBack(gitJob{revert: &b}) // the last leader died before reverting it
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bad = bad
	r.assignments = as
	r.rollouts = ros
	r.hpa = hpa
	r.crons = crons
	r.jobs = jobs
	if len(hist) > 0 {
		r.history = &hist[len(hist)-1]
	}
	r.started = r.cfg.Clock()
	r.synced = Revision{ID: sr.Revision}
	r.syncedAt = sr.Time
	return nil
}

func (r *Reconciler) onHeartbeat(ctx context.Context, m *nats.Msg) {
	var hb protocol.Heartbeat
	if err := decodeFromNode(m, &hb, &hb.Node); err != nil {
		r.reject(ctx, err, m, "heartbeat rejected")
		return
	}
	r.mu.Lock()
	n := r.node(hb.Node)
	wasReady := NodeReady(n.NodeView, r.cfg.Clock(), r.cfg.NodeGrace)
	n.hb = hb
	n.LastHeartbeat = r.cfg.Clock()
	n.Labels, n.Allocatable = hb.Labels, hb.Capacity
	noReport := n.ReportTime.IsZero()
	r.mu.Unlock()
	if noReport {
		_ = r.resync()
	}
	if !wasReady {
		zerolog.Ctx(ctx).Info().Str("node", hb.Node).Msg("node ready")
		r.kick()
	}
}

func (r *Reconciler) onReport(ctx context.Context, m *nats.Msg) {
	var rep protocol.Report
	if err := decodeFromNode(m, &rep, &rep.Node); err != nil {
		r.reject(ctx, err, m, "report rejected")
		return
	}
	r.mu.Lock()
	n := r.node(rep.Node)
	now := r.cfg.Clock()
	prev := n.readySince
	n.readySince = map[string]time.Time{}
	for _, x := range rep.Replicas {
		if x.Ready {
			since, ok := prev[x.ID]
			if !ok {
				since = now
			}
			n.readySince[x.ID] = since
		}
	}
	n.Replicas = rep.Replicas
	n.Volumes = rep.Volumes
	n.ReportTime = now
	// A stop is done when a report that came after it no longer shows the
	// replica; until then it is not sent again.
	if len(r.stopping) > 0 {
		shown := make(map[string]bool, len(rep.Replicas))
		for _, x := range rep.Replicas {
			shown[x.ID] = true
		}
		for id, s := range r.stopping {
			if s.node == rep.Node && !shown[id] {
				delete(r.stopping, id)
			}
		}
	}
	r.mu.Unlock()
	r.kick()
}

// stopSent is a stop command sent, until its replica is gone.
type stopSent struct {
	node string
	at   time.Time
}

// expireStops forgets stops older than the command timeout whose replica
// is still shown: the command was lost or the stop failed; the next pass
// sends it again.
func (r *Reconciler) expireStops(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, s := range r.stopping {
		if now.Sub(s.at) > r.cfg.CommandTimeout+r.cfg.NodeGrace {
			delete(r.stopping, id)
		}
	}
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

func (r *Reconciler) node(name string) *nodeState {
	n, ok := r.nodes[name]
	if !ok {
		n = &nodeState{NodeView: NodeView{Name: name}}
		r.nodes[name] = n
	}
	return n
}

// input copies the reconciler's state for Compute.
func (r *Reconciler) input() Input {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := Input{
		Desired:        r.desired,
		Nodes:          make(map[string]NodeView, len(r.nodes)),
		Assignments:    make(map[string]Assignment, len(r.assignments)),
		Now:            r.cfg.Clock(),
		NodeGrace:      r.cfg.NodeGrace,
		PendingTimeout: r.cfg.PendingTimeout,
		Started:        r.started,
		Strategy:       r.cfg.Strategy,
	}
	in.Refused = maps.Clone(r.startFails)
	in.Stopping = make(map[string]bool, len(r.stopping))
	for id := range r.stopping {
		in.Stopping[id] = true
	}
	in.ReadySince = map[string]time.Time{}
	for k, v := range r.nodes {
		in.Nodes[k] = v.NodeView
		for id, t := range v.readySince {
			in.ReadySince[id] = t
		}
	}
	for k, v := range r.assignments {
		in.Assignments[k] = v
	}
	in.index = in.reported() // once per pass: rollouts, autoscalers, Jobs and history read it
	return in
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
}

// Stats returns the pass counters.
func (r *Reconciler) Stats() PassStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Rejected = r.rejected.Total()
	return st
}

// reject logs a refused node message at a bounded rate: one bad message a
// second must not write a warning a second.
func (r *Reconciler) reject(ctx context.Context, err error, m *nats.Msg, what string) {
	if ok, held := r.rejected.Allow(time.Now()); ok {
		zerolog.Ctx(ctx).Warn().Err(err).Str("subject", m.Subject).Int64("heldBack", held).Int64("total", r.rejected.Total()).Msg(what)
	}
}

func (r *Reconciler) pass(ctx context.Context) {
	began := time.Now()
	defer func() {
		d := time.Since(began)
		r.mu.Lock()
		r.stats.Passes++
		r.stats.LastDuration = d
		r.stats.TotalSeconds += d.Seconds()
		r.mu.Unlock()
	}()
	r.applyGitResults(ctx)
	r.expireStops(r.cfg.Clock())
	rev := r.takeRevision(ctx)
	in := r.input()
	r.runCronJobs(ctx, &in)
	r.recordJobs(ctx, &in)
	r.autoscaleAll(ctx, &in)
	r.trackRollouts(ctx, &in)
	r.forgetRefusals(&in)
	actions := Compute(in)
	r.noteFailures(ctx, actions)
	r.apply(ctx, actions)

	if rev != nil {
		r.mu.Lock()
		r.synced, r.syncedAt = *rev, r.cfg.Clock()
		r.mu.Unlock()
		if err := r.stored(r.cfg.Store.SetSynced(ctx, SyncedRevision{Revision: rev.ID, Time: in.Now})); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Msg("record synced revision")
		}
		r.recordApplied(ctx, *rev, in.Now)
	}
	r.settleHistory(ctx, in)
}

// maxParallel bounds the commands in flight at once.
const maxParallel = 16

func (r *Reconciler) apply(ctx context.Context, actions []Action) {
	r.notePending(ctx, actions)
	if r.isDeposed() {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallel)
	for _, a := range actions {
		if a.Type == Pending || a.Type == Hold {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := r.applyOne(ctx, a); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("action", string(a.Type)).Str("replica", a.ReplicaID).Str("node", a.Node).Msg("action failed")
				r.event(fmt.Sprintf("failed: %s %s: %v", a.Type, a.ReplicaID, err))
				r.mu.Lock()
				r.stats.ActionErrors++
				r.mu.Unlock()
				return
			}
			r.event(a.String())
		}()
	}
	wg.Wait()
}

func (r *Reconciler) applyOne(ctx context.Context, a Action) error {
	log := zerolog.Ctx(ctx).With().Str("action", string(a.Type)).Str("workload", a.Workload).
		Str("replica", a.ReplicaID).Str("node", a.Node).Logger()
	switch a.Type {
	case Forget:
		log.Info().Str("reason", a.Reason).Msg("forget replica")
		return r.forget(ctx, a.ReplicaID)
	case Start:
		as := Assignment{ReplicaID: a.ReplicaID, Workload: a.Workload, SpecHash: a.Spec.SpecHash, Node: a.Node, Created: r.cfg.Clock()}
		r.mu.Lock()
		r.assignments[as.ReplicaID] = as
		r.mu.Unlock()
		if err := r.stored(r.cfg.Store.PutAssignment(ctx, as)); err != nil {
			if errors.Is(err, ErrConflict) {
				return fmt.Errorf("start replica %s: %w", a.ReplicaID, err) // not the leader any more: send nothing
			}
			log.Warn().Err(err).Msg("persist assignment")
		}
		log.Info().Str("reason", a.Reason).Msg("start replica")
		if err := r.send(ctx, a.Node, protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Start: a.Spec}); err != nil {
			// Forget the assignment only when the node clearly did not take
			// the start; after a timeout it may be starting, and the pending
			// timeout forgets it if it never shows up.
			var ce *protocol.CommandError
			if errors.As(err, &ce) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, ErrDeposed) {
				_ = r.forget(ctx, a.ReplicaID)
			}
			if errors.As(err, &ce) && ce.Code.Terminal() {
				r.refuse(ctx, a.Workload, a.Spec.SpecHash, a.Node, ce.Code, fmt.Sprintf("%s: %s", ce.Code, ce.Msg))
			}
			return fmt.Errorf("start replica %s on %s: %w", a.ReplicaID, a.Node, err)
		}
		return nil
	case Stop:
		log.Info().Str("reason", a.Reason).Msg("stop replica")
		r.mu.Lock()
		r.stopping[a.ReplicaID] = stopSent{node: a.Node, at: r.cfg.Clock()}
		r.mu.Unlock()
		if err := r.send(ctx, a.Node, protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: a.ReplicaID}); err != nil {
			r.mu.Lock()
			delete(r.stopping, a.ReplicaID) // sent again by the next pass
			r.mu.Unlock()
			return fmt.Errorf("stop replica %s on %s: %w", a.ReplicaID, a.Node, err)
		}
		return r.forget(ctx, a.ReplicaID)
	}
	return fmt.Errorf("unknown action %q", a.Type)
}

// noteFailures remembers the templates whose starts failed for good: an
// invalid spec is not started again until the template changes; a node
// whose policy refuses a template gets no replica of it again.
func (r *Reconciler) noteFailures(ctx context.Context, actions []Action) {
	for _, a := range actions {
		if a.Type == Stop && a.Failed && a.Code.Terminal() {
			r.refuse(ctx, a.Workload, a.SpecHash, a.Node, a.Code, a.Reason)
		}
	}
}

// refuse records that node refused to start a replica of template hash
// of workload, for good (code is terminal); reason says why.
func (r *Reconciler) refuse(ctx context.Context, workload, hash, node string, code protocol.ErrorCode, reason string) {
	r.mu.Lock()
	r.startFails[workload] = refusedBy(r.startFails[workload], hash, node, code, reason)
	r.mu.Unlock()
	zerolog.Ctx(ctx).Error().Str("workload", workload).Str("template", hash).Str("node", node).Str("code", string(code)).
		Str("reason", reason).Msg("template refused: not started again until it changes")
}

// forgetRefusals drops the refusals of templates no longer desired.
func (r *Reconciler) forgetRefusals(in *Input) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[string]string{}
	if in.Desired != nil {
		for _, w := range in.Desired.Workloads {
			want[w.Name] = w.Hash
		}
	}
	for name, f := range r.startFails {
		if want[name] != f.Hash {
			delete(r.startFails, name)
			delete(in.Refused, name)
		}
	}
}

// notePending records which workloads have replicas that fit nowhere, for
// the status, logging each change once.
func (r *Reconciler) notePending(ctx context.Context, actions []Action) {
	now := map[string]Action{}
	hold := ""
	for _, a := range actions {
		switch a.Type {
		case Pending:
			now[a.Workload] = a
		case Hold:
			hold = a.Reason
		}
	}
	r.mu.Lock()
	prev, prevHold := r.pending, r.hold
	r.pending, r.hold = now, hold
	r.mu.Unlock()
	switch {
	case hold != "" && prevHold == "":
		zerolog.Ctx(ctx).Error().Str("reason", hold).Msg("disruption mode: waiting")
		r.event("disruption mode: " + hold)
	case hold == "" && prevHold != "":
		zerolog.Ctx(ctx).Info().Msg("disruption mode over")
		r.event("disruption mode over")
	}
	for w, a := range now {
		if p, ok := prev[w]; !ok || p.Reason != a.Reason || p.Count != a.Count {
			zerolog.Ctx(ctx).Warn().Str("workload", w).Int("pending", a.Count).Str("reason", a.Reason).Msg("replicas pending")
			r.event(fmt.Sprintf("pending %s: %d replica(s): %s", w, a.Count, a.Reason))
		}
	}
}

func (r *Reconciler) forget(ctx context.Context, id string) error {
	r.mu.Lock()
	delete(r.assignments, id)
	r.mu.Unlock()
	return r.stored(r.cfg.Store.DeleteAssignment(ctx, id))
}

// stored passes a store error through; a conflict means another reconciler
// writes the state, so this one stops acting, as when a node says so.
func (r *Reconciler) stored(err error) error {
	if errors.Is(err, ErrConflict) {
		r.depose.Do(func() { close(r.deposed) })
	}
	return err
}

// resync asks every agent for a full report, telling them this leader's term.
func (r *Reconciler) resync() error {
	return r.cfg.NATS.Publish(protocol.ResyncSubject, protocol.Encode(protocol.Resync{Version: protocol.Version, Term: r.cfg.Term, Leader: r.cfg.ID}))
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

func (r *Reconciler) send(ctx context.Context, node string, cmd protocol.Command) error {
	if r.isDeposed() {
		return ErrDeposed
	}
	cmd.Term = r.cfg.Term
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CommandTimeout)
	defer cancel()
	msg, err := r.cfg.NATS.RequestWithContext(ctx, protocol.CommandSubject(node), protocol.Encode(cmd))
	if err != nil {
		return err
	}
	var reply protocol.Reply
	if err := protocol.Decode(msg.Data, &reply); err != nil {
		return fmt.Errorf("bad reply: %w", err)
	}
	if reply.Code == protocol.CodeStaleTerm {
		r.depose.Do(func() { close(r.deposed) })
	}
	return reply.Err()
}

func (r *Reconciler) event(s string) {
	line := r.cfg.Clock().UTC().Format(time.RFC3339) + " "
	if r.cfg.ID != "" {
		line += fmt.Sprintf("[%s term %d] ", r.cfg.ID, r.cfg.Term)
	}
	line += s
	var lost int64
	if r.cfg.Events != nil && r.cfg.Events.Append(line) != nil {
		lost = 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.EventErrors += lost
	r.events = append(r.events, line)
	if len(r.events) > maxEvents {
		r.events = r.events[len(r.events)-maxEvents:]
	}
}

// loadOptions are how the reconciler loads a revision: SealedSecrets must
// decrypt with the cluster's key, or the revision is refused (the last good
// one stays in force).
func (r *Reconciler) loadOptions() desired.Options {
	return desired.Options{Unsealer: r.cfg.Unsealer, RequireUnsealed: true}
}
