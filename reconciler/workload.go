package reconciler

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// workloadPass is one Deployment in a pass: its template (the desired one,
// or the one it rolls back to) with the count in effect, the state it
// resolves in, its live replicas, and what holds its starts back.
type workloadPass struct {
	w        desired.Workload
	st       *desired.State
	replicas []replica
	frozen   bool // its rollout failed: no starts of the new template, no stops of old ones
	refused  StartFailure
}

// workload scales a Deployment to its count and rolls its template out.
func (c *pass) workload(p workloadPass) {
	w := p.w
	current, old := c.cur[:0], c.old[:0]
	defer func() { c.cur, c.old = current[:0], old[:0] }() // reused by the next workload
	refused := p.refused
	for _, r := range p.replicas {
		switch {
		case r.gone():
			continue
		case r.State == protocol.StateExited || r.State == protocol.StateFailed:
			// Stopped and replaced at once; a start that failed and is worth
			// trying again waits on its node instead (StateWaiting). A
			// terminal failure of this template holds its next starts back
			// already in this pass.
			s := c.stopEnded(r)
			if r.Code.Terminal() && r.SpecHash == w.Hash {
				refused = refusedBy(refused, w.Hash, r.node, r.Code, s.Reason)
			}
			continue
		case r.SpecHash == w.Hash && !c.in.Draining[r.node] && c.untoleratedNoExecute(w.Pod, r.node) == "":
			current = append(current, r)
		default:
			old = append(old, r)
		}
	}
	if w.Strategy.Type == "OnDelete" {
		// A ReplicationController: a new template touches no running
		// replica; the new template's are started as old ones go. Those of
		// a draining (or NoExecute) node are still moved.
		kept := old[:0]
		for _, r := range old {
			if c.in.Draining[r.node] || c.untoleratedNoExecute(w.Pod, r.node) != "" {
				kept = append(kept, r)
			} else {
				current = append(current, r)
			}
		}
		old = kept
	}
	// Replicas per node, for choosing what to stop: only when something stops.
	perNode := func() map[string]int {
		m := map[string]int{}
		for _, r := range current {
			m[r.node]++
		}
		for _, r := range old {
			m[r.node]++
		}
		return m
	}

	// Scale the current template to the desired count; while old replicas
	// remain, within the rollout's surge (Recreate: once those of an old
	// template are gone; drained ones are replaced as they go).
	surge, unavailable := rolloutLimits(w)
	need := w.Replicas - len(current)
	if len(old) > 0 && need > 0 {
		switch {
		case p.frozen || (w.Strategy.Type == "Recreate" && slices.ContainsFunc(old, func(r replica) bool { return r.SpecHash != w.Hash })):
			need = 0
		case w.Strategy.Type == "Recreate":
			need = min(need, max(w.Replicas-len(current)-len(old), 0))
		default:
			need = min(need, max(w.Replicas+surge-len(current)-len(old), 0))
		}
	}
	excluded, held := c.heldBack(w, refused, need)
	if held {
		need = 0
	}
	started, unplaced := 0, 0
	var stops []Stop
	if need > 0 {
		res := c.cluster().place(w, p.st, need, excluded)
		unplaced = res.Unplaced
		if res.Unplaced > 0 {
			c.res.Pending = append(c.res.Pending, Pending{Workload: w.Name, Count: res.Unplaced, Reason: res.Reason, Unplaced: true})
		}
		started = len(res.Nodes)
		if started > 0 {
			pod := p.st.ResolvePod(w.Pod)
			for i, node := range res.Nodes {
				id := c.ids.newReplicaID(w, c.in.Now, i)
				c.res.Starts = append(c.res.Starts, Start{
					Node: node, Workload: w.Name, ReplicaID: id,
					Spec:   &protocol.ReplicaSpec{ID: id, Workload: w.Name, SpecHash: w.Hash, Pod: pod},
					Reason: fmt.Sprintf("%d/%d replicas of template %s", len(current)+i, w.Replicas, w.Hash),
				})
			}
		}
	} else if need < 0 {
		sortForStop(current, perNode())
		for _, r := range current[:-need] {
			stops = append(stops, stop(r, fmt.Sprintf("scale down to %d", w.Replicas)))
		}
		current = current[-need:]
	}

	// Replace the old template (Kubernetes' rolling update): stop old
	// replicas while at least replicas-maxUnavailable stay available, not-ready
	// ones first; new replicas count as available once ready for
	// minReadySeconds.
	if len(old) > 0 && !p.frozen {
		sortForRollout(old, perNode())
		if w.Replicas == 0 || w.Strategy.Type == "Recreate" {
			for _, r := range old {
				if !c.evictionBlocked(r, w) {
					stops = append(stops, stop(r, c.replacedBy(r, w, strategyName(w))))
				}
			}
		} else {
			availableNew := 0
			for _, r := range current {
				if available(r, w, c.in.ReadySince, c.in.Now) {
					availableNew++
				}
			}
			readyOld := 0
			for _, r := range old {
				if r.Ready {
					readyOld++
				}
			}
			minAvailable := w.Replicas - unavailable
			newUnavailable := len(current) + started - availableNew
			maxDown := len(current) + started + len(old) - minAvailable - newUnavailable
			budget := availableNew + readyOld - minAvailable
			for _, r := range old {
				if maxDown <= 0 {
					break
				}
				if unplaced > 0 && r.SpecHash == w.Hash {
					// Drained, and its replacement found no place: stopping
					// it would free nothing where replacements could go.
					continue
				}
				if r.Ready && budget <= 0 {
					break
				}
				if c.evictionBlocked(r, w) {
					continue
				}
				if r.Ready {
					budget--
				}
				maxDown--
				stops = append(stops, stop(r, c.replacedBy(r, w, fmt.Sprintf("%d available, at least %d kept", availableNew+readyOld, minAvailable))))
			}
		}
	}
	// Replicas of silent nodes in disruption mode are never stopped: no
	// command could reach them, and they may be fine.
	for _, s := range stops {
		if !c.live.Held[s.Node] {
			c.res.Stops = append(c.res.Stops, s)
		}
	}
}

// replacedBy says why an old replica is stopped: its node drains, or a new
// template replaces it.
func (c *pass) replacedBy(r replica, w desired.Workload, how string) string {
	if c.in.Draining[r.node] {
		return fmt.Sprintf("node %s draining (%s)", r.node, how)
	}
	if t := c.untoleratedNoExecute(w.Pod, r.node); t != "" && r.SpecHash == w.Hash {
		return fmt.Sprintf("node %s has the taint %s (%s)", r.node, t, how)
	}
	return fmt.Sprintf("replaced by template %s (%s)", w.Hash, how)
}

// refusedBy adds a terminal failure on node to f (of template hash).
func refusedBy(f StartFailure, hash, node string, code protocol.ErrorCode, reason string) StartFailure {
	if f.Hash != hash || f.Code != code {
		f = StartFailure{Hash: hash, Code: code}
	}
	f.Reason = reason
	if code == protocol.CodeNotAllowed {
		nodes := make(map[string]string, len(f.Nodes)+1)
		maps.Copy(nodes, f.Nodes)
		nodes[node] = reason
		f.Nodes = nodes
	}
	return f
}

// failureReason says why a replica that does not run is stopped: never an
// exit code for a container that never started.
func failureReason(r replica) string {
	switch {
	case r.Code != "":
		return "start failed: " + r.Message
	case r.Message != "":
		return fmt.Sprintf("replica %s: %s", r.State, r.Message)
	}
	return "replica " + string(r.State)
}

// rolloutLimits resolves maxSurge (rounded up) and maxUnavailable (rounded
// down) against the desired count, as Kubernetes does; both zero would stall,
// so maxUnavailable is then 1.
func rolloutLimits(w desired.Workload) (surge, unavailable int) {
	surge = intOrPercent(w.Strategy.MaxSurge, w.Replicas, true)
	unavailable = intOrPercent(w.Strategy.MaxUnavailable, w.Replicas, false)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

func intOrPercent(v string, total int, roundUp bool) int {
	if p, ok := strings.CutSuffix(v, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0
		}
		if roundUp {
			return (n*total + 99) / 100
		}
		return n * total / 100
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func strategyName(w desired.Workload) string {
	if w.Strategy.Type == "" {
		return "RollingUpdate"
	}
	return w.Strategy.Type
}

// available: ready, for at least the workload's minReadySeconds.
func available(r replica, w desired.Workload, readySince map[string]time.Time, now time.Time) bool {
	if !r.Ready {
		return false
	}
	if w.MinReadySeconds <= 0 {
		return true
	}
	since, ok := readySince[r.ID]
	return ok && now.Sub(since) >= time.Duration(w.MinReadySeconds)*time.Second
}

// sortForRollout orders old replicas for stopping: not ready first, then
// as sortForStop.
func sortForRollout(rs []replica, perNode map[string]int) {
	sortForStop(rs, perNode)
	sort.SliceStable(rs, func(i, j int) bool { return !rs[i].Ready && rs[j].Ready })
}

// sortForStop orders replicas best-to-stop first, as Kubernetes' ReplicaSet
// does: not assigned by this reconciler (superseded, e.g. on a node that
// came back after its replicas were placed elsewhere; they go first even
// when a replacement is still starting: it was placed on purpose), then not
// placed yet (assigned, not reported), then on silent nodes, then not
// running or not ready; then on the node holding the most replicas of the
// workload; then the newest. Replicas on silent nodes are never actually
// stopped (no command reaches them): choosing them first means a ready
// replica is never stopped to make room for the count of ones nobody sees.
func sortForStop(rs []replica, perNode map[string]int) {
	rank := func(r replica) int {
		n := 6
		switch {
		case !r.assigned && !r.held:
			n = 0
		case r.pending:
			n = 2
		case r.held:
			n = 4
		}
		if r.State == protocol.StateRunning && r.Ready {
			n++
		}
		return n
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if rank(a) != rank(b) {
			return rank(a) < rank(b)
		}
		if perNode[a.node] != perNode[b.node] {
			return perNode[a.node] > perNode[b.node]
		}
		if !a.StartedAt.Equal(b.StartedAt) {
			return a.StartedAt.After(b.StartedAt)
		}
		return a.ID > b.ID
	})
}

// waitingReason says what a pod waits for that the revision lacks.
func waitingReason(p desired.PodSpec) string {
	return "waits for " + strings.Join(p.Waiting, ", ") + ", not in the revision"
}

// untoleratedNoExecute is a NoExecute taint of node the pod does not
// tolerate ("" if none): its replicas there are moved away as from a
// draining node (a tolerationSeconds is not counted: a tolerated taint
// never moves them).
func (c *pass) untoleratedNoExecute(p desired.PodSpec, node string) string {
	for _, t := range c.in.Nodes[node].Taints {
		if t.Effect == "NoExecute" && !desired.Tolerated(p.Tolerations, t) {
			return t.String()
		}
	}
	return ""
}

// heldBack tells whether need starts of w's template are held back (said
// as pending): refused for good by a node (invalid spec: not tried again
// until the template changes), or waiting for objects the revision lacks;
// else the nodes that refused the template as not allowed.
func (c *pass) heldBack(w desired.Workload, refused StartFailure, need int) (map[string]string, bool) {
	if need <= 0 {
		return nil, false
	}
	if refused.Hash == w.Hash && refused.Code == protocol.CodeInvalidSpec {
		c.res.Pending = append(c.res.Pending, Pending{Workload: w.Name, Count: need, Code: refused.Code,
			Reason: refused.Reason + " (not started again until the template changes)"})
		return nil, true
	}
	if len(w.Pod.Waiting) > 0 {
		c.res.Pending = append(c.res.Pending, Pending{Workload: w.Name, Count: need, Reason: waitingReason(w.Pod)})
		return nil, true
	}
	if refused.Hash == w.Hash && refused.Code == protocol.CodeNotAllowed {
		return refused.Nodes, false
	}
	return nil, false
}

// stopEnded stops a replica that exited or failed (unless its node is
// held), saying why, and returns the stop.
func (c *pass) stopEnded(r replica) Stop {
	s := stop(r, failureReason(r))
	s.Failed, s.Code = true, r.Code
	if !r.held {
		c.res.Stops = append(c.res.Stops, s)
	}
	return s
}
