package schedule

import (
	"fmt"
	"slices"
	"testing"
)

func TestSpread(t *testing.T) {
	tests := []struct {
		name  string
		nodes []Node
		n     int
		want  []string
	}{
		{"no nodes", nil, 3, nil},
		{"nothing to place", []Node{{Name: "a"}}, 0, nil},
		{"one node takes all", []Node{{Name: "a"}}, 3, []string{"a", "a", "a"}},
		{"even spread, by name", []Node{{Name: "b"}, {Name: "a"}}, 4, []string{"a", "b", "a", "b"}},
		{"fewest of the workload first", []Node{{Name: "a", Workload: 2}, {Name: "b"}}, 3, []string{"b", "b", "a"}},
		{"then fewest overall", []Node{{Name: "a", Total: 5}, {Name: "b", Total: 1}}, 1, []string{"b"}},
		{"workload beats total", []Node{{Name: "a", Workload: 1, Total: 1}, {Name: "b", Total: 9}}, 1, []string{"b"}},
		{"three nodes", []Node{{Name: "c"}, {Name: "b", Workload: 1}, {Name: "a"}}, 5, []string{"a", "c", "b", "a", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Spread(tt.nodes, tt.n)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Spread() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSpreadDoesNotModifyInput(t *testing.T) {
	nodes := []Node{{Name: "b", Workload: 1}, {Name: "a"}}
	Spread(nodes, 3)
	if nodes[0].Name != "b" || nodes[0].Workload != 1 || nodes[1].Workload != 0 {
		t.Fatalf("input changed: %+v", nodes)
	}
}

func ExampleSpread() {
	nodes := []Node{{Name: "node-a", Workload: 1}, {Name: "node-b"}, {Name: "node-c"}}
	fmt.Println(Spread(nodes, 4))
	// Output: [node-b node-c node-a node-b]
}

func BenchmarkSpread(b *testing.B) {
	for _, size := range []int{10, 1000, 10000} {
		nodes := make([]Node, size)
		for i := range nodes {
			nodes[i] = Node{Name: fmt.Sprintf("node-%05d", i), Total: i % 7}
		}
		b.Run(fmt.Sprintf("nodes=%d/replicas=100", size), func(b *testing.B) {
			for b.Loop() {
				Spread(nodes, 100)
			}
		})
	}
}
