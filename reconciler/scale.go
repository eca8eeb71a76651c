package reconciler

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/schedule"
)

// Scale says who sets a workload's replica count and what it is now.
type Scale struct {
	Replicas int `json:"replicas"`
	// Owner is "git" (spec.replicas) or "ScalingSchedule <name>".
	Owner string `json:"owner"`
	// Window is the schedule's window in effect, and since when; Next the
	// next change (window name and time).
	Window     string    `json:"window,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	NextWindow string    `json:"nextWindow,omitempty"`
	Next       time.Time `json:"next,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// scaleOf returns the replica count in effect for w at now: a
// ScalingSchedule that targets it owns the count (the window that fired
// last sets it; before any has fired, spec.replicas is the starting point),
// otherwise spec.replicas from Git.
func scaleOf(w desired.Workload, st *desired.State, now time.Time) Scale {
	for _, s := range st.Schedules {
		if s.Target != w.Name {
			continue
		}
		sc := Scale{Replicas: w.Replicas, Owner: "ScalingSchedule " + s.Name}
		windows := make([]schedule.Window, len(s.Windows))
		for i, x := range s.Windows {
			windows[i] = schedule.Window{Name: x.Name, Cron: x.Schedule, Replicas: x.Replicas}
		}
		in, err := schedule.Windows(s.TimeZone, windows, now)
		if err != nil {
			// The loader validated zone and schedules: only a zone missing from
			// this machine's tz database gets here.
			sc.Error = fmt.Sprintf("ScalingSchedule %s: %v", s.Name, err)
			return sc
		}
		if in.OK {
			sc.Replicas, sc.Window, sc.Since = in.Window.Replicas, in.Window.Name, in.Since
		}
		sc.NextWindow, sc.Next = in.NextWindow, in.Next
		return sc
	}
	return Scale{Replicas: w.Replicas, Owner: "git"}
}
