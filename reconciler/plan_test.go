package reconciler

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

var update = flag.Bool("update", false, "rewrite golden files")

// PlanGolden is the plan of testdata/plan/after against a live cluster
// running testdata/plan/before: a new image, a scale by a ScalingSchedule
// window, an autoscaled workload, a new workload, a removed one, a rotated
// secret and a pod that fits nowhere. cmd/baton renders this file in its
// text and Markdown golden tests.
const PlanGolden = "testdata/plan/plan.golden.json"

func loadDir(t *testing.T, dir string) *desired.State {
	t.Helper()
	files, err := desired.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := desired.Load(files)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPlanGolden(t *testing.T) {
	before := loadDir(t, "testdata/plan/before")
	before.Revision = "4f9c2d1e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
	after := loadDir(t, "testdata/plan/after")
	// Tuesday 10:00 in New York: the market-open window (09:30) is in effect.
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)

	// Two nodes of 4 cores / 8 GiB in two zones run the "before" revision:
	// web 3, worker 2, api 5 (its autoscaler's count), legacy-api 1.
	in := Input{Nodes: map[string]NodeView{}, Assignments: map[string]Assignment{}, Now: now,
		NodeGrace: 10 * time.Second, Started: now.Add(-time.Hour)}
	for _, zone := range []string{"a", "b"} {
		name := fmt.Sprintf("node-%s", zone)
		in.Nodes[name] = NodeView{Name: name, LastHeartbeat: now, ReportTime: now,
			Labels:      map[string]string{"topology.kubernetes.io/zone": "zone-" + zone},
			Allocatable: protocol.Resources{CPUMilli: 4000, MemoryBytes: 8 << 30}}
	}
	place := map[string][]string{
		"web":        {"node-a", "node-b", "node-a"},
		"worker":     {"node-b", "node-a"},
		"api":        {"node-a", "node-b", "node-a", "node-b", "node-a"},
		"legacy-api": {"node-b"},
	}
	for _, w := range before.Workloads {
		for i, node := range place[w.Name] {
			n := in.Nodes[node]
			n.Replicas = append(n.Replicas, protocol.Replica{ID: fmt.Sprintf("%s-%d", w.Name, i), Workload: w.Name,
				SpecHash: w.Hash, State: protocol.StateRunning, Ready: true, StartedAt: now.Add(-time.Hour)})
			in.Nodes[node] = n
		}
	}
	hpa := map[string]HPAState{"api": {Replicas: 5}}
	p := makePlan(before, after, in, hpa, before.Revision, nil)

	got, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if bytes.Contains(got, []byte("canary")) {
		t.Fatalf("a secret value leaked into the plan:\n%s", got)
	}
	if *update {
		if err := os.WriteFile(PlanGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(filepath.FromSlash(PlanGolden))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (go test -run TestPlanGolden -update to accept):\n%s", PlanGolden, got)
	}
	// What the golden file must say, so that accepting a regression
	// with -update does not go unnoticed.
	for _, s := range []string{
		`"web: image registry.local/web:1.4 → registry.local/web:1.5; rolling update of 3 replicas, 1 extra and 0 unavailable at a time"`,
		`"worker: scaled 2 → 4 by ScalingSchedule market-hours (window market-open)"`,
		`"api: no change"`,
		`"legacy-api: removed, 1 replica stop"`,
		`"Secret db-credentials: changed"`,
		`"trainer: new, 1 replica (registry.local/trainer:1.0); 1 would not fit: 0/2 nodes fit: 2 insufficient cpu"`,
		`"after": 5,`,
		`"(hidden)"`,
		`is not pinned to a version`,
	} {
		if !strings.Contains(string(got), s) {
			t.Errorf("the plan lacks %s", s)
		}
	}
}

// A workload the change leaves as it is, whose replicas are being
// replaced or moved, does not read a bare "no change" beside the replicas
// the plan starts.
func TestSummaryLineStartsAnyway(t *testing.T) {
	wp := WorkloadPlan{Name: "api", Op: "unchanged", Now: 2, After: 2, Placements: map[string]int{"n1": 1}}
	if got := summaryLine(wp); got != "api: no change; 1 replica would start anyway (replacing or moving live ones)" {
		t.Fatalf("%q", got)
	}
	wp.Op = "changed"
	if got := summaryLine(wp); got != "api: changed outside the pod template; 1 replica would start anyway (replacing or moving live ones)" {
		t.Fatalf("%q", got)
	}
	wp.Op = "unchanged"
	wp.Placements = nil
	if got := summaryLine(wp); got != "api: no change" {
		t.Fatalf("%q", got)
	}
}

// A plan says which machines node pools would add for what fits on no
// live node, counting the machines already joining, and what no pool takes.
func TestPlanMachines(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	in := Input{Nodes: map[string]NodeView{"workers-a": {Name: "workers-a", LastHeartbeat: now, ReportTime: now,
		Labels: map[string]string{PoolLabel: "workers"}, Allocatable: protocol.Resources{CPUMilli: 2000, MemoryBytes: 4 << 30}}},
		Assignments: map[string]Assignment{}, Now: now, NodeGrace: 10 * time.Second, Started: now.Add(-time.Hour)}
	st := poolState(t, poolDoc("workers", 1, 5, "2", ""), workloadDoc("web", "1200m", 4, ""), workloadDoc("huge", "3", 1, ""))
	recs := map[string]PoolRecord{"workers": {Pool: "workers", Machines: []PoolMachine{{Name: "workers-b", Asked: now}}}}
	p := makePlan(nil, st, in, nil, "", recs)
	// web: one on the live node, one on the joining machine, two on new ones.
	if len(p.Machines) != 1 || p.Machines[0].Add != 2 {
		t.Fatalf("machines: %+v", p.Machines)
	}
	sum := strings.Join(p.Summary, "\n")
	for _, want := range []string{"NodePool workers: would add 2 machines for 3 replicas of web", "no NodePool can take 1 replica of huge: NodePool workers: a new machine would not fit it"} {
		if !strings.Contains(sum, want) {
			t.Fatalf("%q missing from:\n%s", want, sum)
		}
	}
}
