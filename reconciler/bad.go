package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
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

// ErrBadRevision is returned by SetRevision for a revision whose rollout
// failed before: the revision in force stays.
var ErrBadRevision = errors.New("revision failed before; not applied again on its own")

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
			if err := r.stored(r.cfg.Store.del(ctx, badPrefix+x.Revision)); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Msg("forget old bad revision")
				continue
			}
			r.mu.Lock()
			delete(r.bad, x.Revision)
			r.mu.Unlock()
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
// it is bad and not already the one in force (nor pinned on purpose). It
// returns the revision taken, or nil.
func (r *Reconciler) takeRevision(ctx context.Context) *Revision {
	r.mu.Lock()
	rev, st := r.pendingRev, r.pendingState
	r.pendingRev, r.pendingState = nil, nil
	if rev == nil {
		r.mu.Unlock()
		return nil
	}
	b, isBad := r.bad[rev.ID]
	pinned := r.pin != nil && r.pin.Revision == rev.ID
	if !isBad || pinned || rev.ID == r.synced.ID {
		r.desired, r.refused = st, nil
		r.mu.Unlock()
		return rev
	}
	r.refused = &b
	cur, synced := r.desired, r.synced.ID
	r.mu.Unlock()
	zerolog.Ctx(ctx).Warn().Str("revision", rev.ID).Str("running", synced).Str("failed", b.Reason).
		Msg("revision not applied: its rollout failed before")
	r.event(fmt.Sprintf("revision %s not applied: its rollout failed before (%s); staying on %s until a new commit", short12(rev.ID), b.Reason, short12(synced)))
	if cur == nil && synced != "" {
		// A new leader: the revision in force is the synced one.
		if err := r.loadSynced(ctx, synced); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("revision", synced).Msg("reload the revision in force")
		}
	}
	return nil
}

// loadSynced loads the revision in force from the git cache.
func (r *Reconciler) loadSynced(ctx context.Context, rev string) error {
	if r.cfg.Revisions == nil {
		return errors.New("no revision reader configured")
	}
	files, err := r.cfg.Revisions.At(rev)
	if err != nil {
		return err
	}
	st, err := desired.LoadWith(ctx, files, desired.Options{Unsealer: r.cfg.Unsealer})
	if err != nil {
		return err
	}
	st.Revision = rev
	r.mu.Lock()
	if r.desired == nil {
		r.desired = st
	}
	r.mu.Unlock()
	return nil
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
