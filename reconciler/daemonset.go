package reconciler

import (
	"fmt"
	"slices"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/schedule"
)

// daemonNodes are the nodes a DaemonSet's pod may go to, sorted: ready,
// matching its node selector and required node affinity, with no
// NoSchedule or NoExecute taint it does not tolerate. Cordoned and
// draining nodes keep theirs, as Kubernetes' DaemonSet pods tolerate
// unschedulable nodes and kubectl drain leaves them.
func daemonNodes(in Input, live *Live, w desired.Workload) []string {
	var out []string
	for name, n := range in.Nodes {
		if !live.Ready[name] {
			continue
		}
		node := schedule.Node{Name: name, Ready: true, Labels: n.Labels, Taints: n.Taints}
		if schedule.StaticFit(schedule.Pod{NodeSelector: w.Pod.NodeSelector, NodeAffinity: w.Pod.NodeAffinity, Tolerations: w.Pod.Tolerations}, &node) == "" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// daemonSet keeps one replica of a DaemonSet on every node its pod may go
// to and none elsewhere. A new template replaces the old one node by node
// (RollingUpdate): with maxSurge the new replica starts beside the old and
// the old one stops once the new one is ready; without, the old one stops
// first, while fewer than maxUnavailable nodes lack a ready replica.
// OnDelete leaves old replicas until they go.
func (c *pass) daemonSet(p workloadPass) {
	w := p.w
	nodes := daemonNodes(c.in, c.live, w)
	c.res.Daemons[w.Name] = len(nodes)
	eligible := map[string]bool{}
	for _, n := range nodes {
		eligible[n] = true
	}
	type onNode struct{ cur, old []replica }
	per := map[string]*onNode{}
	for _, r := range p.replicas {
		switch {
		case r.gone():
			continue
		case r.State == protocol.StateExited || r.State == protocol.StateFailed:
			c.stopEnded(r)
			continue
		case !eligible[r.node]:
			if !r.held && !r.pending {
				c.res.Stops = append(c.res.Stops, stop(r, "node "+r.node+" is not one of the DaemonSet's"))
			}
			continue
		}
		on := per[r.node]
		if on == nil {
			on = &onNode{}
			per[r.node] = on
		}
		if r.SpecHash == w.Hash {
			on.cur = append(on.cur, r)
		} else {
			on.old = append(on.old, r)
		}
	}
	surge := intOrPercent(w.Strategy.MaxSurge, len(nodes), true)
	maxUnavailable := intOrPercent(w.Strategy.MaxUnavailable, len(nodes), true)
	if surge == 0 && maxUnavailable == 0 {
		maxUnavailable = 1
	}
	ready := func(rs []replica) bool {
		return slices.ContainsFunc(rs, func(r replica) bool {
			return r.State == protocol.StateRunning && available(r, w, c.in.ReadySince, c.in.Now)
		})
	}
	unavailable := 0
	for _, n := range nodes {
		if on := per[n]; on == nil || (!ready(on.cur) && !ready(on.old)) {
			unavailable++
		}
	}
	var starts []string
	for _, n := range nodes {
		on := per[n]
		if on == nil {
			starts = append(starts, n)
			continue
		}
		for _, extra := range on.cur[min(1, len(on.cur)):] {
			if !extra.pending && !extra.held {
				c.res.Stops = append(c.res.Stops, stop(extra, "one replica a node"))
			}
		}
		if len(on.old) == 0 || w.Strategy.Type == "OnDelete" {
			if len(on.cur) == 0 && len(on.old) == 0 {
				starts = append(starts, n)
			}
			continue
		}
		switch {
		case ready(on.cur):
			for _, o := range on.old {
				if !o.held {
					c.res.Stops = append(c.res.Stops, stop(o, fmt.Sprintf("replaced by template %s on node %s", w.Hash, n)))
				}
			}
		case len(on.cur) > 0:
			// The new one is on its way.
		case surge > 0:
			starts = append(starts, n)
		case unavailable < maxUnavailable || !ready(on.old):
			if ready(on.old) {
				unavailable++
			}
			for _, o := range on.old {
				if !o.held {
					c.res.Stops = append(c.res.Stops, stop(o, fmt.Sprintf("replaced by template %s on node %s (maxUnavailable %d)", w.Hash, n, maxUnavailable)))
				}
			}
		}
	}
	if len(starts) == 0 {
		return
	}
	if len(w.Pod.Waiting) > 0 {
		c.res.Pending = append(c.res.Pending, Pending{Workload: w.Name, Count: len(starts), Reason: waitingReason(w.Pod)})
		return
	}
	pod := p.st.ResolvePod(w.Pod)
	sp := schedPod(w, p.st)
	var unplaced []string
	for i, n := range starts {
		sp.Node = n // this node only
		res := c.cluster().sc.Place(sp, 1)
		if len(res.Nodes) == 0 {
			unplaced = append(unplaced, n+": "+res.Reason)
			continue
		}
		id := c.ids.newReplicaID(w, c.in.Now, i)
		c.res.Starts = append(c.res.Starts, Start{Node: n, Workload: w.Name, ReplicaID: id,
			Spec:   &protocol.ReplicaSpec{ID: id, Workload: w.Name, SpecHash: w.Hash, Pod: pod},
			Reason: fmt.Sprintf("DaemonSet %s on node %s (template %s)", w.Name, n, w.Hash)})
	}
	if len(unplaced) > 0 {
		c.res.Pending = append(c.res.Pending, Pending{Workload: w.Name, Count: len(unplaced), Reason: fmt.Sprintf("does not fit on its node (%s)", unplaced[0])})
	}
}
