package reconciler

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

var t0 = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

const grace = 10 * time.Second

func workload(name string, replicas int, image string) desired.Workload {
	pod := desired.PodSpec{Containers: []desired.Container{{Name: "web", Image: image}}}
	return desired.Workload{Name: name, Kind: "Deployment", Replicas: replicas, Pod: pod, Hash: pod.Hash(),
		Strategy: desired.Strategy{Type: "RollingUpdate", MaxSurge: "25%", MaxUnavailable: "25%"}}
}

func withStrategy(w desired.Workload, typ, surge, unavailable string) desired.Workload {
	w.Strategy = desired.Strategy{Type: typ, MaxSurge: surge, MaxUnavailable: unavailable}
	return w
}

func withMinReady(w desired.Workload, s int) desired.Workload { w.MinReadySeconds = s; return w }

func notReady(r protocol.Replica) protocol.Replica { r.Ready = false; return r }

func scheduled(st *desired.State, target string, windows ...desired.ScalingWindow) *desired.State {
	for i := range windows { // parsed as the loader parses them
		windows[i].Cron = desired.MustParseCron(windows[i].Schedule, "UTC")
	}
	st.Schedules = append(st.Schedules, desired.ScalingSchedule{Meta: desired.Meta{Name: "hours"}, Target: target, Windows: windows})
	return st
}

// migrate is a Job: 3 completions, 2 at a time, backoffLimit 1.
var migrate = func() desired.Job {
	pod := desired.PodSpec{Containers: []desired.Container{{Name: "m", Image: "migrate:1"}}, RestartPolicy: "Never"}
	return desired.Job{Meta: desired.Meta{Name: "migrate"}, Hash: "0123456789abcdef",
		Spec: desired.JobSpec{Pod: pod, Completions: 3, Parallelism: 2, BackoffLimit: 1}}
}()

func jobs(js ...desired.Job) *desired.State { return &desired.State{Jobs: js} }

func jobPod(id string, j desired.Job, st protocol.ReplicaState, code int) protocol.Replica {
	return protocol.Replica{ID: id, Workload: JobWorkload(j.Name), SpecHash: j.Hash, State: st, ExitCode: code, StartedAt: t0.Add(-time.Minute)}
}

func state(ws ...desired.Workload) *desired.State { return &desired.State{Workloads: ws} }

func node(name string, reps ...protocol.Replica) NodeView {
	return NodeView{Name: name, LastHeartbeat: t0.Add(-time.Second), ReportTime: t0.Add(-time.Second), Replicas: reps}
}

func disconnected(n NodeView, ago time.Duration) NodeView { n.Disconnected = t0.Add(-ago); return n }

func lost(n NodeView) NodeView { n.LastHeartbeat = t0.Add(-grace - time.Second); return n }

func silentFor(n NodeView, d time.Duration) NodeView { n.LastHeartbeat = t0.Add(-d); return n }

func rep(id string, w desired.Workload, st protocol.ReplicaState, started time.Duration) protocol.Replica {
	// Running replicas are ready (no readiness probe), as agents report them.
	return protocol.Replica{ID: id, Workload: w.Name, SpecHash: w.Hash, State: st, StartedAt: t0.Add(-started), Ready: st == protocol.StateRunning}
}

func assigned(id string, w desired.Workload, node string, age time.Duration) Assignment {
	return Assignment{ReplicaID: id, Workload: w.Name, SpecHash: w.Hash, Node: node, Created: t0.Add(-age)}
}

func nodes(ns ...NodeView) map[string]NodeView {
	m := map[string]NodeView{}
	for _, n := range ns {
		m[n.Name] = n
	}
	return m
}

func assignments(as ...Assignment) map[string]Assignment {
	m := map[string]Assignment{}
	for _, a := range as {
		m[a.ReplicaID] = a
	}
	return m
}

// compute runs a pass's pure part: the live view, the one scale rule
// (when the test gives no scales), then Compute.
func compute(in Input) Result {
	live := NewLive(in)
	if in.Scales == nil && in.Desired != nil {
		in.Scales, _, _, _ = scalesStep(in.Desired, nil, live, in.Now)
	}
	return Compute(in, live)
}

// summary renders a result without the generated replica IDs of starts.
func summary(res Result) []string {
	out := []string{}
	for _, a := range res.Starts {
		out = append(out, fmt.Sprintf("start %s@%s", a.Workload, a.Node))
	}
	for _, a := range res.Stops {
		out = append(out, fmt.Sprintf("stop %s@%s", a.ReplicaID, a.Node))
	}
	for _, a := range res.Forgets {
		out = append(out, fmt.Sprintf("forget %s@%s", a.ReplicaID, a.Node))
	}
	for _, a := range res.Pending {
		out = append(out, fmt.Sprintf("pending %s×%d: %s", a.Workload, a.Count, a.Reason))
	}
	if res.Hold != nil {
		out = append(out, fmt.Sprintf("hold %d", res.Hold.Count))
	}
	slices.Sort(out)
	return out
}

const gi = 1 << 30

func labeled(n NodeView, kv ...string) NodeView {
	n.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Labels[kv[i]] = kv[i+1]
	}
	return n
}

func sized(n NodeView, mem int64) NodeView {
	n.Allocatable = protocol.Resources{CPUMilli: 4000, MemoryBytes: mem}
	return n
}

func TestCompute(t *testing.T) {
	// big asks for 2 GiB per replica, and an ssd node.
	big := workload("big", 3, "db:1")
	big.Pod.NodeSelector = map[string]string{"disk": "ssd"}
	big.Pod.Containers[0].Resources.Requests.MemoryBytes = 2 * gi
	big.Hash = big.Pod.Hash()
	mid := workload("mid", 1, "mid:1")
	mid.Pod.Containers[0].Resources.Requests.MemoryBytes = 1 * gi
	mid.Hash = mid.Pod.Hash()
	gpu := workload("gpu", 3, "train:1")
	gpu.Pod.Containers[0].Resources.Requests.Extra = map[string]int64{"nvidia.com/gpu": 1, "ephemeral-storage": 10 * gi}
	gpu.Hash = gpu.Pod.Hash()
	withGPUs := func(n NodeView, gpus int64) NodeView {
		n.Allocatable = protocol.Resources{CPUMilli: 4000, MemoryBytes: 8 * gi, Extra: map[string]int64{"nvidia.com/gpu": gpus}}
		return n
	}
	tolerant := workload("tol", 1, "tol:1")
	tolerant.Pod.Tolerations = []desired.Toleration{{Key: "maint", Operator: "Exists"}}
	tolerant.Hash = tolerant.Pod.Hash()
	taintedNode := func(n NodeView, key, effect string) NodeView {
		n.Taints = []desired.Taint{{Key: key, Effect: effect}}
		return n
	}
	waiting := workload("web", 3, "web:1")
	waiting.Pod.Waiting = []string{"Secret hf-secret"}
	waiting.Hash = waiting.Pod.Hash()
	web := workload("web", 3, "web:1")
	web2 := workload("web", 3, "web:2")
	web5 := workload("web", 5, "web:1")
	web1 := workload("web", 1, "web:1")
	web0 := workload("web", 0, "web:1")
	db := workload("db", 1, "db:1")
	R, C, X, F, S := protocol.StateRunning, protocol.StateCreating, protocol.StateExited, protocol.StateFailed, protocol.StateStopping

	tests := []struct {
		name string
		in   Input
		want []string
	}{
		{
			name: "no revision loaded: nothing happens",
			in:   Input{Nodes: nodes(node("n1"))},
			want: []string{},
		},
		{
			name: "scale up from zero",
			in:   Input{Desired: state(web), Nodes: nodes(node("n1"))},
			want: []string{"start web@n1", "start web@n1", "start web@n1"},
		},
		{
			name: "spread over nodes, fewest first",
			in:   Input{Desired: state(web), Nodes: nodes(node("n1", rep("a", web, R, time.Hour)), node("n2"))},
			want: []string{"start web@n1", "start web@n2"},
		},
		{
			name: "no nodes: nothing to start, all pending",
			in:   Input{Desired: state(web), Nodes: nodes()},
			want: []string{"pending web×3: no nodes"},
		},
		{
			name: "a node that has not reported is not used",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1"),
				NodeView{Name: "n2", LastHeartbeat: t0})},
			want: []string{"start web@n1"},
		},
		{
			name: "a cordoned node takes no new replica; its replicas stay",
			in: Input{Desired: state(web), Nodes: nodes(node("n1", rep("a", web, R, time.Hour)), node("n2")),
				Cordoned: map[string]bool{"n2": true}},
			want: []string{"start web@n1", "start web@n1"},
		},
		{
			name: "every node cordoned: pending, said why",
			in:   Input{Desired: state(web1), Nodes: nodes(node("n1")), Cordoned: map[string]bool{"n1": true}},
			want: []string{"pending web×1: 0/1 nodes fit: 1 node cordoned"},
		},
		{
			name: "draining: a replacement starts elsewhere first (maxUnavailable 0 of 3)",
			in: Input{Desired: state(web), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour)), node("n2")),
				Cordoned: map[string]bool{"n1": true}, Draining: map[string]bool{"n1": true}},
			want: []string{"start web@n2"},
		},
		{
			name: "draining: once the replacement is available, one drained replica stops",
			in: Input{Desired: state(web), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour)), node("n2", rep("d", web, R, time.Minute))),
				Cordoned: map[string]bool{"n1": true}, Draining: map[string]bool{"n1": true}},
			want: []string{"stop c@n1"}, // the next replacement starts once c is gone (surge 1)
		},
		{
			name: "draining the last node that fits: replicas stay, replacements pending",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1", rep("a", web1, R, time.Hour))),
				Cordoned: map[string]bool{"n1": true}, Draining: map[string]bool{"n1": true}},
			want: []string{"pending web×1: 0/1 nodes fit: 1 node cordoned"},
		},
		{
			name: "draining with nowhere to go: nothing stops (maxUnavailable is not spent for nothing)",
			in: Input{Desired: state(web), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour)), node("n2")),
				Cordoned: map[string]bool{"n1": true, "n2": true}, Draining: map[string]bool{"n1": true}},
			want: []string{"pending web×1: 0/2 nodes fit: 2 node cordoned"},
		},
		{
			name: "a node disconnected from the bus for less than the disconnect grace keeps its replicas",
			in: Input{Desired: state(web1), Nodes: nodes(disconnected(node("n1", rep("a", web1, R, time.Hour)), time.Second), node("n2")),
				Assignments: assignments(assigned("a", web1, "n1", time.Hour))},
			want: []string{},
		},
		{
			name: "a node disconnected longer than the disconnect grace is lost, its heartbeat recent or not",
			in: Input{Desired: state(web1), Nodes: nodes(disconnected(node("n1", rep("a", web1, R, time.Hour)), DisconnectGrace+time.Second), node("n2")),
				Assignments: assignments(assigned("a", web1, "n1", time.Hour)), NodeGrace: grace},
			want: []string{"forget a@n1", "start web@n2"},
		},
		{
			name: "converged: nothing to do",
			in: Input{Desired: state(web), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour)))},
			want: []string{},
		},
		{
			name: "scale down stops the newest",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour)))},
			want: []string{"stop b@n1", "stop c@n1"},
		},
		{
			name: "scale down stops replicas that are not running first",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1",
				rep("a", web, C, 3*time.Hour), rep("b", web, R, 2*time.Hour)))},
			want: []string{"stop a@n1"},
		},
		{
			name: "scale down evens out nodes",
			in: Input{Desired: state(workload("web", 2, "web:1")), Nodes: nodes(
				node("n1", rep("a", web, R, 3*time.Hour), rep("b", web, R, 4*time.Hour)),
				node("n2", rep("c", web, R, time.Hour)))},
			want: []string{"stop a@n1"},
		},
		{
			name: "scale to zero",
			in:   Input{Desired: state(web0), Nodes: nodes(node("n1", rep("a", web, R, time.Hour)))},
			want: []string{"stop a@n1"},
		},
		{
			name: "new template: start new replicas, keep the old serving",
			in: Input{Desired: state(web2), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour)))},
			want: []string{"start web@n1"}, // maxSurge 25% of 3, rounded up
		},
		{
			name: "rollout: a new replica not ready yet holds the rollout",
			in: Input{Desired: state(web2), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour),
				notReady(rep("d", web2, R, time.Minute))))},
			want: []string{},
		},
		{
			name: "rollout: maxUnavailable 1, maxSurge 0: an old one goes before any new one starts",
			in: Input{Desired: state(withStrategy(web2, "RollingUpdate", "0", "1")), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour)))},
			want: []string{"stop c@n1"},
		},
		{
			name: "rollout: old replicas that are not ready go first, without using the budget",
			in: Input{Desired: state(withStrategy(web2, "RollingUpdate", "0", "1")), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), notReady(rep("b", web, R, 2*time.Hour)), rep("c", web, R, time.Hour)))},
			want: []string{"stop b@n1"},
		},
		{
			name: "rollout: minReadySeconds: new replicas ready for less do not count",
			in: Input{Desired: state(withMinReady(web2, 30)), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour),
				rep("d", web2, R, time.Minute), rep("e", web2, R, time.Minute), rep("f", web2, R, time.Minute))),
				ReadySince: map[string]time.Time{"d": t0.Add(-10 * time.Second), "e": t0.Add(-40 * time.Second), "f": t0.Add(-40 * time.Second)}},
			want: []string{"stop b@n1", "stop c@n1"},
		},
		{
			name: "failed rollout: frozen: no new replica starts, no old one stops",
			in: Input{Desired: state(web2), Frozen: map[string]string{"web": web2.Hash}, Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour),
				notReady(rep("d", web2, R, time.Minute))))},
			want: []string{},
		},
		{
			name: "auto-rollback: the healthy template is desired again; the failed replicas are replaced",
			in: Input{Desired: state(web2), Rollback: map[string]RollbackTo{"web": {Workload: web, State: state(web)}}, Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour),
				notReady(rep("d", web2, R, time.Minute))))},
			want: []string{"start web@n1"},
		},
		{
			name: "auto-rollback, once the healthy replicas are back: the failed one stops",
			in: Input{Desired: state(web2), Rollback: map[string]RollbackTo{"web": {Workload: web, State: state(web)}}, Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Minute),
				notReady(rep("d", web2, R, time.Minute))))},
			want: []string{"stop d@n1"},
		},
		{
			name: "Job: parallelism pods start",
			in:   Input{Desired: jobs(migrate), Nodes: nodes(node("n1"))},
			want: []string{"start job/migrate@n1", "start job/migrate@n1"},
		},
		{
			name: "Job: succeeded pods count, and are kept; the rest start",
			in:   Input{Desired: jobs(migrate), Nodes: nodes(node("n1", jobPod("a", migrate, X, 0), jobPod("b", migrate, R, 0)))},
			want: []string{"start job/migrate@n1"},
		},
		{
			name: "Job: complete: nothing starts or stops",
			in: Input{Desired: jobs(migrate), Nodes: nodes(node("n1",
				jobPod("a", migrate, X, 0), jobPod("b", migrate, X, 0), jobPod("c", migrate, X, 0)))},
			want: []string{},
		},
		{
			name: "Job: past backoffLimit it fails and its active pods stop",
			in: Input{Desired: jobs(migrate), Nodes: nodes(node("n1",
				jobPod("a", migrate, X, 1), jobPod("b", migrate, X, 1), jobPod("c", migrate, R, 0)))},
			want: []string{"stop c@n1"},
		},
		{
			name: "Job: in-place restarts count as failures",
			in: Input{Desired: jobs(migrate), Nodes: nodes(node("n1",
				func() protocol.Replica { r := jobPod("a", migrate, R, 0); r.Restarts = 2; return r }()))},
			want: []string{"stop a@n1"},
		},
		{
			name: "Job removed from Git: its pods stop",
			in:   Input{Desired: state(), Nodes: nodes(node("n1", jobPod("a", migrate, X, 0), jobPod("b", migrate, R, 0)))},
			want: []string{"stop a@n1", "stop b@n1"},
		},
		{
			name: "Recreate: every old replica stops before a new one starts",
			in: Input{Desired: state(withStrategy(web2, "Recreate", "", "")), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour)))},
			want: []string{"stop a@n1", "stop b@n1"},
		},
		{
			name: "new template: an old replica stops for each new one running",
			in: Input{Desired: state(web2), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour),
				rep("d", web2, R, time.Minute), rep("e", web2, R, time.Minute), rep("f", web2, C, time.Minute)))},
			want: []string{"stop b@n1", "stop c@n1"},
		},
		{
			name: "new template and scale to zero: old ones all stop",
			in:   Input{Desired: state(workload("web", 0, "web:2")), Nodes: nodes(node("n1", rep("a", web, R, time.Hour)))},
			want: []string{"stop a@n1"},
		},
		{
			name: "an exited replica is stopped and replaced",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1",
				protocol.Replica{ID: "a", Workload: "web", SpecHash: web.Hash, State: X, ExitCode: 137}))},
			want: []string{"start web@n1", "stop a@n1"},
		},
		{
			name: "a failed start is stopped and replaced",
			in:   Input{Desired: state(web1), Nodes: nodes(node("n1", rep("a", web, F, 0)))},
			want: []string{"start web@n1", "stop a@n1"},
		},
		{
			name: "a start that failed and waits for its next try on its node counts: nothing else starts",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1", protocol.Replica{ID: "a", Workload: "web", SpecHash: web.Hash,
				State: protocol.StateWaiting, Code: protocol.CodeImageNotFound, Failures: 3}))},
			want: []string{},
		},
		{
			name: "an invalid spec: the failed replica goes and the template is not started again",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1", protocol.Replica{ID: "a", Workload: "web", SpecHash: web.Hash,
				State: F, Code: protocol.CodeInvalidSpec, Message: "invalid_spec: bad probe"}))},
			want: []string{"pending web×1: start failed: invalid_spec: bad probe (not started again until the template changes)", "stop a@n1"},
		},
		{
			name: "an invalid spec, remembered: nothing starts",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1")),
				Refused: map[string]StartFailure{"web": {Hash: web.Hash, Code: protocol.CodeInvalidSpec, Reason: "invalid_spec: x"}}},
			want: []string{"pending web×1: invalid_spec: x (not started again until the template changes)"},
		},
		{
			name: "an invalid spec of an earlier template does not hold the new one back",
			in: Input{Desired: state(workload("web", 1, "web:2")), Nodes: nodes(node("n1")),
				Refused: map[string]StartFailure{"web": {Hash: web.Hash, Code: protocol.CodeInvalidSpec, Reason: "invalid_spec: x"}}},
			want: []string{"start web@n1"},
		},
		{
			name: "a node whose policy refuses the pod gets none: the replacement goes elsewhere",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1", protocol.Replica{ID: "a", Workload: "web", SpecHash: web.Hash,
				State: F, Code: protocol.CodeNotAllowed, Message: "not_allowed: hostPath"}), node("n2"))},
			want: []string{"start web@n2", "stop a@n1"},
		},
		{
			name: "every node refuses the pod: pending, with why",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1")),
				Refused: map[string]StartFailure{"web": {Hash: web.Hash, Code: protocol.CodeNotAllowed, Nodes: map[string]string{"n1": "not_allowed: x"}}}},
			want: []string{"pending web×1: 0/1 nodes fit: 1 refused by the node (not_allowed: x)"},
		},
		{
			name: "a stop sent is not sent again while the replica goes",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1",
				rep("a", web, R, 3*time.Hour), rep("b", web, R, 2*time.Hour), rep("c", web, R, time.Hour))),
				Stopping: map[string]bool{"b": true, "c": true}},
			want: []string{},
		},
		{
			name: "a replica being stopped is never read as failed",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1", rep("a", web, R, time.Hour),
				protocol.Replica{ID: "b", Workload: "web", SpecHash: web.Hash, State: F, ExitCode: -1, Message: "task: not found"})),
				Stopping: map[string]bool{"b": true}},
			want: []string{},
		},
		{
			name: "scale down with two nodes silent: no ready replica stops for the count of the ones nobody sees",
			in: Input{Desired: state(workload("web", 4, "web:1")), Nodes: nodes(
				lost(node("n1", rep("a", web, R, time.Hour))), lost(node("n2", rep("b", web, R, time.Hour))),
				node("n3", rep("c", web, R, time.Hour), rep("d", web, R, time.Hour), rep("e", web, R, time.Minute), rep("f", web, R, time.Minute))),
				Assignments: assignments(assigned("a", web, "n1", time.Hour), assigned("b", web, "n2", time.Hour),
					assigned("c", web, "n3", time.Hour), assigned("d", web, "n3", time.Hour), assigned("e", web, "n3", time.Minute), assigned("f", web, "n3", time.Minute))},
			want: []string{"hold 2"},
		},
		{
			name: "scale down stops, in order, replicas not yet placed, then not ready, then the newest",
			in: Input{Desired: state(workload("web", 2, "web:1")), Nodes: nodes(
				node("n1", rep("a", web, R, time.Hour), rep("b", web, R, time.Minute), notReady(rep("c", web, R, 2*time.Hour))),
				node("n2", rep("d", web, R, time.Hour))),
				Assignments: assignments(assigned("a", web, "n1", time.Hour), assigned("b", web, "n1", time.Minute),
					assigned("c", web, "n1", 2*time.Hour), assigned("d", web, "n2", time.Hour), assigned("p", web, "n2", time.Second))},
			want: []string{"stop b@n1", "stop c@n1", "stop p@n2"},
		},
		{
			name: "a stopping replica does not count",
			in:   Input{Desired: state(web1), Nodes: nodes(node("n1", rep("a", web, S, time.Hour)))},
			want: []string{"start web@n1"},
		},
		{
			name: "a pending start counts: no second start",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1")),
				Assignments: assignments(assigned("a", web, "n1", time.Second))},
			want: []string{},
		},
		{
			name: "a start never reported is forgotten and retried",
			in: Input{Desired: state(web1), Nodes: nodes(node("n1")),
				Assignments: assignments(assigned("a", web, "n1", time.Minute))},
			want: []string{"forget a@n1", "start web@n1"},
		},
		{
			name: "a lost node's replicas are placed elsewhere",
			in: Input{Desired: state(web), Nodes: nodes(
				lost(node("n1", rep("a", web, R, time.Hour), rep("b", web, R, time.Hour))),
				node("n2", rep("c", web, R, time.Hour))),
				Assignments: assignments(assigned("a", web, "n1", time.Hour), assigned("b", web, "n1", time.Hour), assigned("c", web, "n2", time.Hour))},
			want: []string{"forget a@n1", "forget b@n1", "start web@n2", "start web@n2"},
		},
		{
			name: "disruption mode: 2 of 3 nodes silent at once: nothing forgotten or replaced",
			in: Input{Desired: state(web), Nodes: nodes(
				lost(node("n1", rep("a", web, R, time.Hour))), lost(node("n2", rep("b", web, R, time.Hour))),
				node("n3", rep("c", web, R, time.Hour))),
				Assignments: assignments(assigned("a", web, "n1", time.Hour), assigned("b", web, "n2", time.Hour), assigned("c", web, "n3", time.Hour))},
			want: []string{"hold 2"},
		},
		{
			name: "disruption mode: a template change replaces only what it can reach",
			in: Input{Desired: state(web2), Nodes: nodes(
				lost(node("n1", rep("a", web, R, time.Hour))), lost(node("n2", rep("b", web, R, time.Hour))),
				node("n3", rep("c", web, R, time.Hour), rep("d", web2, R, time.Minute), rep("e", web2, R, time.Minute), rep("f", web2, R, time.Minute)))},
			want: []string{"hold 2", "stop c@n3"},
		},
		{
			name: "disruption mode ends after DisruptionHold: the replicas move",
			in: Input{Desired: state(web), Nodes: nodes(
				silentFor(node("n1", rep("a", web, R, time.Hour)), grace+DisruptionHold+time.Second),
				silentFor(node("n2", rep("b", web, R, time.Hour)), grace+DisruptionHold+time.Second),
				node("n3", rep("c", web, R, time.Hour))),
				Assignments: assignments(assigned("a", web, "n1", time.Hour), assigned("b", web, "n2", time.Hour), assigned("c", web, "n3", time.Hour))},
			want: []string{"forget a@n1", "forget b@n2", "start web@n3", "start web@n3"},
		},
		{
			name: "just started: assignments of nodes not heard from yet are kept",
			in: Input{Desired: state(web1), Nodes: nodes(), Started: t0.Add(-time.Second),
				Assignments: assignments(assigned("a", web, "n1", time.Hour))},
			want: []string{},
		},
		{
			name: "placement: node selector and memory; the rest is pending with reasons",
			in: Input{Desired: state(big), Nodes: nodes(
				sized(labeled(node("n1"), "disk", "ssd"), 3*gi),
				sized(labeled(node("n2"), "disk", "ssd"), 2*gi),
				sized(node("n3"), 16*gi))},
			want: []string{"pending big×1: 0/3 nodes fit: 2 insufficient memory, 1 node selector mismatch", "start big@n1", "start big@n2"},
		},
		{
			name: "placement: extended resources go where nodes advertise them, counting running replicas; unknown ephemeral-storage fits",
			in: Input{Desired: state(gpu), Nodes: nodes(
				withGPUs(node("n1", rep("g", gpu, R, time.Hour)), 2),
				withGPUs(node("n2"), 0),
				sized(node("n3"), 8*gi))},
			want: []string{"pending gpu×1: 0/3 nodes fit: 3 insufficient nvidia.com/gpu", "start gpu@n1"},
		},
		{
			name: "a NoExecute taint moves the replicas that do not tolerate it, as a drain does; tolerated ones stay",
			in: Input{Desired: state(web, tolerant), Nodes: nodes(
				taintedNode(node("n1", rep("a", web, R, time.Hour), rep("t", tolerant, R, time.Hour)), "maint", "NoExecute"),
				node("n2", rep("b", web, R, time.Hour), rep("c", web, R, time.Hour)))},
			want: []string{"start web@n2"},
		},
		{
			name: "… and once its replacement runs, the replica on the tainted node stops",
			in: Input{Desired: state(web, tolerant), Nodes: nodes(
				taintedNode(node("n1", rep("a", web, R, time.Hour), rep("t", tolerant, R, time.Hour)), "maint", "NoExecute"),
				node("n2", rep("b", web, R, time.Hour), rep("c", web, R, time.Hour), rep("d", web, R, time.Hour)))},
			want: []string{"stop a@n1"},
		},
		{
			name: "a pod waiting for a Secret the revision lacks is not started; its running replicas stay",
			in:   Input{Desired: state(waiting), Nodes: nodes(node("n1", rep("w1", waiting, R, time.Hour)))},
			want: []string{"pending web×2: waits for Secret hf-secret, not in the revision"},
		},
		{
			name: "placement counts the requests of running replicas of other workloads",
			in: Input{Desired: state(big, mid), Nodes: nodes(
				sized(labeled(node("n1", rep("m", mid, R, time.Hour)), "disk", "ssd"), 4*gi))},
			want: []string{"pending big×2: 0/1 nodes fit: 1 insufficient memory", "start big@n1"},
		},
		{
			name: "a ScalingSchedule owns the count: its last window (09:00 UTC, 5) beats spec.replicas (3)",
			in: Input{Desired: scheduled(state(web), "web", desired.ScalingWindow{Name: "day", Schedule: "0 9 * * *", Replicas: 5},
				desired.ScalingWindow{Name: "night", Schedule: "0 18 * * *", Replicas: 1}), Nodes: nodes(node("n1",
				rep("a", web, R, time.Hour), rep("b", web, R, time.Hour), rep("c", web, R, time.Hour)))},
			want: []string{"start web@n1", "start web@n1"},
		},
		{
			name: "just started: an assignment on a node not heard from yet is not duplicated elsewhere",
			in: Input{Desired: state(web1), Nodes: nodes(node("n2")), Started: t0.Add(-time.Second),
				Assignments: assignments(assigned("a", web, "n1", time.Hour))},
			want: []string{},
		},
		{
			name: "a node heard but not reported yet (after a leader change): its assignments are kept and counted",
			in: Input{Desired: state(web1), Nodes: nodes(NodeView{Name: "n1", LastHeartbeat: t0.Add(-time.Second)}, node("n2")),
				Started: t0.Add(-time.Hour), Assignments: assignments(assigned("a", web, "n1", time.Hour))},
			want: []string{},
		},
		{
			name: "a node not heard from for the grace period since start is lost",
			in: Input{Desired: state(web1), Nodes: nodes(), Started: t0.Add(-grace - time.Second),
				Assignments: assignments(assigned("a", web, "n1", time.Hour))},
			want: []string{"forget a@n1", "pending web×1: no nodes"},
		},
		{
			name: "a node that comes back: its superseded replicas stop",
			in: Input{Desired: state(web1), Nodes: nodes(
				node("n1", rep("old", web, R, 2*time.Hour)),
				node("n2", rep("new", web, R, time.Minute))),
				Assignments: assignments(assigned("new", web, "n2", time.Minute))},
			want: []string{"stop old@n1"},
		},
		{
			name: "a node that comes back while replacements start: the superseded go",
			in: Input{Desired: state(workload("web", 2, "web:1")), Nodes: nodes(
				node("n1", rep("old1", web, R, 2*time.Hour), rep("old2", web, R, 2*time.Hour)),
				node("n2", rep("new1", web, C, time.Second), rep("new2", web, R, time.Second))),
				Assignments: assignments(assigned("new1", web, "n2", time.Second), assigned("new2", web, "n2", time.Second))},
			want: []string{"stop old1@n1", "stop old2@n1"},
		},
		{
			name: "a removed workload is stopped",
			in: Input{Desired: state(db), Nodes: nodes(node("n1",
				rep("a", web, R, time.Hour), rep("d", db, R, time.Hour)))},
			want: []string{"stop a@n1"},
		},
		{
			name: "more replicas than fit one pass are all started",
			in:   Input{Desired: state(web5), Nodes: nodes(node("n1"), node("n2"))},
			want: []string{"start web@n1", "start web@n1", "start web@n1", "start web@n2", "start web@n2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now, tt.in.NodeGrace, tt.in.PendingTimeout = t0, grace, 30*time.Second
			got := summary(compute(tt.in))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Compute() = %q\nwant        %q", got, tt.want)
			}
		})
	}
}

func TestComputeIsDeterministic(t *testing.T) {
	in := Input{Desired: state(workload("web", 50, "web:1"), workload("api", 20, "api:1")),
		Nodes: nodes(node("n1"), node("n2"), node("n3")), Now: t0, NodeGrace: grace, PendingTimeout: time.Minute}
	a, b := compute(in), compute(in)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two calls with the same input differ")
	}
	ids := map[string]bool{}
	for _, s := range a.Starts {
		if ids[s.ReplicaID] {
			t.Fatalf("replica ID %s given twice", s.ReplicaID)
		}
		ids[s.ReplicaID] = true
		if s.Spec == nil || s.Spec.ID != s.ReplicaID || s.Spec.SpecHash == "" {
			t.Fatalf("start without a complete spec: %+v", s)
		}
	}
	if len(a.Starts) != 70 || len(a.Stops)+len(a.Forgets)+len(a.Pending) != 0 || a.Hold != nil {
		t.Fatalf("result %+v, want 70 starts and nothing else", a)
	}
}

func TestComputeStartCarriesTheSpec(t *testing.T) {
	w := workload("web", 1, "web:1")
	res := compute(Input{Desired: state(w), Nodes: nodes(node("n1")), Now: t0, NodeGrace: grace, PendingTimeout: time.Minute})
	if len(res.Starts) != 1 {
		t.Fatalf("result %+v", res)
	}
	s := res.Starts[0].Spec
	if s.Workload != "web" || s.SpecHash != w.Hash || !reflect.DeepEqual(s.Pod, w.Pod) {
		t.Fatalf("spec %+v", s)
	}
}

func BenchmarkCompute(b *testing.B) {
	for _, size := range []struct{ nodes, workloads, replicas int }{{10, 10, 3}, {1000, 100, 30}, {10000, 1000, 30}, {5000, 10000, 10}} {
		ws := make([]desired.Workload, size.workloads)
		for i := range ws {
			ws[i] = workload(fmt.Sprintf("w%04d", i), size.replicas, "img:1")
		}
		// A converged cluster: every replica runs, spread round-robin.
		views := map[string]NodeView{}
		names := make([]string, size.nodes)
		for i := range names {
			names[i] = fmt.Sprintf("node-%05d", i)
			views[names[i]] = sized(labeled(node(names[i]), "topology.kubernetes.io/zone", fmt.Sprint("zone-", i%3)), 64*gi)
		}
		k := 0
		for _, w := range ws {
			for r := range size.replicas {
				n := views[names[k%size.nodes]]
				n.Replicas = append(n.Replicas, rep(fmt.Sprintf("%s-%d", w.Name, r), w, protocol.StateRunning, time.Hour))
				views[names[k%size.nodes]] = n
				k++
			}
		}
		in := Input{Desired: state(ws...), Nodes: views, Now: t0, NodeGrace: grace, PendingTimeout: time.Minute}
		b.Run(fmt.Sprintf("converged/nodes=%d/replicas=%d", size.nodes, size.workloads*size.replicas), func(b *testing.B) {
			for b.Loop() {
				if res := compute(in); !res.Empty() {
					b.Fatalf("%+v on a converged cluster", res)
				}
			}
		})
		// The same cluster after a template change of every workload.
		changed := make([]desired.Workload, len(ws))
		for i, w := range ws {
			changed[i] = workload(w.Name, size.replicas, "img:2")
		}
		in2 := in
		in2.Desired = state(changed...)
		b.Run(fmt.Sprintf("rollout/nodes=%d/replicas=%d", size.nodes, size.workloads*size.replicas), func(b *testing.B) {
			for b.Loop() {
				compute(in2)
			}
		})
	}
}

func TestComputeResolvesEnvFromConfig(t *testing.T) {
	st, err := desired.Load(map[string][]byte{"a.yaml": []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {mode: fast}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: app
        image: web:1
        env: [{name: MODE, valueFrom: {configMapKeyRef: {name: cfg, key: mode}}}]
        envFrom: [{configMapRef: {name: cfg}, prefix: CFG_}]
`)})
	if err != nil {
		t.Fatal(err)
	}
	res := compute(Input{Desired: st, Nodes: nodes(node("n1")), Now: t0, NodeGrace: grace, PendingTimeout: time.Minute})
	if len(res.Starts) != 1 {
		t.Fatalf("result %+v", res)
	}
	env := res.Starts[0].Spec.Pod.Containers[0].Env
	want := []desired.EnvVar{{Name: "CFG_mode", Value: "fast"}, {Name: "MODE", Value: "fast"}}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("env %+v, want %+v", env, want)
	}
	if res.Starts[0].Spec.SpecHash != st.Workloads[0].Hash {
		t.Fatal("spec hash is not the workload's hash")
	}
}

// TestFailureReason: a container that never started is never said to have
// exited with code 0.
func TestFailureReason(t *testing.T) {
	for _, tc := range []struct {
		r    protocol.Replica
		want string
	}{
		{protocol.Replica{State: protocol.StateFailed, Code: protocol.CodeInvalidSpec, Message: "invalid_spec: bad"}, "start failed: invalid_spec: bad"},
		{protocol.Replica{State: protocol.StateFailed, Code: protocol.CodeRuntimeError, Message: "runtime_error: left half made"}, "start failed: runtime_error: left half made"},
		{protocol.Replica{State: protocol.StateExited, ExitCode: 137, Message: "container web: OOMKilled: out of memory (exit code 137)"}, "replica exited: container web: OOMKilled: out of memory (exit code 137)"},
		{protocol.Replica{State: protocol.StateExited, ExitCode: -1, Message: "container web: no task"}, "replica exited: container web: no task"},
		{protocol.Replica{State: protocol.StateFailed}, "replica failed"},
	} {
		if got := failureReason(replica{Replica: &tc.r}); got != tc.want || strings.Contains(got, "exit code 0") {
			t.Errorf("failureReason(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// BenchmarkPlan: a plan of a 1,000-workload revision (every image changed)
// against a 100-node live cluster, loading included.
//
//	go test -run '^$' -bench Plan -benchtime 3x ./reconciler
func BenchmarkPlan(b *testing.B) {
	gen := func(image string) map[string][]byte {
		files := map[string][]byte{}
		for i := range 1000 {
			files[fmt.Sprintf("w%04d.yaml", i)] = fmt.Appendf(nil, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w%04d}\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers: [{name: app, image: %q, resources: {requests: {cpu: 10m, memory: 16Mi}}}]\n", i, image)
		}
		return files
	}
	cur, err := desired.Load(gen("app:1"))
	if err != nil {
		b.Fatal(err)
	}
	cur.Revision = "rev1"
	r := New(Config{NodeGrace: grace, Clock: func() time.Time { return t0 }})
	r.st.desired, r.st.synced = cur, Revision{ID: "rev1"}
	for i := range 100 {
		n := sized(node(fmt.Sprintf("node-%03d", i)), 64*gi)
		r.st.views[n.Name] = n
	}
	k := 0
	for _, w := range cur.Workloads {
		for j := range w.Replicas {
			name := fmt.Sprintf("node-%03d", k%100)
			n := r.st.views[name]
			n.Replicas = append(n.Replicas, rep(fmt.Sprintf("%s-%d", w.Name, j), w, protocol.StateRunning, time.Hour))
			r.st.views[name] = n
			k++
		}
	}
	ctx := context.Background()
	b.Run("every-file", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++ // a new image each time: every file changed, none from the loader's cache
			p, err := r.Plan(ctx, gen(fmt.Sprintf("app:%d", i+1)))
			if err != nil || len(p.Changes) != 1000 {
				b.Fatalf("plan: %v, %d changes", err, len(p.Changes))
			}
		}
	})
	b.Run("one-file", func(b *testing.B) {
		// A pull request that changes one workload: the other 999 files
		// come from the loader's cache (they were planned before).
		files := gen("app:1")
		if _, err := r.Plan(ctx, files); err != nil {
			b.Fatal(err)
		}
		i := 0
		for b.Loop() {
			i++
			files["w0000.yaml"] = gen(fmt.Sprintf("app:x%d", i))["w0000.yaml"]
			p, err := r.Plan(ctx, files)
			if err != nil || len(p.Changes) != 1 {
				b.Fatalf("plan: %v, %d changes", err, len(p.Changes))
			}
		}
	})
}
