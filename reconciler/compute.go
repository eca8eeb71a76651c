package reconciler

import (
	"fmt"
	"hash/fnv"
	"slices"
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
	// Taints come from heartbeats too (baton agent --taint).
	Taints []desired.Taint
	// Disconnected is when the bus said the node's connection closed
	// (zero: connected, or heard from since).
	Disconnected time.Time
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

// Input is everything Compute decides from. Every field is a value the
// pass made before it called Compute; Compute reads them and changes none.
type Input struct {
	// Desired is nil until a revision has loaded: nothing is started or
	// stopped then. Its Jobs include the CronJobs' runs.
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
	// Scales is the replica count of each workload and who sets it
	// (scaleFor, once per pass); a workload missing here runs spec.replicas.
	Scales map[string]Scale
	// Frozen names workloads whose rollout to the given template failed:
	// no new replica of it is started and no old one stopped while old ones
	// serve.
	Frozen map[string]string
	// Rollback replaces a workload's desired template by the last healthy
	// one (auto-rollback of a failed rollout), with the state it resolves in.
	Rollback map[string]RollbackTo
	// JobsDone are the Jobs that finished, from their durable records.
	JobsDone map[string]JobRecord
	// Stopping are the replicas a stop was sent to, until their node's
	// report no longer shows them: never counted, stopped again, or read as
	// failed.
	Stopping map[string]bool
	// Refused are the templates the nodes refused to start, by workload: an
	// invalid spec (nowhere), or one a node's policy refuses (there).
	Refused map[string]StartFailure
	// Cordoned nodes take no new replica; the replicas of Draining nodes
	// (cordoned too) are replaced elsewhere, within each workload's
	// maxUnavailable, as a rolling update would replace them.
	Cordoned map[string]bool
	Draining map[string]bool
}

// count is the replica count in effect for w.
func (in Input) count(w desired.Workload) int {
	if sc, ok := in.Scales[w.Name]; ok {
		return sc.Replicas
	}
	return w.Replicas
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

// RollbackTo is the template a failed rollout returns to.
type RollbackTo struct {
	Workload desired.Workload
	State    *desired.State
}

// Result is what one pass of Compute decides, each kind in its own field
// (as Nomad's reconcileResults): the commands to send and the state to
// show. It is sorted, so equal inputs give equal results.
type Result struct {
	// Starts and Stops are commands for the nodes; Forgets drop
	// assignments that can no longer come true (no command).
	Starts  []Start
	Stops   []Stop
	Forgets []Forget
	// Daemons is each DaemonSet's count: the nodes its pod may go to.
	Daemons map[string]int
	// Pending are the replicas that cannot start, by workload, and why
	// (they fit nowhere; their template is refused).
	Pending []Pending
	// Hold is set in disruption mode: the silent nodes keep their replicas.
	Hold *Hold
}

// Empty reports whether the result asks for nothing.
func (r Result) Empty() bool {
	return len(r.Starts) == 0 && len(r.Stops) == 0 && len(r.Forgets) == 0 && len(r.Pending) == 0 && r.Hold == nil
}

// Start is a start command for Spec on Node.
type Start struct {
	Node, Workload, ReplicaID string
	Spec                      *protocol.ReplicaSpec
	Reason                    string
}

// Stop is a stop command for ReplicaID on Node.
type Stop struct {
	Node, Workload, ReplicaID, SpecHash string
	Reason                              string
	// Failed: the replica failed or exited for good; Code says why its
	// start failed, if it did.
	Failed bool
	Code   protocol.ErrorCode
}

// Forget drops the assignment of ReplicaID without a command (its node is
// lost, or it never showed up).
type Forget struct {
	Node, Workload, ReplicaID string
	Reason                    string
}

// Pending says Count replicas of Workload cannot start, and why.
type Pending struct {
	Workload string
	Count    int
	Reason   string
	Code     protocol.ErrorCode // a refused template's code
	// Unplaced: no node fits them (the scheduler's answer), rather than
	// a drain, a budget or an ordinal's claim holding them.
	Unplaced bool
}

// Hold is disruption mode: Count silent nodes keep their replicas.
type Hold struct {
	Count  int
	Reason string
}

func (s Start) String() string {
	return fmt.Sprintf("start %s/%s on %s: %s", s.Workload, s.ReplicaID, s.Node, s.Reason)
}

func (s Stop) String() string {
	return fmt.Sprintf("stop %s/%s on %s: %s", s.Workload, s.ReplicaID, s.Node, s.Reason)
}

func (f Forget) String() string {
	return fmt.Sprintf("forget %s/%s on %s: %s", f.Workload, f.ReplicaID, f.Node, f.Reason)
}

// DisruptionThreshold is the share of nodes that, silent at once, puts
// Compute in disruption mode (Kubernetes' unhealthy-zone threshold).
const DisruptionThreshold = 0.55

// DisruptionHold is how long disruption mode keeps a silent node's
// replicas; after it, they are placed elsewhere after all (a node removed
// for good must not freeze its replicas forever).
const DisruptionHold = 5 * time.Minute

// NodeReady reports whether n has sent a heartbeat within grace of now and
// a report: without its report, what a node runs is unknown, and placing on
// it could duplicate replicas it already holds.
func NodeReady(n NodeView, now time.Time, grace time.Duration) bool {
	if !n.Disconnected.IsZero() && now.Sub(n.Disconnected) > DisconnectGrace {
		return false
	}
	return !n.LastHeartbeat.IsZero() && now.Sub(n.LastHeartbeat) <= grace && !n.ReportTime.IsZero()
}

// DisconnectGrace is how long a node whose connection closed (its agent
// died, or the bus found its host silent) may take to come back before it
// is lost, however recent its last heartbeat: agents reconnect within a
// second, so a node is not lost to a server restart or a hiccup, and one
// whose agent died is replaced in seconds instead of after the node grace.
const DisconnectGrace = 2 * time.Second

// replica is a live or pending replica as Compute sees it: the node's
// report, not copied.
type replica struct {
	*protocol.Replica
	node     string
	assigned bool
	pending  bool // assigned, not reported yet
	held     bool // on a silent node in disruption mode: counted, never stopped
	stopping bool // a stop was sent, or the node says it is stopping
}

// gone: stopping, not counted.
func (r replica) gone() bool { return r.stopping || r.State == protocol.StateStopping }

func alive(s protocol.ReplicaState) bool {
	return s == protocol.StateCreating || s == protocol.StateRunning || s == protocol.StateWaiting
}

// Live is the live state of one pass, grouped once: every replica of a
// ready or held node, and every assignment not reported yet, by workload.
// The pass builds it (NewLive) for Compute and for the steps around it.
type Live struct {
	Ready map[string]bool // node → ready
	Held  map[string]bool // silent nodes whose replicas disruption mode keeps
	// HoldReason is disruption mode's reason ("" when off).
	HoldReason string
	groups     map[string]*group
	in         *Input
	ids        map[string]bool // replica IDs reported, made on first use
	// Assignments that need a look (see sortAssignments), by replica ID.
	offline, unreported, pending []Assignment
}

// group is one workload's replicas in a pass; plain is false when some are
// pending or held (the steps then filter them out).
type group struct {
	all   []replica
	plain bool
}

// NewLive groups the live state of in by workload: nodes in name order, each
// node's replicas in its report's order, so the grouping is deterministic.
// It walks the reports twice and the assignments once (twice when some are
// not reported yet): a converged pass at 100,000 replicas costs a few
// milliseconds here.
func NewLive(in Input) *Live {
	l := &Live{Ready: make(map[string]bool, len(in.Nodes)), in: &in}
	names := make([]string, 0, len(in.Nodes))
	for name, n := range in.Nodes {
		names = append(names, name)
		l.Ready[name] = NodeReady(n, in.Now, in.NodeGrace)
	}
	slices.Sort(names)
	// Disruption mode: when most nodes went silent recently, the fault is
	// likely the control plane's (its network, NATS): their replicas are
	// neither forgotten nor replaced; Baton waits, and says so.
	l.Held = heldNodes(in)
	if len(l.Held) > 0 {
		l.HoldReason = fmt.Sprintf("%d of %d nodes went silent at once (%s): not moving their replicas for up to %s, in case the fault is the control plane's",
			len(l.Held), len(in.Nodes), joinNames(l.Held), DisruptionHold)
	}
	// Count first (one map lookup a replica, its group kept in a scratch
	// slice), then fill one backing array: no slice grows.
	index := map[string]int32{}
	var sizes []int32
	var groupOf []int32
	for _, name := range names {
		if !l.Ready[name] && !l.Held[name] {
			continue
		}
		reps := in.Nodes[name].Replicas
		for i := range reps {
			gi, ok := index[reps[i].Workload]
			if !ok {
				gi = int32(len(sizes))
				index[reps[i].Workload] = gi
				sizes = append(sizes, 0)
			}
			sizes[gi]++
			groupOf = append(groupOf, gi)
		}
	}
	backing := make([]replica, len(groupOf))
	groups := make([]group, len(sizes))
	off := 0
	for gi, n := range sizes {
		groups[gi] = group{all: backing[off : off : off+int(n)], plain: true}
		off += int(n)
	}
	l.groups = make(map[string]*group, len(index)+1)
	for w, gi := range index {
		l.groups[w] = &groups[gi]
	}
	shownAssigned := make(map[string]int, len(names)) // node → its assigned replicas it reports
	k := 0
	for _, name := range names {
		if !l.Ready[name] && !l.Held[name] {
			continue
		}
		held := l.Held[name]
		reps := in.Nodes[name].Replicas
		shown := 0
		for i := range reps {
			r := &reps[i]
			a, assigned := in.Assignments[r.ID]
			if assigned && a.Node == name {
				shown++
			}
			g := &groups[groupOf[k]]
			k++
			g.all = append(g.all, replica{Replica: r, node: name, assigned: assigned, held: held, stopping: len(in.Stopping) > 0 && in.Stopping[r.ID]})
			if held {
				g.plain = false
			}
		}
		shownAssigned[name] = shown
	}
	l.sortAssignments(in, shownAssigned)
	for _, a := range l.pending {
		g := l.groups[a.Workload]
		if g == nil {
			g = &group{}
			l.groups[a.Workload] = g
		}
		g.all = append(g.all, pendingReplica(a, l.Held[a.Node]))
		g.plain = false
	}
	return l
}

// sortAssignments finds the assignments that need a look: those of nodes
// that are not ready (l.offline), those their ready node does not report
// (l.unreported), and of both, those that count as replicas being created,
// so they are not started twice (l.pending): on ready and held nodes for
// PendingTimeout, on nodes not heard from since a restart, and on nodes
// heard but whose report has not come yet (e.g. just after a leader
// change). Most passes have none but the nodes' counts to compare.
func (l *Live) sortAssignments(in Input, shownAssigned map[string]int) {
	assignedTo := make(map[string]int, len(shownAssigned))
	for _, a := range in.Assignments {
		assignedTo[a.Node]++
		if !l.Ready[a.Node] {
			l.offline = append(l.offline, a)
		}
	}
	mismatched, shown := map[string]bool{}, map[string]bool{}
	for node, count := range assignedTo {
		if !l.Ready[node] || shownAssigned[node] == count {
			continue
		}
		mismatched[node] = true
		for _, r := range in.Nodes[node].Replicas {
			if a, ok := in.Assignments[r.ID]; ok && a.Node == node {
				shown[r.ID] = true
			}
		}
	}
	if len(mismatched) > 0 {
		for id, a := range in.Assignments {
			if mismatched[a.Node] && !shown[id] {
				l.unreported = append(l.unreported, a)
			}
		}
	}
	justStarted := in.Now.Sub(in.Started) <= in.NodeGrace
	for _, list := range [][]Assignment{l.offline, l.unreported} {
		for _, a := range list {
			n, heard := in.Nodes[a.Node]
			if l.Held[a.Node] && nodeReports(n, a.ReplicaID) {
				continue // a held node's report shows it: grouped already
			}
			switch {
			case (l.Ready[a.Node] || l.Held[a.Node]) && in.Now.Sub(a.Created) <= in.PendingTimeout:
			case (!heard || n.LastHeartbeat.IsZero()) && justStarted, heard && awaitingReport(n, in):
			default:
				continue
			}
			l.pending = append(l.pending, a)
		}
	}
	byID := func(a, b Assignment) int { return strings.Compare(a.ReplicaID, b.ReplicaID) }
	slices.SortFunc(l.offline, byID)
	slices.SortFunc(l.unreported, byID)
	slices.SortFunc(l.pending, byID)
}

// nodeReports reports whether node n's last report shows replica id (asked
// only of silent nodes' assignments, in disruption mode).
func nodeReports(n NodeView, id string) bool {
	for i := range n.Replicas {
		if n.Replicas[i].ID == id {
			return true
		}
	}
	return false
}

// Of returns the live and pending replicas of a workload.
func (l *Live) Of(workload string) []replica {
	if g := l.groups[workload]; g != nil {
		return g.all
	}
	return nil
}

// reported returns a workload's replicas that ready nodes report: what the
// steps around Compute count (rollouts, autoscalers, Jobs, history).
func (l *Live) reported(workload string) []replica {
	g := l.groups[workload]
	if g == nil {
		return nil
	}
	if g.plain {
		return g.all
	}
	var out []replica
	for _, r := range g.all {
		if !r.pending && !r.held {
			out = append(out, r)
		}
	}
	return out
}

// used reports whether a replica ID is in use (assigned or reported).
func (l *Live) used(id string) bool {
	if _, ok := l.in.Assignments[id]; ok {
		return true
	}
	if l.ids == nil { // only a pass that starts something asks
		l.ids = map[string]bool{}
		for _, n := range l.in.Nodes {
			for i := range n.Replicas {
				l.ids[n.Replicas[i].ID] = true
			}
		}
	}
	return l.ids[id]
}

// pendingReplica is an assignment its node has not reported yet: it counts
// as a replica being created there.
func pendingReplica(a Assignment, held bool) replica {
	return replica{
		Replica: &protocol.Replica{ID: a.ReplicaID, Workload: a.Workload, SpecHash: a.SpecHash, State: protocol.StateCreating, StartedAt: a.Created},
		node:    a.Node, assigned: true, pending: true, held: held,
	}
}

// awaitingReport: the node's heartbeats come, but no report has yet.
func awaitingReport(n NodeView, in Input) bool {
	return n.ReportTime.IsZero() && !n.LastHeartbeat.IsZero() && in.Now.Sub(n.LastHeartbeat) <= in.NodeGrace
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

// Compute returns what moves the live state toward in.Desired. It is a pure
// function of its input (live, built from in by NewLive): the same input
// gives the same result.
func Compute(in Input, live *Live) Result {
	var res Result
	if live.HoldReason != "" {
		res.Hold = &Hold{Count: len(live.Held), Reason: live.HoldReason}
	}
	// Forget assignments that can no longer come true: of lost nodes, and
	// never reported by their node.
	for _, a := range live.offline {
		n, heard := in.Nodes[a.Node]
		switch {
		case (!heard || n.LastHeartbeat.IsZero()) && in.Now.Sub(in.Started) <= in.NodeGrace:
			// Just started: the node may not have sent a heartbeat yet.
		case live.Held[a.Node]:
			// Disruption mode: kept, counted.
		case heard && awaitingReport(n, in):
			// Heard, but its report has not come yet (e.g. just after a
			// leader change): what it runs is unknown, kept, counted.
		default:
			res.Forgets = append(res.Forgets, Forget{Node: a.Node, Workload: a.Workload, ReplicaID: a.ReplicaID, Reason: "node lost"})
		}
	}
	for _, a := range live.unreported {
		if in.Now.Sub(a.Created) > in.PendingTimeout {
			res.Forgets = append(res.Forgets, Forget{Node: a.Node, Workload: a.Workload, ReplicaID: a.ReplicaID, Reason: "never reported by its node"})
		}
	}
	if in.Desired != nil {
		res.Daemons = map[string]int{}
		c := &pass{in: in, live: live, res: &res, ids: newIDs(live)}
		c.compute()
	}
	res.sort()
	return res
}

func (r *Result) sort() {
	slices.SortFunc(r.Starts, func(a, b Start) int { return strings.Compare(a.ReplicaID, b.ReplicaID) })
	slices.SortFunc(r.Stops, func(a, b Stop) int { return strings.Compare(a.ReplicaID, b.ReplicaID) })
	slices.SortFunc(r.Forgets, func(a, b Forget) int { return strings.Compare(a.ReplicaID, b.ReplicaID) })
	slices.SortFunc(r.Pending, func(a, b Pending) int { return strings.Compare(a.Workload, b.Workload) })
}

// pass is one run of Compute: its input, the live state, the result being
// made, the placement view (made on the first placement), and the replica
// IDs in use.
type pass struct {
	in   Input
	live *Live
	res  *Result
	cl   *cluster
	ids  *ids
	// budgets are the PodDisruptionBudgets' allowances, made on the first
	// drain that asks.
	budgets *budgets
	// scratch, reused from workload to workload
	cur, old []replica
}

// cluster returns the placement view, made on first use: a converged pass
// places nothing and never builds it.
func (c *pass) cluster() *cluster {
	if c.cl == nil {
		c.cl = newCluster(c.in, c.live)
	}
	return c.cl
}

func (c *pass) compute() {
	st := c.in.Desired
	want := make(map[string]bool, len(st.Workloads)+len(st.Jobs))
	for _, w := range st.Workloads {
		want[w.Name] = true
	}
	for _, j := range st.Jobs {
		want[JobWorkload(j.Name)] = true
	}
	var removed []string
	for wname := range c.live.groups {
		if !want[wname] {
			removed = append(removed, wname)
		}
	}
	slices.Sort(removed)
	for _, wname := range removed {
		for _, r := range c.live.groups[wname].all {
			if !r.gone() && !r.pending && !r.held {
				c.res.Stops = append(c.res.Stops, stop(r, "workload removed from the desired state"))
			}
		}
	}
	for _, w := range st.Workloads {
		w.Replicas = c.in.count(w)
		rs := st
		if rb, ok := c.in.Rollback[w.Name]; ok {
			count := w.Replicas
			w, rs = rb.Workload, rb.State
			w.Replicas = count
		}
		wp := workloadPass{w: w, st: rs, replicas: c.live.Of(w.Name), frozen: c.in.Frozen[w.Name] == w.Hash, refused: c.in.Refused[w.Name]}
		switch w.Kind {
		case "DaemonSet":
			c.daemonSet(wp)
		case "StatefulSet":
			c.statefulSet(wp)
		default:
			c.workload(wp)
		}
	}
	for _, j := range st.Jobs {
		c.job(j)
	}
}

// ids avoids giving a replica ID in use.
type ids struct {
	live *Live
	new  map[string]bool
}

func newIDs(l *Live) *ids { return &ids{live: l, new: map[string]bool{}} }

func (u *ids) used(id string) bool { return u.new[id] || u.live.used(id) }

// hashSuffix is five base-36 digits derived from s: a name's unique part,
// deterministic for Compute.
func hashSuffix(s string) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	suffix := strconv.FormatUint(h.Sum64()%(36*36*36*36*36), 36)
	return strings.Repeat("0", 5-len(suffix)) + suffix
}

// newReplicaID derives a replica ID from the workload, its template hash and
// the clock, so Compute stays deterministic, avoiding every ID in use. The
// ID starts with the workload's name without its namespace (as a
// Kubernetes pod's name), and is unique in the whole cluster.
func (u *ids) newReplicaID(w desired.Workload, now time.Time, i int) string {
	for n := 0; ; n++ {
		id := desired.ShortName(w.Name) + "-" + w.Hash[:8] + "-" + hashSuffix(fmt.Sprintf("%s/%s/%d/%d/%d", w.Name, w.Hash, now.UnixNano(), i, n))
		if !u.used(id) {
			u.new[id] = true
			return id
		}
	}
}

func stop(r replica, reason string) Stop {
	return Stop{Node: r.node, Workload: r.Workload, ReplicaID: r.ID, SpecHash: r.SpecHash, Reason: reason}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
