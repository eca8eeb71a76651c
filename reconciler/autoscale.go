package reconciler

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// HPAState is what an autoscaler remembers between passes; it is kept in KV
// so a new leader continues from the count in force.
type HPAState struct {
	Replicas  int       `json:"replicas"`
	LastScale time.Time `json:"lastScale,omitzero"`
	// Recommendations are the raw counts of recent passes, for the
	// stabilization windows.
	Recommendations []Recommendation `json:"recommendations,omitempty"`
	// Utilization is the last measured CPU use, in percent of requests
	// (-1: unknown); Reason explains the count.
	Utilization int       `json:"utilization"`
	Reason      string    `json:"reason,omitempty"`
	saved       time.Time // when this state was last written to KV
}

// Recommendation is one pass's raw count.
type Recommendation struct {
	At       time.Time `json:"at"`
	Replicas int       `json:"replicas"`
}

// cpuSample sums the CPU use and requests of a workload's running pods that
// reported usage.
type cpuSample struct {
	UsageMilli, RequestMilli int64
	Pods                     int
	// The same for memory, in bytes (for a memory utilization target).
	MemUsage, MemRequest int64
}

// hpaTolerance: utilization within 10% of the target changes nothing (as
// Kubernetes).
const hpaTolerance = 0.1

// Default scaling policies, as Kubernetes: up by 100% or 4 pods (the more)
// per 15 s, down by 100% per 15 s.
var (
	defaultUp   = []desired.ScalingPolicy{{Type: "Percent", Value: 100, PeriodSeconds: 15}, {Type: "Pods", Value: 4, PeriodSeconds: 15}}
	defaultDown = []desired.ScalingPolicy{{Type: "Percent", Value: 100, PeriodSeconds: 15}}
)

// autoscale returns the autoscaler's next state: the replica count from
// the CPU utilization against the target (within a 10% tolerance), clamped
// to [minReplicas, maxReplicas], stabilized (scale up to the lowest
// recommendation of the scale-up window, down to the highest of the
// scale-down window, so load that comes and goes does not flap the count),
// limited by the scaling policies (at most one change per policy period), and
// never below floor (a ScalingSchedule's count). live is the count running
// when the autoscaler has no state yet. Pure: table-tested.
func autoscale(a desired.Autoscaler, prev HPAState, live int, cpu cpuSample, floor int, now time.Time) HPAState {
	st := prev
	cur := prev.Replicas
	if cur == 0 {
		cur = clamp(max(live, 1), a.MinReplicas, a.MaxReplicas)
	}
	st.Replicas = cur
	raw := cur
	st.Utilization = -1
	// Each metric recommends a count; the largest wins (as Kubernetes).
	var reasons []string
	measured := false
	metric := func(name string, target int, usage, request int64) {
		switch {
		case target == 0:
			return
		case cpu.Pods == 0:
			reasons = append(reasons, "no "+name+" usage reported yet")
		case request == 0:
			reasons = append(reasons, "the pods have no "+name+" requests: utilization is undefined")
		default:
			util := float64(usage) / float64(request)
			pct := int(math.Round(util * 100))
			if name == "cpu" {
				st.Utilization = pct
			}
			rec := cur
			if ratio := util * 100 / float64(target); math.Abs(ratio-1) > hpaTolerance {
				rec = int(math.Ceil(float64(cur) * ratio))
			}
			if !measured || rec > raw {
				raw = rec
			}
			measured = true
			reasons = append(reasons, fmt.Sprintf("%s %d%% of requests, target %d%%", name, pct, target))
		}
	}
	metric("cpu", a.TargetCPUPercent, cpu.UsageMilli, cpu.RequestMilli)
	metric("memory", a.TargetMemoryPercent, cpu.MemUsage, cpu.MemRequest)
	if len(reasons) == 0 {
		reasons = append(reasons, "no cpu or memory target: holds the count within min and max")
	}
	st.Reason = strings.Join(reasons, "; ")
	raw = clamp(raw, a.MinReplicas, a.MaxReplicas)

	// Stabilization over the recommendations of the windows.
	keep := time.Duration(max(a.ScaleUp.StabilizationWindowSeconds, a.ScaleDown.StabilizationWindowSeconds)) * time.Second
	recs := []Recommendation{{At: now, Replicas: raw}}
	for _, r := range prev.Recommendations {
		if now.Sub(r.At) <= keep {
			recs = append(recs, r)
		}
	}
	st.Recommendations = recs
	up, down := raw, raw
	for _, r := range recs {
		age := now.Sub(r.At)
		if age <= time.Duration(a.ScaleUp.StabilizationWindowSeconds)*time.Second {
			up = min(up, r.Replicas)
		}
		if age <= time.Duration(a.ScaleDown.StabilizationWindowSeconds)*time.Second {
			down = max(down, r.Replicas)
		}
	}
	want := cur
	switch {
	case up > cur:
		want = min(up, cur+allowed(a.ScaleUp, defaultUp, cur))
		if a.ScaleUp.SelectPolicy == "Disabled" {
			st.Reason += fmt.Sprintf("; stays at %d: scale-up is disabled (behavior.scaleUp.selectPolicy)", cur)
		}
	case down < cur:
		want = max(down, cur-allowed(a.ScaleDown, defaultDown, cur))
		if a.ScaleDown.SelectPolicy == "Disabled" {
			st.Reason += fmt.Sprintf("; stays at %d: scale-down is disabled (behavior.scaleDown.selectPolicy)", cur)
		}
	case raw < cur: // held: say so, or the status shows a low usage and no change
		st.Reason += fmt.Sprintf("; stays at %d: the scale-down stabilization window (%ds) still holds a recommendation of %d",
			cur, a.ScaleDown.StabilizationWindowSeconds, down)
	case raw > cur:
		st.Reason += fmt.Sprintf("; stays at %d: the scale-up stabilization window (%ds) still holds a recommendation of %d",
			cur, a.ScaleUp.StabilizationWindowSeconds, up)
	}
	if want != cur {
		if period := minPeriod(want > cur, a); !prev.LastScale.IsZero() && now.Sub(prev.LastScale) < period {
			st.Reason += fmt.Sprintf("; stays at %d until %s: one change per policy period (%s)", cur, prev.LastScale.Add(period).UTC().Format(time.RFC3339), period)
			want = cur // one change per policy period
		}
	}
	want = max(want, floor)
	if want != cur {
		st.Reason = fmt.Sprintf("%s: %d → %d", st.Reason, cur, want)
		if floor == want && want > cur {
			st.Reason = fmt.Sprintf("raised to the schedule's floor: %d → %d", cur, want)
		}
		st.Replicas, st.LastScale = want, now
	}
	return st
}

func clamp(n, lo, hi int) int { return max(lo, min(n, hi)) }

// allowed is how many pods the rules let the count move by at once.
func allowed(r desired.ScalingRules, defaults []desired.ScalingPolicy, cur int) int {
	if r.SelectPolicy == "Disabled" {
		return 0
	}
	policies := r.Policies
	if len(policies) == 0 {
		policies = defaults
	}
	out := -1
	for _, p := range policies {
		n := p.Value
		if p.Type == "Percent" {
			n = int(math.Ceil(float64(cur) * float64(p.Value) / 100))
		}
		switch {
		case out < 0:
			out = n
		case r.SelectPolicy == "Min":
			out = min(out, n)
		default:
			out = max(out, n)
		}
	}
	return max(out, 0)
}

func minPeriod(up bool, a desired.Autoscaler) time.Duration {
	r, defaults := a.ScaleDown, defaultDown
	if up {
		r, defaults = a.ScaleUp, defaultUp
	}
	policies := r.Policies
	if len(policies) == 0 {
		policies = defaults
	}
	p := policies[0].PeriodSeconds
	for _, x := range policies {
		p = min(p, x.PeriodSeconds)
	}
	return time.Duration(p) * time.Second
}

// cpuOf sums what a workload's running replicas of ready nodes use and
// request; running counts them.
func cpuOf(live *Live, w desired.Workload) (s cpuSample, running int) {
	req, _ := podRequests(w.Pod)
	for _, r := range live.reported(w.Name) {
		if r.State != protocol.StateRunning || r.gone() {
			continue
		}
		running++
		if r.Usage != nil {
			s.UsageMilli += r.Usage.CPUMilli
			s.RequestMilli += req.CPUMilli
			s.MemUsage += r.Usage.MemoryBytes
			s.MemRequest += req.MemoryBytes
			s.Pods++
		}
	}
	return s, running
}
