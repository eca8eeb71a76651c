package reconciler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/reconciler/store"
)

// Shortfall is a workload not running its desired count, for the history.
type Shortfall struct {
	Workload string
	Deadline time.Duration // its progressDeadlineSeconds
}

// historyStep settles a progressing (or degraded) entry from the
// workloads' rollouts: it converged when every workload's rollout of its
// current template is complete and no workload is short of or above its
// count (unsettled); it failed when a rollout of a template this revision
// asked for failed (or was rolled back); it is degraded when only counts
// are unmet past the longest progress deadline among the short workloads.
// A workload whose rollout failed under an earlier revision, and that this
// one left alone, is judged there: it is named in AlreadyFailed, beside the
// outcome. Pure.
func historyStep(e store.HistoryEntry, st *desired.State, rollouts map[string]Rollout, unsettled []Shortfall, now time.Time) store.HistoryEntry {
	if (e.Outcome != store.OutcomeProgressing && e.Outcome != store.OutcomeDegraded) || st == nil || st.Revision != e.Revision {
		return e
	}
	var failed, before []string
	earlier := map[string]bool{}
	waiting := 0 // workloads whose rollout is not complete
	for _, w := range st.Workloads {
		ro, ok := rollouts[w.Name]
		switch {
		case !ok || ro.Hash != w.Hash:
			waiting++
		case (ro.State == RolloutFailed || ro.State == RolloutRolledBack) && ro.Revision != e.Revision:
			earlier[w.Name] = true
			before = append(before, fmt.Sprintf("%s (%s since revision %s)", w.Name, ro.State, short12(ro.Revision)))
		case ro.State == RolloutFailed || ro.State == RolloutRolledBack:
			failed = append(failed, fmt.Sprintf("%s: %s", w.Name, ro.Reason))
		case ro.State != RolloutComplete:
			waiting++
		}
	}
	e.AlreadyFailed = strings.Join(before, ", ")
	kept := unsettled[:0:0]
	for _, s := range unsettled {
		if !earlier[s.Workload] {
			kept = append(kept, s)
		}
	}
	unsettled = kept
	switch {
	case len(failed) > 0:
		e.Outcome, e.Reason = store.OutcomeFailed, strings.Join(failed, "; ")
	case waiting == 0 && len(unsettled) == 0:
		e.Outcome, e.Reason, e.Converged = store.OutcomeConverged, "", now
	case waiting == 0:
		// Only the names: counts would change the reason (a KV write, an
		// event, a note) at every pass while pods crash-loop.
		deadline, short := time.Duration(0), make([]string, len(unsettled))
		for i, s := range unsettled {
			deadline = max(deadline, s.Deadline)
			short[i] = s.Workload
		}
		if now.Sub(e.Applied) > deadline {
			e.Outcome = store.OutcomeDegraded
			e.Reason = "rolled out, but short of replicas past the progress deadline: " + strings.Join(short, ", ")
		}
	}
	return e
}

// recordApplied starts the history entry of a newly applied revision; the
// previous one, if still progressing, is superseded.
func (r *Reconciler) recordApplied(ctx context.Context, rev Revision, changes []desired.Change, now time.Time) {
	prev := r.st.history
	if prev != nil && prev.Revision == rev.ID {
		return
	}
	if prev != nil && prev.Outcome == store.OutcomeProgressing {
		p := *prev
		p.Outcome, p.Reason = store.OutcomeSuperseded, "revision "+short12(rev.ID)+" was applied before it converged"
		r.putHistory(ctx, p)
		r.settled(ctx, p, store.OutcomeProgressing)
	}
	seq := uint64(1)
	if prev != nil {
		seq = prev.Seq + 1
	}
	e := store.HistoryEntry{Revision: rev.ID, Ref: rev.Ref, Author: rev.Author, Message: firstLine(rev.Message), Committed: rev.Time,
		Applied: now, Outcome: store.OutcomeProgressing, Seq: seq}
	e.Changes, e.MoreChanges = store.KeepChanges(changes)
	r.putHistory(ctx, e)
	if seq > store.MaxHistory {
		r.save(ctx, []kvWrite{{key: store.HistoryKey(seq - store.MaxHistory)}})
	}
}

// settleHistory updates the latest entry after a pass, from the pass's input.
func (r *Reconciler) settleHistory(ctx context.Context, in Input, live *Live) {
	cur := r.st.history
	if cur == nil || (cur.Outcome != store.OutcomeProgressing && cur.Outcome != store.OutcomeDegraded) || in.Desired == nil {
		return
	}
	var unsettled []Shortfall
	for _, w := range in.Desired.Workloads {
		if o := observe(live, w, in.ReadySince, in.Now); o.Available != in.count(w) || o.Old > 0 {
			unsettled = append(unsettled, Shortfall{Workload: w.Name, Deadline: time.Duration(w.ProgressDeadlineSeconds) * time.Second})
		}
	}
	if next := historyStep(*cur, in.Desired, r.st.rollouts, unsettled, in.Now); !sameOutcome(next, *cur) {
		r.putHistory(ctx, next)
		r.settled(ctx, next, cur.Outcome)
	}
}

// sameOutcome reports whether two states of one history entry say the same
// (historyStep changes only these fields).
func sameOutcome(a, b store.HistoryEntry) bool {
	return a.Outcome == b.Outcome && a.Reason == b.Reason && a.Converged.Equal(b.Converged) && a.AlreadyFailed == b.AlreadyFailed
}

// settled acts on a history entry whose outcome or reason changed from
// prev: an event; a failed revision is marked bad, a converged one no
// longer is; a new outcome is written as a git note.
func (r *Reconciler) settled(ctx context.Context, e store.HistoryEntry, prev string) {
	if e.Outcome == store.OutcomeConverged {
		r.events(fmt.Sprintf("revision %s converged in %s", short12(e.Revision), e.Converged.Sub(e.Applied).Round(10*time.Millisecond)))
		if o := r.cfg.Observer; o != nil && prev != store.OutcomeConverged {
			var fromCommit time.Duration
			if !e.Committed.IsZero() {
				fromCommit = e.Converged.Sub(e.Committed)
			}
			o.Converged(fromCommit, e.Converged.Sub(e.Applied))
		}
		r.forgetBad(ctx, e.Revision)
	} else {
		r.events(fmt.Sprintf("revision %s %s: %s", short12(e.Revision), e.Outcome, e.Reason))
	}
	if e.Outcome == store.OutcomeFailed {
		r.markBad(ctx, e)
	}
	if r.cfg.Notes != nil && e.Outcome != prev {
		r.writeBack(gitJob{note: &e})
	}
}

func (r *Reconciler) putHistory(ctx context.Context, e store.HistoryEntry) {
	if err := r.stored(r.cfg.Store.Put(ctx, store.HistoryKey(e.Seq), e)); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("revision", e.Revision).Msg("record history")
		return
	}
	if r.st.history == nil || e.Seq >= r.st.history.Seq {
		r.st.history = &e
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
