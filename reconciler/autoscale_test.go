package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
)

func TestAutoscale(t *testing.T) {
	hpa := desired.Autoscaler{MinReplicas: 2, MaxReplicas: 10, TargetCPUPercent: 50,
		ScaleUp: desired.ScalingRules{SelectPolicy: "Max"}, ScaleDown: desired.ScalingRules{StabilizationWindowSeconds: 300, SelectPolicy: "Max"}}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	cpu := func(usage int64, pods int) cpuSample {
		return cpuSample{UsageMilli: usage, RequestMilli: 100 * int64(pods), Pods: pods}
	}
	withMem := hpa
	withMem.TargetMemoryPercent = 60
	memOnly := withMem
	memOnly.TargetCPUPercent = 0
	tests := []struct {
		name  string
		a     desired.Autoscaler
		prev  HPAState
		live  int
		cpu   cpuSample
		floor int
		now   time.Time
		want  int
		// reason, when set, is in the state's reason.
		reason string
	}{
		{name: "no state: starts from the live count", a: hpa, live: 3, cpu: cpu(150, 3), now: at(0), want: 3},
		{name: "no usage yet: holds", a: hpa, prev: HPAState{Replicas: 4}, now: at(0), want: 4},
		{name: "within the 10% tolerance: holds", a: hpa, prev: HPAState{Replicas: 4}, cpu: cpu(215, 4), now: at(0), want: 4},
		{name: "200% of target: doubles", a: hpa, prev: HPAState{Replicas: 4}, cpu: cpu(400, 4), now: at(0), want: 8},
		{name: "up to maxReplicas", a: hpa, prev: HPAState{Replicas: 4}, cpu: cpu(4000, 4), now: at(0), want: 8}, // policy: +100%/+4 per 15 s
		{name: "and maxReplicas caps", a: hpa, prev: HPAState{Replicas: 8}, cpu: cpu(8000, 8), now: at(0), want: 10},
		{name: "one change per policy period", a: hpa, prev: HPAState{Replicas: 4, LastScale: at(-10)}, cpu: cpu(400, 4), now: at(0), want: 4,
			reason: "cpu 100% of requests, target 50%; stays at 4 until 2026-11-27T09:30:05Z: one change per policy period (15s)"},
		{name: "after the period, again", a: hpa, prev: HPAState{Replicas: 4, LastScale: at(-16)}, cpu: cpu(400, 4), now: at(0), want: 8},
		{name: "scale down waits for the window: a recent higher recommendation holds", a: hpa,
			prev: HPAState{Replicas: 8, Recommendations: []Recommendation{{At: at(-200), Replicas: 8}}}, cpu: cpu(100, 8), now: at(0), want: 8,
			reason: "cpu 13% of requests, target 50%; stays at 8: the scale-down stabilization window (300s) still holds a recommendation of 8"},
		{name: "scale down once the window is quiet", a: hpa,
			prev: HPAState{Replicas: 8, Recommendations: []Recommendation{{At: at(-301), Replicas: 8}, {At: at(-100), Replicas: 3}}}, cpu: cpu(100, 8), now: at(0), want: 3},
		{name: "down to minReplicas", a: hpa, prev: HPAState{Replicas: 4}, cpu: cpu(1, 4), now: at(0), want: 2},
		{name: "a schedule's floor wins", a: hpa, prev: HPAState{Replicas: 4}, cpu: cpu(1, 4), floor: 6, now: at(0), want: 6},
		{name: "above the floor the HPA decides", a: hpa, prev: HPAState{Replicas: 6}, cpu: cpu(1200, 6), floor: 6, now: at(0), want: 10},
		{name: "no cpu requests: holds", a: hpa, prev: HPAState{Replicas: 4}, cpu: cpuSample{UsageMilli: 500, Pods: 4}, now: at(0), want: 4},
		{name: "memory: 90% against a 60% target at 4 pods: 6 (cpu idle)", a: withMem, prev: HPAState{Replicas: 4},
			cpu: cpuSample{UsageMilli: 1, RequestMilli: 400, MemUsage: 360, MemRequest: 400, Pods: 4}, now: at(0), want: 6},
		{name: "cpu and memory: the larger recommendation wins", a: withMem, prev: HPAState{Replicas: 4},
			cpu: cpuSample{UsageMilli: 300, RequestMilli: 400, MemUsage: 264, MemRequest: 400, Pods: 4}, now: at(0), want: 6},
		{name: "memory only, no cpu target", a: memOnly, prev: HPAState{Replicas: 4},
			cpu: cpuSample{UsageMilli: 4000, RequestMilli: 400, MemUsage: 120, MemRequest: 400, Pods: 4}, now: at(0), want: 2},
		{name: "no target it can measure (custom metrics only): holds", a: func() desired.Autoscaler { a := hpa; a.TargetCPUPercent = 0; return a }(),
			prev: HPAState{Replicas: 4}, cpu: cpu(4000, 4), now: at(0), want: 4},
		{name: "scale up disabled", a: func() desired.Autoscaler { a := hpa; a.ScaleUp.SelectPolicy = "Disabled"; return a }(),
			prev: HPAState{Replicas: 4}, cpu: cpu(400, 4), now: at(0), want: 4, reason: "stays at 4: scale-up is disabled"},
		{name: "a pods policy bounds the step", a: func() desired.Autoscaler {
			a := hpa
			a.ScaleUp.Policies = []desired.ScalingPolicy{{Type: "Pods", Value: 1, PeriodSeconds: 60}}
			return a
		}(), prev: HPAState{Replicas: 4}, cpu: cpu(400, 4), now: at(0), want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := autoscale(tt.a, tt.prev, tt.live, tt.cpu, tt.floor, tt.now)
			if got.Replicas != tt.want {
				t.Fatalf("replicas %d, want %d (%s)", got.Replicas, tt.want, got.Reason)
			}
			if !strings.Contains(got.Reason, tt.reason) {
				t.Fatalf("reason %q, want %q in it", got.Reason, tt.reason)
			}
		})
	}
}

// TestAutoscaleDoesNotFlap: load that alternates every pass moves the count
// up at once but not back down within the scale-down window.
func TestAutoscaleDoesNotFlap(t *testing.T) {
	hpa := desired.Autoscaler{MinReplicas: 1, MaxReplicas: 10, TargetCPUPercent: 50,
		ScaleUp: desired.ScalingRules{SelectPolicy: "Max"}, ScaleDown: desired.ScalingRules{StabilizationWindowSeconds: 300, SelectPolicy: "Max"}}
	st := HPAState{Replicas: 2}
	changes := 0
	for i := range 100 { // 200 s of passes every 2 s
		usage := int64(200) // the whole workload's demand: 100% of 2 pods' requests, 50% of 4
		if i%2 == 1 {
			usage = 20
		}
		next := autoscale(hpa, st, 0, cpuSample{UsageMilli: usage, RequestMilli: 100 * int64(st.Replicas), Pods: st.Replicas}, 0, t0.Add(time.Duration(2*i)*time.Second))
		if next.Replicas != st.Replicas {
			changes++
		}
		st = next
	}
	if changes != 1 || st.Replicas != 4 {
		t.Fatalf("%d changes of the count in 200 s of alternating load, ending at %d; want 1, at 4", changes, st.Replicas)
	}
}
