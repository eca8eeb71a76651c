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
	return !n.LastHeartbeat.IsZero() && now.Sub(n.LastHeartbeat) <= grace && !n.ReportTime.IsZero()
}

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
	byWorkload map[string][]replica
	ids        map[string]bool // every replica ID of the live state
}

// NewLive groups the live state of in by workload.
func NewLive(in Input) *Live {
	l := &Live{Ready: make(map[string]bool, len(in.Nodes)), byWorkload: map[string][]replica{}}
	for name, n := range in.Nodes {
		l.Ready[name] = NodeReady(n, in.Now, in.NodeGrace)
	}
	// Disruption mode: when most nodes went silent recently, the fault is
	// likely the control plane's (its network, NATS): their replicas are
	// neither forgotten nor replaced; Baton waits, and says so.
	l.Held = heldNodes(in)
	if len(l.Held) > 0 {
		l.HoldReason = fmt.Sprintf("%d of %d nodes went silent at once (%s): not moving their replicas for up to %s, in case the fault is the control plane's",
			len(l.Held), len(in.Nodes), joinNames(l.Held), DisruptionHold)
	}
	justStarted := in.Now.Sub(in.Started) <= in.NodeGrace
	reported := map[string]bool{}
	for name, n := range in.Nodes {
		if !l.Ready[name] && !l.Held[name] {
			continue
		}
		for i := range n.Replicas {
			r := &n.Replicas[i]
			reported[r.ID] = true
			_, assigned := in.Assignments[r.ID]
			l.byWorkload[r.Workload] = append(l.byWorkload[r.Workload], replica{Replica: r, node: name, assigned: assigned,
				held: l.Held[name], stopping: in.Stopping[r.ID]})
		}
	}
	// Assignments not reported yet count as replicas being created, so they
	// are not started twice: on ready and held nodes for PendingTimeout, on
	// nodes not heard from since a restart, and on nodes heard but whose
	// report has not come yet (e.g. just after a leader change).
	for id, a := range in.Assignments {
		if reported[id] {
			continue
		}
		n, heard := in.Nodes[a.Node]
		switch {
		case (l.Ready[a.Node] || l.Held[a.Node]) && in.Now.Sub(a.Created) <= in.PendingTimeout:
		case !heard && justStarted, heard && awaitingReport(n, in):
		default:
			continue
		}
		l.byWorkload[a.Workload] = append(l.byWorkload[a.Workload], pendingReplica(a, l.Held[a.Node]))
	}
	l.ids = reported
	for id := range in.Assignments {
		l.ids[id] = true
	}
	for _, rs := range l.byWorkload {
		slices.SortFunc(rs, func(a, b replica) int { return strings.Compare(a.ID, b.ID) })
	}
	return l
}

// Of returns the live and pending replicas of a workload, sorted by ID.
func (l *Live) Of(workload string) []replica { return l.byWorkload[workload] }

// reported returns a workload's replicas that ready nodes report: what the
// steps around Compute count (rollouts, autoscalers, Jobs, history).
func (l *Live) reported(workload string) []replica {
	var out []replica
	for _, r := range l.byWorkload[workload] {
		if !r.pending && !r.held {
			out = append(out, r)
		}
	}
	return out
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
	// Forget assignments that can no longer come true.
	for id, a := range in.Assignments {
		n, heard := in.Nodes[a.Node]
		switch {
		case !heard && in.Now.Sub(in.Started) <= in.NodeGrace:
			// Just started: the node may not have sent a heartbeat yet.
		case live.Held[a.Node]:
			// Disruption mode: kept, counted.
		case heard && awaitingReport(n, in):
			// Heard, but its report has not come yet (e.g. just after a
			// leader change): what it runs is unknown, kept, counted.
		case !live.Ready[a.Node]:
			res.Forgets = append(res.Forgets, Forget{Node: a.Node, Workload: a.Workload, ReplicaID: id, Reason: "node lost"})
		case in.Now.Sub(a.Created) > in.PendingTimeout && !reportedBy(n, id):
			res.Forgets = append(res.Forgets, Forget{Node: a.Node, Workload: a.Workload, ReplicaID: id, Reason: "never reported by its node"})
		}
	}
	if in.Desired != nil {
		c := &pass{in: in, live: live, res: &res, ids: newIDs(live)}
		c.compute()
	}
	res.sort()
	return res
}

// reportedBy reports whether node n's last report shows replica id. Only
// assignments past their pending timeout ask, so it is rare.
func reportedBy(n NodeView, id string) bool {
	for i := range n.Replicas {
		if n.Replicas[i].ID == id {
			return true
		}
	}
	return false
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
	for _, wname := range sortedKeys(c.live.byWorkload) {
		if want[wname] {
			continue
		}
		for _, r := range c.live.byWorkload[wname] {
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
		c.workload(workloadPass{w: w, st: rs, replicas: c.live.Of(w.Name), frozen: c.in.Frozen[w.Name] == w.Hash, refused: c.in.Refused[w.Name]})
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

func (u *ids) used(id string) bool { return u.live.ids[id] || u.new[id] }

// newReplicaID derives a replica ID from the workload, its template hash and
// the clock, so Compute stays deterministic, avoiding every ID in use.
func (u *ids) newReplicaID(w desired.Workload, now time.Time, i int) string {
	for n := 0; ; n++ {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%s/%d/%d/%d", w.Name, w.Hash, now.UnixNano(), i, n)
		suffix := strconv.FormatUint(h.Sum64()%(36*36*36*36*36), 36)
		for len(suffix) < 5 {
			suffix = "0" + suffix
		}
		id := w.Name + "-" + w.Hash[:8] + "-" + suffix
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
