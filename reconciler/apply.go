package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/store"
)

// Bounds of applying a pass: nodes served at once, KV writes in flight at
// once, and the encoded size of one batch message.
const (
	maxNodesInFlight  = 128
	maxWritesInFlight = 64
	maxBatchBytes     = 768 << 10
)

// apply carries out a pass's result, node by node and nodes in parallel:
// a node's assignments (one KV record per node) are saved with its new
// starts before the node is sent one message (more for a very big batch)
// with all its stops and starts. What the nodes answered is applied back on
// the loop's goroutine: assignments of starts they refused dropped,
// templates they refused for good remembered, stopped replicas forgotten,
// and the records of nodes whose assignments changed saved again.
func (r *Reconciler) apply(ctx context.Context, res Result) {
	st := r.st
	now := r.cfg.Clock()
	dirty := map[string]bool{}
	for _, f := range res.Forgets {
		zerolog.Ctx(ctx).Info().Str("workload", f.Workload).Str("replica", f.ReplicaID).Str("node", f.Node).Str("reason", f.Reason).Msg("forget replica")
		st.unassign(f.ReplicaID)
		dirty[f.Node] = true
		r.events(f.String())
	}
	if r.isDeposed() {
		return
	}
	byNode := map[string]*nodeBatch{}
	for _, s := range res.Stops {
		st.stopping[s.ReplicaID] = stopSent{node: s.Node, at: now}
		b := batchOf(byNode, s.Node)
		b.stops = append(b.stops, s)
	}
	for _, s := range res.Starts {
		// Recorded before they are sent: a new leader must know them.
		st.assign(Assignment{ReplicaID: s.ReplicaID, Workload: s.Workload, SpecHash: s.Spec.SpecHash, Node: s.Node, Created: now})
		b := batchOf(byNode, s.Node)
		b.starts = append(b.starts, s)
		b.record = true
		delete(dirty, s.Node) // saved with the batch
	}
	for node, b := range byNode {
		if b.record {
			b.assigned = st.recordOf(node)
		}
	}
	r.send(ctx, byNode)
	for node := range dirty {
		if _, ok := byNode[node]; !ok || !byNode[node].record {
			dirty[node] = true
		}
	}
	for _, node := range sortedKeys(byNode) {
		b := byNode[node]
		if b.saveErr != nil {
			// Not recorded, not sent: the next pass starts them again.
			for _, s := range b.starts {
				st.unassign(s.ReplicaID)
			}
			dirty[node] = true
			r.failed(ctx, zerolog.Ctx(ctx), fmt.Errorf("record the starts of %s: %w", node, b.saveErr))
		}
		for i, s := range b.stops {
			log := zerolog.Ctx(ctx).With().Str("workload", s.Workload).Str("replica", s.ReplicaID).Str("node", node).Logger()
			if err := b.stopErrs[i]; err != nil {
				delete(st.stopping, s.ReplicaID) // sent again by the next pass
				r.failed(ctx, &log, fmt.Errorf("stop replica %s on %s: %w", s.ReplicaID, node, err))
				continue
			}
			log.Info().Str("reason", s.Reason).Msg("stop replica")
			if st.unassign(s.ReplicaID) {
				dirty[node] = true
			}
			r.events(s.String())
		}
		if b.saveErr != nil {
			continue
		}
		for i, s := range b.starts {
			log := zerolog.Ctx(ctx).With().Str("workload", s.Workload).Str("replica", s.ReplicaID).Str("node", node).Logger()
			err := b.startErrs[i]
			if err == nil {
				log.Info().Str("reason", s.Reason).Msg("start replica")
				r.events(s.String())
				continue
			}
			// Forget the assignment only when the node clearly did not take
			// the start; after a timeout it may be starting, and the pending
			// timeout forgets it if it never shows up.
			var ce *protocol.CommandError
			if errors.As(err, &ce) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, ErrDeposed) {
				st.unassign(s.ReplicaID)
				dirty[node] = true
			}
			if errors.As(err, &ce) && ce.Code.Terminal() {
				r.refuse(ctx, s.Workload, s.Spec.SpecHash, node, ce.Code, fmt.Sprintf("%s: %s", ce.Code, ce.Msg))
			}
			r.failed(ctx, &log, fmt.Errorf("start replica %s on %s: %w", s.ReplicaID, node, err))
		}
	}
	r.saveRecords(ctx, dirty)
}

// failed logs and records a command that failed.
func (r *Reconciler) failed(_ context.Context, log *zerolog.Logger, err error) {
	log.Warn().Err(err).Msg("action failed")
	r.events("failed: " + err.Error())
	r.actionErrors.Add(1)
}

// nodeBatch is what one node is sent in a pass, and what it answered.
type nodeBatch struct {
	starts    []Start
	stops     []Stop
	record    bool         // save the node's assignments (assigned) before sending
	assigned  nodeAssigned // the node's assignments, with the new starts
	saveErr   error        // the record could not be saved: nothing was sent
	startErrs []error
	stopErrs  []error
}

func batchOf(m map[string]*nodeBatch, node string) *nodeBatch {
	b, ok := m[node]
	if !ok {
		b = &nodeBatch{}
		m[node] = b
	}
	return b
}

// send serves every node, at most maxNodesInFlight at once: the node's
// assignment record first (when it has starts), then its batch.
func (r *Reconciler) send(ctx context.Context, byNode map[string]*nodeBatch) {
	var g errgroup.Group
	g.SetLimit(maxNodesInFlight)
	for node, b := range byNode {
		b.startErrs, b.stopErrs = make([]error, len(b.starts)), make([]error, len(b.stops))
		g.Go(func() error {
			if b.record {
				if err := r.stored(r.cfg.Store.Put(ctx, assignmentPrefix+node, b.assigned)); err != nil {
					b.saveErr = err
					return nil
				}
			}
			r.sendBatch(ctx, node, b)
			return nil
		})
	}
	_ = g.Wait()
}

// sendBatch sends one node its stops and starts, cut into messages of at
// most maxBatchBytes.
func (r *Reconciler) sendBatch(ctx context.Context, node string, b *nodeBatch) {
	type item struct {
		stop  int // index in b.stops, or -1
		start int // index in b.starts, or -1
		size  int
	}
	var items []item
	for i, s := range b.stops {
		items = append(items, item{stop: i, start: -1, size: len(s.ReplicaID) + 8})
	}
	for i, s := range b.starts {
		items = append(items, item{stop: -1, start: i, size: specSize(s.Spec)})
	}
	for len(items) > 0 {
		n, size := 0, 0
		for n < len(items) && n < protocol.MaxBatch && (n == 0 || size+items[n].size <= maxBatchBytes) {
			size += items[n].size
			n++
		}
		chunk := items[:n]
		items = items[n:]
		batch := &protocol.Batch{}
		for _, it := range chunk {
			if it.stop >= 0 {
				batch.Stops = append(batch.Stops, b.stops[it.stop].ReplicaID)
			} else {
				batch.Starts = append(batch.Starts, *b.starts[it.start].Spec)
			}
		}
		results, err := r.command(ctx, node, protocol.Command{Version: protocol.Version, Op: protocol.OpBatch, Batch: batch})
		k := 0
		for _, it := range chunk {
			itemErr := err
			if err == nil {
				if k < len(results) {
					itemErr = results[k].Err()
				} else {
					itemErr = errors.New("no answer for this item")
				}
				k++
			}
			if it.stop >= 0 {
				b.stopErrs[it.stop] = itemErr
			} else {
				b.startErrs[it.start] = itemErr
			}
		}
	}
}

// specSize estimates a start's encoded size.
func specSize(s *protocol.ReplicaSpec) int {
	return len(protocol.Encode(s))
}

// command sends one command and returns its results (a batch's items).
func (r *Reconciler) command(ctx context.Context, node string, cmd protocol.Command) ([]protocol.ItemResult, error) {
	if r.isDeposed() {
		return nil, ErrDeposed
	}
	cmd.Term = r.cfg.Term
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CommandTimeout)
	defer cancel()
	sent := time.Now()
	msg, err := r.cfg.NATS.RequestWithContext(ctx, protocol.CommandSubject(node), protocol.Encode(cmd))
	if o := r.cfg.Observer; o != nil {
		o.CommandDone(time.Since(sent), err)
	}
	if err != nil {
		return nil, err
	}
	var reply protocol.Reply
	if err := protocol.Decode(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("bad reply: %w", err)
	}
	if reply.Code == protocol.CodeStaleTerm {
		r.depose.Do(func() { close(r.deposed) })
	}
	return reply.Results, reply.Err()
}

// saveRecords saves the assignment records of nodes (a node without
// assignments has its record deleted).
func (r *Reconciler) saveRecords(ctx context.Context, nodes map[string]bool) {
	writes := make([]kvWrite, 0, len(nodes))
	for node := range nodes {
		w := kvWrite{key: assignmentPrefix + node}
		if rec := r.st.recordOf(node); len(rec.Assignments) > 0 {
			w.value = rec
		}
		writes = append(writes, w)
	}
	r.save(ctx, writes)
}

// nodeAssigned is the KV record of one node's assignments (assign.<node>).
type nodeAssigned struct {
	Node        string       `json:"node"`
	Assignments []Assignment `json:"assignments"`
}

// assign records an assignment in the loop's state.
func (st *loopState) assign(a Assignment) {
	st.assignments[a.ReplicaID] = a
	ids := st.byNode[a.Node]
	if ids == nil {
		ids = map[string]bool{}
		st.byNode[a.Node] = ids
	}
	ids[a.ReplicaID] = true
}

// unassign drops an assignment; false when there was none.
func (st *loopState) unassign(id string) bool {
	a, ok := st.assignments[id]
	if !ok {
		return false
	}
	delete(st.assignments, id)
	delete(st.byNode[a.Node], id)
	return true
}

// recordOf is a node's assignment record, sorted by replica ID.
func (st *loopState) recordOf(node string) nodeAssigned {
	rec := nodeAssigned{Node: node}
	for id := range st.byNode[node] {
		rec.Assignments = append(rec.Assignments, st.assignments[id])
	}
	sort.Slice(rec.Assignments, func(i, j int) bool { return rec.Assignments[i].ReplicaID < rec.Assignments[j].ReplicaID })
	return rec
}

// noteFailures remembers the templates whose starts failed for good: an
// invalid spec is not started again until the template changes; a node
// whose policy refuses a template gets no replica of it again.
func (r *Reconciler) noteFailures(ctx context.Context, res Result) {
	for _, s := range res.Stops {
		if s.Failed && s.Code.Terminal() {
			r.refuse(ctx, s.Workload, s.SpecHash, s.Node, s.Code, s.Reason)
		}
	}
}

// refuse records that node refused to start a replica of template hash
// of workload, for good (code is terminal); reason says why.
func (r *Reconciler) refuse(ctx context.Context, workload, hash, node string, code protocol.ErrorCode, reason string) {
	r.st.startFails[workload] = refusedBy(r.st.startFails[workload], hash, node, code, reason)
	zerolog.Ctx(ctx).Error().Str("workload", workload).Str("template", hash).Str("node", node).Str("code", string(code)).
		Str("reason", reason).Msg("template refused: not started again until it changes")
}

// refusals are the refusals of templates still desired (others are dropped).
func (r *Reconciler) refusals(st *desired.State) map[string]StartFailure {
	want := make(map[string]string, len(st.Workloads))
	for _, w := range st.Workloads {
		want[w.Name] = w.Hash
	}
	for name, f := range r.st.startFails {
		if want[name] != f.Hash {
			delete(r.st.startFails, name)
		}
	}
	return r.st.startFails
}

// notePending records which workloads have replicas that cannot start, and
// disruption mode, for the status; it logs and makes an event of each
// change once.
func (r *Reconciler) notePending(ctx context.Context, res Result) {
	st := r.st
	now := make(map[string]Pending, len(res.Pending))
	for _, p := range res.Pending {
		now[p.Workload] = p
	}
	hold := ""
	if res.Hold != nil {
		hold = res.Hold.Reason
	}
	prev, prevHold := st.pending, st.hold
	st.pending, st.hold = now, hold
	switch {
	case hold != "" && prevHold == "":
		zerolog.Ctx(ctx).Error().Str("reason", hold).Msg("disruption mode: waiting")
		r.events("disruption mode: " + hold)
	case hold == "" && prevHold != "":
		zerolog.Ctx(ctx).Info().Msg("disruption mode over")
		r.events("disruption mode over")
	}
	for _, w := range sortedKeys(now) {
		p := now[w]
		if q, ok := prev[w]; !ok || q.Reason != p.Reason || q.Count != p.Count {
			zerolog.Ctx(ctx).Warn().Str("workload", w).Int("pending", p.Count).Str("reason", p.Reason).Msg("replicas pending")
			r.events(fmt.Sprintf("pending %s: %d replica(s): %s", w, p.Count, p.Reason))
		}
	}
}

// keys of the reconciler's own records in the state bucket.
const (
	assignmentPrefix = "assign."
	rolloutPrefix    = "rollout."
	hpaPrefix        = "hpa."
	cronPrefix       = "cron."
)

// restore reads the state a reconciler resumes from: assignments, the synced
// revision, rollouts, autoscalers, CronJobs, Jobs, the history, bad
// revisions. A leader reads everything again (writes compare with it).
func (r *Reconciler) restore(ctx context.Context) error {
	s := r.cfg.Store
	s.Reset()
	as, err := r.restoreAssignments(ctx)
	if err != nil {
		return err
	}
	sr, err := s.Synced(ctx)
	if err != nil {
		return err
	}
	ros, err := store.List(ctx, s, rolloutPrefix, func(w string, ro Rollout) bool { return ro.Workload == w })
	if err != nil {
		return err
	}
	hpa, err := store.List[HPAState](ctx, s, hpaPrefix, nil)
	if err != nil {
		return err
	}
	crons, err := store.List[CronState](ctx, s, cronPrefix, nil)
	if err != nil {
		return err
	}
	hist, err := s.History(ctx)
	if err != nil {
		return err
	}
	jobs, err := store.List[JobRecord](ctx, s, jobPrefix, nil)
	if err != nil {
		return err
	}
	bad, err := store.List[store.BadRevision](ctx, s, store.BadPrefix, nil)
	if err != nil {
		return err
	}
	svcIPs, err := store.List[string](ctx, s, serviceIPPrefix, nil)
	if err != nil {
		return err
	}
	nodePorts, err := store.List[int](ctx, s, nodePortPrefix, nil)
	if err != nil {
		return err
	}
	pools, err := r.restorePools(ctx)
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
	st := r.st
	st.bad, st.rollouts, st.hpa, st.crons, st.jobs, st.serviceIPs, st.nodePorts = bad, ros, hpa, crons, jobs, svcIPs, nodePorts
	st.poolRecords = pools
	st.assignments, st.byNode = map[string]Assignment{}, map[string]map[string]bool{}
	for _, a := range as {
		st.assign(a)
	}
	if len(hist) > 0 {
		st.history = &hist[len(hist)-1]
	}
	if r.cfg.Events != nil && len(st.events) == 0 {
		// The status shows the newest decisions of the leaders before
		// this one too, as baton events does (a missing log is no error).
		ectx, cancel := context.WithTimeout(ctx, 2*time.Second) // a takeover does not wait on it
		recent, err := r.cfg.Events.Recent(ectx, maxEvents)
		cancel()
		if err == nil {
			st.events = recent
		} else {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("read the newest events for the status")
		}
	}
	st.started = r.cfg.Clock()
	st.synced = Revision{ID: sr.Revision}
	st.syncedAt = sr.Time
	return nil
}

// restoreAssignments reads every node's assignment record. Records of the
// earlier layout (one key per replica) are read too, and rewritten as
// node records, their keys deleted.
func (r *Reconciler) restoreAssignments(ctx context.Context) (map[string]Assignment, error) {
	// Both layouts name the node; only the old one has a replica ID.
	type either struct {
		Node        string       `json:"node"`
		Assignments []Assignment `json:"assignments"`
		ReplicaID   string       `json:"replicaId"`
		Workload    string       `json:"workload"`
		SpecHash    string       `json:"specHash"`
		Created     time.Time    `json:"created"`
	}
	recs, err := store.List[either](ctx, r.cfg.Store, assignmentPrefix, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]Assignment{}
	var legacy []string
	nodes := map[string]bool{}
	for key, rec := range recs {
		switch {
		case rec.ReplicaID == "" && rec.Node == key:
			for _, a := range rec.Assignments {
				if a.Node == key && a.ReplicaID != "" {
					out[a.ReplicaID] = a
				}
			}
		case rec.ReplicaID == key && rec.Node != "":
			out[key] = Assignment{ReplicaID: key, Workload: rec.Workload, SpecHash: rec.SpecHash, Node: rec.Node, Created: rec.Created}
			legacy = append(legacy, key)
			nodes[rec.Node] = true
		}
	}
	if len(legacy) > 0 {
		byNode := map[string][]Assignment{}
		for _, a := range out {
			byNode[a.Node] = append(byNode[a.Node], a)
		}
		for node := range nodes {
			if err := r.stored(r.cfg.Store.Put(ctx, assignmentPrefix+node, nodeAssigned{Node: node, Assignments: byNode[node]})); err != nil {
				return nil, err
			}
		}
		for _, key := range legacy {
			if err := r.stored(r.cfg.Store.Delete(ctx, assignmentPrefix+key)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
