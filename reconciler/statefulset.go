package reconciler

import (
	"fmt"
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

// statefulSet keeps one replica of each ordinal of a StatefulSet, as
// Kubernetes does: a missing ordinal is started (OrderedReady: the lowest
// missing one, once every ordinal below it is available; Parallel: all);
// ordinals past the count stop (OrderedReady: the highest first, one at a
// time); a new template replaces ordinals from the highest down to the
// partition, one at a time, each stopped before its successor starts, so
// an ordinal (and its claims) never runs twice; a draining node's replicas
// are replaced the same way. OnDelete leaves old replicas until they go; a
// failed rollout (frozen) stops no old one. A lost node's replica is
// started again elsewhere, as Baton does for every workload (its claims,
// on the lost node, keep it pending there: Kubernetes waits instead).
func (c *pass) statefulSet(p workloadPass) {
	w := p.w
	sf := w.Stateful
	first, end := sf.Start, sf.Start+w.Replicas
	byOrdinal := map[int]replica{}
	busy := map[int]bool{} // an ordinal with a replica going: nothing starts in its place yet
	for _, r := range p.replicas {
		k, ok := ordinalOf(w, r.ID)
		switch {
		case r.gone():
			busy[k] = true
		case !ok:
			if !r.held && !r.pending {
				c.res.Stops = append(c.res.Stops, stop(r, "not an ordinal of the StatefulSet"))
			}
		case r.State == protocol.StateExited || r.State == protocol.StateFailed:
			c.stopEnded(r)
			busy[k] = true
		case busy[k] || byOrdinal[k].Replica != nil:
			// Two replicas of one ordinal (never made so): keep the first.
			if !r.held && !r.pending {
				c.res.Stops = append(c.res.Stops, stop(r, fmt.Sprintf("ordinal %d has a replica already", k)))
			}
		default:
			byOrdinal[k] = r
		}
	}
	ready := func(k int) bool {
		r, ok := byOrdinal[k]
		return ok && !busy[k] && r.State == protocol.StateRunning && available(r, w, c.in.ReadySince, c.in.Now)
	}
	allReady := func(from, to int) bool {
		for k := from; k < to; k++ {
			if !ready(k) {
				return false
			}
		}
		return true
	}
	// Past the count (or below the first ordinal): stop, highest first.
	var extra []int
	for k := range byOrdinal {
		if k < first || k >= end {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	slices.Reverse(extra)
	for _, k := range extra {
		if r := byOrdinal[k]; !r.held && !r.pending {
			c.res.Stops = append(c.res.Stops, stop(r, fmt.Sprintf("ordinal %d is past the StatefulSet's %d replicas", k, w.Replicas)))
		}
		delete(byOrdinal, k)
		busy[k] = true
		if !sf.Parallel {
			return // one at a time; the rest waits for it to go
		}
	}
	if !sf.Parallel && len(busy) > 0 {
		for k := range busy {
			if k >= end || k < first {
				return // an ordinal of a scale-down is still going
			}
		}
	}
	var starts []int
	for k := first; k < end; k++ {
		if _, ok := byOrdinal[k]; ok || busy[k] {
			continue
		}
		if !sf.Parallel && !allReady(first, k) {
			break
		}
		starts = append(starts, k)
		if !sf.Parallel {
			break
		}
	}
	// A new template: the highest old ordinal from the partition up goes,
	// once every other ordinal is available (OrderedReady) and nothing
	// else is starting or going.
	if w.Strategy.Type != "OnDelete" && !p.frozen && len(starts) == 0 && len(busy) == 0 {
		for k := end - 1; k >= max(first, sf.Partition); k-- {
			r, ok := byOrdinal[k]
			if !ok || (r.SpecHash == w.Hash && !c.in.Draining[r.node]) {
				continue
			}
			if (sf.Parallel || allReady(first, end)) && !r.held && !r.pending && !c.evictionBlocked(r, w) {
				c.res.Stops = append(c.res.Stops, stop(r, fmt.Sprintf("ordinal %d replaced by template %s", k, w.Hash)))
			}
			break
		}
	}
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
				Reason: fmt.Sprintf("ordinal %d: %s", k, res.Reason)})
			return
		}
		id := c.ids.newReplicaID(desired.Workload{Name: desired.OrdinalName(w.Name, k), Hash: w.Hash}, c.in.Now, 0)
		c.res.Starts = append(c.res.Starts, Start{Node: res.Nodes[0], Workload: w.Name, ReplicaID: id,
			Spec:   &protocol.ReplicaSpec{ID: id, Workload: w.Name, SpecHash: w.Hash, Pod: desired.PodFor(pod, w.Name, k)},
			Reason: fmt.Sprintf("StatefulSet %s: ordinal %d (template %s)", w.Name, k, w.Hash)})
	}
}
