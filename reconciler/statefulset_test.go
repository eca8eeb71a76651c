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
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := compute(Input{Now: t0, NodeGrace: grace, Desired: state(tc.w), Nodes: nodes(node("n1", tc.reps...))})
			var got []string
			for _, s := range res.Stops {
				k, _ := ordinalOf(tc.w, s.ReplicaID)
				got = append(got, fmt.Sprintf("stop db-%d@%s", k, s.Node))
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
