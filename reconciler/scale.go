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
	// Owner is "git" (spec.replicas), "ScalingSchedule <name>" or
	// "HorizontalPodAutoscaler <name>"; Reason the autoscaler's last word,
	// Floor a schedule's count under an autoscaler.
	Owner  string `json:"owner"`
	Reason string `json:"reason,omitempty"`
	Floor  string `json:"floor,omitempty"`
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
			// The loader checked the zone (the tz database is embedded, with
			// time/tzdata) and the schedules: an error here is a bug, shown
			// in the status rather than hidden.
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

// hpaScale describes a count owned by an autoscaler.
func hpaScale(w desired.Workload, st *desired.State, h HPAState, sched Scale) Scale {
	sc := Scale{Replicas: h.Replicas, Owner: "HorizontalPodAutoscaler", Reason: h.Reason}
	for _, a := range st.Autoscalers {
		if a.Target == w.Name {
			sc.Owner += " " + a.Name
		}
	}
	if sched.Owner != "git" {
		sc.Floor = fmt.Sprintf("%d from %s", sched.Replicas, sched.Owner)
		sc.Window, sc.Since, sc.NextWindow, sc.Next = sched.Window, sched.Since, sched.NextWindow, sched.Next
	}
	return sc
}

func autoscaled(st *desired.State, workload string) bool {
	for _, a := range st.Autoscalers {
		if a.Target == workload {
			return true
		}
	}
	return false
}
