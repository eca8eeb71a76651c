package reconciler

import "time"

// Observer is told how long the loop's work took, for metrics
// (Config.Observer; nil: nobody). Its methods are called on the loop's
// goroutine or its senders' and must not block.
type Observer interface {
	// PassDone: one pass of the loop, from draining its mailbox to
	// publishing its snapshot.
	PassDone(d time.Duration)
	// CommandDone: one command's round trip to a node (err: it failed or
	// timed out).
	CommandDone(d time.Duration, err error)
	// Converged: a revision converged, fromCommit after its commit's
	// time (zero when the commit has none) and fromApplied after it was
	// put in force.
	Converged(fromCommit, fromApplied time.Duration)
}
