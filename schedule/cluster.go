package schedule

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"
)

// Cluster is the placement view of one reconciler pass: its nodes, shared
// by every pod placed in the pass, each placement counted on its node
// (requests, replicas, host ports, volumes) before the next. A pod without
// topology terms, host ports, claims or refused nodes is placed from heaps
// kept across the pods of the pass that have the same requests and node
// selector (a "shape"): one heap per zone, built on the shape's first use in
// O(nodes), then O(zones × log nodes) a replica. Other pods are placed by
// Place's scan. The choices are exactly Place's (TestClusterEqualsPlace).
type Cluster struct {
	Nodes []Node
	s     Strategy
	index map[string]int
	zone  []int // node → its zone's heap (the last one for no zone label)
	zones int
	// holders are the nodes holding replicas of a workload.
	holders map[string][]int
	shapes  map[string]*shapeHeaps
	// softTaints: some node has a PreferNoSchedule taint, which only the
	// full scan scores.
	softTaints bool
}

// NewCluster makes the view of nodes (it keeps and updates them).
func NewCluster(nodes []Node, s Strategy) *Cluster {
	c := &Cluster{Nodes: nodes, s: s, index: make(map[string]int, len(nodes)), zone: make([]int, len(nodes)),
		holders: map[string][]int{}, shapes: map[string]*shapeHeaps{}}
	zoneIDs := map[string]int{}
	var names []string
	for i := range nodes {
		c.index[nodes[i].Name] = i
		if z := nodes[i].Labels[ZoneLabel]; z != "" {
			if _, ok := zoneIDs[z]; !ok {
				zoneIDs[z] = len(names)
				names = append(names, z)
			}
		}
		for w, k := range nodes[i].Workloads {
			if k > 0 {
				c.holders[w] = append(c.holders[w], i)
			}
		}
		for _, t := range nodes[i].Taints {
			c.softTaints = c.softTaints || t.Effect == "PreferNoSchedule"
		}
	}
	c.zones = len(names) + 1
	for i := range nodes {
		c.zone[i] = len(names) // no zone label
		if z := nodes[i].Labels[ZoneLabel]; z != "" {
			c.zone[i] = zoneIDs[z]
		}
	}
	return c
}

// Place chooses nodes for n replicas of pod, one at a time, and counts each
// on its node. It chooses exactly what Place on the same nodes would.
func (c *Cluster) Place(pod Pod, n int) Result {
	if n <= 0 {
		return Result{}
	}
	if len(pod.Terms) > 0 || len(pod.HostPorts) > 0 || len(pod.Claims) > 0 || len(pod.Refused) > 0 || len(pod.Extra) > 0 ||
		pod.NodeAffinity != nil || len(pod.Tolerations) > 0 || pod.Node != "" || c.softTaints || len(c.Nodes) == 0 {
		res := Place(pod, c.Nodes, n, c.s)
		for _, name := range res.Nodes {
			c.apply(c.index[name], pod)
		}
		return res
	}
	return c.placeShape(pod, n)
}

// apply counts one replica of pod on node i, and moves the node in the
// heaps it is in.
func (c *Cluster) apply(i int, pod Pod) {
	n := &c.Nodes[i]
	n.Requested.CPUMilli += pod.Requests.CPUMilli
	n.Requested.MemoryBytes += pod.Requests.MemoryBytes
	if len(pod.Extra) > 0 && n.ExtraRequested == nil {
		n.ExtraRequested = map[string]int64{}
	}
	for name, v := range pod.Extra {
		n.ExtraRequested[name] += v
	}
	if n.Workloads == nil {
		n.Workloads = map[string]int{}
	}
	if n.Workloads[pod.Workload] == 0 {
		c.holders[pod.Workload] = append(c.holders[pod.Workload], i)
	}
	n.Workloads[pod.Workload]++
	n.Total++
	if len(pod.HostPorts) > 0 && n.HostPorts == nil {
		n.HostPorts = map[string]bool{}
	}
	for _, hp := range pod.HostPorts {
		n.HostPorts[hp] = true
	}
	if len(pod.Claims) > 0 && n.Volumes == nil {
		n.Volumes = map[string]bool{}
	}
	for _, cl := range pod.Claims {
		n.Volumes[cl] = true
	}
	for _, sh := range c.shapes {
		if p := sh.pos[i]; p >= 0 {
			heap.Fix(sh.heaps[c.zone[i]], p)
		}
	}
}

// shapeHeaps are the nodes that may take pods of one shape, a heap per
// zone ordered by the part of the score that does not depend on the
// workload (fullness for the request, then replicas, then name).
type shapeHeaps struct {
	c     *Cluster
	req   Resources
	heaps []*nodeHeap
	pos   []int // node → its position in its zone's heap, -1 when out
}

func shapeKey(pod Pod) string {
	keys := make([]string, 0, len(pod.NodeSelector))
	for k, v := range pod.NodeSelector {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return fmt.Sprintf("%d/%d/%s", pod.Requests.CPUMilli, pod.Requests.MemoryBytes, strings.Join(keys, ","))
}

// shape returns the heaps of pod's shape, made on first use from the nodes
// that pass the static filters (ready, node selector).
func (c *Cluster) shape(pod Pod) *shapeHeaps {
	key := shapeKey(pod)
	if sh, ok := c.shapes[key]; ok {
		return sh
	}
	sh := &shapeHeaps{c: c, req: pod.Requests, heaps: make([]*nodeHeap, c.zones), pos: make([]int, len(c.Nodes))}
	for z := range sh.heaps {
		sh.heaps[z] = &nodeHeap{sh: sh}
	}
	p := placer{pod: pod}
	for i := range c.Nodes {
		sh.pos[i] = -1
		if p.staticFilter(&c.Nodes[i]) == "" {
			h := sh.heaps[c.zone[i]]
			sh.pos[i] = len(h.items)
			h.items = append(h.items, i)
		}
	}
	for _, h := range sh.heaps {
		heap.Init(h)
	}
	c.shapes[key] = sh
	return sh
}

// used is node i's fuller resource with one more pod of the shape, in ‰.
func (sh *shapeHeaps) used(i int) int64 {
	n := &sh.c.Nodes[i]
	var u int64
	if a := n.Allocatable.CPUMilli; a > 0 {
		u = max(u, (n.Requested.CPUMilli+sh.req.CPUMilli)*1000/a)
	}
	if a := n.Allocatable.MemoryBytes; a > 0 {
		u = max(u, (n.Requested.MemoryBytes+sh.req.MemoryBytes)*1000/a)
	}
	return u
}

// key is the node's score in the heap: without the workload's own counts.
func (sh *shapeHeaps) key(i int) [2]int64 {
	u, total := sh.used(i), int64(sh.c.Nodes[i].Total)
	if sh.c.s == BinPack {
		return [2]int64{-u, -total}
	}
	return [2]int64{u*1_000_000 + total, 0}
}

// fits reports whether node i has room for one more pod of the shape.
func (sh *shapeHeaps) fits(i int) bool {
	n, req := &sh.c.Nodes[i], sh.req
	if a := n.Allocatable; a.CPUMilli > 0 && req.CPUMilli > 0 && n.Requested.CPUMilli+req.CPUMilli > a.CPUMilli {
		return false
	}
	if a := n.Allocatable; a.MemoryBytes > 0 && req.MemoryBytes > 0 && n.Requested.MemoryBytes+req.MemoryBytes > a.MemoryBytes {
		return false
	}
	return true
}

// top is the best node of zone z's heap for workload: one that fits, and,
// when spreading, holds none of the workload (those are scored on their
// own). A node that no longer fits leaves the heap for the pass: requests
// only grow.
func (sh *shapeHeaps) top(z int, workload string) int {
	h := sh.heaps[z]
	var skipped []int
	best := -1
	for h.Len() > 0 {
		i := h.items[0]
		if !sh.fits(i) {
			heap.Pop(h)
			continue
		}
		if sh.c.s == SpreadOut && sh.c.Nodes[i].Workloads[workload] > 0 {
			skipped = append(skipped, heap.Pop(h).(int))
			continue
		}
		best = i
		break
	}
	for _, i := range skipped {
		heap.Push(h, i)
	}
	return best
}

// placeShape places n replicas of a pod with no terms, host ports, claims
// or refusals. The best node is among the nodes holding the workload
// (scored in full) and, per zone, the heap's top: within a zone, nodes
// holding none of the workload differ only by the heap's key.
func (c *Cluster) placeShape(pod Pod, n int) Result {
	var res Result
	sh := c.shape(pod)
	p := placer{pod: pod}
	zoneCount := make([]int, c.zones) // replicas of the workload per zone
	for _, i := range c.holders[pod.Workload] {
		if c.zone[i] < c.zones-1 {
			zoneCount[c.zone[i]] += c.Nodes[i].Workloads[pod.Workload]
		}
	}
	for k := range n {
		best := -1
		var bestScore [4]int64
		consider := func(i int) {
			if i < 0 || !sh.fits(i) || p.staticFilter(&c.Nodes[i]) != "" {
				return
			}
			nd := &c.Nodes[i]
			u := sh.used(i)
			var sc [4]int64
			if c.s == BinPack {
				sc = [4]int64{0, -u, -int64(nd.Total), 0}
			} else {
				sc = [4]int64{0, int64(nd.Workloads[pod.Workload]), int64(zoneCount[c.zone[i]]), u*1_000_000 + int64(nd.Total)}
			}
			if best < 0 || less(sc, bestScore) || (sc == bestScore && nd.Name < c.Nodes[best].Name) {
				best, bestScore = i, sc
			}
		}
		for _, i := range c.holders[pod.Workload] {
			consider(i)
		}
		for z := range c.zones {
			consider(sh.top(z, pod.Workload))
		}
		if best < 0 {
			// Fits nowhere: the scan says why (and places nothing more).
			rest := Place(pod, c.Nodes, n-k, c.s)
			res.Unplaced, res.Reason = rest.Unplaced, rest.Reason
			for _, name := range rest.Nodes { // never: the heaps saw every node that fits
				c.apply(c.index[name], pod)
				res.Nodes = append(res.Nodes, name)
			}
			return res
		}
		c.apply(best, pod)
		if c.zone[best] < c.zones-1 {
			zoneCount[c.zone[best]]++
		}
		res.Nodes = append(res.Nodes, c.Nodes[best].Name)
	}
	return res
}

// nodeHeap orders a zone's nodes by their shape key, then name, keeping each
// node's position for Fix.
type nodeHeap struct {
	sh    *shapeHeaps
	items []int
}

func (h *nodeHeap) Len() int { return len(h.items) }
func (h *nodeHeap) Less(a, b int) bool {
	x, y := h.items[a], h.items[b]
	kx, ky := h.sh.key(x), h.sh.key(y)
	if kx != ky {
		return kx[0] < ky[0] || (kx[0] == ky[0] && kx[1] < ky[1])
	}
	return h.sh.c.Nodes[x].Name < h.sh.c.Nodes[y].Name
}
func (h *nodeHeap) Swap(a, b int) {
	h.items[a], h.items[b] = h.items[b], h.items[a]
	h.sh.pos[h.items[a]], h.sh.pos[h.items[b]] = a, b
}
func (h *nodeHeap) Push(x any) {
	i := x.(int)
	h.sh.pos[i] = len(h.items)
	h.items = append(h.items, i)
}
func (h *nodeHeap) Pop() any {
	i := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	h.sh.pos[i] = -1
	return i
}
