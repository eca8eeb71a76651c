package store

import "time"

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

// BadPrefix is the prefix of the bad revisions' keys.
const BadPrefix = "bad."

// MaxBad bounds the bad revisions remembered; the oldest are forgotten.
const MaxBad = MaxHistory
