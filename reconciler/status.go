package reconciler

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/store"
)

// Revision describes one commit of the config repository.
type Revision struct {
	ID string `json:"id"`
	// Ref is what the source follows, e.g. "branch main" or "tag v1.4.0".
	Ref     string    `json:"ref,omitempty"`
	Message string    `json:"message,omitempty"`
	Author  string    `json:"author,omitempty"`
	Time    time.Time `json:"time,omitzero"`
}

// RevisionError is a revision that could not be applied, and why.
type RevisionError struct {
	Revision string    `json:"revision"`
	Errors   []string  `json:"errors"`
	Time     time.Time `json:"time"`
}

// Status is the reconciler's view of the cluster, as `baton status` shows it.
type Status struct {
	// Synced is the revision whose desired state is applied.
	Synced   Revision  `json:"synced"`
	SyncedAt time.Time `json:"syncedAt,omitzero"`
	// Tip is the newest revision the source gave (the branch's tip): the
	// synced one once it is applied; another while it fails to load, is
	// refused, or the cluster is pinned.
	Tip Revision `json:"tip,omitzero"`
	// Error is set while the newest revision seen cannot be applied.
	Error *RevisionError `json:"error,omitempty"`
	// SourceError is set while the config repository cannot be fetched.
	SourceError string           `json:"sourceError,omitempty"`
	Workloads   []WorkloadStatus `json:"workloads"`
	Jobs        []JobStatus      `json:"jobs,omitempty"`
	// Services are the Services with their addresses and ready endpoints.
	Services []ServiceStatus `json:"services,omitempty"`
	Nodes    []NodeStatus    `json:"nodes"`
	// Events are the newest decisions (starts, stops, forgets with their
	// reasons; failures; pending replicas; disruption mode), newest last,
	// at most 200.
	Events []string `json:"events,omitempty"`
	// Warnings name what the synced revision asks for that Baton does not act on yet.
	Warnings []string `json:"warnings,omitempty"`
	// Disruption is set while most nodes are silent and their replicas are
	// kept where they are (disruption mode).
	Disruption string `json:"disruption,omitempty"`
	// Pin is set while the cluster is pinned to a revision (baton pin).
	Pin *store.Pin `json:"pin,omitempty"`
	// Refused is set while the newest revision of the branch is one whose
	// rollout failed before: it is not applied again on its own.
	Refused *store.BadRevision `json:"refused,omitempty"`
	// Leader is the server answering, and Term its leadership term (0
	// without leader election).
	Leader string `json:"leader,omitempty"`
	Term   uint64 `json:"term,omitempty"`
	// ReplicasOmitted counts the replicas left out of the lists (a summary:
	// StatusRequest.Replicas "all" lists them).
	ReplicasOmitted int `json:"replicasOmitted,omitempty"`
	// Pass is the number of the pass this status comes from, counted from
	// 1 by the reconciler that answers (with Term: which leadership): a
	// client that must see the loop act, or not act, waits for passes.
	Pass int64 `json:"pass,omitempty"`
	// Pools are the revision's node pools: nodes, machines joining or
	// going, what pending replicas want of them, the last decision.
	Pools []PoolStatus `json:"pools,omitempty"`
	// PoolUnserved are the pending replicas no node pool can take, and why.
	PoolUnserved []string `json:"poolUnserved,omitempty"`
}

// ReplicaList says which replicas a status lists.
type ReplicaList string

// Replica lists.
const (
	// ReplicasAuto lists them when there are at most AutoReplicas in all.
	ReplicasAuto ReplicaList = "auto"
	ReplicasAll  ReplicaList = "all"
	ReplicasNone ReplicaList = "none"
)

// AutoReplicas is the most replicas a status lists by default.
const AutoReplicas = 1000

// StatusRequest says what a status holds: by default a summary (counts per
// workload, nodes, revision, events) with the replicas listed up to
// AutoReplicas; Workload keeps one workload (or job/<name>), Namespace
// the workloads, Jobs and Services of one namespace.
type StatusRequest struct {
	Replicas  ReplicaList `json:"replicas,omitempty"`
	Workload  string      `json:"workload,omitempty"`
	Namespace string      `json:"namespace,omitempty"`
}

// inNamespace tells whether a workload's name (or job/<name>) is of
// namespace ns ("": any).
func inNamespace(workload, ns string) bool {
	return ns == "" || desired.WorkloadNamespace(workload) == ns
}

// Valid reports whether the request asks for a known list.
func (q StatusRequest) Valid() bool {
	switch q.Replicas {
	case "", ReplicasAuto, ReplicasAll, ReplicasNone:
		return true
	}
	return false
}

// WorkloadStatus compares one workload's desired and live replicas.
type WorkloadStatus struct {
	Name     string `json:"name"`
	SpecHash string `json:"specHash"`
	Desired  int    `json:"desired"`
	// Current counts replicas of the desired template running or
	// crash-looping (as Kubernetes' UP-TO-DATE counts them); Running all
	// running ones; Ready those running and passing their readiness probes.
	Current int `json:"current"`
	Running int `json:"running"`
	Ready   int `json:"ready"`
	// States counts the replicas by state, listed or not.
	States map[protocol.ReplicaState]int `json:"states,omitempty"`
	// Pending counts replicas that cannot start or move; PendingReason
	// says why, as "0/3 nodes fit: 2 insufficient memory, 1 node selector
	// mismatch" or "drain of node n1 waits: PodDisruptionBudget ...".
	// Scale says who owns the desired count (Git, a ScalingSchedule, an
	// autoscaler) and the window in effect: the pass's one scale decision.
	Scale Scale `json:"scale"`
	// Rollout is the latest template change and how it went.
	Rollout       *Rollout        `json:"rollout,omitempty"`
	Pending       int             `json:"pending,omitempty"`
	PendingReason string          `json:"pendingReason,omitempty"`
	Replicas      []ReplicaStatus `json:"replicas"`
}

// ReplicaStatus is one replica of a workload.
type ReplicaStatus struct {
	ID       string                `json:"id"`
	Node     string                `json:"node"`
	SpecHash string                `json:"specHash"`
	State    protocol.ReplicaState `json:"state"`
	Ready    bool                  `json:"ready"`
	PodIP    string                `json:"podIP,omitempty"`
	// Ports are the replica's published host ports, "hostPort->containerPort/proto".
	Ports     []string        `json:"ports,omitempty"`
	Restarts  int             `json:"restarts,omitempty"`
	ExitCode  int             `json:"exitCode,omitempty"`
	StartedAt time.Time       `json:"startedAt,omitzero"`
	Usage     *protocol.Usage `json:"usage,omitempty"`
	LastExit  string          `json:"lastExit,omitempty"`
	Message   string          `json:"message,omitempty"`
	// Code says why the replica's start failed; Failures counts the failed
	// starts in a row and RetryAt is its node's next try.
	Code     protocol.ErrorCode `json:"code,omitempty"`
	Failures int                `json:"failures,omitempty"`
	RetryAt  time.Time          `json:"retryAt,omitzero"`
}

// NodeStatus is one node.
type NodeStatus struct {
	Name          string    `json:"name"`
	Ready         bool      `json:"ready"`
	LastHeartbeat time.Time `json:"lastHeartbeat"`
	Replicas      int       `json:"replicas"`
	// DaemonReplicas counts those of DaemonSets, which a drain leaves (as
	// kubectl drain --ignore-daemonsets).
	DaemonReplicas int                `json:"daemonReplicas,omitempty"`
	Cordoned       bool               `json:"cordoned,omitempty"`
	Draining       bool               `json:"draining,omitempty"`
	Capacity       protocol.Resources `json:"capacity"`
	Labels         map[string]string  `json:"labels,omitempty"`
	AgentVersion   string             `json:"agentVersion,omitempty"`
	// Address and PodSubnet are the node's, from its heartbeats.
	Address   string `json:"address,omitempty"`
	PodSubnet string `json:"podSubnet,omitempty"`
}

// ServiceStatus is a Service as status shows it.
type ServiceStatus struct {
	Name  string              `json:"name"`
	IP    string              `json:"ip,omitempty"` // "None" for a headless Service
	Ports []ServicePortStatus `json:"ports,omitempty"`
	// Error says why it has no address.
	Error string `json:"error,omitempty"`
}

// ServicePortStatus is one port of a Service and its ready endpoints.
type ServicePortStatus struct {
	Port      int      `json:"port"`
	Protocol  string   `json:"protocol"`
	NodePort  int      `json:"nodePort,omitempty"`
	Endpoints []string `json:"endpoints"`
}

// Status returns a snapshot of the reconciler's view, every replica listed.
func (r *Reconciler) Status() Status { return r.StatusWith(StatusRequest{Replicas: ReplicasAll}) }

// StatusWith returns a snapshot of the reconciler's view as q asks.
func (r *Reconciler) StatusWith(q StatusRequest) Status {
	s := r.snap.Load()
	if s == nil { // no pass yet
		return Status{Workloads: []WorkloadStatus{}, Nodes: []NodeStatus{}, Leader: r.cfg.ID, Term: r.cfg.Term}
	}
	now := s.at
	list := q.Replicas == ReplicasAll
	if q.Replicas == "" || q.Replicas == ReplicasAuto {
		total := 0
		for _, n := range s.nodes {
			total += len(n.view.Replicas)
		}
		list = total <= AutoReplicas
	}
	omitted := 0
	keep := func(workload string) bool {
		return (q.Workload == "" || q.Workload == workload) && inNamespace(workload, q.Namespace)
	}
	st := Status{Synced: s.synced, Tip: s.tip, SyncedAt: s.syncedAt, Error: s.revErr, SourceError: s.sourceErr,
		Workloads: []WorkloadStatus{}, Nodes: []NodeStatus{}, Events: slices.Clone(s.events),
		Leader: r.cfg.ID, Term: r.cfg.Term, Disruption: s.hold, Pin: s.pin, Refused: s.refused, Pass: s.stats.Passes,
		Services: s.services, Pools: s.pools, PoolUnserved: s.poolUnserved}
	if q.Namespace != "" {
		st.Services = slices.DeleteFunc(slices.Clone(st.Services), func(sv ServiceStatus) bool { return !inNamespace(sv.Name, q.Namespace) })
	}

	byName := map[string]*WorkloadStatus{}
	var names []string
	if s.desired != nil {
		st.Warnings = s.desired.Warnings
		for _, w := range s.desired.Workloads {
			if !keep(w.Name) {
				continue
			}
			sc, ok := s.scales[w.Name]
			if !ok {
				sc = Scale{Replicas: w.Replicas, Owner: OwnerGit}
			}
			byName[w.Name] = &WorkloadStatus{Name: w.Name, SpecHash: w.Hash, Desired: sc.Replicas, Scale: sc, Replicas: []ReplicaStatus{}}
			if ro, ok := s.rollouts[w.Name]; ok {
				byName[w.Name].Rollout = &ro
				if ro.State == RolloutRolledBack && ro.Hash == w.Hash {
					byName[w.Name].SpecHash = ro.Healthy // what is desired now
				}
			}
			names = append(names, w.Name)
		}
	}
	daemons := map[string]bool{}
	if s.desired != nil {
		for _, w := range s.desired.Workloads {
			if w.Kind == "DaemonSet" {
				daemons[w.Name] = true
			}
		}
	}
	for _, name := range sortedKeys(s.nodes) {
		n := s.nodes[name]
		ready := NodeReady(n.view, now, s.grace)
		dr := 0
		for _, r := range n.view.Replicas {
			if daemons[r.Workload] {
				dr++
			}
		}
		ctl := s.controls[name]
		st.Nodes = append(st.Nodes, NodeStatus{Name: name, Ready: ready, LastHeartbeat: n.view.LastHeartbeat,
			Replicas: len(n.view.Replicas), DaemonReplicas: dr, Capacity: n.hb.Capacity, Labels: n.hb.Labels, AgentVersion: n.hb.AgentVersion,
			Cordoned: ctl.Cordoned || ctl.Draining, Draining: ctl.Draining, Address: n.hb.Address, PodSubnet: n.hb.PodSubnet})
		if !ready {
			continue
		}
		for i := range n.view.Replicas {
			rep := &n.view.Replicas[i]
			if !keep(rep.Workload) {
				continue
			}
			ws, ok := byName[rep.Workload]
			if !ok {
				ws = &WorkloadStatus{Name: rep.Workload, Replicas: []ReplicaStatus{}}
				byName[rep.Workload] = ws
				names = append(names, rep.Workload)
			}
			// A Job's progress is counted from its pods: they are kept until
			// then, and left out after if the lists are.
			if list || strings.HasPrefix(rep.Workload, "job/") {
				ws.Replicas = append(ws.Replicas, replicaStatus(name, rep))
			} else {
				omitted++
			}
			if ws.States == nil {
				ws.States = map[protocol.ReplicaState]int{}
			}
			ws.States[rep.State]++
			if rep.Ready && rep.State == protocol.StateRunning { // a replica stopping is not counted ready
				ws.Ready++
			}
			crashLooping := rep.State == protocol.StateWaiting && rep.Restarts > 0 // waiting out its restart back-off
			if rep.SpecHash == ws.SpecHash && (rep.State == protocol.StateRunning || crashLooping) {
				ws.Current++
			}
			if rep.State == protocol.StateRunning {
				ws.Running++
			}
		}
	}
	jobs := map[string]desired.Job{}
	if withJobs := s.withRuns; withJobs != nil {
		for _, j := range withJobs.Jobs {
			if keep(JobWorkload(j.Name)) {
				jobs[JobWorkload(j.Name)] = j
			}
		}
	}
	sort.Strings(names)
	for _, name := range names {
		ws := byName[name]
		if p, ok := s.pending[name]; ok {
			ws.Pending, ws.PendingReason = p.Count, p.Reason
		}
		sort.Slice(ws.Replicas, func(i, j int) bool { return ws.Replicas[i].ID < ws.Replicas[j].ID })
		if j, ok := jobs[name]; ok {
			js := jobStatus(j, ws, now)
			if !list {
				omitted += len(js.Replicas)
				js.Replicas = nil
			}
			st.Jobs = append(st.Jobs, js)
			delete(jobs, name)
			continue
		}
		if !list && strings.HasPrefix(name, "job/") {
			omitted += len(ws.Replicas)
			ws.Replicas = []ReplicaStatus{}
		}
		st.Workloads = append(st.Workloads, *ws)
	}
	st.ReplicasOmitted = omitted
	for _, name := range sortedKeys(jobs) { // Jobs with no pod yet
		st.Jobs = append(st.Jobs, jobStatus(jobs[name], &WorkloadStatus{Name: name}, now))
	}
	return st
}

func replicaStatus(node string, rep *protocol.Replica) ReplicaStatus {
	rs := ReplicaStatus{ID: rep.ID, Node: node, SpecHash: rep.SpecHash, State: rep.State, Ready: rep.Ready && rep.State == protocol.StateRunning,
		PodIP: rep.PodIP, Restarts: rep.Restarts, ExitCode: rep.ExitCode, StartedAt: rep.StartedAt, LastExit: rep.LastExit, Usage: rep.Usage, Message: rep.Message,
		Code: rep.Code, Failures: rep.Failures, RetryAt: rep.RetryAt}
	if rep.HostNetwork {
		rs.PodIP = "host"
	}
	for _, p := range rep.Ports {
		rs.Ports = append(rs.Ports, fmt.Sprintf("%d->%d/%s", p.HostPort, p.ContainerPort, p.Protocol))
	}
	return rs
}

// JobStatus is a Job's progress and its pods.
type JobStatus struct {
	JobProgress
	Completions   int             `json:"completions"`
	Pending       int             `json:"pending,omitempty"`
	PendingReason string          `json:"pendingReason,omitempty"`
	Replicas      []ReplicaStatus `json:"replicas,omitempty"`
}

func jobStatus(j desired.Job, ws *WorkloadStatus, now time.Time) JobStatus {
	var pods []replica
	for _, rs := range ws.Replicas {
		pods = append(pods, replica{Replica: &protocol.Replica{ID: rs.ID, SpecHash: rs.SpecHash, State: rs.State,
			ExitCode: rs.ExitCode, Restarts: rs.Restarts, StartedAt: rs.StartedAt}})
	}
	return JobStatus{JobProgress: jobProgress(j.Name, j.Spec, j.Hash, pods, now), Completions: j.Spec.Completions,
		Pending: ws.Pending, PendingReason: ws.PendingReason, Replicas: ws.Replicas}
}

// ReplicaGroup is a workload's replicas, or a Job's (named job/NAME).
type ReplicaGroup struct {
	Workload string
	Replicas []ReplicaStatus
}

// ReplicaGroups are the status's workloads, then its Jobs, each with its
// replicas (as status lists them apart).
func (s Status) ReplicaGroups() []ReplicaGroup {
	out := make([]ReplicaGroup, 0, len(s.Workloads)+len(s.Jobs))
	for _, w := range s.Workloads {
		out = append(out, ReplicaGroup{w.Name, w.Replicas})
	}
	for _, j := range s.Jobs {
		out = append(out, ReplicaGroup{JobWorkload(j.Name), j.Replicas})
	}
	return out
}

// Replicas are every replica the status lists, each with its group's name.
func (s Status) Replicas() map[string][]ReplicaStatus {
	out := map[string][]ReplicaStatus{}
	for _, g := range s.ReplicaGroups() {
		out[g.Workload] = g.Replicas
	}
	return out
}
