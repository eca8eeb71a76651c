// Package ratelog bounds the log lines a flood of bad input can cause: a
// Limiter counts every event and lets one line through per interval, saying
// how many it held back since the last one.
package ratelog

import (
	"sync"
	"sync/atomic"
	"time"
)

// Limiter allows one log line per Every; the zero value allows one per 10 s.
type Limiter struct {
	Every time.Duration

	total atomic.Int64

	mu         sync.Mutex
	last       time.Time
	suppressed int64
}

// Allow counts one event at now and reports whether to log it, with the
// number of events held back since the last one logged.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int64) {
	l.total.Add(1)
	every := l.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	l.last = now
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// Total is the number of events counted.
func (l *Limiter) Total() int64 { return l.total.Load() }
