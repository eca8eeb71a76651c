package schedule

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/batonhq/baton/desired"
)

const gi = 1 << 30

func node(name string, mods ...func(*Node)) Node {
	n := Node{Name: name, Ready: true, Allocatable: Resources{CPUMilli: 4000, MemoryBytes: 8 * gi}}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func labels(kv ...string) func(*Node) {
	return func(n *Node) {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func holding(w string, k int) func(*Node) {
	return func(n *Node) {
		if n.Workloads == nil {
			n.Workloads = map[string]int{}
		}
		n.Workloads[w] += k
		n.Total += k
	}
}

func tainted(key, value, effect string) func(*Node) {
	return func(n *Node) { n.Taints = append(n.Taints, desired.Taint{Key: key, Value: value, Effect: effect}) }
}

func requested(cpu, mem int64) func(*Node) {
	return func(n *Node) { n.Requested = Resources{CPUMilli: cpu, MemoryBytes: mem} }
}

func TestPlace(t *testing.T) {
	web := Pod{Workload: "web"}
	self := map[string]bool{"web": true}
	tests := []struct {
		name     string
		pod      Pod
		nodes    []Node
		n        int
		strategy Strategy
		want     []string
		unplaced int
		reason   string
	}{
		{name: "no nodes", pod: web, n: 2, unplaced: 2, reason: "no nodes"},
		{name: "node affinity: one required term must hold (In, Gt), fields by name",
			pod: Pod{Workload: "web", NodeAffinity: &desired.NodeAffinity{Required: []desired.NodeSelectorTerm{
				{MatchExpressions: []desired.Requirement{{Key: "gpu", Operator: "In", Values: []string{"a100", "h100"}}, {Key: "cores", Operator: "Gt", Values: []string{"8"}}}},
				{MatchFields: []desired.Requirement{{Key: "metadata.name", Operator: "In", Values: []string{"d"}}}}}}},
			nodes: []Node{node("a", labels("gpu", "a100", "cores", "16")), node("b", labels("gpu", "a100", "cores", "4")), node("c", labels("gpu", "t4", "cores", "32")), node("d")},
			n:     2, want: []string{"a", "d"}},
		{name: "node affinity: preferred terms rank the nodes that fit",
			pod: Pod{Workload: "web", NodeAffinity: &desired.NodeAffinity{Preferred: []desired.PreferredSchedulingTerm{
				{Weight: 50, Preference: desired.NodeSelectorTerm{MatchExpressions: []desired.Requirement{{Key: "disk", Operator: "Exists"}}}}}}},
			nodes: []Node{node("a"), node("b", labels("disk", "ssd"))}, n: 1, want: []string{"b"}},
		{name: "taints: NoSchedule and NoExecute keep pods that do not tolerate them away",
			pod: web, nodes: []Node{node("a", tainted("gpu", "yes", "NoSchedule")), node("b", tainted("maint", "", "NoExecute")), node("c")},
			n: 2, want: []string{"c", "c"}},
		{name: "taints: tolerated (Equal, Exists, empty key) they are no obstacle",
			pod:   Pod{Workload: "web", Tolerations: []desired.Toleration{{Key: "gpu", Operator: "Equal", Value: "yes", Effect: "NoSchedule"}, {Key: "maint", Operator: "Exists"}}},
			nodes: []Node{node("a", tainted("gpu", "yes", "NoSchedule")), node("b", tainted("maint", "", "NoExecute")), node("c", tainted("gpu", "no", "NoSchedule"))},
			n:     3, want: []string{"a", "b", "a"}, unplaced: 0},
		{name: "taints: PreferNoSchedule is the last choice",
			pod: web, nodes: []Node{node("a", tainted("spot", "", "PreferNoSchedule")), node("b", requested(3500, 0))}, n: 1, want: []string{"b"}},
		{name: "pod affinity: required goes where the matching pods are",
			pod:   Pod{Workload: "web", Terms: []Term{{Affinity: true, Hard: true, Matches: map[string]bool{"cache": true}}}},
			nodes: []Node{node("a"), node("b", holding("cache", 1)), node("c")}, n: 2, want: []string{"b", "b"}},
		{name: "pod affinity: with nothing matching, a workload that matches itself starts anywhere, then stays together",
			pod:   Pod{Workload: "web", Terms: []Term{{Affinity: true, Hard: true, Matches: map[string]bool{"web": true}}}},
			nodes: []Node{node("a"), node("b")}, n: 3, want: []string{"a", "a", "a"}},
		{name: "pod affinity: with nothing matching and not itself, nowhere",
			pod:   Pod{Workload: "web", Terms: []Term{{Affinity: true, Hard: true, Matches: map[string]bool{"cache": true}}}},
			nodes: []Node{node("a")}, n: 1, unplaced: 1, reason: "0/1 nodes fit: 1 pod affinity (kubernetes.io/hostname)"},
		{name: "extra resources: advertised ones are counted, a node silent on ephemeral-storage is not held to it",
			pod:   Pod{Workload: "web", Extra: map[string]int64{"ephemeral-storage": 6 * gi}},
			nodes: []Node{node("a", func(n *Node) { n.ExtraAllocatable = map[string]int64{"ephemeral-storage": 10 * gi} }), node("b", requested(3000, 0))},
			n:     3, want: []string{"a", "b", "b"}},
		{name: "extra resources: an extended resource nobody advertises fits nowhere",
			pod: Pod{Workload: "web", Extra: map[string]int64{"google.com/tpu": 4}}, nodes: []Node{node("a")}, n: 1,
			unplaced: 1, reason: "0/1 nodes fit: 1 insufficient google.com/tpu"},
		{name: "even spread, ties by name", pod: web, nodes: []Node{node("b"), node("a")}, n: 4, want: []string{"a", "b", "a", "b"}},
		{name: "fewest of the workload first", pod: web, nodes: []Node{node("a", holding("web", 2)), node("b")}, n: 3, want: []string{"b", "b", "a"}},
		{name: "then the least requested", pod: web, nodes: []Node{node("a", requested(3000, 0)), node("b", requested(1000, 0))}, n: 1, want: []string{"b"}},
		{name: "not ready nodes are skipped", pod: web, nodes: []Node{node("a", func(n *Node) { n.Ready = false }), node("b")}, n: 2, want: []string{"b", "b"}},
		{
			name: "node selector", pod: Pod{Workload: "web", NodeSelector: map[string]string{"disk": "ssd"}},
			nodes: []Node{node("a", labels("disk", "hdd")), node("b", labels("disk", "ssd")), node("c")}, n: 2,
			want: []string{"b", "b"},
		},
		{
			name: "capacity counts the replicas placed in the same pass", pod: Pod{Workload: "web", Requests: Resources{MemoryBytes: 3 * gi}},
			nodes: []Node{node("a"), node("b", requested(0, 4*gi))}, n: 4,
			want: []string{"a", "b", "a"}, unplaced: 1, reason: "0/2 nodes fit: 2 insufficient memory",
		},
		{
			name: "reasons are counted per node", pod: Pod{Workload: "web", Requests: Resources{CPUMilli: 2000}, NodeSelector: map[string]string{"zone": "a"}},
			nodes: []Node{node("n1", labels("zone", "a"), requested(3000, 0)), node("n2", labels("zone", "a"), requested(2500, 0)), node("n3", labels("zone", "b"))}, n: 1,
			unplaced: 1, reason: "0/3 nodes fit: 2 insufficient cpu, 1 node selector mismatch",
		},
		{
			name: "a host port once per node", pod: Pod{Workload: "web", HostPorts: []string{"TCP/80"}},
			nodes: []Node{node("a"), node("b", func(n *Node) { n.HostPorts = map[string]bool{"TCP/80": true} }), node("c")}, n: 3,
			want: []string{"a", "c"}, unplaced: 1, reason: "0/3 nodes fit: 3 host port TCP/80 in use",
		},
		{
			name: "a claim's pods go where its volume is", pod: Pod{Workload: "db", Claims: []string{"data"}},
			nodes: []Node{node("a"), node("b", func(n *Node) { n.Volumes = map[string]bool{"data": true} })}, n: 2,
			want: []string{"b", "b"},
		},
		{
			name: "a new claim's replicas stay together", pod: Pod{Workload: "db", Claims: []string{"data"}},
			nodes: []Node{node("a"), node("b")}, n: 2, want: []string{"a", "a"},
		},
		{
			name: "spread across zones before nodes", pod: web,
			nodes: []Node{node("a1", labels(ZoneLabel, "a")), node("a2", labels(ZoneLabel, "a")), node("b1", labels(ZoneLabel, "b"))}, n: 3,
			want: []string{"a1", "b1", "a2"},
		},
		{
			name: "required anti-affinity: one per node", pod: Pod{Workload: "web", Terms: []Term{{Hard: true, Matches: self}}},
			nodes: []Node{node("a"), node("b", holding("web", 1)), node("c")}, n: 3,
			want: []string{"a", "c"}, unplaced: 1, reason: "0/3 nodes fit: 3 anti-affinity (kubernetes.io/hostname)",
		},
		{
			name: "hard topology spread with max skew 1", pod: Pod{Workload: "web", Terms: []Term{{TopologyKey: "zone", MaxSkew: 1, Hard: true, Matches: self}}},
			nodes: []Node{node("a", labels("zone", "x"), holding("web", 2)), node("b", labels("zone", "y"))}, n: 3,
			want: []string{"b", "b", "a"},
		},
		{
			name: "hard spread filters nodes without the label", pod: Pod{Workload: "web", Terms: []Term{{TopologyKey: "zone", MaxSkew: 1, Hard: true, Matches: self}}},
			nodes: []Node{node("a"), node("b", labels("zone", "y"))}, n: 1, want: []string{"b"},
		},
		{
			name: "preferred anti-affinity against another workload", pod: Pod{Workload: "web", Terms: []Term{{Weight: 100, Matches: map[string]bool{"cache": true}}}},
			nodes: []Node{node("a"), node("b", holding("cache", 1))}, n: 2, want: []string{"a", "a"},
		},
		{
			name: "bin-packing fills the fullest node that fits", pod: Pod{Workload: "web", Requests: Resources{CPUMilli: 1000}}, strategy: BinPack,
			nodes: []Node{node("a", requested(1000, 0)), node("b", requested(2000, 0)), node("c")}, n: 3,
			want: []string{"b", "b", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Place(tt.pod, tt.nodes, tt.n, tt.strategy)
			if !slices.Equal(got.Nodes, tt.want) || got.Unplaced != tt.unplaced || got.Reason != tt.reason {
				t.Fatalf("Place() = %v, unplaced %d %q; want %v, unplaced %d %q", got.Nodes, got.Unplaced, got.Reason, tt.want, tt.unplaced, tt.reason)
			}
			again := Place(tt.pod, tt.nodes, tt.n, tt.strategy)
			if !slices.Equal(got.Nodes, again.Nodes) {
				t.Fatalf("not deterministic: %v then %v", got.Nodes, again.Nodes)
			}
		})
	}
}

func ExamplePlace() {
	nodes := []Node{
		{Name: "node-a", Ready: true, Workloads: map[string]int{"web": 1}, Total: 1},
		{Name: "node-b", Ready: true},
		{Name: "node-c", Ready: true, Labels: map[string]string{"disk": "ssd"}},
	}
	fmt.Println(Place(Pod{Workload: "web"}, nodes, 4, SpreadOut).Nodes)
	r := Place(Pod{Workload: "db", NodeSelector: map[string]string{"disk": "nvme"}}, nodes, 1, SpreadOut)
	fmt.Println(r.Reason)
	// Output:
	// [node-b node-c node-a node-b]
	// 0/3 nodes fit: 3 node selector mismatch
}

func BenchmarkPlace(b *testing.B) {
	for _, size := range []int{10, 1000, 5000} {
		nodes := make([]Node, size)
		for i := range nodes {
			nodes[i] = Node{Name: fmt.Sprintf("node-%05d", i), Ready: true, Total: i % 7,
				Labels:      map[string]string{ZoneLabel: fmt.Sprint("zone-", i%3)},
				Allocatable: Resources{CPUMilli: 8000, MemoryBytes: 32 << 30}, Requested: Resources{CPUMilli: int64(i%8) * 500}}
		}
		pod := Pod{Workload: "web", Requests: Resources{CPUMilli: 100, MemoryBytes: 128 << 20}}
		b.Run(fmt.Sprintf("nodes=%d/replicas=10", size), func(b *testing.B) {
			for b.Loop() {
				Place(pod, nodes, 10, SpreadOut)
			}
		})
	}
}

// TestPlaceFastEqualsScan: the per-zone heaps choose exactly what scanning
// every node for every replica chooses, on random clusters.
func TestPlaceFastEqualsScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 500 {
		nodes := make([]Node, 1+rng.IntN(30))
		names := rng.Perm(len(nodes))
		for i := range nodes {
			nodes[i] = Node{Name: fmt.Sprintf("n%02d", names[i]), Ready: rng.IntN(10) > 0,
				Allocatable: Resources{CPUMilli: int64(rng.IntN(4)) * 1000, MemoryBytes: int64(rng.IntN(4)) * gi},
				Requested:   Resources{CPUMilli: int64(rng.IntN(3)) * 500, MemoryBytes: int64(rng.IntN(3)) * gi / 2},
				Workloads:   map[string]int{"web": rng.IntN(3)}, Total: rng.IntN(5)}
			if z := rng.IntN(4); z > 0 {
				nodes[i].Labels = map[string]string{ZoneLabel: fmt.Sprint("z", z)}
			}
			if rng.IntN(5) == 0 {
				nodes[i].HostPorts = map[string]bool{"TCP/80": true}
			}
		}
		pod := Pod{Workload: "web", Requests: Resources{CPUMilli: int64(rng.IntN(3)) * 250, MemoryBytes: int64(rng.IntN(3)) * gi / 4}}
		if rng.IntN(4) == 0 {
			pod.HostPorts = []string{"TCP/80"}
		}
		if rng.IntN(4) == 0 {
			pod.Claims = []string{"data"}
		}
		for _, s := range []Strategy{SpreadOut, BinPack} {
			n := rng.IntN(12)
			fast := Place(pod, nodes, n, s)
			scan := newPlacer(pod, nodes, s).placeScan(n, Result{})
			if !slices.Equal(fast.Nodes, scan.Nodes) || fast.Unplaced != scan.Unplaced || fast.Reason != scan.Reason {
				t.Fatalf("round %d, strategy %d: fast %v %d %q, scan %v %d %q", round, s, fast.Nodes, fast.Unplaced, fast.Reason, scan.Nodes, scan.Unplaced, scan.Reason)
			}
		}
	}
}

// cloneNodes copies nodes deeply enough for placements to be counted on
// the copy.
func cloneNodes(nodes []Node) []Node {
	out := make([]Node, len(nodes))
	for i, n := range nodes {
		n.Workloads = maps.Clone(n.Workloads)
		n.HostPorts = maps.Clone(n.HostPorts)
		n.Volumes = maps.Clone(n.Volumes)
		out[i] = n
	}
	return out
}

// TestClusterEqualsPlace: a pass's shared cluster, placing pod after pod
// (simple ones from its shape heaps), chooses exactly what Place chooses
// when each placement is counted on the nodes before the next pod, on
// random clusters with random pods.
func TestClusterEqualsPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	for round := range rounds {
		nodes := make([]Node, 1+rng.IntN(40))
		names := rng.Perm(len(nodes))
		for i := range nodes {
			nodes[i] = Node{Name: fmt.Sprintf("n%02d", names[i]), Ready: rng.IntN(10) > 0,
				Allocatable: Resources{CPUMilli: int64(rng.IntN(5)) * 1000, MemoryBytes: int64(rng.IntN(5)) * gi},
				Requested:   Resources{CPUMilli: int64(rng.IntN(3)) * 500, MemoryBytes: int64(rng.IntN(3)) * gi / 2},
				Workloads:   map[string]int{fmt.Sprint("w", rng.IntN(3)): rng.IntN(3)}, Total: rng.IntN(5)}
			labels := map[string]string{}
			if z := rng.IntN(4); z > 0 {
				labels[ZoneLabel] = fmt.Sprint("z", z)
			}
			if rng.IntN(2) == 0 {
				labels["disk"] = "ssd"
			}
			nodes[i].Labels = labels
		}
		for _, s := range []Strategy{SpreadOut, BinPack} {
			shared := NewCluster(cloneNodes(nodes), s)
			scan := cloneNodes(nodes)
			for step := range 8 {
				pod := Pod{Workload: fmt.Sprint("w", rng.IntN(4)),
					Requests: Resources{CPUMilli: int64(rng.IntN(3)) * 250, MemoryBytes: int64(rng.IntN(3)) * gi / 4}}
				if rng.IntN(3) == 0 {
					pod.NodeSelector = map[string]string{"disk": "ssd"}
				}
				if rng.IntN(6) == 0 {
					pod.HostPorts = []string{"TCP/80"}
				}
				n := rng.IntN(10)
				got := shared.Place(pod, n)
				want := Place(pod, scan, n, s)
				if !slices.Equal(got.Nodes, want.Nodes) || got.Unplaced != want.Unplaced || got.Reason != want.Reason {
					t.Fatalf("round %d, strategy %d, pod %d %+v: cluster %v %d %q, place %v %d %q", round, s, step, pod,
						got.Nodes, got.Unplaced, got.Reason, want.Nodes, want.Unplaced, want.Reason)
				}
				byName := map[string]int{}
				for i := range scan {
					byName[scan[i].Name] = i
				}
				for _, name := range want.Nodes { // counted on the nodes, as the cluster does
					n := &scan[byName[name]]
					n.Requested.CPUMilli += pod.Requests.CPUMilli
					n.Requested.MemoryBytes += pod.Requests.MemoryBytes
					n.Workloads[pod.Workload]++
					n.Total++
					for _, hp := range pod.HostPorts {
						if n.HostPorts == nil {
							n.HostPorts = map[string]bool{}
						}
						n.HostPorts[hp] = true
					}
				}
			}
		}
	}
}
