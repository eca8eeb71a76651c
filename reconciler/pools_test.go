package reconciler

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/batonhq/baton/desired"
)

// poolState loads workloads and pools from YAML.
func poolState(t *testing.T, docs ...string) *desired.State {
	t.Helper()
	st, err := desired.Load(map[string][]byte{"all.yaml": []byte(strings.Join(docs, "\n---\n"))})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func poolDoc(name string, min, max int, cpu string, extra string) string {
	return fmt.Sprintf(`apiVersion: baton.dev/v1
kind: NodePool
metadata: {name: %s}
spec:
  min: %d
  max: %d
  template:
    capacity: {cpu: "%s", memory: 8Gi}
%s  provisioner: {command: [/bin/true]}
`, name, min, max, cpu, extra)
}

func workloadDoc(name, cpu string, replicas int, extra string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s}
spec:
  replicas: %d
  template:
    spec:
%s      containers: [{name: app, image: "app:1", resources: {requests: {cpu: "%s", memory: 100Mi}}}]
`, name, replicas, extra, cpu)
}

// The machines pending replicas need, table-tested: packed onto template
// machines by the real scheduler, within max, to the pool that takes
// them; replicas no pool takes are said apart.
func TestSizePools(t *testing.T) {
	fits := "0/1 nodes fit: 1 insufficient cpu" // with Unplaced: the scheduler's answer
	tests := []struct {
		name    string
		docs    []string
		have    map[string]int
		pending []Pending
		needs   []PoolNeed
		unserv  []Unserved
	}{
		{"five replicas of a core on machines of two", []string{poolDoc("workers", 1, 10, "2", ""), workloadDoc("web", "1", 6, "")},
			map[string]int{"workers": 1}, []Pending{{Workload: "web", Count: 5, Reason: fits, Unplaced: true}},
			[]PoolNeed{{Pool: "workers", Add: 3, Workloads: map[string]int{"web": 5}}}, nil},
		{"within max", []string{poolDoc("workers", 1, 3, "2", ""), workloadDoc("web", "1", 8, "")},
			map[string]int{"workers": 1}, []Pending{{Workload: "web", Count: 7, Reason: fits, Unplaced: true}},
			[]PoolNeed{{Pool: "workers", Add: 2, Workloads: map[string]int{"web": 4}}},
			[]Unserved{{Workload: "web", Count: 3, Reason: "NodePool workers: at its max of 3 machines"}}},
		{"bigger than a machine", []string{poolDoc("workers", 0, 5, "2", ""), workloadDoc("big", "3", 1, "")},
			nil, []Pending{{Workload: "big", Count: 1, Reason: fits, Unplaced: true}},
			nil, []Unserved{{Workload: "big", Count: 1, Reason: "NodePool workers: a new machine would not fit it: 0/1 nodes fit: 1 insufficient cpu"}}},
		{"a node selector picks the pool with the label", []string{poolDoc("a-plain", 0, 5, "4", ""),
			poolDoc("b-gpu", 0, 5, "4", "    labels: {gpu: \"true\"}\n"), workloadDoc("train", "1", 2, "      nodeSelector: {gpu: \"true\"}\n")},
			nil, []Pending{{Workload: "train", Count: 2, Reason: fits, Unplaced: true}},
			[]PoolNeed{{Pool: "b-gpu", Add: 1, Workloads: map[string]int{"train": 2}}}, nil},
		{"a taint keeps pods that do not tolerate it off", []string{poolDoc("a-tainted", 0, 5, "4", "    taints: [{key: dedicated, value: batch, effect: NoSchedule}]\n"),
			poolDoc("b-general", 0, 5, "4", ""), workloadDoc("web", "1", 1, "")},
			nil, []Pending{{Workload: "web", Count: 1, Reason: fits, Unplaced: true}},
			[]PoolNeed{{Pool: "b-general", Add: 1, Workloads: map[string]int{"web": 1}}}, nil},
		{"two pools that could both serve: the first by name", []string{poolDoc("b", 0, 5, "4", ""), poolDoc("a", 0, 5, "4", ""), workloadDoc("web", "1", 1, "")},
			nil, []Pending{{Workload: "web", Count: 1, Reason: fits, Unplaced: true}},
			[]PoolNeed{{Pool: "a", Add: 1, Workloads: map[string]int{"web": 1}}}, nil},
		{"the first pool full, the rest to the next", []string{poolDoc("a", 0, 1, "2", ""), poolDoc("b", 0, 5, "2", ""), workloadDoc("web", "1", 4, "")},
			nil, []Pending{{Workload: "web", Count: 4, Reason: fits, Unplaced: true}},
			[]PoolNeed{{Pool: "a", Add: 1, Workloads: map[string]int{"web": 2}}, {Pool: "b", Add: 1, Workloads: map[string]int{"web": 2}}}, nil},
		{"two workloads share new machines", []string{poolDoc("workers", 0, 5, "4", ""), workloadDoc("api", "1", 2, ""), workloadDoc("web", "1", 2, "")},
			nil, []Pending{{Workload: "web", Count: 2, Reason: fits, Unplaced: true}, {Workload: "api", Count: 2, Reason: fits, Unplaced: true}},
			[]PoolNeed{{Pool: "workers", Add: 1, Workloads: map[string]int{"api": 2, "web": 2}}}, nil},
		{"not for a drain, a refused template or an unknown workload", []string{poolDoc("workers", 0, 5, "4", ""), workloadDoc("web", "1", 2, "")},
			nil, []Pending{{Workload: "web", Count: 1, Reason: "drain of node n1 waits: PodDisruptionBudget web"}, {Workload: "web", Count: 1, Reason: fits, Unplaced: true, Code: "invalid_spec"},
				{Workload: "gone", Count: 3, Reason: fits, Unplaced: true}},
			nil, nil},
		{"host ports: one replica a machine", []string{poolDoc("workers", 0, 5, "8", ""),
			strings.Replace(workloadDoc("edge", "1", 3, ""), `resources:`, `ports: [{containerPort: 80, hostPort: 80}], resources:`, 1)},
			nil, []Pending{{Workload: "edge", Count: 3, Reason: fits, Unplaced: true}},
			[]PoolNeed{{Pool: "workers", Add: 3, Workloads: map[string]int{"edge": 3}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := poolState(t, tt.docs...)
			needs, unserved := SizePools(st.Pools, tt.have, nil, tt.pending, st)
			if !reflect.DeepEqual(needs, tt.needs) || !reflect.DeepEqual(unserved, tt.unserv) {
				t.Fatalf("needs %+v, unserved %+v\nwant %+v, %+v", needs, unserved, tt.needs, tt.unserv)
			}
		})
	}
	// Machines asked for and joining are filled first: five replicas of a
	// core, machines of two, two joining: one more, not three.
	st := poolState(t, poolDoc("workers", 1, 10, "2", ""), workloadDoc("web", "1", 6, ""))
	pending := []Pending{{Workload: "web", Count: 5, Reason: fits, Unplaced: true}}
	needs, _ := SizePools(st.Pools, map[string]int{"workers": 3}, map[string]int{"workers": 2}, pending, st)
	if want := []PoolNeed{{Pool: "workers", Add: 1, Workloads: map[string]int{"web": 5}}}; !reflect.DeepEqual(needs, want) {
		t.Fatalf("with machines joining: %+v, want %+v", needs, want)
	}
	if needs, _ = SizePools(st.Pools, map[string]int{"workers": 4}, map[string]int{"workers": 3}, pending, st); needs != nil {
		t.Fatalf("joining machines take them all: %+v", needs)
	}
}

func BenchmarkSizePools(b *testing.B) {
	docs := []string{poolDoc("workers", 0, 1000, "8", "")}
	var pending []Pending
	for i := range 200 {
		docs = append(docs, workloadDoc(fmt.Sprintf("w%03d", i), "500m", 10, ""))
		pending = append(pending, Pending{Workload: fmt.Sprintf("w%03d", i), Count: 10, Reason: "0/100 nodes fit: 100 insufficient cpu", Unplaced: true})
	}
	st, err := desired.Load(map[string][]byte{"all.yaml": []byte(strings.Join(docs, "\n---\n"))})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		needs, _ := SizePools(st.Pools, nil, nil, pending, st)
		if len(needs) != 1 || needs[0].Add != 125 {
			b.Fatalf("%+v", needs)
		}
	}
}
