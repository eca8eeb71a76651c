package reconciler

import (
	"fmt"
	"maps"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/schedule"
)

// cluster is the placement view of the nodes during one Compute: what each
// holds, updated as replicas are placed so later workloads see earlier ones
// (schedule.Cluster, which keeps its heaps across the workloads of the pass).
type cluster struct {
	sc *schedule.Cluster
}

// podAmount is a pod's requests as Kubernetes counts them: its containers
// and sidecars together, or, if more, an init container with the sidecars
// started before it (init containers run one at a time).
func podAmount(p desired.PodSpec) desired.Amount {
	var sum, sidecars, peak desired.Amount
	add := func(a *desired.Amount, b desired.Amount) {
		a.CPUMilli += b.CPUMilli
		a.MemoryBytes += b.MemoryBytes
		for name, v := range b.Extra {
			if a.Extra == nil {
				a.Extra = map[string]int64{}
			}
			a.Extra[name] += v
		}
	}
	higher := func(a *desired.Amount, b desired.Amount) {
		a.CPUMilli, a.MemoryBytes = max(a.CPUMilli, b.CPUMilli), max(a.MemoryBytes, b.MemoryBytes)
		for name, v := range b.Extra {
			if a.Extra == nil {
				a.Extra = map[string]int64{}
			}
			a.Extra[name] = max(a.Extra[name], v)
		}
	}
	for _, c := range p.InitContainers {
		if c.Sidecar {
			add(&sidecars, c.Resources.Requests)
			continue
		}
		step := c.Resources.Requests
		step.Extra = maps.Clone(step.Extra)
		add(&step, sidecars)
		higher(&peak, step)
	}
	add(&sum, sidecars)
	for _, c := range p.Containers {
		add(&sum, c.Resources.Requests)
	}
	higher(&sum, peak)
	return sum
}

// podRequests is a pod's requests (podAmount) as placement counts them:
// cpu and memory, and the others by name (nil: none).
func podRequests(p desired.PodSpec) (schedule.Resources, map[string]int64) {
	a := podAmount(p)
	return schedule.Resources{CPUMilli: a.CPUMilli, MemoryBytes: a.MemoryBytes}, a.Extra
}

func portKeys(p desired.PodSpec) []string {
	var out []string
	for _, b := range protocol.HostPorts(p) {
		out = append(out, fmt.Sprintf("%s/%d", b.Protocol, b.HostPort))
	}
	return out
}

func newCluster(in Input, live *Live) *cluster {
	return &cluster{sc: schedule.NewCluster(scheduleNodes(in, live), in.Strategy)}
}

// scheduleNodes are the nodes as placement sees them: what each can hold,
// and what its live and pending replicas request of it.
func scheduleNodes(in Input, live *Live) []schedule.Node {
	requests := map[string]schedule.Resources{}
	extra := map[string]map[string]int64{}
	ports := map[string][]string{}
	if in.Desired != nil {
		note := func(name string, p desired.PodSpec) {
			requests[name], extra[name] = podRequests(p)
			ports[name] = portKeys(p)
		}
		for _, w := range in.Desired.Workloads {
			note(w.Name, w.Pod)
		}
		for _, j := range in.Desired.Jobs { // CronJob runs are among them
			note(JobWorkload(j.Name), j.Spec.Pod)
		}
	}
	names := sortedKeys(in.Nodes)
	nodes := make([]schedule.Node, len(names))
	index := make(map[string]int, len(names))
	for i, name := range names {
		n := in.Nodes[name]
		sn := schedule.Node{Name: name, Ready: live.Ready[name], Cordoned: in.Cordoned[name] || in.Draining[name], Labels: n.Labels,
			Allocatable:      schedule.Resources{CPUMilli: n.Allocatable.CPUMilli, MemoryBytes: n.Allocatable.MemoryBytes},
			ExtraAllocatable: n.Allocatable.Extra, Taints: n.Taints, Workloads: map[string]int{}}
		if len(n.Volumes) > 0 {
			sn.Volumes = map[string]bool{}
			for _, v := range n.Volumes {
				sn.Volumes[v] = true
			}
		}
		index[name] = i
		nodes[i] = sn
	}
	for _, g := range live.groups {
		for _, r := range g.all {
			i, ok := index[r.node]
			if !ok || !alive(r.State) || r.gone() {
				continue
			}
			n := &nodes[i]
			req := requests[r.Workload]
			n.Requested.CPUMilli += req.CPUMilli
			n.Requested.MemoryBytes += req.MemoryBytes
			for name, v := range extra[r.Workload] {
				if n.ExtraRequested == nil {
					n.ExtraRequested = map[string]int64{}
				}
				n.ExtraRequested[name] += v
			}
			n.Workloads[r.Workload]++
			n.Total++
			for _, p := range r.Ports {
				if n.HostPorts == nil {
					n.HostPorts = map[string]bool{}
				}
				n.HostPorts[fmt.Sprintf("%s/%d", p.Protocol, p.HostPort)] = true
			}
			if r.pending { // not reported yet: its ports are its template's
				for _, p := range ports[r.Workload] {
					if n.HostPorts == nil {
						n.HostPorts = map[string]bool{}
					}
					n.HostPorts[p] = true
				}
			}
		}
	}
	return nodes
}

// schedPod is what placement needs of a workload's pod.
func schedPod(w desired.Workload, st *desired.State) schedule.Pod {
	req, extra := podRequests(w.Pod)
	p := schedule.Pod{Workload: w.Name, Requests: req, Extra: extra, NodeSelector: w.Pod.NodeSelector, HostPorts: portKeys(w.Pod),
		NodeAffinity: w.Pod.NodeAffinity, Tolerations: w.Pod.Tolerations}
	for _, v := range w.Pod.Volumes {
		if v.Claim != nil {
			p.Claims = append(p.Claims, v.Claim.Claim)
		}
	}
	for _, t := range w.Pod.TopologySpread {
		p.Terms = append(p.Terms, schedule.Term{TopologyKey: t.TopologyKey, MaxSkew: max(t.MaxSkew, 1),
			Hard: t.WhenUnsatisfiable != "ScheduleAnyway", Weight: 1, Matches: matchingWorkloads(w, st, t.MatchLabels, t.MatchExpressions, ownNamespace(w))})
	}
	for _, t := range w.Pod.AntiAffinity {
		p.Terms = append(p.Terms, schedule.Term{TopologyKey: t.TopologyKey, Hard: t.Weight == 0, Weight: t.Weight,
			Matches: matchingWorkloads(w, st, t.MatchLabels, t.MatchExpressions, termNamespaces(w, t, st))})
	}
	for _, t := range w.Pod.Affinity {
		p.Terms = append(p.Terms, schedule.Term{TopologyKey: t.TopologyKey, Hard: t.Weight == 0, Weight: t.Weight, Affinity: true,
			Matches: matchingWorkloads(w, st, t.MatchLabels, t.MatchExpressions, termNamespaces(w, t, st))})
	}
	return p
}

// ownNamespace is w's namespace alone.
func ownNamespace(w desired.Workload) map[string]bool {
	return map[string]bool{desired.NamespaceOf(w.Name): true}
}

// termNamespaces are the namespaces whose pods a pod affinity term looks
// at: those it names, and those its namespaceSelector matches; neither:
// w's own.
func termNamespaces(w desired.Workload, t desired.AntiAffinityTerm, st *desired.State) map[string]bool {
	if len(t.Namespaces) == 0 && t.NamespaceSelector == nil {
		return ownNamespace(w)
	}
	m := map[string]bool{}
	if s := t.NamespaceSelector; s != nil {
		m = st.NamespacesMatching(s.MatchLabels, s.MatchExpressions)
	}
	for _, ns := range t.Namespaces {
		m[ns] = true
	}
	return m
}

// matchingWorkloads are the workloads of namespaces whose pod labels
// match the selector; with no selector, the workload itself.
func matchingWorkloads(w desired.Workload, st *desired.State, sel map[string]string, exprs []desired.Requirement, namespaces map[string]bool) map[string]bool {
	m := map[string]bool{}
	if len(sel) == 0 && len(exprs) == 0 {
		m[w.Name] = true
		return m
	}
	for _, o := range st.Workloads {
		if namespaces[desired.NamespaceOf(o.Name)] && desired.SelectorMatches(sel, exprs, o.PodLabels) {
			m[o.Name] = true
		}
	}
	return m
}

// place chooses nodes for n replicas of w, none among the nodes that
// refused its template, and counts them on their nodes.
func (c *cluster) place(w desired.Workload, st *desired.State, n int, refusedBy map[string]string) schedule.Result {
	pod := schedPod(w, st)
	pod.Refused = refusedBy
	return c.sc.Place(pod, n)
}
