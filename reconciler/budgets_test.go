package reconciler

import (
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// A node drain stops ready replicas only as far as the
// PodDisruptionBudgets that select them allow; a new template's rollout
// is not held back by them.
func TestDrainHonoursDisruptionBudgets(t *testing.T) {
	const R = protocol.StateRunning
	web := withStrategy(workload("web", 2, "web:1"), "Recreate", "", "")
	web.PodLabels = map[string]string{"app": "web"}
	pdb := func(name, min, max string, labels map[string]string) desired.DisruptionBudget {
		return desired.DisruptionBudget{Meta: desired.Meta{Name: name}, Selector: &desired.LabelSelector{MatchLabels: labels}, MinAvailable: min, MaxUnavailable: max}
	}
	app := map[string]string{"app": "web"}
	two := []protocol.Replica{rep("a", web, R, time.Hour), rep("b", web, R, time.Hour)}
	three := web
	three.Replicas = 3
	always := func(b desired.DisruptionBudget) desired.DisruptionBudget { b.AlwaysAllowUnhealthy = true; return b }
	for _, tc := range []struct {
		name    string
		budgets []desired.DisruptionBudget
		reps    []protocol.Replica
		w       desired.Workload
		want    string
	}{
		{"no budget: both go", nil, two, web, "[stop a@n1 stop b@n1]"},
		{"minAvailable 1: one goes, the other waits", []desired.DisruptionBudget{pdb("web", "1", "", app)}, two, web,
			"[pending web×1: drain of node n1 waits: PodDisruptionBudget web allows no more disruption (1 ready pods wanted) stop b@n1]"},
		{"maxUnavailable 0: none goes", []desired.DisruptionBudget{pdb("web", "", "0", app)}, two, web,
			"[pending web×2: drain of node n1 waits: PodDisruptionBudget web allows no more disruption (2 ready pods wanted)]"},
		{"minAvailable 50%: one goes", []desired.DisruptionBudget{pdb("web", "50%", "", app)}, two, web,
			"[pending web×1: drain of node n1 waits: PodDisruptionBudget web allows no more disruption (1 ready pods wanted) stop b@n1]"},
		{"a budget not met keeps even a replica that is not ready (IfHealthyBudget)", []desired.DisruptionBudget{pdb("web", "", "0", app)},
			[]protocol.Replica{rep("a", web, R, time.Hour), notReady(rep("b", web, R, time.Hour))}, web,
			"[pending web×1: drain of node n1 waits: PodDisruptionBudget web allows no more disruption (2 ready pods wanted) " +
				"pending web×1: drain of node n1 waits: PodDisruptionBudget web is not met (2 ready pods wanted), so not even a pod that is not ready goes (unhealthyPodEvictionPolicy IfHealthyBudget)]"},
		{"AlwaysAllow: a replica that is not ready goes", []desired.DisruptionBudget{always(pdb("web", "", "0", app))},
			[]protocol.Replica{rep("a", web, R, time.Hour), notReady(rep("b", web, R, time.Hour))}, web,
			"[pending web×1: drain of node n1 waits: PodDisruptionBudget web allows no more disruption (2 ready pods wanted) stop b@n1]"},
		{"a budget met lets a replica that is not ready go", []desired.DisruptionBudget{pdb("web", "", "1", app)},
			[]protocol.Replica{rep("a", three, R, time.Hour), rep("b", three, R, time.Hour), notReady(rep("c", three, R, time.Hour))}, three,
			"[pending web×2: drain of node n1 waits: PodDisruptionBudget web allows no more disruption (2 ready pods wanted) stop c@n1]"},
		{"a budget selecting other pods", []desired.DisruptionBudget{pdb("db", "", "0", map[string]string{"app": "db"})}, two, web, "[stop a@n1 stop b@n1]"},
		{"a budget of another namespace", []desired.DisruptionBudget{pdb("shop/web", "", "0", app)}, two, web, "[stop a@n1 stop b@n1]"},
		{"no selector selects nothing", []desired.DisruptionBudget{{Meta: desired.Meta{Name: "web"}, MaxUnavailable: "0"}}, two, web, "[stop a@n1 stop b@n1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := state(tc.w)
			st.Budgets = tc.budgets
			in := Input{Now: t0, NodeGrace: grace, Desired: st, Nodes: nodes(node("n1", tc.reps...), node("n2")),
				Draining: map[string]bool{"n1": true}, Cordoned: map[string]bool{"n1": true}}
			res := compute(in)
			if len(res.Starts) != 0 {
				t.Errorf("starts %v: Recreate replaces drained replicas once they are gone", summary(res))
			}
			if got := fmt.Sprint(summary(res)); got != tc.want {
				t.Fatalf("%s\nwant %s", got, tc.want)
			}
		})
	}
	// Once one is gone, its replacement starts while the other waits (a
	// Recreate workload is not held back by drained replicas).
	st := state(web)
	st.Budgets = []desired.DisruptionBudget{pdb("web", "1", "", app)}
	drain := Input{Now: t0, NodeGrace: grace, Desired: st, Nodes: nodes(node("n1", two[1]), node("n2")),
		Draining: map[string]bool{"n1": true}, Cordoned: map[string]bool{"n1": true}}
	if got := fmt.Sprint(summary(compute(drain))); got != "[pending web×1: drain of node n1 waits: PodDisruptionBudget web allows no more disruption (1 ready pods wanted) start web@n2]" {
		t.Fatalf("the second pass: %s", got)
	}
	// A new template replaces pods whatever the budget says, drained or not.
	v2 := withStrategy(workload("web", 2, "web:2"), "Recreate", "", "")
	v2.PodLabels = app
	st = state(v2)
	st.Budgets = []desired.DisruptionBudget{pdb("web", "", "0", app)}
	res := compute(Input{Now: t0, NodeGrace: grace, Desired: st, Nodes: nodes(node("n1", two...), node("n2")),
		Draining: map[string]bool{"n1": true}, Cordoned: map[string]bool{"n1": true}})
	if got := fmt.Sprint(summary(res)); got != "[stop a@n1 stop b@n1]" {
		t.Fatalf("a rollout under a budget: %s", got)
	}
}
