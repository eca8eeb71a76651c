package schedule

import "sort"

// Node is a ready node as placement sees it.
type Node struct {
	Name string
	// Workload is how many replicas of the workload being placed the node holds.
	Workload int
	// Total is how many replicas of any workload the node holds.
	Total int
}

// Spread places n new replicas on nodes, one at a time, each on the node with
// the fewest replicas of the workload, then the fewest replicas overall, then
// the smallest name, so the result is deterministic. It returns the chosen
// node names in order, or nil when there are no nodes.
func Spread(nodes []Node, n int) []string {
	if len(nodes) == 0 || n <= 0 {
		return nil
	}
	ns := make([]Node, len(nodes))
	copy(ns, nodes)
	less := func(a, b Node) bool {
		if a.Workload != b.Workload {
			return a.Workload < b.Workload
		}
		if a.Total != b.Total {
			return a.Total < b.Total
		}
		return a.Name < b.Name
	}
	sort.Slice(ns, func(i, j int) bool { return less(ns[i], ns[j]) })
	out := make([]string, 0, n)
	for range n {
		// ns[0] is the best node; place there and sift it down to keep order.
		out = append(out, ns[0].Name)
		ns[0].Workload++
		ns[0].Total++
		for i := 0; i+1 < len(ns) && less(ns[i+1], ns[i]); i++ {
			ns[i], ns[i+1] = ns[i+1], ns[i]
		}
	}
	return out
}
