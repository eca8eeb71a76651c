package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
)

func testPool(min, max int) desired.NodePool {
	return desired.NodePool{Meta: desired.Meta{Name: "workers"}, Min: min, Max: max, PendingFor: 10 * time.Second, JoinTimeout: 15 * time.Minute, Timeout: 5 * time.Minute,
		ScaleDown: true, UtilizationThreshold: 0.5, UnneededFor: 10 * time.Minute, DelayAfterAdd: 10 * time.Minute}
}

// poolsStep is PoolsStep without the periodic List of the provisioner
// (TestPoolsStepStrays tests it), so that the other tests see decisions.
func poolsStep(records map[string]PoolRecord, pools []desired.NodePool, nodes []PoolNode, needs []PoolNeed, now time.Time) (map[string]PoolRecord, []PoolAction, []string) {
	recs, acts, evs := PoolsStep(records, pools, nodes, needs, now)
	var out []PoolAction
	for _, a := range acts {
		a.List = false
		if len(a.Create)+len(a.Drain)+len(a.Delete) > 0 {
			out = append(out, a)
		}
	}
	return recs, out, evs
}

func member(name string, util float64, elsewhere bool) PoolNode {
	return PoolNode{Name: name, Pool: "workers", Ready: true, Utilization: util, FitsElsewhere: elsewhere}
}

// The pool decisions over time, with an injected clock: wait out
// pendingFor, ask within max, reach min, a machine that never joins
// deleted with back-off, scale down after unneededFor and not within
// delayAfterAdd, never below min, drained then deleted.
func TestPoolsStep(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	pools := []desired.NodePool{testPool(1, 5)}
	nodes := []PoolNode{member("workers-a", 0.9, false)}
	needs := []PoolNeed{{Pool: "workers", Add: 3}}

	// Pending for less than pendingFor: nothing yet.
	recs, acts, _ := poolsStep(nil, pools, nodes, needs, t0)
	if len(acts) != 0 || !recs["workers"].PendingSince.Equal(t0) {
		t.Fatalf("before pendingFor: %+v %+v", acts, recs)
	}
	// Then three machines, named, recorded.
	recs, acts, evs := poolsStep(recs, pools, nodes, needs, t0.Add(10*time.Second))
	if len(acts) != 1 || len(acts[0].Create) != 3 || len(recs["workers"].Machines) != 3 || !strings.HasPrefix(acts[0].Create[0], "workers-") ||
		len(evs) != 1 || !strings.Contains(evs[0], "asked for 3 machines (replicas fit nowhere): 1 → 4") {
		t.Fatalf("scale up: %+v %+v %q", acts, recs, evs)
	}
	// Still pending while they join: not asked again.
	if _, acts, _ = poolsStep(recs, pools, nodes, needs, t0.Add(20*time.Second)); len(acts) != 0 {
		t.Fatalf("asked twice: %+v", acts)
	}
	// Within max: 4 of 5 already, one more.
	more, acts, _ := poolsStep(recs, pools, nodes, []PoolNeed{{Pool: "workers", Add: 3}}, t0.Add(40*time.Second))
	if len(acts) != 0 { // pendingSince was reset by the scale-up: it waits again
		t.Fatalf("no wait after a scale-up: %+v", acts)
	}
	_, acts, _ = poolsStep(more, pools, nodes, []PoolNeed{{Pool: "workers", Add: 3}}, t0.Add(60*time.Second))
	if len(acts) != 1 || len(acts[0].Create) != 1 {
		t.Fatalf("within max: %+v", acts)
	}

	// Two join; one never does: deleted after joinTimeout, with back-off.
	ms := recs["workers"].Machines
	joined := append(nodes, member(ms[0].Name, 0.9, false), member(ms[1].Name, 0.9, false))
	recs, _, _ = poolsStep(recs, pools, joined, nil, t0.Add(time.Minute))
	if m := recs["workers"].Machines; !m[0].Joined || !m[1].Joined || m[2].Joined {
		t.Fatalf("joined: %+v", m)
	}
	late := t0.Add(10*time.Second + 15*time.Minute + time.Second)
	recs, acts, evs = poolsStep(recs, pools, joined, needs, late)
	if len(acts) != 1 || len(acts[0].Delete) != 1 || acts[0].Delete[0].Name != ms[2].Name || recs["workers"].Failures != 1 ||
		!recs["workers"].RetryAt.Equal(late.Add(30*time.Second)) || !strings.Contains(evs[0], "did not join within 15m0s") {
		t.Fatalf("join timeout: %+v %+v %q", acts, recs["workers"], evs)
	}
	// Pending again past pendingFor, but within the back-off: said, not asked.
	recs, acts, _ = poolsStep(recs, pools, joined, needs, late.Add(11*time.Second))
	if len(acts) != 0 || !strings.Contains(recs["workers"].Last, "asking again at") {
		t.Fatalf("back-off: %+v %q", acts, recs["workers"].Last)
	}
	_, acts, _ = poolsStep(recs, pools, joined, needs, late.Add(31*time.Second))
	if len(acts) != 1 || len(acts[0].Create) != 1 { // 3 nodes and 1 being deleted: max 5 leaves 1
		t.Fatalf("after the back-off: %+v", acts)
	}
}

func TestPoolsStepMin(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	_, acts, evs := poolsStep(nil, []desired.NodePool{testPool(2, 5)}, nil, nil, t0)
	if len(acts) != 1 || len(acts[0].Create) != 2 || !strings.Contains(evs[0], "below its min of 2") {
		t.Fatalf("min: %+v %q", acts, evs)
	}
}

func TestPoolsStepScaleDown(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	pools := []desired.NodePool{testPool(1, 5)}
	nodes := []PoolNode{member("w1", 0.8, false), member("w2", 0.7, true), member("w3", 0.2, true), {Name: "other", Ready: true, Utilization: 0.1, FitsElsewhere: true}}
	recs := map[string]PoolRecord{"workers": {LastScaleUp: t0.Add(-time.Hour)}}
	recs, acts, _ := poolsStep(recs, pools, nodes, nil, t0)
	if len(acts) != 0 || len(recs["workers"].Unneeded) != 1 || !recs["workers"].Unneeded["w3"].Equal(t0) {
		t.Fatalf("unneeded since: %+v %+v", acts, recs["workers"])
	}
	// A node of no pool is never the pool's to remove; w2 is busy.
	recs, acts, evs := poolsStep(recs, pools, nodes, nil, t0.Add(10*time.Minute))
	if len(acts) != 1 || len(acts[0].Drain) != 1 || acts[0].Drain[0] != "w3" || !strings.Contains(evs[0], "draining it") {
		t.Fatalf("drain: %+v %q", acts, evs)
	}
	// Empty, but the drain not yet a node control: the scheduler may still
	// place on it, so nothing; then not empty: nothing; empty: deleted.
	nodes[2].Empty = true
	if _, acts, _ = poolsStep(recs, pools, nodes, nil, t0.Add(10*time.Minute+time.Second)); len(acts) != 0 {
		t.Fatalf("deleted before its drain showed: %+v", acts)
	}
	nodes[2].Empty = false
	nodes[2].Draining = true // the drain control, as the worker writes it
	if _, acts, _ = poolsStep(recs, pools, nodes, nil, t0.Add(11*time.Minute)); len(acts) != 0 {
		t.Fatalf("while draining: %+v", acts)
	}
	nodes[2].Empty = true
	recs, acts, evs = poolsStep(recs, pools, nodes, nil, t0.Add(12*time.Minute))
	if len(acts) != 1 || len(acts[0].Delete) != 1 || acts[0].Delete[0].Name != "w3" || len(recs["workers"].Machines) != 1 ||
		recs["workers"].Machines[0].Deleting.IsZero() || !strings.Contains(evs[0], "machine w3 drained: deleting it (3 → 2)") {
		t.Fatalf("delete: %+v %+v %q", acts, recs["workers"], evs)
	}
	// Not confirmed within the provisioner's timeout and a minute: asked
	// again; confirmed: dropped.
	if _, acts, _ = poolsStep(recs, pools, nodes, nil, t0.Add(12*time.Minute+30*time.Second)); len(acts) != 0 {
		t.Fatalf("asked again too soon: %+v", acts)
	}
	again, acts, _ := poolsStep(recs, pools, nodes, nil, t0.Add(18*time.Minute))
	if len(acts) != 1 || len(acts[0].Delete) != 1 || !again["workers"].Machines[0].Deleting.Equal(t0.Add(12*time.Minute)) ||
		!again["workers"].Machines[0].DeleteAt.Equal(t0.Add(18*time.Minute+testPool(1, 5).Timeout+time.Minute)) {
		t.Fatalf("delete asked again: %+v %+v", acts, again["workers"])
	}
	recs, evs = ApplyPoolResults(recs, []PoolResult{{Pool: "workers", Deleted: []string{"w3"}}}, t0.Add(13*time.Minute))
	if len(recs["workers"].Machines) != 0 || !strings.Contains(evs[0], "machine w3 deleted by the provisioner") {
		t.Fatalf("deleted: %+v %q", recs["workers"], evs)
	}

	for _, tc := range []struct {
		what  string
		pool  desired.NodePool
		rec   PoolRecord
		nodes []PoolNode
	}{
		{"never below min", testPool(2, 5), PoolRecord{LastScaleUp: t0.Add(-time.Hour), Unneeded: map[string]time.Time{"w2": t0.Add(-time.Hour)}},
			[]PoolNode{member("w1", 0.9, false), member("w2", 0.1, true)}},
		{"not within delayAfterAdd", testPool(1, 5), PoolRecord{LastScaleUp: t0.Add(-time.Minute), Unneeded: map[string]time.Time{"w2": t0.Add(-time.Hour)}},
			[]PoolNode{member("w1", 0.9, false), member("w2", 0.1, true)}},
		{"its replicas fit nowhere else", testPool(1, 5), PoolRecord{LastScaleUp: t0.Add(-time.Hour), Unneeded: map[string]time.Time{"w2": t0.Add(-time.Hour)}},
			[]PoolNode{member("w1", 0.9, false), member("w2", 0.1, false)}},
		{"scale down off", func() desired.NodePool { p := testPool(1, 5); p.ScaleDown = false; return p }(),
			PoolRecord{LastScaleUp: t0.Add(-time.Hour), Unneeded: map[string]time.Time{"w2": t0.Add(-time.Hour)}},
			[]PoolNode{member("w1", 0.9, false), member("w2", 0.1, true)}},
	} {
		_, acts, _ := poolsStep(map[string]PoolRecord{"workers": tc.rec}, []desired.NodePool{tc.pool}, tc.nodes, nil, t0)
		if len(acts) != 0 {
			t.Errorf("%s: %+v", tc.what, acts)
		}
	}
}

// What the worker did, recorded: IDs of made machines; machines not made
// dropped with a failure and back-off; a failed deletion kept.
func TestApplyPoolResults(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	recs := map[string]PoolRecord{"workers": {Pool: "workers", Machines: []PoolMachine{
		{Name: "a", Asked: t0}, {Name: "b", Asked: t0}, {Name: "c", Asked: t0, Joined: true, Deleting: t0}}}}
	out, evs := ApplyPoolResults(recs, []PoolResult{
		{Pool: "workers", Created: []PoolMachine{{Name: "a", ID: "i-1"}}, Failed: []string{"b"}, Err: "quota"},
		{Pool: "workers", Err: "provider down"},
		{Pool: "gone", Deleted: []string{"x"}},
	}, t0.Add(time.Minute))
	r := out["workers"]
	if len(r.Machines) != 3 || r.Machines[0].ID != "i-1" || !r.Machines[0].Asked.Equal(t0.Add(time.Minute)) ||
		!r.Machines[1].Deleting.Equal(t0.Add(time.Minute)) || !r.Machines[1].DeleteAt.Equal(t0.Add(time.Minute)) || r.Machines[2].Name != "c" ||
		r.Failures != 1 || !r.RetryAt.Equal(t0.Add(time.Minute+30*time.Second)) ||
		len(evs) != 2 || !strings.Contains(evs[0], "did not make 1 machine (quota): deleting them by name") || !strings.Contains(evs[1], "provider down: tried again later") {
		t.Fatalf("results: %+v %q", r, evs)
	}
	if len(recs["workers"].Machines) != 3 {
		t.Fatalf("the records given were changed: %+v", recs)
	}
	// Never asked for (no provisioner, the action dropped): dropped from
	// the record, not deleted through a provisioner; the pool backs off.
	out, evs = ApplyPoolResults(recs, []PoolResult{{Pool: "workers", NotAsked: []string{"a", "b"}, Err: "no provisioner"}}, t0.Add(time.Minute))
	r = out["workers"]
	if len(r.Machines) != 1 || r.Machines[0].Name != "c" || r.Failures != 1 || !r.RetryAt.Equal(t0.Add(time.Minute+30*time.Second)) ||
		len(evs) != 1 || !strings.Contains(evs[0], "2 machines not asked for (no provisioner); asking again after 30s") {
		t.Fatalf("not asked: %+v %q", r, evs)
	}
}

// A machine's life past joining: lost machines deleted after
// PoolLostAfter; a drain lifted is given up; a machine short of the
// template stops the pool from adding more until the template changes;
// machines being deleted count toward max.
func TestPoolsStepMachines(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	pool := testPool(1, 3)
	pool.Capacity = desired.Amount{CPUMilli: 2000, MemoryBytes: 4 << 30}
	pool.Labels = map[string]string{"zone": "a"}
	pools := []desired.NodePool{pool}
	full := func(name string) PoolNode {
		return PoolNode{Name: name, Pool: "workers", Ready: true, Utilization: 0.9, CPUMilli: 2000, MemoryBytes: 4 << 30, Labels: map[string]string{"zone": "a", PoolLabel: "workers"}}
	}

	// Lost: counted, then deleted after 20 minutes and replaced (min 1).
	recs := map[string]PoolRecord{"workers": {Pool: "workers", Machines: []PoolMachine{{Name: "w1", Asked: t0, Joined: true}}, LastScaleUp: t0}}
	recs, acts, _ := poolsStep(recs, pools, []PoolNode{{Name: "w1", Pool: "workers"}}, nil, t0.Add(time.Minute))
	if len(acts) != 0 || !recs["workers"].Lost["w1"].Equal(t0.Add(time.Minute)) {
		t.Fatalf("lost: %+v %+v", acts, recs["workers"])
	}
	_, acts, evs := poolsStep(recs, pools, nil, nil, t0.Add(21*time.Minute))
	if len(acts) != 1 || len(acts[0].Delete) != 1 || len(acts[0].Create) != 1 || !strings.Contains(strings.Join(evs, "\n"), "machine w1 not ready for 20m0s: deleting it") {
		t.Fatalf("lost for 20 min: %+v %q", acts, evs)
	}

	// A drain asked but not shown as a node control 30 s later: given up.
	recs = map[string]PoolRecord{"workers": {Pool: "workers", Machines: []PoolMachine{{Name: "w1", Asked: t0, Joined: true}, {Name: "w2", Asked: t0, Joined: true, Draining: true, DrainAt: t0}}}}
	nodes := []PoolNode{full("w1"), full("w2")}
	if recs, _, _ = poolsStep(recs, pools, nodes, nil, t0.Add(10*time.Second)); !recs["workers"].Machines[1].Draining {
		t.Fatalf("given up too soon: %+v", recs["workers"])
	}
	recs, _, evs = poolsStep(recs, pools, nodes, nil, t0.Add(31*time.Second))
	if recs["workers"].Machines[1].Draining || !strings.Contains(strings.Join(evs, "\n"), "the drain of node w2 was lifted") {
		t.Fatalf("lifted: %+v %q", recs["workers"], evs)
	}

	// Short of the template: said once, no machine added; a new template
	// is trusted again.
	recs = map[string]PoolRecord{"workers": {Pool: "workers", Machines: []PoolMachine{{Name: "w1", Asked: t0}}}}
	small := full("w1")
	small.CPUMilli, small.Labels = 1000, nil
	needs := []PoolNeed{{Pool: "workers", Add: 1}}
	recs, _, evs = poolsStep(recs, pools, []PoolNode{small}, needs, t0.Add(time.Second))
	if m := recs["workers"].Mismatch; !strings.Contains(m, "cpu 1000m, the template 2000m") || !strings.Contains(m, "label zone=a missing") || len(evs) != 1 {
		t.Fatalf("mismatch: %q %q", m, evs)
	}
	recs, acts, _ = poolsStep(recs, pools, []PoolNode{small}, needs, t0.Add(time.Minute))
	if len(acts) != 0 || !strings.Contains(recs["workers"].Last, "none added: machine w1 joined short of the template") {
		t.Fatalf("added despite the mismatch: %+v %q", acts, recs["workers"].Last)
	}
	fixed := pool
	fixed.Capacity.CPUMilli = 1000
	fixed.Labels = nil
	_, acts, _ = poolsStep(recs, []desired.NodePool{fixed}, []PoolNode{small}, needs, t0.Add(2*time.Minute))
	if len(acts) != 1 || len(acts[0].Create) != 1 {
		t.Fatalf("a fixed template: %+v", acts)
	}

	// Being deleted still counts toward max: 2 joined + 1 deleting of max 3.
	recs = map[string]PoolRecord{"workers": {Pool: "workers", Machines: []PoolMachine{{Name: "w1", Asked: t0, Joined: true}, {Name: "w2", Asked: t0, Joined: true},
		{Name: "w3", Asked: t0, Deleting: t0, DeleteAt: t0.Add(time.Hour)}}}}
	if _, acts, _ = poolsStep(recs, pools, []PoolNode{full("w1"), full("w2")}, needs, t0.Add(time.Minute)); len(acts) != 0 {
		t.Fatalf("past max while deleting: %+v", acts)
	}
}

// One drain at a time in the cluster: two pools' unneeded nodes might
// each be where the other's replicas go.
func TestPoolsStepOneDrain(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	a, b := testPool(1, 5), testPool(1, 5)
	a.Name, b.Name = "a", "b"
	recs := map[string]PoolRecord{"a": {LastScaleUp: t0.Add(-time.Hour), Unneeded: map[string]time.Time{"a2": t0.Add(-time.Hour)}},
		"b": {LastScaleUp: t0.Add(-time.Hour), Unneeded: map[string]time.Time{"b2": t0.Add(-time.Hour)}}}
	nodes := []PoolNode{{Name: "a1", Pool: "a", Ready: true, Utilization: 0.9}, {Name: "a2", Pool: "a", Ready: true, Utilization: 0.1, FitsElsewhere: true},
		{Name: "b1", Pool: "b", Ready: true, Utilization: 0.9}, {Name: "b2", Pool: "b", Ready: true, Utilization: 0.1, FitsElsewhere: true}}
	recs, acts, _ := poolsStep(recs, []desired.NodePool{a, b}, nodes, nil, t0)
	if len(acts) != 1 || acts[0].Pool != "a" || len(acts[0].Drain) != 1 {
		t.Fatalf("drains: %+v", acts)
	}
	nodes[1].Draining = true
	if _, acts, _ = poolsStep(recs, []desired.NodePool{a, b}, nodes, nil, t0.Add(time.Second)); len(acts) != 0 {
		t.Fatalf("a second drain while one goes: %+v", acts)
	}
}

// The provisioner is asked for the pool's machines every PoolListEvery;
// those it lists that the record does not know are adopted when they are
// ready nodes, deleted otherwise.
func TestPoolsStepStrays(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	pools := []desired.NodePool{testPool(0, 5)}
	recs, acts, _ := PoolsStep(nil, pools, nil, nil, t0)
	if len(acts) != 1 || !acts[0].List || !recs["workers"].LastList.Equal(t0) {
		t.Fatalf("first list: %+v %+v", acts, recs["workers"])
	}
	if _, acts, _ = PoolsStep(recs, pools, nil, nil, t0.Add(time.Minute)); len(acts) != 0 {
		t.Fatalf("listed again within %s: %+v", PoolListEvery, acts)
	}
	recs["workers"] = PoolRecord{Pool: "workers", LastList: t0, Machines: []PoolMachine{{Name: "known", Asked: t0}}}
	recs, _ = ApplyPoolResults(recs, []PoolResult{{Pool: "workers", Listing: true,
		Listed: []PoolMachine{{Name: "known"}, {Name: "stray-node", ID: "i-1"}, {Name: "stray-vm", ID: "i-2"}}}}, t0)
	if s := recs["workers"].Strays; len(s) != 2 || s[0].Name != "stray-node" || s[1].ID != "i-2" {
		t.Fatalf("strays: %+v", s)
	}
	nodes := []PoolNode{{Name: "stray-node", Ready: true, Utilization: 0.9}}
	recs, acts, evs := PoolsStep(recs, pools, nodes, nil, t0.Add(time.Minute))
	ms := recs["workers"].Machines
	if len(ms) != 3 || !ms[1].Joined || ms[1].Name != "stray-node" || ms[2].Deleting.IsZero() || len(recs["workers"].Strays) != 0 ||
		len(acts) != 1 || len(acts[0].Delete) != 1 || acts[0].Delete[0].ID != "i-2" ||
		!strings.Contains(strings.Join(evs, "\n"), "stray-node is the provisioner's and a ready node, unknown to the pool's record: adopted") {
		t.Fatalf("adopted and deleted: %+v %+v %q", ms, acts, evs)
	}
	if _, acts, _ = PoolsStep(recs, pools, nodes, nil, t0.Add(PoolListEvery)); len(acts) != 1 || !acts[0].List {
		t.Fatalf("no list after %s: %+v", PoolListEvery, acts)
	}
}

// A machine that joined is checked against its template: cpu and memory
// (within 10%), extended resources, labels, taints.
func TestPoolMismatch(t *testing.T) {
	p := testPool(0, 3)
	p.Capacity = desired.Amount{CPUMilli: 4000, MemoryBytes: 8 << 30, Extra: map[string]int64{"nvidia.com/gpu": 1}}
	p.Labels = map[string]string{"zone": "a"}
	full := PoolNode{CPUMilli: 3900, MemoryBytes: 8 << 30, Extra: map[string]int64{"nvidia.com/gpu": 1}, Labels: map[string]string{"zone": "a"}}
	if got := mismatch(p, full); got != "" {
		t.Fatalf("a machine as its template: %q", got)
	}
	noGPU := full
	noGPU.Extra = nil
	if got := mismatch(p, noGPU); got != "nvidia.com/gpu 0, the template 1" {
		t.Fatalf("a machine without the template's GPU: %q", got)
	}
}
