package schedule

import "container/heap"

// Node is a ready node as placement sees it.
type Node struct {
	Name string
	// Workload is how many replicas of the workload being placed the node holds.
	Workload int
	// Total is how many replicas of any workload the node holds.
	Total int
}

func less(a, b Node) bool {
	if a.Workload != b.Workload {
		return a.Workload < b.Workload
	}
	if a.Total != b.Total {
		return a.Total < b.Total
	}
	return a.Name < b.Name
}

type nodeHeap []Node

func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return less(h[i], h[j]) }
func (h nodeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)        { *h = append(*h, x.(Node)) }
func (h *nodeHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	*h = old[:len(old)-1]
	return n
}

// Spread places n new replicas on nodes, one at a time, each on the node with
// the fewest replicas of the workload, then the fewest replicas overall, then
// the smallest name, so the result is deterministic. It returns the chosen
// node names in order, or nil when there are no nodes. It costs
// O(len(nodes) + n log len(nodes)).
func Spread(nodes []Node, n int) []string {
	if len(nodes) == 0 || n <= 0 {
		return nil
	}
	h := make(nodeHeap, len(nodes))
	copy(h, nodes)
	heap.Init(&h)
	out := make([]string, 0, n)
	for range n {
		// h[0] is the best node; place there and restore the order.
		out = append(out, h[0].Name)
		h[0].Workload++
		h[0].Total++
		heap.Fix(&h, 0)
	}
	return out
}
