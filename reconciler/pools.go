package reconciler

import (
	"fmt"
	"sort"
	"strings"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/schedule"
)

// PoolNeed is what pending replicas ask of one NodePool: Add machines of
// its template, for the replicas of Workloads.
type PoolNeed struct {
	Pool      string
	Add       int
	Workloads map[string]int // replicas each new machine set takes, by workload
}

// Unserved are replicas of a workload that no pool can take, and why.
type Unserved struct {
	Workload string
	Count    int
	Reason   string
}

// SizePools decides which NodePools' machines the pending replicas need
// (the scale-up sizing; pure). The replicas
// pending because no node fits them (not those of a refused template, nor
// those waiting for a drain) are placed by the real scheduler (requests,
// node selectors and affinity, taints, host ports, spread) onto new
// machines of each pool's template, adding machines while the pool stays
// within max (have: the machines it has and has asked for). Workloads go
// in name order, pools in name order: a workload's replicas go to the first
// pool whose template takes them (two pools that could both serve: the
// first by name). The machines a pool asked for that have not joined yet
// (joining) are filled first: no machine is asked for twice while one
// joins. Replicas no pool can take are returned apart with why, so that no
// machine is asked for that would not help them.
func SizePools(pools []desired.NodePool, have, joining map[string]int, pending []Pending, st *desired.State) ([]PoolNeed, []Unserved) {
	if st == nil || len(pools) == 0 {
		return nil, nil
	}
	pools = append([]desired.NodePool(nil), pools...)
	sort.Slice(pools, func(i, j int) bool { return pools[i].Name < pools[j].Name })
	byName := map[string]desired.Workload{}
	for _, w := range st.Workloads {
		byName[w.Name] = w
	}
	ps := make([]*poolSizing, len(pools))
	for i, p := range pools {
		ps[i] = &poolSizing{p: p, takes: map[string]int{}, joining: joining[p.Name]}
		for j := range joining[p.Name] {
			ps[i].nodes = append(ps[i].nodes, templateNode(p, j))
		}
	}
	var unserved []Unserved
	sorted := append([]Pending(nil), pending...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Workload < sorted[j].Workload })
	for _, pe := range sorted {
		w, ok := byName[pe.Workload]
		if !ok || pe.Code != "" || pe.Count <= 0 || !pe.Unplaced {
			continue
		}
		pod := schedPod(w, st)
		left := pe.Count
		var why []string
		for _, p := range ps {
			placed, reason := p.place(pod, left, have[p.p.Name])
			left -= placed
			if placed > 0 {
				p.takes[w.Name] += placed
			}
			if reason != "" {
				why = append(why, fmt.Sprintf("NodePool %s: %s", p.p.Name, reason))
			}
			if left == 0 {
				break
			}
		}
		if left > 0 {
			unserved = append(unserved, Unserved{Workload: w.Name, Count: left, Reason: strings.Join(why, "; ")})
		}
	}
	var needs []PoolNeed
	for _, p := range ps {
		if add := len(p.nodes) - p.joining; add > 0 {
			needs = append(needs, PoolNeed{Pool: p.p.Name, Add: add, Workloads: p.takes})
		}
	}
	return needs, unserved
}

// poolSizing is one pool's new machines as SizePools fills them.
type poolSizing struct {
	p       desired.NodePool
	nodes   []schedule.Node // its joining and new machines, as placement sees them
	joining int             // the first nodes: machines asked for, not joined yet
	takes   map[string]int  // replicas placed on them, by workload
}

// place puts up to n replicas of pod on the pool's new machines, adding
// machines while it may: it returns how many it placed, and why it could
// not place the rest ("" when it placed them all).
func (p *poolSizing) place(pod schedule.Pod, n, have int) (int, string) {
	placed := 0
	for placed < n {
		res := schedule.Place(pod, p.nodes, n-placed, schedule.BinPack)
		for _, name := range res.Nodes {
			for i := range p.nodes {
				if p.nodes[i].Name == name {
					take(&p.nodes[i], pod)
				}
			}
		}
		placed += len(res.Nodes)
		if placed == n {
			return placed, ""
		}
		if have+len(p.nodes)-p.joining >= p.p.Max {
			return placed, fmt.Sprintf("at its max of %d machines", p.p.Max)
		}
		fresh := templateNode(p.p, len(p.nodes))
		if r := schedule.Place(pod, []schedule.Node{fresh}, 1, schedule.BinPack); len(r.Nodes) == 0 {
			return placed, "a new machine would not fit it: " + r.Reason
		}
		p.nodes = append(p.nodes, fresh)
	}
	return placed, ""
}

// templateNode is a new machine of pool p as placement sees it.
func templateNode(p desired.NodePool, i int) schedule.Node {
	return schedule.Node{Name: fmt.Sprintf("%s-new-%d", p.Name, i+1), Ready: true, Labels: p.Labels, Taints: p.Taints,
		Allocatable:      schedule.Resources{CPUMilli: p.Capacity.CPUMilli, MemoryBytes: p.Capacity.MemoryBytes},
		ExtraAllocatable: p.Capacity.Extra, Workloads: map[string]int{}, HostPorts: map[string]bool{}}
}

// take adds pod's requests to node n.
func take(n *schedule.Node, pod schedule.Pod) {
	n.Requested.CPUMilli += pod.Requests.CPUMilli
	n.Requested.MemoryBytes += pod.Requests.MemoryBytes
	for k, v := range pod.Extra {
		if n.ExtraRequested == nil {
			n.ExtraRequested = map[string]int64{}
		}
		n.ExtraRequested[k] += v
	}
	for _, hp := range pod.HostPorts {
		n.HostPorts[hp] = true
	}
	n.Workloads[pod.Workload]++
	n.Total++
}
