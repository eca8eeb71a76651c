package reconciler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

func statefulSet(replicas int, image string, sf desired.Stateful) desired.Workload {
	w := workload("db", replicas, image)
	w.Kind = "StatefulSet"
	w.Pod.Volumes = []desired.Volume{{Name: "data", Claim: &desired.ClaimMount{Claim: "data-db", PerOrdinal: true}}}
	w.Hash = w.Pod.Hash()
	w.Stateful = &sf
	return w
}

// ord is a live replica of ordinal k of w.
func ord(w desired.Workload, k int, st protocol.ReplicaState) protocol.Replica {
	return rep(fmt.Sprintf("db-%d-%s-abcde", k, w.Hash[:8]), w, st, time.Hour)
}

func TestStatefulSet(t *testing.T) {
	const R = protocol.StateRunning
	v1 := statefulSet(3, "db:1", desired.Stateful{})
	v2 := statefulSet(3, "db:2", desired.Stateful{})
	par := statefulSet(3, "db:1", desired.Stateful{Parallel: true})
	part := statefulSet(3, "db:2", desired.Stateful{Partition: 1})
	stopping := ord(v1, 2, R)
	stopping.State = protocol.StateStopping
	going := func(r protocol.Replica) protocol.Replica { r.State = protocol.StateStopping; return r }
	parV2 := statefulSet(3, "db:2", desired.Stateful{Parallel: true})
	for _, tc := range []struct {
		name string
		w    desired.Workload
		reps []protocol.Replica
		want string
	}{
		{"OrderedReady: ordinal 0 first", v1, nil, "[start db@n1 (0)]"},
		{"then 1 once 0 is ready", v1, []protocol.Replica{ord(v1, 0, R)}, "[start db@n1 (1)]"},
		{"not while 0 is not ready", v1, []protocol.Replica{notReady(ord(v1, 0, R))}, "[]"},
		{"a missing ordinal below others comes back", v1, []protocol.Replica{ord(v1, 0, R), ord(v1, 2, R)}, "[start db@n1 (1)]"},
		{"Parallel: all at once", par, nil, "[start db@n1 (0) start db@n1 (1) start db@n1 (2)]"},
		{"scale down: the highest first, one at a time", statefulSet(1, "db:1", desired.Stateful{}),
			[]protocol.Replica{ord(v1, 0, R), ord(v1, 1, R), ord(v1, 2, R)}, "[stop db-2@n1]"},
		{"an ordinal still going is not started again", v1, []protocol.Replica{ord(v1, 0, R), ord(v1, 1, R), stopping}, "[]"},
		{"a new template: the highest ordinal goes first", v2,
			[]protocol.Replica{ord(v1, 0, R), ord(v1, 1, R), ord(v1, 2, R)}, "[stop db-2@n1]"},
		{"then the next, once the new one is ready", v2,
			[]protocol.Replica{ord(v1, 0, R), ord(v1, 1, R), ord(v2, 2, R)}, "[stop db-1@n1]"},
		{"not while the new one is not ready", v2,
			[]protocol.Replica{ord(v1, 0, R), ord(v1, 1, R), notReady(ord(v2, 2, R))}, "[]"},
		{"partition: ordinals below it keep the old template", part,
			[]protocol.Replica{ord(v1, 0, R), ord(part, 1, R), ord(part, 2, R)}, "[]"},
		{"two replicas of one ordinal: one stops", v1, []protocol.Replica{ord(v1, 0, R), rep("db-0-ffffffff-zzzzz", v1, R, time.Minute)}, "[stop db-0@n1 start db@n1 (1)]"},
		{"scale down: the next only once the last is gone", statefulSet(1, "db:1", desired.Stateful{}),
			[]protocol.Replica{ord(v1, 0, R), ord(v1, 1, R), going(ord(v1, 2, R))}, "[]"},
		{"scale down: not while an ordinal is not ready", statefulSet(1, "db:1", desired.Stateful{}),
			[]protocol.Replica{notReady(ord(v1, 0, R)), ord(v1, 1, R), ord(v1, 2, R)}, "[]"},
		{"Parallel scale down: all at once", statefulSet(1, "db:1", desired.Stateful{Parallel: true}),
			[]protocol.Replica{ord(par, 0, R), ord(par, 1, R), ord(par, 2, R)}, "[stop db-1@n1 stop db-2@n1]"},
		{"Parallel rollout: waits for the new one to be ready", parV2,
			[]protocol.Replica{ord(par, 0, R), ord(par, 1, R), notReady(ord(parV2, 2, R))}, "[]"},
		{"a replica going that is no ordinal blocks nothing", v1, []protocol.Replica{going(rep("other-1", v1, R, time.Minute))}, "[start db@n1 (0)]"},
		{"a replica that is no ordinal stops", v1, []protocol.Replica{ord(v1, 0, R), rep("other-1", v1, R, time.Minute)}, "[stop other@n1 start db@n1 (1)]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := compute(Input{Now: t0, NodeGrace: grace, Desired: state(tc.w), Nodes: nodes(node("n1", tc.reps...))})
			var got []string
			for _, s := range res.Stops {
				name := "other"
				if k, ok := ordinalOf(tc.w, s.ReplicaID); ok {
					name = fmt.Sprintf("db-%d", k)
				}
				got = append(got, fmt.Sprintf("stop %s@%s", name, s.Node))
			}
			for _, s := range res.Starts {
				k, ok := ordinalOf(tc.w, s.ReplicaID)
				p := s.Spec.Pod
				if !ok || p.Hostname != fmt.Sprintf("db-%d", k) || p.Volumes[0].Claim.Claim != fmt.Sprintf("data-db-%d", k) || p.Volumes[0].Claim.PerOrdinal {
					t.Errorf("start %s: hostname %q, claim %+v", s.ReplicaID, p.Hostname, p.Volumes[0].Claim)
				}
				got = append(got, fmt.Sprintf("start %s@%s (%d)", s.Workload, s.Node, k))
			}
			if s := fmt.Sprint(got); strings.ReplaceAll(s, "[]", "") != strings.ReplaceAll(tc.want, "[]", "") {
				t.Fatalf("%s, want %s", s, tc.want)
			}
		})
	}
}

// A drain (or a NoExecute taint) moves ordinals whatever the strategy,
// the highest first, one at a time, except one whose claim is on the
// draining node: it could start nowhere else.
func TestStatefulSetDrain(t *testing.T) {
	const R = protocol.StateRunning
	for _, tc := range []struct {
		name  string
		w     desired.Workload
		claim string // on n1
		want  string
	}{
		{"the highest ordinal moves first", statefulSet(2, "db:1", desired.Stateful{}), "", "[stop db-1]"},
		{"OnDelete too", withStrategy(statefulSet(2, "db:1", desired.Stateful{}), "OnDelete", "", ""), "", "[stop db-1]"},
		{"below the partition too", statefulSet(2, "db:1", desired.Stateful{Partition: 5}), "", "[stop db-1]"},
		{"Parallel: all", statefulSet(2, "db:1", desired.Stateful{Parallel: true}), "", "[stop db-0 stop db-1]"},
		{"an ordinal whose claim is on the node stays", statefulSet(2, "db:1", desired.Stateful{}), "data-db-1",
			"[pending: ordinal 1 stays on node n1, which holds its claim data-db-1 stop db-0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n1 := node("n1", ord(tc.w, 0, R), ord(tc.w, 1, R))
			if tc.claim != "" {
				n1.Volumes = []string{tc.claim}
			}
			res := compute(Input{Now: t0, NodeGrace: grace, Desired: state(tc.w), Nodes: nodes(n1, node("n2")),
				Draining: map[string]bool{"n1": true}, Cordoned: map[string]bool{"n1": true}})
			var got []string
			for _, p := range res.Pending {
				got = append(got, "pending: "+p.Reason)
			}
			for _, s := range res.Stops {
				k, _ := ordinalOf(tc.w, s.ReplicaID)
				got = append(got, fmt.Sprintf("stop db-%d", k))
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("%v, want %s", got, tc.want)
			}
		})
	}
}

// An ordinal's claim, once a node holds it, keeps the ordinal there.
func TestStatefulSetClaimStaysWithOrdinal(t *testing.T) {
	w := statefulSet(2, "db:1", desired.Stateful{})
	n1, n2 := node("n1", ord(w, 0, protocol.StateRunning)), node("n2")
	n1.Volumes = []string{"data-db-0"}
	n2.Volumes = []string{"data-db-1"}
	res := compute(Input{Now: t0, NodeGrace: grace, Desired: state(w), Nodes: nodes(n1, n2)})
	if len(res.Starts) != 1 || res.Starts[0].Node != "n2" {
		t.Fatalf("starts %+v, want ordinal 1 on n2, which holds data-db-1", res.Starts)
	}
}
