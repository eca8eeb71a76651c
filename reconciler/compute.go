package reconciler

import (
	"fmt"
	"hash/fnv"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/schedule"
)

// NodeView is what the reconciler knows of one node.
type NodeView struct {
	Name          string
	LastHeartbeat time.Time
	// Replicas is the node's last report; ReportTime when it was received.
	Replicas   []protocol.Replica
	ReportTime time.Time
	// Labels and Allocatable come from heartbeats; Volumes (the claims
	// whose local volumes the node holds) from reports.
	Labels      map[string]string
	Allocatable protocol.Resources
	Volumes     []string
}

// Assignment records a replica the reconciler started on a node. It covers
// the time between a start command and the first report that shows the
// replica, and tells superseded replicas (unknown to the reconciler, e.g. on a
// node that came back after being declared lost) from current ones.
type Assignment struct {
	ReplicaID string    `json:"replicaId"`
	Workload  string    `json:"workload"`
	SpecHash  string    `json:"specHash"`
	Node      string    `json:"node"`
	Created   time.Time `json:"created"`
}

// Input is everything Compute decides from.
type Input struct {
	// Desired is nil until a revision has loaded: nothing is started or stopped then.
	Desired     *desired.State
	Nodes       map[string]NodeView
	Assignments map[string]Assignment
	Now         time.Time
	// NodeGrace is how long a node may go without a heartbeat before it is lost.
	NodeGrace time.Duration
	// PendingTimeout is how long an assignment may wait to show up in a report.
	PendingTimeout time.Duration
	// Started is when the reconciler began to listen: a node not heard from
	// since is not declared lost before NodeGrace has passed since Started.
	Started time.Time
	// Strategy chooses among the nodes that fit a replica.
	Strategy schedule.Strategy
	// ReadySince is when each replica was first seen ready (since it last
	// was not), for minReadySeconds.
	ReadySince map[string]time.Time
	// Frozen names workloads whose rollout to the given template failed:
	// no new replica of it is started and no old one stopped while old ones
	// serve.
	Frozen map[string]string
	// JobsDone are the Jobs that finished, from their durable records.
	JobsDone map[string]JobRecord
	// index caches reported(); nil until built.
	index map[string][]replica
	// Stopping are the replicas a stop was sent to, until their node's
	// report no longer shows them: never counted, stopped again, or read as
	// failed.
	Stopping map[string]bool
	// Refused are the templates the nodes refused to start, by workload: an
	// invalid spec (nowhere), or one a node's policy refuses (there).
	Refused map[string]StartFailure
	// Scale is the replica count autoscalers set, by workload (it wins over
	// spec.replicas and ScalingSchedules, which give its floor).
	Scale map[string]int
	// Rollback replaces a workload's desired template by the last healthy
	// one (auto-rollback of a failed rollout), with the state it resolves in.
	Rollback map[string]RollbackTo
}

// StartFailure is what the nodes said of a template they will not start:
// invalid_spec (not started anywhere until the template changes) or
// not_allowed (not placed again on Nodes, which refused it).
type StartFailure struct {
	Hash   string
	Code   protocol.ErrorCode
	Reason string
	Nodes  map[string]string // not_allowed: node → its reason
}

// reported groups the replicas that ready nodes report, by workload: built
// once per pass by the reconciler (Input.index), or on demand.
func (in Input) reported() map[string][]replica {
	if in.index != nil {
		return in.index
	}
	out := map[string][]replica{}
	for name, n := range in.Nodes {
		if !NodeReady(n, in.Now, in.NodeGrace) {
			continue
		}
		for _, r := range n.Replicas {
			out[r.Workload] = append(out[r.Workload], replica{Replica: r, node: name})
		}
	}
	return out
}

// count is the replica count in effect for w: an autoscaler's, else a
// ScalingSchedule's window, else spec.replicas.
func (in Input) count(w desired.Workload) int {
	if n, ok := in.Scale[w.Name]; ok {
		return n
	}
	if len(in.Desired.Schedules) > 0 {
		return scaleOf(w, in.Desired, in.Now).Replicas
	}
	return w.Replicas
}

// RollbackTo is the template a failed rollout returns to.
type RollbackTo struct {
	Workload desired.Workload
	State    *desired.State
}

// ActionType names what an Action does.
type ActionType string

// Action types.
const (
	// Start sends a start command for Spec to Node.
	Start ActionType = "start"
	// Stop sends a stop command for ReplicaID to Node.
	Stop ActionType = "stop"
	// Forget drops the assignment of ReplicaID without a command (its node is lost).
	Forget ActionType = "forget"
	// Pending says Count replicas of Workload fit on no node, and why; it
	// sends nothing.
	Pending ActionType = "pending"
	// Hold says Compute is in disruption mode: Count silent nodes keep
	// their replicas. It sends nothing.
	Hold ActionType = "hold"
)

// DisruptionThreshold is the share of nodes that, silent at once, puts
// Compute in disruption mode (Kubernetes' unhealthy-zone threshold).
const DisruptionThreshold = 0.55

// DisruptionHold is how long disruption mode keeps a silent node's
// replicas; after it, they are placed elsewhere after all (a node removed
// for good must not freeze its replicas forever).
const DisruptionHold = 5 * time.Minute

// pendingReplica is an assignment its node has not reported yet: it counts
// as a replica being created there.
func pendingReplica(a Assignment, held bool) replica {
	return replica{
		Replica: protocol.Replica{ID: a.ReplicaID, Workload: a.Workload, SpecHash: a.SpecHash, State: protocol.StateCreating, StartedAt: a.Created},
		node:    a.Node, assigned: true, pending: true, held: held,
	}
}

// awaitingReport: the node's heartbeats come, but no report has yet.
func awaitingReport(in Input, name string) bool {
	n, ok := in.Nodes[name]
	return ok && n.ReportTime.IsZero() && !n.LastHeartbeat.IsZero() && in.Now.Sub(n.LastHeartbeat) <= in.NodeGrace
}

// heldNodes returns the silent nodes whose replicas stay put: those that
// went silent within DisruptionHold, when they are more than
// DisruptionThreshold of the nodes (at least two).
func heldNodes(in Input) map[string]bool {
	recent := map[string]bool{}
	for name, n := range in.Nodes {
		silent := in.Now.Sub(n.LastHeartbeat)
		if !n.LastHeartbeat.IsZero() && silent > in.NodeGrace && silent <= in.NodeGrace+DisruptionHold {
			recent[name] = true
		}
	}
	if len(recent) < 2 || float64(len(recent)) <= DisruptionThreshold*float64(len(in.Nodes)) {
		return nil
	}
	return recent
}

func joinNames(m map[string]bool) string {
	names := sortedKeys(m)
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
	}
	return strings.Join(names, ", ")
}

// Action is one step toward the desired state.
type Action struct {
	Type      ActionType
	Node      string
	Workload  string
	ReplicaID string
	Spec      *protocol.ReplicaSpec // with Start
	Reason    string
	Count     int  // with Pending
	Failed    bool // a Stop of a replica that failed or exited for good
	// Code is why a failed replica's start failed (with Failed); SpecHash
	// is the stopped replica's template.
	Code     protocol.ErrorCode
	SpecHash string
}

func (a Action) String() string {
	return fmt.Sprintf("%s %s/%s on %s: %s", a.Type, a.Workload, a.ReplicaID, a.Node, a.Reason)
}

// NodeReady reports whether n has sent a heartbeat within grace of now and
// a report: without its report, what a node runs is unknown, and placing on
// it could duplicate replicas it already holds.
func NodeReady(n NodeView, now time.Time, grace time.Duration) bool {
	return !n.LastHeartbeat.IsZero() && now.Sub(n.LastHeartbeat) <= grace && !n.ReportTime.IsZero()
}

// replica is a live or pending replica as Compute sees it.
type replica struct {
	protocol.Replica
	node     string
	assigned bool
	pending  bool // assigned, not reported yet
	held     bool // on a silent node in disruption mode: counted, never stopped
}

// Compute returns the actions that move the live state toward in.Desired.
// It is a pure function of its input: the same input gives the same actions.
func Compute(in Input) []Action {
	var actions []Action
	ready := map[string]bool{}
	for name, n := range in.Nodes {
		ready[name] = NodeReady(n, in.Now, in.NodeGrace)
	}
	// Disruption mode: when most nodes went silent recently, the fault is
	// likely the control plane's (its network, NATS): their replicas are
	// neither forgotten nor replaced; Baton waits, and says so.
	held := heldNodes(in)
	if len(held) > 0 {
		actions = append(actions, Action{Type: Hold, Count: len(held), Reason: fmt.Sprintf(
			"%d of %d nodes went silent at once (%s): not moving their replicas for up to %s, in case the fault is the control plane's",
			len(held), len(in.Nodes), joinNames(held), DisruptionHold)})
	}

	// Forget assignments that can no longer come true.
	for _, id := range sortedKeys(in.Assignments) {
		a := in.Assignments[id]
		_, heard := in.Nodes[a.Node]
		switch {
		case !heard && in.Now.Sub(in.Started) <= in.NodeGrace:
			// Just started: the node may not have sent a heartbeat yet.
		case held[a.Node]:
			// Disruption mode: kept, counted below.
		case awaitingReport(in, a.Node):
			// Heard, but its report has not come yet (e.g. just after a
			// leader change): what it runs is unknown, kept, counted below.
		case !ready[a.Node]:
			actions = append(actions, Action{Type: Forget, Node: a.Node, Workload: a.Workload, ReplicaID: id, Reason: "node lost"})
		case !reported(in.Nodes[a.Node], id) && in.Now.Sub(a.Created) > in.PendingTimeout:
			actions = append(actions, Action{Type: Forget, Node: a.Node, Workload: a.Workload, ReplicaID: id, Reason: "never reported by its node"})
		}
	}
	if in.Desired == nil {
		return actions
	}

	assignedTo := map[string][]Assignment{}
	for _, id := range sortedKeys(in.Assignments) {
		a := in.Assignments[id]
		assignedTo[a.Node] = append(assignedTo[a.Node], a)
	}

	// Group the replicas of ready nodes by workload.
	byWorkload := map[string][]replica{}
	for _, name := range sortedKeys(in.Nodes) {
		if !ready[name] && !held[name] {
			continue
		}
		n := in.Nodes[name]
		seen := map[string]bool{}
		for _, r := range n.Replicas {
			seen[r.ID] = true
			if in.Stopping[r.ID] {
				r.State = protocol.StateStopping // a stop was sent: it is going
			}
			_, assigned := in.Assignments[r.ID]
			byWorkload[r.Workload] = append(byWorkload[r.Workload], replica{Replica: r, node: name, assigned: assigned, held: held[name]})
		}
		for _, a := range assignedTo[name] {
			id := a.ReplicaID
			if seen[id] || in.Now.Sub(a.Created) > in.PendingTimeout {
				continue
			}
			byWorkload[a.Workload] = append(byWorkload[a.Workload], pendingReplica(a, held[name]))
		}
	}
	// Replicas assigned to nodes whose report has not come yet (not heard
	// from since a restart, or heard but not reported) count as pending, so
	// they are not started a second time elsewhere.
	{
		justStarted := in.Now.Sub(in.Started) <= in.NodeGrace
		for _, id := range sortedKeys(in.Assignments) {
			a := in.Assignments[id]
			if _, heard := in.Nodes[a.Node]; (!heard && justStarted) || awaitingReport(in, a.Node) {
				byWorkload[a.Workload] = append(byWorkload[a.Workload], pendingReplica(a, false))
			}
		}
	}
	cl := newCluster(in, ready, byWorkload)

	usedIDs := map[string]bool{}
	for id := range in.Assignments {
		usedIDs[id] = true
	}
	for _, rs := range byWorkload {
		for _, r := range rs {
			usedIDs[r.ID] = true
		}
	}

	want := make(map[string]bool, len(in.Desired.Workloads)+len(in.Desired.Jobs))
	for _, w := range in.Desired.Workloads {
		want[w.Name] = true
	}
	for _, j := range in.Desired.Jobs {
		want[JobWorkload(j.Name)] = true
	}
	for _, wname := range sortedKeys(byWorkload) {
		if !want[wname] {
			for _, r := range byWorkload[wname] {
				if r.State != protocol.StateStopping && !r.pending && !r.held {
					actions = append(actions, stop(r, "workload removed from the desired state"))
				}
			}
		}
	}
	for _, w := range in.Desired.Workloads {
		w.Replicas = in.count(w)
		st := in.Desired
		if rb, ok := in.Rollback[w.Name]; ok {
			count := w.Replicas
			w, st = rb.Workload, rb.State
			w.Replicas = count
		}
		frozen := in.Frozen[w.Name] == w.Hash
		actions = append(actions, computeWorkload(w, st, byWorkload[w.Name], cl, in.Strategy, usedIDs, in.ReadySince, frozen, in.Refused[w.Name], in.Now)...)
	}
	for _, j := range in.Desired.Jobs {
		actions = append(actions, computeJob(j.Name, j.Spec, j.Hash, in.Desired, byWorkload[JobWorkload(j.Name)], in.JobsDone, cl, in.Strategy, usedIDs, in.Now)...)
	}
	return actions
}

func computeWorkload(w desired.Workload, st *desired.State, rs []replica, cl *cluster, strategy schedule.Strategy, usedIDs map[string]bool, readySince map[string]time.Time, frozen bool, refused StartFailure, now time.Time) []Action {
	var actions []Action
	var current, old []replica
	perNode := map[string]int{}
	for _, r := range rs {
		switch {
		case r.State == protocol.StateStopping:
			continue
		case r.State == protocol.StateExited || r.State == protocol.StateFailed:
			// Stopped and replaced at once; a start that failed and is worth
			// trying again waits on its node instead (StateWaiting). A
			// terminal failure of this template holds its next starts back
			// already in this pass.
			a := stop(r, failureReason(r))
			a.Failed, a.Code = true, r.Code
			actions = append(actions, a)
			if r.Code.Terminal() && r.SpecHash == w.Hash {
				refused = refusedBy(refused, w.Hash, r.node, r.Code, a.Reason)
			}
			continue
		case r.SpecHash == w.Hash:
			current = append(current, r)
		default:
			old = append(old, r)
		}
		perNode[r.node]++
	}

	// Scale the current template to the desired count; while old replicas
	// remain, within the rollout's surge (Recreate: once they are gone).
	surge, unavailable := rolloutLimits(w)
	need := w.Replicas - len(current)
	if len(old) > 0 && need > 0 {
		if w.Strategy.Type == "Recreate" || frozen {
			need = 0
		} else {
			need = min(need, max(w.Replicas+surge-len(current)-len(old), 0))
		}
	}
	if refused.Hash == w.Hash && refused.Code == protocol.CodeInvalidSpec && need > 0 {
		// Terminal: not tried again until the template changes.
		actions = append(actions, Action{Type: Pending, Workload: w.Name, Count: need, Code: refused.Code,
			Reason: refused.Reason + " (not started again until the template changes)"})
		need = 0
	}
	var excluded map[string]string
	if refused.Hash == w.Hash && refused.Code == protocol.CodeNotAllowed {
		excluded = refused.Nodes
	}
	started := 0
	if need > 0 {
		res := cl.place(w, st, need, strategy, excluded)
		pod := st.ResolvePod(w.Pod)
		if res.Unplaced > 0 {
			actions = append(actions, Action{Type: Pending, Workload: w.Name, Count: res.Unplaced, Reason: res.Reason})
		}
		started = len(res.Nodes)
		for i, node := range res.Nodes {
			id := newReplicaID(w, now, i, usedIDs)
			actions = append(actions, Action{
				Type: Start, Node: node, Workload: w.Name, ReplicaID: id,
				Spec:   &protocol.ReplicaSpec{ID: id, Workload: w.Name, SpecHash: w.Hash, Pod: pod},
				Reason: fmt.Sprintf("%d/%d replicas of template %s", len(current)+i, w.Replicas, w.Hash),
			})
		}
	} else if need < 0 {
		sortForStop(current, perNode)
		for _, r := range current[:-need] {
			actions = append(actions, stop(r, fmt.Sprintf("scale down to %d", w.Replicas)))
		}
		current = current[-need:]
	}

	// Replace the old template (Kubernetes' rolling update): stop old
	// replicas while at least replicas-maxUnavailable stay available, not-ready
	// ones first; new replicas count as available once ready for
	// minReadySeconds.
	if len(old) > 0 && !frozen {
		sortForRollout(old, perNode)
		if w.Replicas == 0 || w.Strategy.Type == "Recreate" {
			for _, r := range old {
				actions = append(actions, stop(r, fmt.Sprintf("replaced by template %s (%s)", w.Hash, strategyName(w))))
			}
		} else {
			availableNew := 0
			for _, r := range current {
				if available(r, w, readySince, now) {
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
				if r.Ready {
					if budget <= 0 {
						break
					}
					budget--
				}
				maxDown--
				actions = append(actions, stop(r, fmt.Sprintf("replaced by template %s (%d available, at least %d kept)", w.Hash, availableNew+readyOld, minAvailable)))
			}
		}
	}
	// Replicas of silent nodes in disruption mode are never stopped: no
	// command could reach them, and they may be fine.
	heldIDs := map[string]bool{}
	for _, r := range rs {
		if r.held {
			heldIDs[r.ID] = true
		}
	}
	if len(heldIDs) > 0 {
		kept := actions[:0]
		for _, a := range actions {
			if a.Type != Stop || !heldIDs[a.ReplicaID] {
				kept = append(kept, a)
			}
		}
		actions = kept
	}
	return actions
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

func stop(r replica, reason string) Action {
	return Action{Type: Stop, Node: r.node, Workload: r.Workload, ReplicaID: r.ID, SpecHash: r.SpecHash, Reason: reason}
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

func alive(s protocol.ReplicaState) bool {
	return s == protocol.StateCreating || s == protocol.StateRunning || s == protocol.StateWaiting
}

func reported(n NodeView, id string) bool {
	for _, r := range n.Replicas {
		if r.ID == id {
			return true
		}
	}
	return false
}

// newReplicaID derives a replica ID from the workload, its template hash and
// the clock, so Compute stays deterministic, avoiding every ID in use.
func newReplicaID(w desired.Workload, now time.Time, i int, used map[string]bool) string {
	for n := 0; ; n++ {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%s/%d/%d/%d", w.Name, w.Hash, now.UnixNano(), i, n)
		suffix := strconv.FormatUint(h.Sum64()%(36*36*36*36*36), 36)
		for len(suffix) < 5 {
			suffix = "0" + suffix
		}
		id := w.Name + "-" + w.Hash[:8] + "-" + suffix
		if !used[id] {
			used[id] = true
			return id
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
