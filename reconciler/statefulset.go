package reconciler

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// ordinalOf is the ordinal a StatefulSet's replica carries in its ID
// (<name>-<ordinal>-<hash>-<suffix>).
func ordinalOf(w desired.Workload, id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, desired.ShortName(w.Name)+"-")
	if !ok {
		return 0, false
	}
	idx, _, _ := strings.Cut(rest, "-")
	i, err := strconv.Atoi(idx)
	return i, err == nil && i >= 0
}

// ordinals is one pass over a StatefulSet's replicas: the live one of
// each ordinal, and the ordinals with a replica going (nothing starts in
// their place until it is gone, so an ordinal and its claims never run
// twice).
type ordinals struct {
	c       *pass
	w       desired.Workload
	live    map[int]replica
	busy    map[int]bool
	stopped bool // a stop was sent in this pass
}

func (o *ordinals) ready(k int) bool {
	r, ok := o.live[k]
	return ok && !o.busy[k] && r.State == protocol.StateRunning && available(r, o.w, o.c.in.ReadySince, o.c.in.Now)
}

// allReady: every live ordinal is available, and none is going.
func (o *ordinals) allReady() bool {
	if len(o.busy) > 0 {
		return false
	}
	for k := range o.live {
		if !o.ready(k) {
			return false
		}
	}
	return true
}

// stop stops ordinal k's replica (unless it is held or not reported yet).
func (o *ordinals) stop(k int, why string) {
	r := o.live[k]
	if !r.held && !r.pending {
		o.c.res.Stops = append(o.c.res.Stops, stop(r, why))
	}
	delete(o.live, k)
	o.busy[k], o.stopped = true, true
}

// statefulSet keeps one replica of each ordinal of a StatefulSet, as
// Kubernetes does, one step at a time with OrderedReady (everything at
// once with Parallel):
//   - ordinals past the count stop, the highest first, each once every
//     other is ready;
//   - a replica on a draining node, or under a NoExecute taint it does not
//     tolerate, is stopped to be started again elsewhere (whatever the
//     strategy and partition), unless its claims are on that node;
//   - a missing ordinal starts, the lowest first, once every ordinal below
//     it is ready;
//   - a new template replaces ordinals from the highest down to the
//     partition, each once every ordinal is ready, stopped before it is
//     started again. OnDelete leaves old replicas until they go; a failed
//     rollout (frozen) stops no old one.
//
// An ordinal started again (it failed, its node was lost) gets the
// current template, below the partition too: Baton keeps no earlier
// template to start from. A lost node's replica is started again
// elsewhere, as Baton does for every workload (its claims, on the lost
// node, keep it pending there; Kubernetes waits instead).
func (c *pass) statefulSet(p workloadPass) {
	w := p.w
	sf := w.Stateful
	first, end := sf.Start, sf.Start+w.Replicas
	o := &ordinals{c: c, w: w, live: map[int]replica{}, busy: map[int]bool{}}
	for _, r := range p.replicas {
		k, ok := ordinalOf(w, r.ID)
		switch {
		case !ok:
			if !r.gone() && !r.held && !r.pending {
				c.res.Stops = append(c.res.Stops, stop(r, "not an ordinal of the StatefulSet"))
			}
		case r.gone():
			o.busy[k] = true
		case r.State == protocol.StateExited || r.State == protocol.StateFailed:
			c.stopEnded(r)
			o.busy[k] = true
		case o.busy[k] || o.live[k].Replica != nil:
			// Two replicas of one ordinal (never made so): keep the first.
			if !r.held && !r.pending {
				c.res.Stops = append(c.res.Stops, stop(r, fmt.Sprintf("ordinal %d has a replica already", k)))
			}
		default:
			o.live[k] = r
		}
	}
	for _, k := range slices.Backward(slices.Sorted(maps.Keys(o.live))) {
		if k >= first && k < end {
			continue
		}
		if !sf.Parallel && !o.allReady() {
			return // one at a time, each once the others are ready
		}
		o.stop(k, fmt.Sprintf("ordinal %d is not one of the StatefulSet's %d to %d", k, first, end-1))
	}
	c.moveOrdinals(o)
	if o.stopped && !sf.Parallel {
		return
	}
	var starts []int
	for k := first; k < end; k++ {
		if _, ok := o.live[k]; ok || o.busy[k] {
			continue
		}
		if !sf.Parallel && !o.readyBelow(first, k) {
			break
		}
		starts = append(starts, k)
		if !sf.Parallel {
			break
		}
	}
	if w.Strategy.Type != "OnDelete" && !p.frozen && len(starts) == 0 && o.allReady() {
		for k := end - 1; k >= max(first, sf.Partition); k-- {
			if r, ok := o.live[k]; ok && r.SpecHash != w.Hash {
				o.stop(k, fmt.Sprintf("ordinal %d replaced by template %s", k, w.Hash))
				break
			}
		}
	}
	c.startOrdinals(p, starts)
}

func (o *ordinals) readyBelow(first, k int) bool {
	for j := first; j < k; j++ {
		if !o.ready(j) {
			return false
		}
	}
	return true
}

// moveOrdinals stops the replicas a drain or a NoExecute taint moves,
// the highest ordinal first (OrderedReady: one, once every ordinal is
// ready), as far as disruption budgets allow; a replica whose claims are
// on its node stays (it could start nowhere else), pending with why.
func (c *pass) moveOrdinals(o *ordinals) {
	w := o.w
	for _, k := range slices.Backward(slices.Sorted(maps.Keys(o.live))) {
		r := o.live[k]
		taint := c.untoleratedNoExecute(w.Pod, r.node)
		if !c.in.Draining[r.node] && taint == "" {
			continue
		}
		if held := c.claimsOn(desired.PodFor(w.Pod, w.Name, k), r.node); held != "" {
			c.res.Pending = append(c.res.Pending, Pending{Workload: w.Name, Count: 1,
				Reason: fmt.Sprintf("ordinal %d stays on node %s, which holds its claim %s", k, r.node, held)})
			continue
		}
		if !w.Stateful.Parallel && (o.stopped || !o.allReady()) {
			return
		}
		if c.evictionBlocked(r, w) {
			continue
		}
		how := "node " + r.node + " draining"
		if taint != "" {
			how = "node " + r.node + " has the taint " + taint
		}
		o.stop(k, fmt.Sprintf("ordinal %d moves: %s", k, how))
	}
}

// claimsOn is a claim of pod that node holds ("": none).
func (c *pass) claimsOn(pod desired.PodSpec, node string) string {
	for _, v := range pod.Volumes {
		if v.Claim != nil && slices.Contains(c.in.Nodes[node].Volumes, v.Claim.Claim) {
			return v.Claim.Claim
		}
	}
	return ""
}

// startOrdinals places and starts the ordinals of starts, each with its
// own hostname and claims.
func (c *pass) startOrdinals(p workloadPass, starts []int) {
	w := p.w
	excluded, held := c.heldBack(w, p.refused, len(starts))
	if len(starts) == 0 || held {
		return
	}
	pod := p.st.ResolvePod(w.Pod)
	for i, k := range starts {
		ow := w
		ow.Pod = desired.PodFor(w.Pod, w.Name, k)
		res := c.cluster().place(ow, p.st, 1, excluded)
		if len(res.Nodes) == 0 {
			c.res.Pending = append(c.res.Pending, Pending{Workload: w.Name, Count: len(starts) - i,
				Reason: fmt.Sprintf("ordinal %d: %s", k, res.Reason), Unplaced: true})
			return
		}
		id := c.ids.newReplicaID(desired.Workload{Name: desired.OrdinalName(w.Name, k), Hash: w.Hash}, c.in.Now, 0)
		c.res.Starts = append(c.res.Starts, Start{Node: res.Nodes[0], Workload: w.Name, ReplicaID: id,
			Spec:   &protocol.ReplicaSpec{ID: id, Workload: w.Name, SpecHash: w.Hash, Pod: desired.PodFor(pod, w.Name, k)},
			Reason: fmt.Sprintf("StatefulSet %s: ordinal %d (template %s)", w.Name, k, w.Hash)})
	}
}
