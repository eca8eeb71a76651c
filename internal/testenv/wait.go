package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond every 20 ms until it holds, and fails the test with
// what and cond's last words after timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Passer counts the passes of a control loop (reconciler.Reconciler).
type Passer interface{ Passes() int64 }

// WaitPasses waits until p has run n more passes than now: a test that
// checks that nothing happens waits for the loop, not for a fixed time.
func WaitPasses(tb testing.TB, p Passer, n int) {
	tb.Helper()
	want := p.Passes() + int64(n)
	WaitFor(tb, 30*time.Second, "reconciler passes", func() (bool, string) {
		return p.Passes() >= want, ""
	})
}
