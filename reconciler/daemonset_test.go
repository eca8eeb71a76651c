package reconciler

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// A DaemonSet: one replica on each node its pod may go to, none
// elsewhere; a new template node by node within maxUnavailable.
func TestDaemonSet(t *testing.T) {
	ds := func(image string, mods ...func(*desired.Workload)) desired.Workload {
		w := workload("agent", 0, image)
		w.Kind, w.Strategy = "DaemonSet", desired.Strategy{Type: "RollingUpdate", MaxUnavailable: "1", MaxSurge: "0"}
		for _, m := range mods {
			m(&w)
		}
		w.Hash = w.Pod.Hash()
		return w
	}
	v1, v2 := ds("agent:1"), ds("agent:2")
	onSSD := ds("agent:1", func(w *desired.Workload) { w.Pod.NodeSelector = map[string]string{"disk": "ssd"} })
	tolerant := ds("agent:1", func(w *desired.Workload) {
		w.Pod.Tolerations = []desired.Toleration{{Key: "gpu", Operator: "Exists"}}
	})
	surge := ds("agent:2", func(w *desired.Workload) { w.Strategy.MaxSurge, w.Strategy.MaxUnavailable = "1", "0" })
	gpuTaint := func(n NodeView) NodeView { n.Taints = []desired.Taint{{Key: "gpu", Effect: "NoSchedule"}}; return n }
	const R = protocol.StateRunning
	tests := []struct {
		name  string
		in    Input
		want  []string
		count int
	}{
		{name: "one on every node", in: Input{Desired: state(v1), Nodes: nodes(node("n1"), node("n2"), node("n3"))},
			want: []string{"start agent@n1", "start agent@n2", "start agent@n3"}, count: 3},
		{name: "only where the node selector matches; one that no longer matches loses its replica",
			in:   Input{Desired: state(onSSD), Nodes: nodes(labeled(node("n1"), "disk", "ssd"), node("n2", rep("x", onSSD, R, time.Hour)))},
			want: []string{"start agent@n1", "stop x@n2"}, count: 1},
		{name: "a taint keeps it off unless tolerated",
			in:   Input{Desired: state(v1), Nodes: nodes(gpuTaint(node("n1")), node("n2"))},
			want: []string{"start agent@n2"}, count: 1},
		{name: "tolerated", in: Input{Desired: state(tolerant), Nodes: nodes(gpuTaint(node("n1")), node("n2"))},
			want: []string{"start agent@n1", "start agent@n2"}, count: 2},
		{name: "a lost node gets no replica elsewhere",
			in:   Input{Desired: state(v1), Nodes: nodes(node("n1", rep("a", v1, R, time.Hour)), lost(node("n2", rep("b", v1, R, time.Hour))))},
			want: []string{}, count: 1},
		{name: "a new template: one node at a time (maxUnavailable 1)",
			in: Input{Desired: state(v2), Nodes: nodes(node("n1", rep("a", v1, R, time.Hour)), node("n2", rep("b", v1, R, time.Hour)),
				node("n3", rep("c", v1, R, time.Hour)))},
			want: []string{"stop a@n1"}, count: 3},
		{name: "… the emptied node gets the new one; no other old one stops while it is not ready",
			in:   Input{Desired: state(v2), Nodes: nodes(node("n1"), node("n2", rep("b", v1, R, time.Hour)), node("n3", rep("c", v1, R, time.Hour)))},
			want: []string{"start agent@n1"}, count: 3},
		{name: "with maxSurge the new one starts beside the old, which stops once the new one is ready",
			in: Input{Desired: state(surge), Nodes: nodes(node("n1", rep("a", v1, R, time.Hour), rep("a2", surge, R, time.Minute)),
				node("n2", rep("b", v1, R, time.Hour)))},
			want: []string{"start agent@n2", "stop a@n1"}, count: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now, tt.in.NodeGrace, tt.in.PendingTimeout = t0, grace, 30*time.Second
			res := compute(tt.in)
			if got := summary(res); !slices.Equal(got, tt.want) {
				t.Fatalf("Compute() = %q\nwant        %q", got, tt.want)
			}
			if res.Daemons["agent"] != tt.count {
				t.Fatalf("count %d, want %d", res.Daemons["agent"], tt.count)
			}
		})
	}
}

// A DaemonSet with updateStrategy OnDelete keeps its old replicas: no
// rollout is tracked for it, so none fails (nor marks its revision bad).
func TestOnDeleteDaemonSetHasNoRollout(t *testing.T) {
	w := workload("agent", 0, "agent:2")
	w.Kind, w.Strategy = "DaemonSet", desired.Strategy{Type: "OnDelete"}
	w.Hash = w.Pod.Hash()
	old := workload("agent", 0, "agent:1")
	in := Input{Desired: state(w), Now: t0, NodeGrace: grace, Nodes: nodes(node("n1", rep("a", old, protocol.StateRunning, time.Hour)))}
	in.Desired.Revision = "r2"
	ro, _, _ := rolloutsStep(map[string]Rollout{}, in, NewLive(in), nil)
	if len(ro) != 0 {
		t.Fatalf("rollouts %+v, want none", ro)
	}
	if got := summary(compute(in)); len(got) != 0 {
		t.Fatalf("OnDelete replaced an old replica: %q", got)
	}
}

// A ReplicationController (strategy OnDelete): a new template touches no
// running replica, counts them, and new replicas take it; a scale-down
// stops old ones as any; a draining node's are still moved.
func TestReplicationController(t *testing.T) {
	rc := func(image string, n int) desired.Workload {
		w := workload("rc", n, image)
		w.Kind, w.Strategy = "ReplicationController", desired.Strategy{Type: "OnDelete"}
		w.Hash = w.Pod.Hash()
		return w
	}
	v1, v2 := rc("web:1", 3), rc("web:2", 3)
	const R = protocol.StateRunning
	run := func(in Input) []string {
		in.Now, in.NodeGrace, in.PendingTimeout = t0, grace, 30*time.Second
		return summary(compute(in))
	}
	if got := run(Input{Desired: state(v2), Nodes: nodes(node("n1", rep("a", v1, R, time.Hour), rep("b", v1, R, time.Hour)))}); !slices.Equal(got, []string{"start rc@n1"}) {
		t.Fatalf("a new template with 2 old of 3: %q, want one new start and no stop", got)
	}
	if got := run(Input{Desired: state(rc("web:2", 1)), Nodes: nodes(node("n1", rep("a", v1, R, time.Hour), rep("b", v1, R, time.Hour)))}); len(got) != 1 || !strings.HasPrefix(got[0], "stop ") {
		t.Fatalf("scale down to 1: %q", got)
	}
	drain := Input{Desired: state(v2), Draining: map[string]bool{"n1": true},
		Nodes: nodes(node("n1", rep("a", v1, R, time.Hour)), node("n2", rep("b", v1, R, time.Hour), rep("c", v1, R, time.Hour)))}
	if got := run(drain); !slices.Equal(got, []string{"stop a@n1"}) {
		t.Fatalf("a draining node's old replica: %q, want it stopped (no surge: it goes first, then its replacement starts)", got)
	}
}

// A DaemonSet's rollout counts its nodes: with no old replica left but
// the new one not yet ready on one of its two nodes, it is not complete.
func TestDaemonSetRolloutCountsItsNodes(t *testing.T) {
	w := workload("agent", 0, "agent:2")
	w.Kind, w.Strategy = "DaemonSet", desired.Strategy{Type: "RollingUpdate", MaxUnavailable: "1"}
	w.Hash = w.Pod.Hash()
	in := Input{Desired: state(w), Now: t0, NodeGrace: grace, Nodes: nodes(node("n1", rep("a", w, protocol.StateRunning, time.Hour)), node("n2"))}
	in.Desired.Revision = "r2"
	ro, _, _ := rolloutsStep(map[string]Rollout{}, in, NewLive(in), nil)
	if got := ro["agent"]; got.State == RolloutComplete {
		t.Fatalf("rollout %+v complete with one of two nodes served", got)
	}
	in.Nodes = nodes(node("n1", rep("a", w, protocol.StateRunning, time.Hour)), node("n2", rep("b", w, protocol.StateRunning, time.Hour)))
	ro, _, _ = rolloutsStep(map[string]Rollout{}, in, NewLive(in), nil)
	if got := ro["agent"]; got.State != RolloutComplete {
		t.Fatalf("rollout %+v, want complete with both nodes served", got)
	}
}
