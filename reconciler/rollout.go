package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// Rollout states.
const (
	RolloutProgressing = "progressing"
	RolloutComplete    = "complete"
	RolloutFailed      = "failed"
	RolloutRolledBack  = "rolled-back"
)

// AutoRollbackAnnotation on a Deployment ("true") returns a failed rollout
// to the last template that completed.
const AutoRollbackAnnotation = "baton.dev/auto-rollback"

// Rollout is the durable record of a workload's latest template change,
// kept in KV so a restarted or new leader resumes it.
type Rollout struct {
	Workload string `json:"workload"`
	// Hash is the template being rolled out, asked for by Revision.
	Hash     string    `json:"hash"`
	Revision string    `json:"revision,omitempty"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started"`
	// Progress is when the rollout last moved: more new replicas available,
	// or fewer old ones. Available and Old are the counts then.
	Progress  time.Time `json:"progress"`
	Available int       `json:"available"`
	Old       int       `json:"old"`
	// Healthy is the last template that completed, from HealthyRevision.
	Healthy         string `json:"healthy,omitempty"`
	HealthyRevision string `json:"healthyRevision,omitempty"`
}

// observed is what the cluster shows of one workload's rollout.
type observed struct {
	Available int    // replicas of the target template ready for minReadySeconds
	Old       int    // live replicas of other templates
	Problem   string // why a new replica is not available, if one is not
}

// observe counts a workload's replicas as ready nodes report them.
func observe(live *Live, w desired.Workload, readySince map[string]time.Time, now time.Time) observed {
	var o observed
	for _, r := range live.reported(w.Name) {
		switch {
		case r.gone():
		case r.SpecHash != w.Hash:
			if alive(r.State) {
				o.Old++
			}
		case available(r, w, readySince, now):
			o.Available++
		case o.Problem == "":
			o.Problem = replicaProblem(r)
		}
	}
	return o
}

// replicaProblem says why a replica is not available, its own reason
// first: "image_not_found: web:2 is not present on the node ... (replica
// web-1 on n1, 3 failed starts)".
func replicaProblem(r replica) string {
	where := fmt.Sprintf("replica %s on %s", r.ID, r.node)
	switch {
	case r.Code != "":
		if r.Failures > 1 {
			where += fmt.Sprintf(", %d failed starts", r.Failures)
		}
		return fmt.Sprintf("%s (%s)", r.Message, where)
	case r.Message != "" && r.State != protocol.StateRunning:
		return fmt.Sprintf("%s is %s: %s", where, r.State, r.Message)
	case r.Message != "":
		return fmt.Sprintf("%s is not ready: %s", where, r.Message)
	}
	return fmt.Sprintf("%s is %s, not ready", where, r.State)
}

// track advances a rollout record from what the cluster shows: a new
// template starts a rollout; one whose replicas are all available with no
// old left completes; one that has not moved for the workload's
// progressDeadlineSeconds fails, with the reason. Pure: table-tested.
func track(prev Rollout, w desired.Workload, count int, rev string, o observed, now time.Time) Rollout {
	ro := prev
	if prev.Hash != w.Hash {
		ro = Rollout{Workload: w.Name, Hash: w.Hash, Revision: rev, State: RolloutProgressing, Started: now,
			Progress: now, Available: o.Available, Old: o.Old, Healthy: prev.Healthy, HealthyRevision: prev.HealthyRevision}
		if prev.State == RolloutComplete {
			ro.Healthy, ro.HealthyRevision = prev.Hash, prev.Revision
		}
	}
	if ro.State == RolloutComplete || ro.State == RolloutRolledBack {
		return ro
	}
	if o.Available >= count && o.Old == 0 {
		ro.State, ro.Reason = RolloutComplete, ""
		ro.Healthy, ro.HealthyRevision = ro.Hash, ro.Revision
		return ro
	}
	if o.Available > ro.Available || o.Old < ro.Old {
		ro.Progress, ro.Available, ro.Old = now, o.Available, o.Old
		if ro.State == RolloutFailed {
			ro.State, ro.Reason = RolloutProgressing, ""
		}
		return ro
	}
	deadline := time.Duration(w.ProgressDeadlineSeconds) * time.Second
	if ro.State == RolloutProgressing && deadline > 0 && now.Sub(ro.Progress) > deadline {
		// The first replica's own reason first: what to fix.
		ro.State = RolloutFailed
		ro.Reason = fmt.Sprintf("no progress for %s (progressDeadlineSeconds): %d/%d new replicas available, %d old still serving", deadline, o.Available, count, o.Old)
		if o.Problem != "" {
			ro.Reason = o.Problem + "; " + ro.Reason
		}
	}
	return ro
}

// RevisionReader reads the files of an earlier revision (the git source's
// cache): auto-rollback reloads the last healthy revision with it, and a new
// leader the revision in force when the branch points at a bad one.
type RevisionReader interface {
	At(ctx context.Context, rev string) (map[string][]byte, error)
}

// loadRevision reads and loads an earlier revision.
func (r *Reconciler) loadRevision(ctx context.Context, rev string) (*desired.State, error) {
	if r.cfg.Revisions == nil {
		return nil, errors.New("no revision reader configured")
	}
	files, err := r.cfg.Revisions.At(ctx, rev)
	if err != nil {
		return nil, fmt.Errorf("read revision %s: %w", short12(rev), err)
	}
	st, err := r.loader.Load(ctx, files)
	if err != nil {
		return nil, fmt.Errorf("load revision %s: %w", short12(rev), err)
	}
	st.Revision = rev
	return st, nil
}

// rolloutsStep advances every workload's rollout record from what the
// cluster shows (track), and returns the records (a new map when one
// changed: the last snapshot keeps the old), the events, and the workloads
// whose rollout failed just now and asks to roll back by itself. Pure.
func rolloutsStep(prev map[string]Rollout, in Input, live *Live, pending map[string]Pending) (map[string]Rollout, []string, []string) {
	next, copied := prev, false
	var events, rollback []string
	for _, w := range in.Desired.Workloads {
		if w.Strategy.Type == "OnDelete" || (w.Stateful != nil && w.Stateful.Partition > w.Stateful.Start) {
			// Old replicas stay until they go (a DaemonSet's OnDelete), or
			// below a StatefulSet's partition: nothing to track.
			continue
		}
		p, had := prev[w.Name]
		if p.Hash == w.Hash && (p.State == RolloutRolledBack || p.State == RolloutComplete) {
			continue // settled: a completed rollout stays complete (a node loss is not a rollout)
		}
		o := observe(live, w, in.ReadySince, in.Now)
		if pd, ok := pending[w.Name]; ok && o.Problem == "" {
			// No new replica to ask: they fit nowhere, or are held back.
			o.Problem = fmt.Sprintf("%d replica(s) pending: %s", pd.Count, pd.Reason)
		}
		count := in.count(w)
		if w.Kind == "DaemonSet" {
			count = len(daemonNodes(in, live, w)) // one a node it may go to
		}
		ro := track(p, w, count, in.Desired.Revision, o, in.Now)
		if ro == p {
			continue
		}
		if ro.State == RolloutFailed && p.State != RolloutFailed {
			events = append(events, fmt.Sprintf("rollout of %s to template %s failed: %s", w.Name, w.Hash, ro.Reason))
			if w.Annotations[AutoRollbackAnnotation] == "true" {
				rollback = append(rollback, w.Name)
			}
		}
		if ro.State == RolloutComplete && p.State != RolloutComplete && had {
			events = append(events, fmt.Sprintf("rollout of %s to template %s complete", w.Name, w.Hash))
		}
		if !copied {
			next, copied = maps.Clone(prev), true
		}
		next[w.Name] = ro
	}
	return next, events, rollback
}

// rollouts runs the rollout step of a pass, rolls failed rollouts back when
// their workload asks (loading the healthy revision from the git cache),
// saves what changed, and tells Compute which rollouts are frozen (failed)
// or rolled back.
func (r *Reconciler) rollouts(ctx context.Context, in *Input, live *Live) {
	st := r.st
	log := zerolog.Ctx(ctx)
	prev := st.rollouts
	next, events, rollback := rolloutsStep(prev, *in, live, st.pending)
	r.events(events...)
	for name, ro := range next {
		if ro.State == RolloutFailed && prev[name].State != RolloutFailed {
			log.Error().Str("workload", name).Str("template", ro.Hash).Str("reason", ro.Reason).Msg("rollout failed; the old replicas keep serving")
		}
	}
	for _, name := range rollback {
		ro := next[name]
		if ro.HealthyRevision == "" || ro.Healthy == ro.Hash {
			ro.Reason += "; auto-rollback: no earlier template completed"
		} else if _, err := r.rollbackTo(ctx, ro); err != nil {
			ro.Reason += "; auto-rollback impossible: " + err.Error()
		} else {
			ro.State = RolloutRolledBack
			ro.Reason = fmt.Sprintf("rolled back to template %s of revision %s: %s", ro.Healthy, short12(ro.HealthyRevision), ro.Reason)
			r.events(fmt.Sprintf("rolled back %s to template %s (revision %s)", name, ro.Healthy, short12(ro.HealthyRevision)))
		}
		next[name] = ro
	}
	var writes []kvWrite
	for _, name := range sortedKeys(next) {
		if ro := next[name]; ro != prev[name] {
			writes = append(writes, kvWrite{key: rolloutPrefix + name, value: ro})
		}
	}
	st.rollouts = next
	r.save(ctx, writes)
	in.Frozen, in.Rollback = map[string]string{}, map[string]RollbackTo{}
	for _, w := range in.Desired.Workloads {
		ro, ok := next[w.Name]
		switch {
		case !ok || ro.Hash != w.Hash:
		case ro.State == RolloutFailed:
			in.Frozen[w.Name] = ro.Hash
		case ro.State == RolloutRolledBack:
			if rb, err := r.rollbackTo(ctx, ro); err == nil {
				in.Rollback[w.Name] = rb
			} else {
				log.Error().Err(err).Str("workload", w.Name).Msg("rolled-back workload: cannot load the healthy revision")
				in.Frozen[w.Name] = w.Hash
			}
		}
	}
}

// rollbackTo loads the healthy template of a rollout from its revision
// (kept for the next passes).
func (r *Reconciler) rollbackTo(ctx context.Context, ro Rollout) (RollbackTo, error) {
	if rb, ok := r.st.rollbacks[ro.Workload]; ok && rb.Workload.Hash == ro.Healthy {
		return rb, nil
	}
	st, err := r.loadRevision(ctx, ro.HealthyRevision)
	if err != nil {
		return RollbackTo{}, err
	}
	for _, w := range st.Workloads {
		if w.Name == ro.Workload && w.Hash == ro.Healthy {
			rb := RollbackTo{Workload: w, State: st}
			r.st.rollbacks[ro.Workload] = rb
			return rb, nil
		}
	}
	return RollbackTo{}, fmt.Errorf("revision %s has no workload %s of template %s", short12(ro.HealthyRevision), ro.Workload, ro.Healthy)
}
