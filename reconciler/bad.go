package reconciler

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/reconciler/store"
)

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

// takeRevision puts the revision loaded by SetRevision in force, unless it
// is bad (its rollout failed before) and not already the one in force, nor
// pinned on purpose. It returns the revision taken, or nil. A new leader
// that refused a bad revision retries loading the one in force every 30 s
// until it has it.
func (r *Reconciler) takeRevision(ctx context.Context, now time.Time) *Revision {
	st := r.st
	next := st.next
	st.next = nil
	if next == nil {
		if st.desired == nil && st.refused != nil && st.synced.ID != "" && !now.Before(st.reloadAfter) {
			st.reloadAfter = now.Add(30 * time.Second)
			r.reload(ctx, st.synced.ID)
		}
		return nil
	}
	rev := &next.rev
	b, isBad := st.bad[rev.ID]
	if !isBad || st.pin != nil || rev.ID == st.synced.ID {
		if st.desired != nil && next.state != nil && (st.history == nil || st.history.Revision != rev.ID) {
			st.changes = desired.Diff(st.desired, next.state) // for its history entry (recordApplied)
		}
		st.desired, st.refused = next.state, nil
		return rev
	}
	st.refused = &b
	st.reloadAfter = now.Add(30 * time.Second)
	zerolog.Ctx(ctx).Warn().Str("revision", rev.ID).Str("running", st.synced.ID).Str("failed", b.Reason).
		Msg("revision not applied: its rollout failed before")
	r.events(fmt.Sprintf("revision %s not applied: its rollout failed before (%s); staying on %s until a new commit", short12(rev.ID), b.Reason, short12(st.synced.ID)))
	if st.desired == nil && st.synced.ID != "" {
		r.reload(ctx, st.synced.ID) // a new leader: the revision in force is the synced one
	}
	return nil
}

// reload puts the revision in force back, read from the git cache.
func (r *Reconciler) reload(ctx context.Context, rev string) {
	s, err := r.loadRevision(ctx, rev)
	if err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("reload the revision in force (retried every 30 s)")
		return
	}
	if r.st.desired == nil {
		r.st.desired = s
	}
}

// markBad remembers a failed revision and, with a Reverter, asks for its
// revert.
func (r *Reconciler) markBad(ctx context.Context, e store.HistoryEntry) {
	b := store.BadRevision{Revision: e.Revision, Reason: e.Reason, At: r.cfg.Clock()}
	r.putBad(ctx, b)
	if len(r.st.bad) > store.MaxBad {
		oldest := badList(r.st.bad)
		for _, x := range oldest[store.MaxBad:] {
			r.dropBad(ctx, x.Revision)
		}
	}
	r.events(fmt.Sprintf("revision %s marked bad: it is not applied again on its own (push a new commit)", short12(e.Revision)))
	if r.cfg.Reverter != nil {
		r.writeBack(gitJob{revert: &b})
	}
}

func (r *Reconciler) putBad(ctx context.Context, b store.BadRevision) {
	if err := r.stored(r.cfg.Store.Put(ctx, store.BadPrefix+b.Revision, b)); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("revision", b.Revision).Msg("remember bad revision")
	}
	r.st.bad[b.Revision] = b
}

// forgetBad clears a revision's bad mark once it converged after all (it
// was pinned on purpose and worked this time).
func (r *Reconciler) forgetBad(ctx context.Context, rev string) {
	if _, isBad := r.st.bad[rev]; isBad && r.dropBad(ctx, rev) {
		r.events(fmt.Sprintf("revision %s converged: no longer marked bad", short12(rev)))
	}
}

// dropBad deletes a bad mark from KV and the state; false if KV refused.
func (r *Reconciler) dropBad(ctx context.Context, rev string) bool {
	if err := r.stored(r.cfg.Store.Delete(ctx, store.BadPrefix+rev)); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("revision", rev).Msg("drop bad revision")
		return false
	}
	delete(r.st.bad, rev)
	return true
}

// badList lists bad revisions, newest first.
func badList(m map[string]store.BadRevision) []store.BadRevision {
	out := make([]store.BadRevision, 0, len(m))
	for _, b := range m {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out
}

// BadRevisions lists the revisions remembered as bad, newest first.
func (r *Reconciler) BadRevisions() []store.BadRevision {
	if s := r.snap.Load(); s != nil {
		return s.bad
	}
	return nil
}

func short12(s string) string { return store.Short12(s) }

// LastApplied is the history entry of the revision applied last, as the
// last pass left it.
func (r *Reconciler) LastApplied() (store.HistoryEntry, bool) {
	if s := r.snap.Load(); s != nil && s.history != nil {
		return *s.history, true
	}
	return store.HistoryEntry{}, false
}
