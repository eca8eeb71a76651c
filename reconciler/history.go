package reconciler

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
)

// Revision outcomes in the history.
const (
	OutcomeProgressing = "progressing"
	OutcomeConverged   = "converged"
	OutcomeFailed      = "failed"
	OutcomeSuperseded  = "superseded"
	// OutcomeDegraded: every rollout completed, but some workload has run
	// short of its count for longer than its progress deadline (pods that
	// fit nowhere, crash loops, a lost node). It becomes converged if the
	// counts are met later; the revision is not marked bad.
	OutcomeDegraded = "degraded"
)

// Shortfall is a workload not running its desired count, for the history.
type Shortfall struct {
	Workload string
	Deadline time.Duration // its progressDeadlineSeconds
}

// MaxHistory bounds the revisions kept in the history.
const MaxHistory = 100

const historyPrefix = "history."

// HistoryEntry is one revision the reconciler applied, and what became of it.
type HistoryEntry struct {
	Revision  string    `json:"revision"`
	Ref       string    `json:"ref,omitempty"`
	Author    string    `json:"author,omitempty"`
	Message   string    `json:"message,omitempty"`
	Committed time.Time `json:"committed,omitzero"`
	Applied   time.Time `json:"applied"`
	Converged time.Time `json:"converged,omitzero"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	// AlreadyFailed names the workloads whose rollout had failed (or was
	// rolled back) under an earlier revision and that this one did not
	// change: reported beside the outcome, never its cause.
	AlreadyFailed string `json:"alreadyFailed,omitempty"`
	// Seq orders the entries (the key is history.<seq>).
	Seq uint64 `json:"seq"`
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
func historyStep(e HistoryEntry, st *desired.State, rollouts map[string]Rollout, unsettled []Shortfall, now time.Time) HistoryEntry {
	if (e.Outcome != OutcomeProgressing && e.Outcome != OutcomeDegraded) || st == nil || st.Revision != e.Revision {
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
		e.Outcome, e.Reason = OutcomeFailed, strings.Join(failed, "; ")
	case waiting == 0 && len(unsettled) == 0:
		e.Outcome, e.Reason, e.Converged = OutcomeConverged, "", now
	case waiting == 0:
		// Only the names: counts would change the reason (a KV write, an
		// event, a note) at every pass while pods crash-loop.
		deadline, short := time.Duration(0), make([]string, len(unsettled))
		for i, s := range unsettled {
			deadline = max(deadline, s.Deadline)
			short[i] = s.Workload
		}
		if now.Sub(e.Applied) > deadline {
			e.Outcome = OutcomeDegraded
			e.Reason = "rolled out, but short of replicas past the progress deadline: " + strings.Join(short, ", ")
		}
	}
	return e
}

// recordApplied starts the history entry of a newly applied revision; the
// previous one, if still progressing, is superseded.
func (r *Reconciler) recordApplied(ctx context.Context, rev Revision, now time.Time) {
	r.mu.Lock()
	prev := r.history
	r.mu.Unlock()
	if prev != nil && prev.Revision == rev.ID {
		return
	}
	if prev != nil && prev.Outcome == OutcomeProgressing {
		p := *prev
		p.Outcome, p.Reason = OutcomeSuperseded, "revision "+short12(rev.ID)+" was applied before it converged"
		r.putHistory(ctx, p)
		r.settled(ctx, p, OutcomeProgressing)
	}
	seq := uint64(1)
	if prev != nil {
		seq = prev.Seq + 1
	}
	e := HistoryEntry{Revision: rev.ID, Ref: rev.Ref, Author: rev.Author, Message: firstLine(rev.Message), Committed: rev.Time,
		Applied: now, Outcome: OutcomeProgressing, Seq: seq}
	r.putHistory(ctx, e)
	if seq > MaxHistory {
		if err := r.stored(r.cfg.Store.del(ctx, historyKey(seq-MaxHistory))); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("trim history")
		}
	}
}

// settleHistory updates the latest entry after a pass, from the pass's input.
func (r *Reconciler) settleHistory(ctx context.Context, in Input) {
	r.mu.Lock()
	cur, rollouts := r.history, maps.Clone(r.rollouts)
	r.mu.Unlock()
	if cur == nil || (cur.Outcome != OutcomeProgressing && cur.Outcome != OutcomeDegraded) || in.Desired == nil {
		return
	}
	var unsettled []Shortfall
	for _, w := range in.Desired.Workloads {
		if o := observe(in, w); o.Available != in.count(w) || o.Old > 0 {
			unsettled = append(unsettled, Shortfall{Workload: w.Name, Deadline: time.Duration(w.ProgressDeadlineSeconds) * time.Second})
		}
	}
	now := r.cfg.Clock()
	if next := historyStep(*cur, in.Desired, rollouts, unsettled, now); next != *cur {
		r.putHistory(ctx, next)
		r.settled(ctx, next, cur.Outcome)
	}
}

// settled acts on a history entry whose outcome or reason changed from
// prev: an event; a failed revision is marked bad, a converged one no
// longer is; a new outcome is written as a git note.
func (r *Reconciler) settled(ctx context.Context, e HistoryEntry, prev string) {
	if e.Outcome == OutcomeConverged {
		r.event(fmt.Sprintf("revision %s converged in %s", short12(e.Revision), e.Converged.Sub(e.Applied).Round(10*time.Millisecond)))
		r.forgetBad(ctx, e.Revision)
	} else {
		r.event(fmt.Sprintf("revision %s %s: %s", short12(e.Revision), e.Outcome, e.Reason))
	}
	if e.Outcome == OutcomeFailed {
		r.markBad(ctx, e)
	}
	if r.cfg.Notes != nil && e.Outcome != prev {
		r.writeBack(gitJob{note: &e})
	}
}

func (r *Reconciler) putHistory(ctx context.Context, e HistoryEntry) {
	if err := r.stored(r.cfg.Store.put(ctx, historyKey(e.Seq), e)); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("revision", e.Revision).Msg("record history")
		return
	}
	r.mu.Lock()
	if r.history == nil || e.Seq >= r.history.Seq {
		r.history = &e
	}
	r.mu.Unlock()
}

func historyKey(seq uint64) string { return fmt.Sprintf("%s%012d", historyPrefix, seq) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// History loads the kept history, oldest first.
func (s *Store) History(ctx context.Context) ([]HistoryEntry, error) {
	m, err := list[HistoryEntry](ctx, s, historyPrefix, nil)
	if err != nil {
		return nil, err
	}
	out := make([]HistoryEntry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// ReadHistory reads the history from the KV bucket, for the CLI: it needs
// no reconciler to answer.
func ReadHistory(ctx context.Context, js jetstream.JetStream) ([]HistoryEntry, error) {
	kv, err := openBucket(ctx, js)
	if err != nil {
		return nil, err
	}
	s := &Store{kv: kv, revs: map[string]uint64{}}
	return s.History(ctx)
}
