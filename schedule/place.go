package schedule

import (
	"container/heap"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/batonhq/baton/desired"
)

// Resources is an amount of CPU and memory.
type Resources struct {
	CPUMilli    int64
	MemoryBytes int64
}

// Node is a node as placement sees it.
type Node struct {
	Name  string
	Ready bool
	// Cordoned nodes take no new replica (baton node cordon, drain).
	Cordoned bool
	Labels   map[string]string
	// Allocatable is what pods may request in all; zero means unknown, and
	// is not checked.
	Allocatable Resources
	// Requested sums the requests of the pods the node holds.
	Requested Resources
	// ExtraAllocatable and ExtraRequested are the same for the resources
	// beyond cpu and memory (what the node advertises; absent: none).
	ExtraAllocatable map[string]int64
	ExtraRequested   map[string]int64
	// Taints keep pods that do not tolerate them away.
	Taints []desired.Taint
	// HostPorts are the ports its pods publish, as "TCP/8080".
	HostPorts map[string]bool
	// Volumes are the claims whose local volumes the node holds.
	Volumes map[string]bool
	// Workloads counts the node's live replicas per workload; Total all of them.
	Workloads map[string]int
	Total     int
}

// Term is a topology rule of a pod: a spread constraint or an anti-affinity
// term. It counts the replicas of the workloads in Matches per domain of
// TopologyKey (a node label; "kubernetes.io/hostname" or "" is the node).
type Term struct {
	TopologyKey string
	// MaxSkew bounds a spread constraint; 0 makes it an anti-affinity term
	// (no matching pod in the same domain).
	MaxSkew int
	// Hard terms filter nodes (DoNotSchedule, required); others score (Weight
	// for preferred anti-affinity, 1 for ScheduleAnyway).
	Hard    bool
	Weight  int
	Matches map[string]bool
	// Affinity turns the term around (podAffinity): the replica goes
	// where matching pods are. A required one lets the first replica go
	// anywhere when nothing matches yet and the workload matches itself.
	Affinity bool
}

// Pod is what a replica asks of its node.
type Pod struct {
	Workload     string
	Requests     Resources
	NodeSelector map[string]string
	HostPorts    []string
	// Claims must go where their volumes are, once a node holds one.
	Claims []string
	Terms  []Term
	// Refused names the nodes that refused the pod (their policy), with
	// why: they are filtered out.
	Refused map[string]string
	// Extra are the requests beyond cpu and memory, by resource name
	// (ephemeral-storage, hugepages-2Mi, nvidia.com/gpu).
	Extra map[string]int64
	// Node, when set, is the one node the replica may go to (a
	// DaemonSet's).
	Node string
	// NodeAffinity narrows the nodes (required) and ranks them
	// (preferred); Tolerations let the pod onto tainted nodes.
	NodeAffinity *desired.NodeAffinity
	Tolerations  []desired.Toleration
}

// ExtraFits says why a node with allocatable and requested extra
// resources cannot take k more pods requesting extra ("" if it can). A
// node that reports no ephemeral-storage is not held to it; any other
// resource must be advertised.
func ExtraFits(allocatable, requested, extra map[string]int64, k int64) string {
	for name, v := range extra {
		a, ok := allocatable[name]
		if !ok && name == "ephemeral-storage" {
			continue
		}
		if requested[name]+k*v > a {
			return "insufficient " + name
		}
	}
	return ""
}

// Strategy chooses among the nodes that fit.
type Strategy int

const (
	// SpreadOut prefers nodes (and zones) with fewer replicas of the
	// workload, then the least requested: Kubernetes' default.
	SpreadOut Strategy = iota
	// BinPack prefers the most requested node that fits, leaving others
	// empty (fewer machines, fewer costs).
	BinPack
)

// ZoneLabel is the node label replicas are spread across, besides nodes.
const ZoneLabel = "topology.kubernetes.io/zone"

const hostnameKey = "kubernetes.io/hostname"

// Result is the outcome of Place.
type Result struct {
	// Nodes has one node name per placed replica, in order.
	Nodes []string
	// Unplaced counts replicas that fit nowhere; Reason says why, as
	// "0/3 nodes fit: 2 insufficient memory, 1 node selector mismatch".
	Unplaced int
	Reason   string
}

// Place chooses nodes for n replicas of pod, one at a time, counting each
// placed replica against its node before the next (requests, host ports,
// volumes, topology). Nodes are filtered (readiness, node selector,
// capacity, host ports, volume locality, hard topology terms), then scored;
// ties go to the smaller name, so the result is deterministic. It costs
// O(n × len(nodes) × terms).
func Place(pod Pod, nodes []Node, n int, s Strategy) Result {
	var res Result
	if n <= 0 {
		return res
	}
	p := newPlacer(pod, nodes, s)
	if len(pod.Terms) == 0 {
		return p.placeFast(n, res)
	}
	return p.placeScan(n, res)
}

// placeScan scans every node for every replica.
func (p *placer) placeScan(n int, res Result) Result {
	for i := range n {
		best, reasons := p.pick()
		if best < 0 {
			res.Unplaced = n - i
			res.Reason = reasonText(len(p.nodes), reasons)
			return res
		}
		p.place(best)
		res.Nodes = append(res.Nodes, p.nodes[best].Name)
	}
	return res
}

type placer struct {
	pod   Pod
	nodes []Node
	s     Strategy
	// what this call placed, per node index
	added    []int
	claimsAt map[string]map[int]bool // claim → nodes holding (or given) its volume
	// replicas matching each term per domain, and the domains seen
	domains []map[string]int
	zone    map[string]int // replicas of the workload per zone
	static  []string       // per node: why it never fits ("" if it may)
	zoneOf  []string       // per node: its zone label
	mine    []int          // per node: replicas of the workload before this call
}

func newPlacer(pod Pod, nodes []Node, s Strategy) *placer {
	p := &placer{pod: pod, nodes: nodes, s: s, added: make([]int, len(nodes)), claimsAt: map[string]map[int]bool{},
		domains: make([]map[string]int, len(pod.Terms)), zone: map[string]int{}, static: make([]string, len(nodes)),
		zoneOf: make([]string, len(nodes)), mine: make([]int, len(nodes))}
	for _, c := range pod.Claims {
		p.claimsAt[c] = map[int]bool{}
	}
	for i, nd := range nodes {
		for c, at := range p.claimsAt {
			if nd.Volumes[c] {
				at[i] = true
			}
		}
		p.static[i] = p.staticFilter(&nodes[i])
	}
	for t, term := range pod.Terms {
		p.domains[t] = map[string]int{}
		for i := range nodes {
			d, ok := domain(&nodes[i], term.TopologyKey)
			if !ok || (term.Hard && p.static[i] != "") {
				continue
			}
			p.domains[t][d] += matching(&nodes[i], term)
		}
	}
	for i, nd := range nodes {
		p.mine[i] = nd.Workloads[pod.Workload]
		if z := nd.Labels[ZoneLabel]; z != "" {
			p.zoneOf[i] = z
			p.zone[z] += p.mine[i]
		}
	}
	return p
}

func domain(n *Node, key string) (string, bool) {
	if key == "" || key == hostnameKey {
		return n.Name, true
	}
	v, ok := n.Labels[key]
	return v, ok
}

func matching(n *Node, t Term) int {
	c := 0
	for w, k := range n.Workloads {
		if t.Matches[w] {
			c += k
		}
	}
	return c
}

// staticFilter is what does not change as replicas are placed.
func (p *placer) staticFilter(n *Node) string {
	if !n.Ready {
		return "node not ready"
	}
	if n.Cordoned {
		return "node cordoned"
	}
	if p.pod.Node != "" && n.Name != p.pod.Node {
		return "not this replica's node"
	}
	if why, ok := p.pod.Refused[n.Name]; ok {
		// The node's own words (its policy, by field), so the status says
		// what to change.
		if why == "" {
			why = "not_allowed"
		}
		return "refused by the node (" + why + ")"
	}
	for k, v := range p.pod.NodeSelector {
		if n.Labels[k] != v {
			return "node selector mismatch"
		}
	}
	if a := p.pod.NodeAffinity; a != nil && len(a.Required) > 0 &&
		!slices.ContainsFunc(a.Required, func(t desired.NodeSelectorTerm) bool { return t.Matches(n.Name, n.Labels) }) {
		return "node affinity mismatch"
	}
	for _, t := range n.Taints {
		if t.Effect != "PreferNoSchedule" && !desired.Tolerated(p.pod.Tolerations, t) {
			return "untolerated taint " + t.String()
		}
	}
	for _, t := range p.pod.Terms {
		if _, ok := domain(n, t.TopologyKey); t.Hard && !ok {
			return "no " + t.TopologyKey + " label"
		}
	}
	return ""
}

// StaticFit says why node can never take pod ("" if it may): readiness,
// cordon, node selector, node affinity, taints.
func StaticFit(pod Pod, node *Node) string {
	p := placer{pod: pod}
	return p.staticFilter(node)
}

// filter says why node i cannot take one more replica ("" if it can).
func (p *placer) filter(i int) string {
	if r := p.static[i]; r != "" {
		return r
	}
	n, k := &p.nodes[i], int64(p.added[i])
	req := p.pod.Requests
	if a := n.Allocatable; a.CPUMilli > 0 && req.CPUMilli > 0 && n.Requested.CPUMilli+(k+1)*req.CPUMilli > a.CPUMilli {
		return "insufficient cpu"
	}
	if a := n.Allocatable; a.MemoryBytes > 0 && req.MemoryBytes > 0 && n.Requested.MemoryBytes+(k+1)*req.MemoryBytes > a.MemoryBytes {
		return "insufficient memory"
	}
	if r := ExtraFits(n.ExtraAllocatable, n.ExtraRequested, p.pod.Extra, k+1); r != "" {
		return r
	}
	for _, hp := range p.pod.HostPorts {
		if n.HostPorts[hp] || k > 0 {
			return "host port " + hp + " in use"
		}
	}
	for c, at := range p.claimsAt {
		if len(at) > 0 && !at[i] {
			return "volume " + c + " is on another node"
		}
	}
	for t, term := range p.pod.Terms {
		if !term.Hard {
			continue
		}
		d, _ := domain(n, term.TopologyKey)
		count := p.domains[t][d]
		if term.Affinity {
			if count == 0 && (!term.Matches[p.pod.Workload] || anyMatch(p.domains[t])) {
				return "pod affinity (" + keyName(term.TopologyKey) + ")"
			}
			continue
		}
		if term.MaxSkew == 0 {
			if count > 0 {
				return "anti-affinity (" + keyName(term.TopologyKey) + ")"
			}
			continue
		}
		low := count
		for _, c := range p.domains[t] {
			low = min(low, c)
		}
		if count+1-low > term.MaxSkew {
			return "topology spread (" + keyName(term.TopologyKey) + ")"
		}
	}
	return ""
}

// preferNoSchedulePenalty is what an untolerated PreferNoSchedule taint
// costs a node, against preferred terms' weights (1-100).
const preferNoSchedulePenalty = 100

// anyMatch tells whether some domain holds a matching replica.
func anyMatch(domains map[string]int) bool {
	for _, c := range domains {
		if c > 0 {
			return true
		}
	}
	return false
}

func keyName(k string) string {
	if k == "" {
		return hostnameKey
	}
	return k
}

// score ranks a node that fits: lower is better.
func (p *placer) score(i int) [4]int64 {
	n := &p.nodes[i]
	var penalty int64
	for t, term := range p.pod.Terms {
		if term.Hard {
			continue
		}
		d, ok := domain(n, term.TopologyKey)
		if !ok {
			continue
		}
		w := int64(max(term.Weight, 1))
		if term.Affinity {
			w = -w
		}
		penalty += w * int64(p.domains[t][d])
	}
	if a := p.pod.NodeAffinity; a != nil {
		for _, pt := range a.Preferred {
			if pt.Preference.Matches(n.Name, n.Labels) {
				penalty -= int64(pt.Weight)
			}
		}
	}
	for _, t := range n.Taints {
		if t.Effect == "PreferNoSchedule" && !desired.Tolerated(p.pod.Tolerations, t) {
			penalty += preferNoSchedulePenalty
		}
	}
	mine := int64(p.mine[i] + p.added[i])
	zone := int64(0)
	if z := p.zoneOf[i]; z != "" {
		zone = int64(p.zone[z])
	}
	used := p.usedPermille(i)
	total := int64(n.Total + p.added[i])
	if p.s == BinPack {
		return [4]int64{penalty, -used, -total, 0}
	}
	return [4]int64{penalty, mine, zone, used*1_000_000 + total}
}

// usedPermille is the node's fuller resource after one more replica, in ‰.
func (p *placer) usedPermille(i int) int64 {
	n, k := &p.nodes[i], int64(p.added[i]+1)
	var u int64
	if a := n.Allocatable.CPUMilli; a > 0 {
		u = max(u, (n.Requested.CPUMilli+k*p.pod.Requests.CPUMilli)*1000/a)
	}
	if a := n.Allocatable.MemoryBytes; a > 0 {
		u = max(u, (n.Requested.MemoryBytes+k*p.pod.Requests.MemoryBytes)*1000/a)
	}
	return u
}

func (p *placer) pick() (int, map[string]int) {
	best := -1
	var bestScore [4]int64
	reasons := map[string]int{}
	for i := range p.nodes {
		if r := p.filter(i); r != "" {
			reasons[r]++
			continue
		}
		sc := p.score(i)
		if best < 0 || less(sc, bestScore) || (sc == bestScore && p.nodes[i].Name < p.nodes[best].Name) {
			best, bestScore = i, sc
		}
	}
	return best, reasons
}

func less(a, b [4]int64) bool {
	for k := range a {
		if a[k] != b[k] {
			return a[k] < b[k]
		}
	}
	return false
}

func (p *placer) place(i int) {
	p.added[i]++
	n := &p.nodes[i]
	for _, at := range p.claimsAt {
		at[i] = true
	}
	for t, term := range p.pod.Terms {
		if d, ok := domain(n, term.TopologyKey); ok && term.Matches[p.pod.Workload] {
			p.domains[t][d]++
		}
	}
	if z := p.zoneOf[i]; z != "" {
		p.zone[z]++
	}
}

func reasonText(total int, reasons map[string]int) string {
	if total == 0 {
		return "no nodes"
	}
	type kv struct {
		r string
		n int
	}
	var list []kv
	for r, n := range reasons {
		list = append(list, kv{r, n})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].n != list[j].n {
			return list[i].n > list[j].n
		}
		return list[i].r < list[j].r
	})
	parts := make([]string, len(list))
	for i, x := range list {
		parts[i] = fmt.Sprintf("%d %s", x.n, x.r)
	}
	return fmt.Sprintf("0/%d nodes fit: %s", total, strings.Join(parts, ", "))
}

// placeFast gives the same choices as scanning every node for every
// replica when the pod has no topology terms, in O(nodes + n·zones·log
// nodes): nodes are kept in one heap per zone, ordered by the score without
// its zone part (equal within a zone). Placing a replica changes only the
// chosen node's key, and a node that stops fitting never fits again.
func (p *placer) placeFast(n int, res Result) Result {
	byZone := map[string]*scoreHeap{}
	var zones []string
	for i := range p.nodes {
		if p.filter(i) != "" {
			continue
		}
		z := p.zoneOf[i]
		h, ok := byZone[z]
		if !ok {
			h = &scoreHeap{}
			byZone[z] = h
			zones = append(zones, z)
		}
		h.items = append(h.items, scored{i: i, score: p.key(i), name: p.nodes[i].Name})
	}
	sort.Strings(zones)
	for _, z := range zones {
		heap.Init(byZone[z])
	}
	for k := range n {
		best, bestZone := -1, ""
		var bestScore [4]int64
		for _, z := range zones {
			h := byZone[z]
			for h.Len() > 0 && p.filter(h.items[0].i) != "" {
				heap.Pop(h)
			}
			if h.Len() == 0 {
				continue
			}
			top := h.items[0]
			sc := p.score(top.i) // with the zone's current count
			if best < 0 || less(sc, bestScore) || (sc == bestScore && top.name < p.nodes[best].Name) {
				best, bestZone, bestScore = top.i, z, sc
			}
		}
		if best < 0 {
			_, reasons := p.pick()
			res.Unplaced = n - k
			res.Reason = reasonText(len(p.nodes), reasons)
			return res
		}
		p.place(best)
		res.Nodes = append(res.Nodes, p.nodes[best].Name)
		h := byZone[bestZone]
		h.items[0].score = p.key(best)
		heap.Fix(h, 0)
	}
	return res
}

// key is a node's score without its zone part, which is the same for
// every node of a zone.
func (p *placer) key(i int) [4]int64 {
	sc := p.score(i)
	if p.s == SpreadOut {
		sc[2] = 0
	}
	return sc
}

type scored struct {
	i     int
	score [4]int64
	name  string
}

// scoreHeap orders nodes by score, then name.
type scoreHeap struct{ items []scored }

func (h *scoreHeap) Len() int { return len(h.items) }
func (h *scoreHeap) Less(a, b int) bool {
	x, y := h.items[a], h.items[b]
	if x.score != y.score {
		return less(x.score, y.score)
	}
	return x.name < y.name
}
func (h *scoreHeap) Swap(a, b int) { h.items[a], h.items[b] = h.items[b], h.items[a] }
func (h *scoreHeap) Push(x any)    { h.items = append(h.items, x.(scored)) }
func (h *scoreHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
