package reconciler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// Workloads of another namespace get replica IDs from their own names
// (valid container IDs and host names), and a Job's pods are reported
// under job/NAMESPACE/NAME.
func TestReplicaIDsInNamespaces(t *testing.T) {
	web := workload("shop/web", 1, "web:1")
	j := migrate
	j.Name = "shop/migrate"
	st := state(web)
	st.Jobs = []desired.Job{j}
	res := compute(Input{Now: t0, NodeGrace: grace, Desired: st, Nodes: nodes(node("n1"))})
	var got []string
	for _, s := range res.Starts {
		got = append(got, s.Workload)
		if strings.Contains(s.ReplicaID, "/") || !strings.HasPrefix(s.ReplicaID, desired.ShortName(strings.TrimPrefix(s.Workload, "job/"))+"-") {
			t.Errorf("%s: replica ID %q", s.Workload, s.ReplicaID)
		}
	}
	if fmt.Sprint(got) != "[job/shop/migrate job/shop/migrate shop/web]" {
		t.Fatalf("starts %v", got)
	}
}

// A pod (anti-)affinity term looks at the pods of its own namespace,
// unless it names others or selects them by their labels.
func TestAffinityNamespaces(t *testing.T) {
	labels := map[string]string{"app": "web"}
	apart := func(name string, term desired.AntiAffinityTerm) desired.Workload {
		w := workload(name, 1, "web:1")
		w.PodLabels = labels
		term.MatchLabels = labels
		w.Pod.AntiAffinity = []desired.AntiAffinityTerm{term}
		w.Hash = w.Pod.Hash()
		return w
	}
	def := apart("web", desired.AntiAffinityTerm{})
	running := nodes(node("n1", rep("web-1", def, protocol.StateRunning, 0)))
	for _, tc := range []struct {
		name string
		term desired.AntiAffinityTerm
		want string
	}{
		{"its own namespace", desired.AntiAffinityTerm{}, "[start shop/web@n1]"},
		{"namespaces named", desired.AntiAffinityTerm{Namespaces: []string{"default"}}, "[pending shop/web×1: 0/1 nodes fit: 1 anti-affinity (kubernetes.io/hostname)]"},
		{"every namespace", desired.AntiAffinityTerm{NamespaceSelector: &desired.LabelSelector{}}, "[pending shop/web×1: 0/1 nodes fit: 1 anti-affinity (kubernetes.io/hostname)]"},
		{"namespaces by label", desired.AntiAffinityTerm{NamespaceSelector: &desired.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}, "[start shop/web@n1]"},
		{"namespaces by name label", desired.AntiAffinityTerm{NamespaceSelector: &desired.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "default"}}}, "[pending shop/web×1: 0/1 nodes fit: 1 anti-affinity (kubernetes.io/hostname)]"},
	} {
		st := state(def, apart("shop/web", tc.term))
		st.Namespaces = []desired.Namespace{{Meta: desired.Meta{Name: "shop", Labels: map[string]string{"team": "a"}}}}
		if got := fmt.Sprint(summary(compute(Input{Now: t0, NodeGrace: grace, Desired: st, Nodes: running}))); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
