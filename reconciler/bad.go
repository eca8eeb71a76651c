package reconciler

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/rs/zerolog"
)

// BadRevision is a revision whose rollout failed. It is kept in KV
// (bad.<revision>) so that no leader applies it again on its own: when the
// followed branch points at it again (a reset, a restored Git host, an
// unpin), the cluster stays on the revision in force. The next new commit
// is applied as usual, and `baton pin` may still apply it on purpose.
type BadRevision struct {
	Revision string    `json:"revision"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
	// Reverted is the revert commit pushed for it (--auto-revert), or
	// RevertError why none was.
	Reverted    string `json:"reverted,omitempty"`
	RevertError string `json:"revertError,omitempty"`
}

const badPrefix = "bad."

// maxBad bounds the bad revisions remembered; the oldest are forgotten.
const maxBad = MaxHistory

// Noter writes each revision's outcome back to the config repository as a
// git note (refs/notes/baton).
type Noter interface {
	Note(ctx context.Context, rev, text string) error
}

// Reverter pushes a commit reverting a failed revision onto the followed
// branch, if it is still the branch's tip, and returns the new commit (""
// when the branch moved on).
type Reverter interface {
	Revert(ctx context.Context, rev, reason string) (string, error)
}

// markBad remembers a failed revision and, with a Reverter, asks for its
// revert.
func (r *Reconciler) markBad(ctx context.Context, e HistoryEntry) {
	b := BadRevision{Revision: e.Revision, Reason: e.Reason, At: r.cfg.Clock()}
	r.putBad(ctx, b)
	r.mu.Lock()
	var oldest []BadRevision
	for _, x := range r.bad {
		oldest = append(oldest, x)
	}
	r.mu.Unlock()
	if len(oldest) > maxBad {
		sort.Slice(oldest, func(i, j int) bool { return oldest[i].At.Before(oldest[j].At) })
		for _, x := range oldest[:len(oldest)-maxBad] {
			r.dropBad(ctx, x.Revision)
		}
	}
	r.event(fmt.Sprintf("revision %s marked bad: it is not applied again on its own (push a new commit)", short12(e.Revision)))
	if r.cfg.Reverter != nil {
		r.writeBack(gitJob{revert: &b})
	}
}

func (r *Reconciler) putBad(ctx context.Context, b BadRevision) {
	if err := r.stored(r.cfg.Store.put(ctx, badPrefix+b.Revision, b)); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("revision", b.Revision).Msg("remember bad revision")
	}
	r.mu.Lock()
	r.bad[b.Revision] = b
	r.mu.Unlock()
}

// takeRevision moves a revision loaded by SetRevision into force, unless
// it is bad and not already the one in force (nor pinned on purpose; while
// pinned, SetRevision and SetPinned let no other revision through). It
// returns the revision taken, or nil. A new leader that refused a
// bad revision retries loading the one in force every 30 s until it has it.
func (r *Reconciler) takeRevision(ctx context.Context) *Revision {
	r.mu.Lock()
	next := r.next
	r.next = nil
	cur, synced, now := r.desired, r.synced.ID, r.cfg.Clock()
	if next == nil {
		retry := cur == nil && r.refused != nil && synced != "" && !now.Before(r.reloadAfter)
		if retry {
			r.reloadAfter = now.Add(30 * time.Second)
		}
		r.mu.Unlock()
		if retry {
			r.reload(ctx, synced)
		}
		return nil
	}
	rev := &next.rev
	b, isBad := r.bad[rev.ID]
	if !isBad || r.pin != nil || rev.ID == synced {
		r.desired, r.refused = next.state, nil
		r.mu.Unlock()
		return rev
	}
	r.refused = &b
	r.reloadAfter = now.Add(30 * time.Second)
	r.mu.Unlock()
	zerolog.Ctx(ctx).Warn().Str("revision", rev.ID).Str("running", synced).Str("failed", b.Reason).
		Msg("revision not applied: its rollout failed before")
	r.event(fmt.Sprintf("revision %s not applied: its rollout failed before (%s); staying on %s until a new commit", short12(rev.ID), b.Reason, short12(synced)))
	if cur == nil && synced != "" {
		r.reload(ctx, synced) // a new leader: the revision in force is the synced one
	}
	return nil
}

// reload puts the revision in force back, read from the git cache.
func (r *Reconciler) reload(ctx context.Context, rev string) {
	st, err := r.loadRevision(ctx, rev)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("reload the revision in force (retried every 30 s)")
		return
	}
	r.mu.Lock()
	if r.desired == nil {
		r.desired = st
	}
	r.mu.Unlock()
}

// forgetBad clears a revision's bad mark once it converged after all (it
// was pinned on purpose and worked this time).
func (r *Reconciler) forgetBad(ctx context.Context, rev string) {
	r.mu.Lock()
	_, isBad := r.bad[rev]
	r.mu.Unlock()
	if isBad && r.dropBad(ctx, rev) {
		r.event(fmt.Sprintf("revision %s converged: no longer marked bad", short12(rev)))
	}
}

// dropBad deletes a bad mark from KV and memory; false if KV refused.
func (r *Reconciler) dropBad(ctx context.Context, rev string) bool {
	if err := r.stored(r.cfg.Store.del(ctx, badPrefix+rev)); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("revision", rev).Msg("drop bad revision")
		return false
	}
	r.mu.Lock()
	delete(r.bad, rev)
	r.mu.Unlock()
	return true
}

// applyGitResults records what the git worker did, in the pass: every
// write of bad.* keys happens on the pass's goroutine.
func (r *Reconciler) applyGitResults(ctx context.Context) {
	for {
		select {
		case b := <-r.gitDone:
			r.mu.Lock()
			_, still := r.bad[b.Revision]
			r.mu.Unlock()
			if still {
				r.putBad(ctx, b)
			}
		default:
			return
		}
	}
}

// BadRevisions lists the revisions remembered as bad, newest first.
func (r *Reconciler) BadRevisions() []BadRevision {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]BadRevision, 0, len(r.bad))
	for _, b := range r.bad {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out
}
