package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/store"
)

func TestTrack(t *testing.T) {
	web := workload("web", 3, "web:1")
	web2 := workload("web", 3, "web:2")
	web2.ProgressDeadlineSeconds = 60
	done := Rollout{Workload: "web", Hash: web.Hash, Revision: "r1", State: RolloutComplete, Healthy: web.Hash, HealthyRevision: "r1"}
	started := Rollout{Workload: "web", Hash: web2.Hash, Revision: "r2", State: RolloutProgressing, Started: t0.Add(-time.Minute),
		Progress: t0.Add(-30 * time.Second), Available: 1, Old: 2, Healthy: web.Hash, HealthyRevision: "r1"}
	tests := []struct {
		name   string
		prev   Rollout
		w      desired.Workload
		obs    observed
		state  string
		reason string // substring
		check  func(t *testing.T, ro Rollout)
	}{
		{name: "a new template starts a rollout; the completed one becomes the healthy one", prev: done, w: web2, obs: observed{Old: 3},
			state: RolloutProgressing, check: func(t *testing.T, ro Rollout) {
				if ro.Healthy != web.Hash || ro.HealthyRevision != "r1" || ro.Revision != "r2" || !ro.Started.Equal(t0) {
					t.Fatalf("%+v", ro)
				}
			}},
		{name: "first sight of a running workload completes at once", w: web, obs: observed{Available: 3}, state: RolloutComplete,
			check: func(t *testing.T, ro Rollout) {
				if ro.Healthy != web.Hash || ro.HealthyRevision != "r2" {
					t.Fatalf("%+v", ro)
				}
			}},
		{name: "more available new replicas are progress", prev: started, w: web2, obs: observed{Available: 2, Old: 2}, state: RolloutProgressing,
			check: func(t *testing.T, ro Rollout) {
				if !ro.Progress.Equal(t0) || ro.Available != 2 {
					t.Fatalf("%+v", ro)
				}
			}},
		{name: "fewer old replicas are progress", prev: started, w: web2, obs: observed{Available: 1, Old: 1}, state: RolloutProgressing},
		{name: "within the deadline it is still progressing", prev: started, w: web2, obs: observed{Available: 1, Old: 2}, state: RolloutProgressing},
		{name: "all available and no old: complete", prev: started, w: web2, obs: observed{Available: 3}, state: RolloutComplete},
		{name: "no progress past the deadline: failed, the first replica's reason first", w: web2,
			obs:   observed{Available: 1, Old: 2, Problem: "image_not_found: web:2 is not present on the node (replica x on n1, 3 failed starts)"},
			prev:  func() Rollout { r := started; r.Progress = t0.Add(-61 * time.Second); return r }(),
			state: RolloutFailed, reason: "image_not_found: web:2 is not present on the node (replica x on n1, 3 failed starts); no progress for 1m0s (progressDeadlineSeconds): 1/3 new replicas available, 2 old still serving"},
		{name: "a failed rollout that moves again is progressing", w: web2, obs: observed{Available: 2, Old: 2},
			prev: func() Rollout { r := started; r.State = RolloutFailed; return r }(), state: RolloutProgressing},
		{name: "a completed rollout stays complete when replicas go (a node loss is not a rollout)", prev: done, w: web, obs: observed{Available: 1}, state: RolloutComplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro := track(tt.prev, tt.w, 3, "r2", tt.obs, t0)
			if tt.state == RolloutFailed && ro.Reason != tt.reason {
				t.Fatalf("reason %q, want %q", ro.Reason, tt.reason)
			}
			if ro.State != tt.state || !strings.Contains(ro.Reason, tt.reason) {
				t.Fatalf("state %s %q, want %s %q", ro.State, ro.Reason, tt.state, tt.reason)
			}
			if tt.check != nil {
				tt.check(t, ro)
			}
		})
	}
}

func TestHistoryStep(t *testing.T) {
	web, db := workload("web", 3, "web:2"), workload("db", 1, "db:1")
	st := &desired.State{Revision: "r2", Workloads: []desired.Workload{web, db}}
	prog := store.HistoryEntry{Revision: "r2", Outcome: store.OutcomeProgressing, Applied: t0.Add(-5 * time.Second)}
	old := store.HistoryEntry{Revision: "r2", Outcome: store.OutcomeProgressing, Applied: t0.Add(-11 * time.Minute)}
	degraded := store.HistoryEntry{Revision: "r2", Outcome: store.OutcomeDegraded, Applied: t0.Add(-11 * time.Minute), Reason: "x"}
	short := []Shortfall{{Workload: "web", Deadline: 10 * time.Minute}}
	done := func(w desired.Workload) Rollout {
		return Rollout{Workload: w.Name, Hash: w.Hash, State: RolloutComplete}
	}
	tests := []struct {
		name      string
		e         store.HistoryEntry
		rollouts  map[string]Rollout
		outcome   string
		unsettled []Shortfall
	}{
		{"every rollout complete: converged", prog, map[string]Rollout{"web": done(web), "db": done(db)}, store.OutcomeConverged, nil},
		{"complete, but a workload short of its count: still progressing", prog, map[string]Rollout{"web": done(web), "db": done(db)}, store.OutcomeProgressing, short},
		{"short of its count past the deadline: degraded", old, map[string]Rollout{"web": done(web), "db": done(db)}, store.OutcomeDegraded, short},
		{"a degraded revision whose counts are met: converged", degraded, map[string]Rollout{"web": done(web), "db": done(db)}, store.OutcomeConverged, nil},
		{"one still progressing", prog, map[string]Rollout{"web": {Workload: "web", Hash: web.Hash, State: RolloutProgressing}, "db": done(db)}, store.OutcomeProgressing, nil},
		{"still rolling out past the deadline: not degraded (the rollout fails or completes)", old, map[string]Rollout{"web": {Workload: "web", Hash: web.Hash, State: RolloutProgressing}, "db": done(db)}, store.OutcomeProgressing, short},
		{"a rollout of an older template does not count", prog, map[string]Rollout{"web": {Workload: "web", Hash: "old", State: RolloutComplete}, "db": done(db)}, store.OutcomeProgressing, nil},
		{"one failed: failed", prog, map[string]Rollout{"web": {Workload: "web", Hash: web.Hash, Revision: "r2", State: RolloutFailed, Reason: "no progress"}, "db": done(db)}, store.OutcomeFailed, nil},
		{"rolled back: failed", prog, map[string]Rollout{"web": {Workload: "web", Hash: web.Hash, Revision: "r2", State: RolloutRolledBack}, "db": done(db)}, store.OutcomeFailed, nil},
		{"failed under an earlier revision, unchanged by this one: beside the outcome, not its cause", prog,
			map[string]Rollout{"web": {Workload: "web", Hash: web.Hash, Revision: "r1", State: RolloutRolledBack}, "db": done(db)}, store.OutcomeConverged, short},
		{"failed under an earlier revision: not degraded by its count either", old,
			map[string]Rollout{"web": {Workload: "web", Hash: web.Hash, Revision: "r1", State: RolloutFailed}, "db": done(db)}, store.OutcomeConverged, short},
		{"settled entries stay", store.HistoryEntry{Revision: "r2", Outcome: store.OutcomeSuperseded}, map[string]Rollout{"web": done(web), "db": done(db)}, store.OutcomeSuperseded, nil},
		{"an entry of another revision waits", store.HistoryEntry{Revision: "r1", Outcome: store.OutcomeProgressing}, map[string]Rollout{"web": done(web), "db": done(db)}, store.OutcomeProgressing, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := historyStep(tt.e, st, tt.rollouts, tt.unsettled, t0)
			if got.Outcome != tt.outcome {
				t.Fatalf("outcome %s (%s), want %s", got.Outcome, got.Reason, tt.outcome)
			}
			if got.Outcome == store.OutcomeDegraded && got.Reason != "rolled out, but short of replicas past the progress deadline: web" {
				t.Fatalf("reason %q", got.Reason)
			}
			if strings.HasPrefix(tt.name, "failed under an earlier") && !strings.HasPrefix(got.AlreadyFailed, "web (") {
				t.Fatalf("already failed %q, want web named", got.AlreadyFailed)
			}
			if got.Outcome == store.OutcomeConverged && (!got.Converged.Equal(t0) || got.Reason != "") {
				t.Fatalf("converged at %s", got.Converged)
			}
		})
	}
}

// TestReplicaProblem: a replica's own reason comes first, and a start that
// failed says so without an exit code.
func TestReplicaProblem(t *testing.T) {
	for _, tc := range []struct {
		r    replica
		want string
	}{
		{replica{Replica: &protocol.Replica{ID: "web-1", State: protocol.StateWaiting, Code: protocol.CodeImageNotFound, Failures: 3,
			Message: "image_not_found: web:2 is not present on the node"}, node: "n1"},
			"image_not_found: web:2 is not present on the node (replica web-1 on n1, 3 failed starts)"},
		{replica{Replica: &protocol.Replica{ID: "web-1", State: protocol.StateWaiting, Message: "container app: back-off restarting (exited with code 1, 4 restarts)"}, node: "n1"},
			"replica web-1 on n1 is waiting: container app: back-off restarting (exited with code 1, 4 restarts)"},
		{replica{Replica: &protocol.Replica{ID: "web-1", State: protocol.StateRunning}, node: "n1"}, "replica web-1 on n1 is running, not ready"},
	} {
		if got := replicaProblem(tc.r); got != tc.want {
			t.Errorf("replicaProblem = %q, want %q", got, tc.want)
		}
	}
}
