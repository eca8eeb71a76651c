package store

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	// Changes are what the revision changed against the one in force
	// before it, object by object (desired.Diff: Secret values never
	// shown), at most MaxHistoryChanges of them; MoreChanges counts those
	// left out.
	Changes     []desired.Change `json:"changes,omitempty"`
	MoreChanges int              `json:"moreChanges,omitempty"`
}

// Bounds of a history entry's changes: a revision that changes thousands
// of objects keeps its entry small.
const (
	MaxHistoryChanges = 50
	MaxChangeFields   = 20
	MaxChangeValue    = 200 // bytes of a value, and of a path
	// MaxChangesBytes bounds the changes' text in all (paths and values):
	// an entry stays far below a NATS message.
	MaxChangesBytes = 24 << 10
)

// KeepChanges bounds changes for a history entry: at most
// MaxHistoryChanges objects of MaxChangeFields fields each, paths and
// values cut to MaxChangeValue bytes, MaxChangesBytes in all. It returns
// them and how many objects it left out.
func KeepChanges(changes []desired.Change) ([]desired.Change, int) {
	more := 0
	if len(changes) > MaxHistoryChanges {
		changes, more = changes[:MaxHistoryChanges], len(changes)-MaxHistoryChanges
	}
	out := make([]desired.Change, 0, len(changes))
	size := 0
	for i, c := range changes {
		if len(c.Fields) > MaxChangeFields {
			c.Fields = append(c.Fields[:MaxChangeFields:MaxChangeFields], desired.FieldChange{Path: fmt.Sprintf("(%d more fields)", len(c.Fields)-MaxChangeFields)})
		} else {
			c.Fields = slices.Clone(c.Fields)
		}
		c.Name = cutValue(c.Name)
		n := len(c.Kind) + len(c.Name)
		for j := range c.Fields {
			f := &c.Fields[j]
			f.Path, f.Old, f.New = cutValue(f.Path), cutValue(f.Old), cutValue(f.New)
			n += len(f.Path) + len(f.Old) + len(f.New)
		}
		if size+n > MaxChangesBytes {
			return out, more + len(changes) - i
		}
		size += n
		out = append(out, c)
	}
	return out, more
}

// WithoutChanges is a history listing without the changes (each entry's
// MoreChanges counts them): a hundred entries' diffs are past what one
// NATS answer carries; the dashboard reads them from the store.
func WithoutChanges(h []HistoryEntry) []HistoryEntry {
	out := make([]HistoryEntry, len(h))
	for i, e := range h {
		e.MoreChanges += len(e.Changes)
		e.Changes = nil
		out[i] = e
	}
	return out
}

func cutValue(v string) string {
	if len(v) <= MaxChangeValue {
		return v
	}
	return strings.ToValidUTF8(cut(v, MaxChangeValue), "") + "…"
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
