package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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

// MaxHistory bounds the revisions kept in the history.
const MaxHistory = 100

// HistoryPrefix is the prefix of the history keys.
const HistoryPrefix = "history."

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

// HistoryKey is the key of the history entry seq.
func HistoryKey(seq uint64) string { return fmt.Sprintf("%s%012d", HistoryPrefix, seq) }

// History loads the kept history, oldest first.
func (s *Store) History(ctx context.Context) ([]HistoryEntry, error) {
	m, err := List[HistoryEntry](ctx, s, HistoryPrefix, nil)
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
