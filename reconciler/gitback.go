package reconciler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/reconciler/store"
)

// gitJob is one write back to the config repository, done off the pass.
type gitJob struct {
	note   *store.HistoryEntry
	revert *store.BadRevision
}

// gitQueue bounds the write-backs waiting (each takes a push).
const gitQueue = 64

// writeBack queues a job for the git worker; a full queue drops it (notes
// are a courtesy; a dropped revert is retried by the next leader).
func (r *Reconciler) writeBack(j gitJob) {
	select {
	case r.gitq <- j:
	default:
		r.events("git write-back queue full: a note or revert was dropped")
	}
}

// gitWorker pushes notes and reverts one at a time until ctx ends.
func (r *Reconciler) gitWorker(ctx context.Context) {
	var notesDownUntil time.Time // after a failed note, notes wait a minute
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-r.gitq:
			if j.note != nil && time.Now().Before(notesDownUntil) {
				continue
			}
			if !r.doGit(ctx, j) {
				notesDownUntil = time.Now().Add(time.Minute)
			}
		}
	}
}

// gitTimeout bounds one write-back (the source's lock is held meanwhile).
const gitTimeout = 30 * time.Second

// revertTries is how often a revert is tried before its error is kept.
var revertTries = []time.Duration{0, 5 * time.Second, 20 * time.Second}

// doGit runs one job; it returns false when a note failed.
func (r *Reconciler) doGit(ctx context.Context, j gitJob) bool {
	log := zerolog.Ctx(ctx)
	if e := j.note; e != nil {
		nctx, cancel := context.WithTimeout(ctx, gitTimeout)
		err := r.cfg.Notes.Note(nctx, e.Revision, noteText(*e, r.cfg.ID, r.cfg.Term))
		cancel()
		if err != nil {
			log.Warn().Err(err).Str("revision", e.Revision).Msg("git note (notes paused for a minute)")
			r.post(fmt.Sprintf("git note on %s failed (notes paused for a minute): %v", short12(e.Revision), err))
			return false
		}
	}
	if j.revert == nil {
		return true
	}
	b := *j.revert
	var sha string
	var err error
	for _, wait := range revertTries {
		select {
		case <-ctx.Done():
			return true // the next leader retries it
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, gitTimeout)
		sha, err = r.cfg.Reverter.Revert(rctx, b.Revision, b.Reason)
		cancel()
		if err == nil {
			break
		}
		log.Warn().Err(err).Str("revision", b.Revision).Msg("auto-revert")
	}
	switch {
	case err != nil:
		b.RevertError = err.Error()
		r.post(fmt.Sprintf("auto-revert of %s failed: %v", short12(b.Revision), err))
	case sha != "":
		b.Reverted = sha
		log.Info().Str("revision", b.Revision).Str("revert", sha).Msg("auto-revert pushed")
		r.post(fmt.Sprintf("auto-revert: pushed %s reverting %s", short12(sha), short12(b.Revision)))
	default:
		b.RevertError = "not reverted: the branch moved past it (the newer commit is applied)"
	}
	r.mb.mu.Lock()
	r.mb.gitDone = append(r.mb.gitDone, b)
	r.mb.mu.Unlock()
	r.kick()
	return true
}

// noteText is the git note of a revision's outcome, as `git log
// --notes=baton` shows it.
func noteText(e store.HistoryEntry, server string, term uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "baton: %s\n", e.Outcome)
	fmt.Fprintf(&b, "applied: %s\n", e.Applied.UTC().Format(time.RFC3339))
	if !e.Converged.IsZero() {
		fmt.Fprintf(&b, "converged: %s (%s)\n", e.Converged.UTC().Format(time.RFC3339), e.Converged.Sub(e.Applied).Round(10*time.Millisecond))
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", e.Reason)
	}
	if e.AlreadyFailed != "" {
		fmt.Fprintf(&b, "already failed before this revision: %s\n", e.AlreadyFailed)
	}
	if server != "" {
		fmt.Fprintf(&b, "server: %s (term %d)\n", server, term)
	}
	return b.String()
}
