package reconciler

import (
	"maps"
	"sort"
	"strings"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/schedule"
)

// PoolNodes is the nodes as the pool step sees them (pure): each node's
// pool (its PoolLabel), readiness, drain, what it has, the larger of its
// requested cpu and memory shares, whether its replicas would fit on the
// other nodes (computed only for the pools' nodes under their threshold),
// and whether it is empty but for DaemonSets' replicas: nothing else
// reported, stopping ones included, nor started and not reported yet. A
// node that holds a claim's local volume, or runs a Job's pod, never fits
// elsewhere: scaling it down would strand the volume or lose the Job's
// work.
func PoolNodes(in Input, live *Live, pools []desired.NodePool) []PoolNode {
	if len(pools) == 0 {
		return nil
	}
	threshold := map[string]float64{} // pools that scale down: only their nodes need FitsElsewhere
	for _, p := range pools {
		if p.ScaleDown {
			threshold[p.Name] = p.UtilizationThreshold
		}
	}
	daemon := map[string]bool{}
	byName := map[string]desired.Workload{}
	if in.Desired != nil {
		for _, w := range in.Desired.Workloads {
			byName[w.Name] = w
			daemon[w.Name] = w.Kind == "DaemonSet"
		}
	}
	busy := map[string]bool{} // nodes with a replica that is no DaemonSet's
	for _, a := range in.Assignments {
		if !daemon[a.Workload] {
			busy[a.Node] = true
		}
	}
	for name, v := range in.Nodes {
		for _, r := range v.Replicas {
			if !daemon[r.Workload] {
				busy[name] = true
			}
		}
	}
	nodes := scheduleNodes(in, live)
	out := make([]PoolNode, 0, len(nodes))
	for i, n := range nodes {
		v := in.Nodes[n.Name]
		pn := PoolNode{Name: n.Name, Pool: v.Labels[PoolLabel], Ready: n.Ready, Draining: in.Draining[n.Name], Utilization: utilization(n), Empty: !busy[n.Name],
			CPUMilli: v.Allocatable.CPUMilli, MemoryBytes: v.Allocatable.MemoryBytes, Extra: v.Allocatable.Extra, Labels: v.Labels, Taints: v.Taints}
		if t, ok := threshold[pn.Pool]; ok && pn.Ready && !pn.Draining && pn.Utilization < t && len(n.Volumes) == 0 {
			pn.FitsElsewhere = fitsElsewhere(nodes, i, byName, daemon, in.Desired)
		}
		out = append(out, pn)
	}
	return out
}

// utilization is the larger of a node's requested cpu and memory shares.
func utilization(n schedule.Node) float64 {
	u := 0.0
	if a := n.Allocatable.CPUMilli; a > 0 {
		u = float64(n.Requested.CPUMilli) / float64(a)
	}
	if a := n.Allocatable.MemoryBytes; a > 0 {
		u = max(u, float64(n.Requested.MemoryBytes)/float64(a))
	}
	return u
}

// fitsElsewhere reports whether the replicas of nodes[i] (but DaemonSets')
// would all be placed on the other ready, schedulable nodes, as the
// scheduler would place them, largest first.
func fitsElsewhere(nodes []schedule.Node, i int, byName map[string]desired.Workload, daemon map[string]bool, st *desired.State) bool {
	type move struct {
		pod   schedule.Pod
		count int
	}
	var moves []move
	for name, c := range nodes[i].Workloads {
		if c == 0 || daemon[name] {
			continue
		}
		w, ok := byName[name]
		if !ok || strings.HasPrefix(name, desired.ReservedNamespace+"/") {
			return false // a Job's pod, or one the revision no longer has
		}
		moves = append(moves, move{schedPod(w, st), c})
	}
	if len(moves) == 0 {
		return true
	}
	var others []schedule.Node // copies: placing on them must not touch nodes
	for j, n := range nodes {
		if j == i || !n.Ready || n.Cordoned {
			continue
		}
		n.Workloads = maps.Clone(n.Workloads)
		n.HostPorts = maps.Clone(n.HostPorts)
		if n.HostPorts == nil {
			n.HostPorts = map[string]bool{}
		}
		n.ExtraRequested = maps.Clone(n.ExtraRequested)
		others = append(others, n)
	}
	sort.Slice(moves, func(a, b int) bool {
		ra, rb := moves[a].pod.Requests, moves[b].pod.Requests
		if ra.CPUMilli != rb.CPUMilli {
			return ra.CPUMilli > rb.CPUMilli
		}
		return moves[a].pod.Workload < moves[b].pod.Workload
	})
	for _, m := range moves {
		res := schedule.Place(m.pod, others, m.count, schedule.BinPack)
		if len(res.Nodes) < m.count {
			return false
		}
		for _, name := range res.Nodes {
			for k := range others {
				if others[k].Name == name {
					take(&others[k], m.pod)
				}
			}
		}
	}
	return true
}
