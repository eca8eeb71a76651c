package schedule

import (
	"fmt"
	"time"
)

// Cron is a parsed cron schedule in its time zone (desired.Cron).
type Cron interface {
	// Next is the first firing strictly after t (zero if none).
	Next(t time.Time) time.Time
}

// Window sets a replica count each time its cron schedule fires.
type Window struct {
	Name     string
	Cron     Cron
	Replicas int
}

// InEffect says which window of a ScalingSchedule sets the count at a time.
type InEffect struct {
	// Window fired last (at Since); ok is false when none has fired in the
	// last four years, and the workload's own count applies.
	Window Window
	Since  time.Time
	OK     bool
	// Next is the next firing of any window, and NextWindow its name.
	Next       time.Time
	NextWindow string
}

// lookbacks are searched in turn for a window's last firing: a window that
// fires often is found in the first, a yearly one in the last.
var lookbacks = []time.Duration{2 * time.Minute, time.Hour, 25 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 4 * 366 * 24 * time.Hour}

// Windows returns the window in effect at now: the one that fired last (in
// its schedule's time zone), and when the next change is due. It is a pure
// function of its arguments (daylight-saving changes follow the zone's
// rules, as robfig/cron applies them); the schedules were parsed when their
// revision loaded, and a window without one is an error, never skipped.
func Windows(windows []Window, now time.Time) (InEffect, error) {
	var res InEffect
	for _, w := range windows {
		if w.Cron == nil {
			return res, fmt.Errorf("window %s: no parsed schedule", w.Name)
		}
		if next := w.Cron.Next(now); !next.IsZero() && (res.Next.IsZero() || next.Before(res.Next)) {
			res.Next, res.NextWindow = next, w.Name
		}
		if last, ok := lastFiring(w.Cron, now); ok && (!res.OK || last.After(res.Since)) {
			res.Window, res.Since, res.OK = w, last, true
		}
	}
	return res, nil
}

// lastFiring finds the schedule's latest firing at or before now.
func lastFiring(s Cron, now time.Time) (time.Time, bool) {
	for _, back := range lookbacks {
		// Next is strictly after its argument: start a nanosecond early.
		t := s.Next(now.Add(-back - time.Nanosecond))
		if t.IsZero() || t.After(now) {
			continue
		}
		for {
			n := s.Next(t)
			if n.IsZero() || n.After(now) {
				return t, true
			}
			t = n
		}
	}
	return time.Time{}, false
}
