package reconciler

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/schedule"
)

// Owner is who sets a workload's replica count.
type Owner int

// Owners, from the weakest: an autoscaler wins over a ScalingSchedule (whose
// count is then its floor), which wins over spec.replicas.
const (
	OwnerGit Owner = iota
	OwnerSchedule
	OwnerAutoscaler
)

var ownerNames = [...]string{OwnerGit: "git", OwnerSchedule: "ScalingSchedule", OwnerAutoscaler: "HorizontalPodAutoscaler"}

func (o Owner) String() string {
	if int(o) < len(ownerNames) {
		return ownerNames[o]
	}
	return fmt.Sprintf("Owner(%d)", int(o))
}

// MarshalText writes the owner's name: "git", "ScalingSchedule" or
// "HorizontalPodAutoscaler".
func (o Owner) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an owner's name.
func (o *Owner) UnmarshalText(b []byte) error {
	for i, n := range ownerNames {
		if n == string(b) {
			*o = Owner(i)
			return nil
		}
	}
	return fmt.Errorf("unknown scale owner %q", b)
}

// Scale says who sets a workload's replica count and what it is now.
type Scale struct {
	Replicas int   `json:"replicas"`
	Owner    Owner `json:"owner"`
	// Name is the owning object's ("" for git); Reason the autoscaler's
	// last word; Floor a schedule's count under an autoscaler.
	Name   string `json:"name,omitempty"`
	Reason string `json:"reason,omitempty"`
	Floor  string `json:"floor,omitempty"`
	// FloorBy owns the floor (a ScalingSchedule under an autoscaler).
	FloorBy Owner `json:"floorBy,omitempty"`
	// Window is the schedule's window in effect, and since when; Next the
	// next change (window name and time).
	Window     string    `json:"window,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	NextWindow string    `json:"nextWindow,omitempty"`
	Next       time.Time `json:"next,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// By says who sets the count, as "ScalingSchedule market-hours".
func (s Scale) By() string {
	if s.Name == "" {
		return s.Owner.String()
	}
	return s.Owner.String() + " " + s.Name
}

// scheduleScale is the count a ScalingSchedule that targets w sets at now
// (the window that fired last; before any has fired, spec.replicas), or
// spec.replicas from Git.
func scheduleScale(w desired.Workload, st *desired.State, now time.Time) Scale {
	for _, s := range st.Schedules {
		if s.Target != w.Name {
			continue
		}
		sc := Scale{Replicas: w.Replicas, Owner: OwnerSchedule, Name: s.Name}
		windows := make([]schedule.Window, len(s.Windows))
		for i, x := range s.Windows {
			windows[i] = schedule.Window{Name: x.Name, Replicas: x.Replicas}
			if x.Cron != nil { // a nil *desired.Cron must stay a nil interface
				windows[i].Cron = x.Cron
			}
		}
		in, err := schedule.Windows(windows, now)
		if err != nil {
			// The loader parsed every schedule in its zone (the tz database is
			// embedded): an error here is a bug, shown rather than hidden.
			sc.Error = fmt.Sprintf("ScalingSchedule %s: %v", s.Name, err)
			return sc
		}
		if in.OK {
			sc.Replicas, sc.Window, sc.Since = in.Window.Replicas, in.Window.Name, in.Since
		}
		sc.NextWindow, sc.Next = in.NextWindow, in.Next
		return sc
	}
	return Scale{Replicas: w.Replicas, Owner: OwnerGit}
}

// scaleFor is the one scale rule: an autoscaler's count (its state h,
// after this pass's step), else a ScalingSchedule's window, else
// spec.replicas. Pure.
func scaleFor(w desired.Workload, st *desired.State, a *desired.Autoscaler, h HPAState, now time.Time) Scale {
	sched := scheduleScale(w, st, now)
	if a == nil || h.Replicas == 0 {
		return sched
	}
	sc := Scale{Replicas: h.Replicas, Owner: OwnerAutoscaler, Name: a.Name, Reason: h.Reason}
	if sched.Owner != OwnerGit {
		sc.Floor, sc.FloorBy = fmt.Sprintf("%d from %s", sched.Replicas, sched.By()), sched.Owner
		sc.Window, sc.Since, sc.NextWindow, sc.Next = sched.Window, sched.Since, sched.NextWindow, sched.Next
	}
	return sc
}

// scalesStep decides every workload's count once per pass: the autoscalers
// step first (their floor is a schedule's count), then scaleFor. It returns
// the scales, the autoscalers' new states (a new map), the KV writes (an
// autoscaler's state when its count changed, and every 10 s for its
// stabilization window) and the events. Pure.
func scalesStep(st *desired.State, prev map[string]HPAState, live *Live, now time.Time) (map[string]Scale, map[string]HPAState, []kvWrite, []string) {
	scales := make(map[string]Scale, len(st.Workloads))
	next := make(map[string]HPAState, len(st.Autoscalers))
	var writes []kvWrite
	var events []string
	autoscalers := make(map[string]*desired.Autoscaler, len(st.Autoscalers))
	for i := range st.Autoscalers {
		autoscalers[st.Autoscalers[i].Target] = &st.Autoscalers[i]
	}
	for _, w := range st.Workloads {
		a := autoscalers[w.Name]
		if a == nil {
			if len(st.Schedules) > 0 {
				scales[w.Name] = scheduleScale(w, st, now)
			} else {
				scales[w.Name] = Scale{Replicas: w.Replicas, Owner: OwnerGit}
			}
			continue
		}
		floor := 0
		if sc := scheduleScale(w, st, now); sc.Owner != OwnerGit {
			floor = sc.Replicas
		}
		cpu, running := cpuOf(live, w)
		p := prev[w.Name]
		h := autoscale(*a, p, running, cpu, floor, now)
		if h.Replicas != p.Replicas && p.Replicas != 0 {
			events = append(events, fmt.Sprintf("scaled %s by HorizontalPodAutoscaler %s: %s", w.Name, a.Name, h.Reason))
		}
		// The recommendations are saved too (every 10 s at most), so a new
		// leader keeps the scale-down window instead of starting it over.
		if h.Replicas != p.Replicas || now.Sub(h.saved) >= 10*time.Second {
			h.saved = now
			writes = append(writes, kvWrite{key: hpaPrefix + w.Name, value: h})
		}
		next[w.Name] = h
		scales[w.Name] = scaleFor(w, st, a, h, now)
	}
	return scales, next, writes, events
}
