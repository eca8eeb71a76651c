package reconciler

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/store"
)

// loopState is the reconciler's state, owned by the loop goroutine: no
// lock guards it. Maps that a snapshot shares are replaced, never changed
// in place, once published.
type loopState struct {
	nodes       map[string]*nodeState // shared with snapshots: copy on write
	views       map[string]NodeView   // Compute's view of the nodes (the loop's own)
	readySince  map[string]time.Time  // replica → when it was first seen ready
	assignments map[string]Assignment
	byNode      map[string]map[string]bool // node → its assignments' replica IDs
	stopping    map[string]stopSent        // replicas a stop was sent to

	desired   *desired.State
	withRuns  *desired.State // the desired state with the CronJobs' runs as Jobs
	next      *loaded        // loaded, put in force by the next pass
	synced    Revision
	tip       Revision // the newest revision the source gave, applied or not
	syncedAt  time.Time
	revErr    *RevisionError
	sourceErr string
	pin       *store.Pin
	controls  map[string]store.NodeControl // cordoned and draining nodes (shared with snapshots)

	bad         map[string]store.BadRevision
	refused     *store.BadRevision // the newest revision seen, not applied because it is bad
	reloadAfter time.Time          // next try at loading the revision in force

	rollouts     map[string]Rollout // shared with snapshots
	rollbacks    map[string]RollbackTo
	hpa          map[string]HPAState
	crons        map[string]CronState
	jobs         map[string]JobRecord
	history      *store.HistoryEntry
	changes      []desired.Change // the revision taken this pass changed, for its history entry
	startFails   map[string]StartFailure
	netSent      map[string]netSent // the routes last sent to each node
	svcSent      map[string]netSent // the Service rules last sent to each node
	serviceIPs   map[string]string  // Service → its virtual address (kept in KV)
	nodePorts    map[string]int     // Service.port → its node port (kept in KV)
	serviceErrs  map[string]string  // Service → why it has no address
	rulesKey     string             // the Service rules of the last pass
	rules        []protocol.ServiceRule
	services     []ServiceStatus       // this pass's, shared with its snapshot
	scales       map[string]Scale      // this pass's, shared with its snapshot
	pending      map[string]Pending    // this pass's, shared with its snapshot
	poolRecords  map[string]PoolRecord // kept in KV (pool.<name>)
	poolStatus   []PoolStatus          // this pass's, shared with its snapshot
	poolUnserved []string              // pending replicas no pool can take, said
	hold         string
	events       []string
	started      time.Time
	lastPass     time.Duration
	total        time.Duration
}

func newLoopState() *loopState {
	return &loopState{nodes: map[string]*nodeState{}, views: map[string]NodeView{}, readySince: map[string]time.Time{},
		assignments: map[string]Assignment{}, byNode: map[string]map[string]bool{}, stopping: map[string]stopSent{}, bad: map[string]store.BadRevision{},
		rollouts: map[string]Rollout{}, rollbacks: map[string]RollbackTo{}, hpa: map[string]HPAState{}, crons: map[string]CronState{},
		jobs: map[string]JobRecord{}, startFails: map[string]StartFailure{}, netSent: map[string]netSent{}, svcSent: map[string]netSent{}, serviceIPs: map[string]string{}, scales: map[string]Scale{}, pending: map[string]Pending{}}
}

// nodeState is one node as the last messages showed it; never changed once
// made (a new message makes a new one), so snapshots share it.
type nodeState struct {
	view NodeView
	hb   protocol.Heartbeat
}

// stopSent is a stop command sent, until its replica is gone.
type stopSent struct {
	node string
	at   time.Time
}

// maxEvents bounds the decisions kept for the status.
const maxEvents = 200

// kvWrite is one change a step asks of the KV state: value nil deletes key.
type kvWrite struct {
	key   string
	value any
}

// save applies a step's KV writes: different keys in parallel (at most
// maxWritesInFlight at once; a rollout of 1,000 workloads writes 1,000
// records), the writes of one key in order. Failures are logged; the
// first is returned (for the steps that must not act on a state not kept).
func (r *Reconciler) save(ctx context.Context, writes []kvWrite) error {
	if len(writes) == 0 {
		return nil
	}
	byKey := map[string][]kvWrite{}
	var keys []string
	for _, w := range writes {
		if _, ok := byKey[w.key]; !ok {
			keys = append(keys, w.key)
		}
		byKey[w.key] = append(byKey[w.key], w)
	}
	var g errgroup.Group
	g.SetLimit(maxWritesInFlight)
	for _, key := range keys {
		g.Go(func() error {
			var first error
			for _, w := range byKey[key] {
				var err error
				if w.value == nil {
					err = r.stored(r.cfg.Store.Delete(ctx, w.key))
				} else {
					err = r.stored(r.cfg.Store.Put(ctx, w.key, w.value))
				}
				if err != nil {
					zerolog.Ctx(ctx).Warn().Err(err).Str("key", w.key).Msg("save state")
					first = cmp.Or(first, err)
				}
			}
			return first
		})
	}
	return g.Wait()
}

// pass is one turn of the loop:
//
//	drain the mailbox → put a new revision in force (unless bad) → Live
//	→ CronJobs → Jobs → scales (schedules, autoscalers) → rollouts
//	→ Compute → apply (commands, events) → history → publish a snapshot
//
// Each step is pure over (state, input, now) and returns its new state,
// KV writes and events; the pass saves the writes after each step.
func (r *Reconciler) pass(ctx context.Context) {
	began := time.Now()
	st := r.st
	now := r.cfg.Clock()
	r.drain(ctx, now)
	rev := r.takeRevision(ctx, now)
	for id, s := range st.stopping {
		// A stop whose replica is still shown after the command timeout
		// and the node grace was lost or failed: the next Compute sends it again.
		if now.Sub(s.at) > r.cfg.CommandTimeout+r.cfg.NodeGrace {
			delete(st.stopping, id)
		}
	}
	in := Input{Desired: st.desired, Nodes: st.views, Assignments: st.assignments, Now: now, NodeGrace: r.cfg.NodeGrace,
		PendingTimeout: r.cfg.PendingTimeout, Started: st.started, Strategy: r.cfg.Strategy, ReadySince: st.readySince,
		Stopping: make(map[string]bool, len(st.stopping))}
	for id := range st.stopping {
		in.Stopping[id] = true
	}
	if len(st.controls) > 0 {
		in.Cordoned, in.Draining = map[string]bool{}, map[string]bool{}
		for name, c := range st.controls {
			in.Cordoned[name] = c.Cordoned || c.Draining
			in.Draining[name] = c.Draining
		}
	}
	live := NewLive(in)
	if in.Desired != nil {
		// CronJobs: their runs become Jobs of the desired state.
		crons, withRuns, writes, events := cronsStep(st.crons, in.Desired, live, now)
		st.crons = crons
		r.save(ctx, writes)
		r.events(events...)
		if len(in.Desired.CronJobs) > 0 {
			in.Desired = withRuns
		}
		st.withRuns = in.Desired
		// Jobs that finished are recorded for good.
		jobs, writes, events := jobsStep(st.jobs, in.Desired.Jobs, live, now)
		st.jobs, in.JobsDone = jobs, jobs
		r.save(ctx, writes)
		r.events(events...)
		// One scale decision per workload, for Compute, status and plan.
		scales, hpa, writes, events := scalesStep(in.Desired, st.hpa, live, now)
		st.scales, st.hpa, in.Scales = scales, hpa, scales
		r.save(ctx, writes)
		r.events(events...)
		// Rollouts: new templates, completions, failures, auto-rollbacks.
		r.rollouts(ctx, &in, live)
		in.Refused = r.refusals(in.Desired)
	} else {
		st.withRuns = nil
	}
	res := Compute(in, live)
	// A DaemonSet's count is the nodes it goes to (this pass's map is new).
	for name, n := range res.Daemons {
		if sc, ok := st.scales[name]; ok {
			sc.Replicas, sc.Reason = n, "one replica on each node its pod may go to"
			st.scales[name] = sc
		}
	}
	r.noteFailures(ctx, res)
	r.notePending(ctx, res)
	r.pools(ctx, in, live, now)
	r.apply(ctx, res)
	r.syncNetwork(now)
	r.syncServices(ctx, st.withRuns, live, now)
	if rev != nil {
		st.synced, st.syncedAt = *rev, now
		if err := r.stored(r.cfg.Store.Put(ctx, store.KeySynced, store.SyncedRevision{Revision: rev.ID, Time: now})); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Msg("record synced revision")
		}
		r.recordApplied(ctx, *rev, st.changes, now)
		st.changes = nil
	}
	r.settleHistory(ctx, in, live)
	st.lastPass = time.Since(began)
	st.total += st.lastPass
	if o := r.cfg.Observer; o != nil {
		o.PassDone(st.lastPass)
	}
	r.passes.Add(1)
	r.publish(now)
}

// drain moves what arrived since the last pass into the loop's state.
func (r *Reconciler) drain(ctx context.Context, now time.Time) {
	st := r.st
	mb := r.mb.take()
	r.events(mb.lines...)
	if mb.sourceErr != nil {
		st.sourceErr = *mb.sourceErr
	}
	if mb.revErrSet {
		st.revErr = mb.revErr
	}
	if mb.pin != nil {
		st.pin = mb.pin.pin
		if p := st.pin; p != nil {
			r.events(fmt.Sprintf("pinned to revision %s by %s: %s", short12(p.Revision), p.By, p.Reason))
		} else {
			r.events("unpinned: following the branch again")
			if st.synced.Ref == PinnedRef {
				// Still in force until the branch's revision is: no longer
				// "pinned" (a refused tip leaves it in force for a while).
				st.synced.Ref = ""
			}
		}
		if st.pin != nil && st.next != nil && st.next.rev.ID != st.pin.Revision {
			st.next = nil // loaded just before the pin: not applied
		}
	}
	if mb.controls != nil {
		for name, c := range *mb.controls {
			if old, ok := st.controls[name]; !ok || old.Cordoned != c.Cordoned || old.Draining != c.Draining {
				what := "cordoned: no new replicas"
				if c.Draining {
					what = "draining: its replicas move to other nodes"
				}
				if c.By != "" {
					what += " (by " + c.By + ")"
				}
				r.events(fmt.Sprintf("node %s %s", name, what))
			}
		}
		for name := range st.controls {
			if _, ok := (*mb.controls)[name]; !ok {
				r.events(fmt.Sprintf("node %s uncordoned", name))
			}
		}
		st.controls = *mb.controls
	}
	if mb.tip != nil {
		st.tip = *mb.tip
	}
	if mb.next != nil && (st.pin == nil || mb.next.rev.ID == st.pin.Revision) {
		st.next = mb.next
	}
	if len(mb.poolDone) > 0 {
		recs, events := ApplyPoolResults(st.poolRecords, mb.poolDone, now)
		r.events(events...)
		var writes []kvWrite
		for name, rec := range recs {
			if !reflect.DeepEqual(st.poolRecords[name], rec) {
				writes = append(writes, kvWrite{key: poolKeyPrefix + name, value: rec})
			}
		}
		r.save(ctx, writes)
		st.poolRecords = recs
	}
	for _, b := range mb.gitDone {
		// What the git worker did, recorded here: every write of bad.* keys
		// happens on the loop's goroutine.
		if _, still := st.bad[b.Revision]; still {
			r.putBad(ctx, b)
		}
	}
	if len(mb.forget) > 0 {
		nodes := maps.Clone(st.nodes)
		for _, name := range mb.forget {
			_, known := nodes[name]
			delete(nodes, name)
			delete(st.views, name)
			delete(mb.heartbeats, name)
			delete(mb.reports, name)
			if known {
				r.events(fmt.Sprintf("node %s removed: its replicas are placed elsewhere", name))
			}
		}
		st.nodes = nodes
	}
	if len(mb.disconnect) > 0 || len(mb.connect) > 0 {
		// The bus's own events, in the order it sent them: a connection
		// after the disconnection clears it.
		nodes := maps.Clone(st.nodes)
		for name, at := range mb.disconnect {
			n, ok := nodes[name]
			if !ok || !mb.connect[name].Before(at) && !mb.connect[name].IsZero() {
				continue
			}
			c := *n
			c.view.Disconnected = at
			nodes[name] = &c
			st.views[name] = c.view
			delete(st.netSent, name) // sent again when it is back
			delete(st.svcSent, name)
			r.events(fmt.Sprintf("node %s disconnected from the bus: lost in %s unless it comes back", name, DisconnectGrace))
		}
		for name, at := range mb.connect {
			if n, ok := nodes[name]; ok && !n.view.Disconnected.IsZero() && at.After(n.view.Disconnected) {
				c := *n
				c.view.Disconnected = time.Time{}
				nodes[name] = &c
				st.views[name] = c.view
			}
		}
		st.nodes = nodes
	}
	if len(mb.heartbeats) == 0 && len(mb.reports) == 0 {
		return
	}
	nodes := maps.Clone(st.nodes) // the last snapshot keeps the old map
	resync := false
	for name, hb := range mb.heartbeats {
		n := *nodeOf(nodes, name)
		n.hb = hb.msg
		n.view.LastHeartbeat = hb.at
		if heardSince(hb.at, n.view.Disconnected) {
			n.view.Disconnected = time.Time{} // back on the bus
		}
		n.view.Labels, n.view.Allocatable, n.view.Taints = hb.msg.Labels, hb.msg.Capacity, hb.msg.Taints
		if n.view.ReportTime.IsZero() {
			resync = true
		}
		nodes[name] = &n
	}
	reports := r.decodeReports(ctx, mb.reports)
	for name, rep := range reports {
		n := *nodeOf(nodes, name)
		// When each replica was first seen ready, since it last was not.
		ready := make(map[string]bool, len(rep.msg.Replicas))
		for _, x := range rep.msg.Replicas {
			if x.Ready {
				ready[x.ID] = true
				if _, ok := st.readySince[x.ID]; !ok {
					st.readySince[x.ID] = rep.at
				}
			}
		}
		for _, x := range n.view.Replicas {
			if !ready[x.ID] {
				delete(st.readySince, x.ID)
			}
		}
		n.view.Replicas, n.view.Volumes, n.view.ReportTime = rep.msg.Replicas, rep.msg.Volumes, rep.at
		if heardSince(rep.at, n.view.Disconnected) {
			n.view.Disconnected = time.Time{} // back on the bus
		}
		nodes[name] = &n
		// A stop is done when a report that came after it no longer shows
		// the replica; until then it is not sent again.
		if len(st.stopping) > 0 {
			shown := make(map[string]bool, len(rep.msg.Replicas))
			for _, x := range rep.msg.Replicas {
				shown[x.ID] = true
			}
			for id, s := range st.stopping {
				if s.node == name && !shown[id] {
					delete(st.stopping, id)
				}
			}
		}
	}
	st.nodes = nodes
	for name := range mb.heartbeats {
		st.views[name] = nodes[name].view
	}
	for name := range reports {
		st.views[name] = nodes[name].view
	}
	if resync {
		_ = r.resync() // a node heartbeats but has not reported: ask for it
	}
}

// heardSince reports whether a node's message received at at shows it back
// after a disconnection: well after it (a message sent before the
// connection closed may be handled a little after the bus's event, which
// comes on another connection); the bus's connect event is the prompt way.
func heardSince(at, disconnected time.Time) bool {
	return !disconnected.IsZero() && at.After(disconnected.Add(time.Second))
}

func nodeOf(nodes map[string]*nodeState, name string) *nodeState {
	if n, ok := nodes[name]; ok {
		return n
	}
	return &nodeState{view: NodeView{Name: name}}
}

// events records decisions: the last maxEvents for the status, and every one
// in the events stream (asynchronously: events never slow a pass).
func (r *Reconciler) events(lines ...string) {
	for _, s := range lines {
		line := r.cfg.Clock().UTC().Format(time.RFC3339) + " "
		if r.cfg.ID != "" {
			line += fmt.Sprintf("[%s term %d] ", r.cfg.ID, r.cfg.Term)
		}
		line += s
		if r.cfg.Events != nil && r.cfg.Events.Append(line) != nil {
			r.eventErrors.Add(1)
		}
		st := r.st
		st.events = append(st.events, line)
		if len(st.events) > 2*maxEvents {
			// Trimmed in steps, not at every event: a pass with 10,000
			// starts copies the newest maxEvents 50 times, not 10,000.
			st.events = append(make([]string, 0, 2*maxEvents), st.events[len(st.events)-maxEvents:]...)
		}
	}
}

// snapshot is the immutable view a pass publishes: the status, the API and
// the metrics read it without locks.
type snapshot struct {
	at           time.Time
	grace        time.Duration
	nodes        map[string]*nodeState
	desired      *desired.State
	withRuns     *desired.State
	rollouts     map[string]Rollout
	scales       map[string]Scale
	pending      map[string]Pending
	hold         string
	synced       Revision
	tip          Revision
	syncedAt     time.Time
	revErr       *RevisionError
	sourceErr    string
	pin          *store.Pin
	controls     map[string]store.NodeControl
	refused      *store.BadRevision
	events       []string
	bad          []store.BadRevision
	history      *store.HistoryEntry
	stats        PassStats
	services     []ServiceStatus
	pools        []PoolStatus
	poolUnserved []string
}

// ready reports whether a node was ready at the snapshot.
func (s *snapshot) ready(name string) bool {
	n, ok := s.nodes[name]
	return ok && NodeReady(n.view, s.at, s.grace)
}

// publish makes the snapshot of this pass.
func (r *Reconciler) publish(now time.Time) {
	st := r.st
	s := &snapshot{at: now, grace: r.cfg.NodeGrace, nodes: st.nodes, desired: st.desired, withRuns: st.withRuns,
		rollouts: st.rollouts, scales: st.scales, pending: st.pending, hold: st.hold, synced: st.synced, tip: st.tip, syncedAt: st.syncedAt,
		revErr: st.revErr, sourceErr: st.sourceErr, pin: st.pin, controls: st.controls, refused: st.refused, events: newest(st.events, maxEvents),
		bad: badList(st.bad), history: st.history, services: st.services, pools: st.poolStatus, poolUnserved: st.poolUnserved}
	heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(heap)
	s.stats = PassStats{Passes: r.passes.Load(), LastDuration: st.lastPass, TotalSeconds: st.total.Seconds(), HeapBytes: heap[0].Value.Uint64()}
	r.snap.Store(s)
}

// newest returns the last n lines, sharing lines' array: the loop only
// appends past its length or moves to a new array, so the snapshot's
// lines never change.
func newest(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// decodeReports decodes the latest report of each node, on every core (a
// thousand nodes report at once after a rollout); reports that do not
// decode are rejected.
func (r *Reconciler) decodeReports(ctx context.Context, raws map[string]rawReport) map[string]received[protocol.Report] {
	type job struct {
		name string
		raw  rawReport
		rep  protocol.Report
		err  error
	}
	jobs := make([]job, 0, len(raws))
	for name, raw := range raws {
		jobs = append(jobs, job{name: name, raw: raw})
	}
	// One worker per core takes the next report until none is left.
	var g errgroup.Group
	var next atomic.Int64
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		g.Go(func() error {
			for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
				j := &jobs[i]
				j.err = decodeFromNode(j.raw.msg, &j.rep, &j.rep.Node)
			}
			return nil
		})
	}
	_ = g.Wait()
	out := make(map[string]received[protocol.Report], len(jobs))
	for _, j := range jobs {
		if j.err != nil {
			r.reject(ctx, j.err, j.raw.msg, "report rejected")
			continue
		}
		out[j.name] = received[protocol.Report]{msg: j.rep, at: j.raw.at}
	}
	return out
}
