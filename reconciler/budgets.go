package reconciler

import (
	"fmt"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// budgets are the PodDisruptionBudgets of a pass: how many more ready
// replicas of the pods each selects a node drain may stop, worked out as
// Kubernetes' disruption controller does: the ready replicas, less those
// wanted healthy (minAvailable, or the workloads' count less
// maxUnavailable; percentages of that count, rounded up).
type budgets struct {
	list    []desired.DisruptionBudget
	allowed []int
	wanted  []int
}

func newBudgets(in Input, live *Live) *budgets {
	b := &budgets{}
	for _, pdb := range in.Desired.Budgets {
		expected, healthy := 0, 0
		for _, w := range in.Desired.Workloads {
			if !pdb.Selects(w) {
				continue
			}
			if w.Kind == "DaemonSet" {
				expected += len(daemonNodes(in, live, w))
			} else {
				expected += in.count(w)
			}
			for _, r := range live.Of(w.Name) {
				if !r.gone() && r.State == protocol.StateRunning && r.Ready && live.Ready[r.node] {
					healthy++
				}
			}
		}
		wanted := 0
		switch {
		case pdb.MinAvailable != "":
			wanted = intOrPercent(pdb.MinAvailable, expected, true)
		case pdb.MaxUnavailable != "":
			wanted = max(expected-intOrPercent(pdb.MaxUnavailable, expected, true), 0)
		}
		b.list = append(b.list, pdb)
		b.allowed = append(b.allowed, healthy-wanted)
		b.wanted = append(b.wanted, wanted)
	}
	return b
}

// evict asks to stop a replica of w for a drain: "" and the budgets that
// select w count it, or why not. A ready replica needs every budget to
// allow one more disruption; one that is not ready needs every budget
// met (healthy enough already) unless it says AlwaysAllow, and counts
// nothing, as Kubernetes' eviction does.
func (b *budgets) evict(w desired.Workload, ready bool) string {
	var covering []int
	for i, pdb := range b.list {
		switch {
		case !pdb.Selects(w):
			continue
		case ready && b.allowed[i] <= 0:
			return fmt.Sprintf("PodDisruptionBudget %s allows no more disruption (%d ready pods wanted)", pdb.Name, b.wanted[i])
		case !ready && !pdb.AlwaysAllowUnhealthy && b.allowed[i] < 0:
			return fmt.Sprintf("PodDisruptionBudget %s is not met (%d ready pods wanted), so not even a pod that is not ready goes (unhealthyPodEvictionPolicy IfHealthyBudget)", pdb.Name, b.wanted[i])
		}
		covering = append(covering, i)
	}
	if ready {
		for _, i := range covering {
			b.allowed[i]--
		}
	}
	return ""
}

// evictionBlocked tells whether a drain may not stop r, a replica of w,
// now (and says why as pending): a replica of the current template on a
// draining node, whose budgets do not allow it (see evict). A new
// template's rollout, a scale-down to 0 and a NoExecute taint are not
// held back (as in Kubernetes, budgets govern evictions only).
func (c *pass) evictionBlocked(r replica, w desired.Workload) bool {
	if !c.in.Draining[r.node] || r.SpecHash != w.Hash || w.Replicas == 0 || len(c.in.Desired.Budgets) == 0 {
		return false
	}
	if c.budgets == nil {
		c.budgets = newBudgets(c.in, c.live)
	}
	why := c.budgets.evict(w, r.Ready)
	if why == "" {
		return false
	}
	p := Pending{Workload: w.Name, Count: 1, Reason: fmt.Sprintf("drain of node %s waits: %s", r.node, why)}
	for i := range c.res.Pending {
		if q := &c.res.Pending[i]; q.Workload == p.Workload && q.Reason == p.Reason {
			q.Count++
			return true
		}
	}
	c.res.Pending = append(c.res.Pending, p)
	return true
}
