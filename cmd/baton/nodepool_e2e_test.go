package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/reconciler"
)

// nodePoolDoc is a NodePool of machines of machineCPUs cpus made by command, with the
// delays shortened for a test.
func nodePoolDoc(name string, min, max int, labels string, command []string) string {
	q := make([]string, len(command))
	for i, a := range command {
		q[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(`apiVersion: baton.dev/v1
kind: NodePool
metadata:
  name: %s
spec:
  min: %d
  max: %d
  template:
    capacity: {cpu: "%d", memory: 4Gi}
%s  provisioner:
    command: [%s]
    timeout: 60s
  scaleUp: {pendingFor: 1s, joinTimeout: 90s}
  scaleDown: {unneededFor: 2s, delayAfterAdd: 3s}
`, name, min, max, machineCPUs, labels, strings.Join(q, ", "))
}

// machineCPUs is what each machine of the reference provisioner has: the
// agent advertises its host's cpus, and every machine is on this host. The
// template says as much; a replica requests 0.6 of it (one a machine) and
// "huge" more than a machine has, whatever the host.
var (
	machineCPUs = runtime.NumCPU()
	replicaCPU  = fmt.Sprintf("%dm", machineCPUs*600)
	hugeCPU     = fmt.Sprint(machineCPUs + 1)
)

// cpuDeployment is a Deployment whose replicas request cpu each.
func cpuDeployment(name string, replicas int, cpu, selector string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  replicas: %d
  template:
    spec:
%s      containers:
        - name: web
          image: %s
          resources: {requests: {cpu: %q, memory: 32Mi}}
`, name, replicas, selector, testImage, cpu)
}

// poolOf is the status of pool name.
func poolOf(st reconciler.Status, name string) reconciler.PoolStatus {
	for _, p := range st.Pools {
		if p.Name == name {
			return p
		}
	}
	return reconciler.PoolStatus{}
}

// TestNodePool: the reference provisioner (examples/nodepool) makes
// machines as network namespaces on the fleet's switch, each running the
// real baton agent --join with the token Baton minted for it. A pool of
// min 1 starts its first machine; a commit needing three machines grows
// it to 3 and every replica runs; the load removed, it shrinks back to 1
// (drained, deleted, credentials revoked). A template that can never fit
// is said and asks for nothing; a failing provisioner backs off.
func TestNodePool(t *testing.T) {
	testenv.RequireCommands(t, "go", "ctr")
	provDir := t.TempDir() // the server runs provisioners from here only
	state := t.TempDir()   // the machines' records and data
	// Registered before the cluster: it runs once the server has stopped
	// (a server still running would replace the machines deleted here).
	var call func(req string) string
	var f *fleetCluster
	t.Cleanup(func() {
		if call == nil {
			return
		}
		// Every machine left, then their containerd namespaces.
		paths, _ := filepath.Glob(filepath.Join(state, "*.json"))
		for _, p := range paths {
			if out := call(fmt.Sprintf(`{"version":1,"op":"delete","delete":{"name":%q}}`, strings.TrimSuffix(filepath.Base(p), ".json"))); strings.Contains(out, `"error"`) {
				t.Errorf("delete the machine left: %s", out)
			}
		}
		cli, err := nodeagent.DialContainerd(context.Background(), f.sock)
		if err != nil {
			return
		}
		defer cli.Close()
		nss, _ := cli.NamespaceService().List(context.Background())
		for _, ns := range nss {
			if !strings.HasPrefix(ns, "baton-workers-") {
				continue
			}
			if err := testenv.RemoveContainerdNamespace(context.Background(), cli, ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	f = newFleetCluster(t, "--node-grace", "5s", "--provisioner-dir", provDir)
	sw, bridge := f.fleet.Switch()
	prov := filepath.Join(provDir, "netns-provisioner")
	if out, err := exec.Command("go", "build", "-o", prov, "../../examples/nodepool/netns-provisioner").CombinedOutput(); err != nil {
		t.Fatalf("build the reference provisioner: %v: %s", err, out)
	}
	argv := []string{prov, "--switch", sw, "--bridge", bridge, "--subnet", testenv.FleetSubnet, "--first", "100", "--state", state,
		"--baton", os.Args[0], "--containerd", f.sock, "--agent-arg=--network", "--agent-arg=none", "--agent-arg=--heartbeat", "--agent-arg=300ms"}
	call = func(req string) string {
		cmd := exec.Command(prov, argv[1:]...)
		cmd.Stdin = strings.NewReader(req)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	admin := f.as(f.ops, f.adminCreds)
	// The image goes to the cluster's store: new machines fetch it there.
	if out, err := f.baton(f.ops, nil, "image", "push", testenv.HelloArchive(t), "--nats", f.natsURL, "--creds", f.adminCreds); err != nil {
		t.Fatalf("image push: %v: %s", err, out)
	}
	joinedNodes := func(st reconciler.Status) []string {
		var out []string
		for _, n := range st.Nodes {
			if n.Ready {
				out = append(out, n.Name)
			}
		}
		return out
	}
	waitPool := func(what string, within time.Duration, cond func(st reconciler.Status, p reconciler.PoolStatus) bool) reconciler.Status {
		t.Helper()
		var st reconciler.Status
		testenv.WaitFor(t, within, what, func() (bool, string) {
			st = f.status(admin)
			p := poolOf(st, "workers")
			return cond(st, p), fmt.Sprintf("pool %+v, ready nodes %v, workloads %+v\nevents:\n%s\nserver log:\n%s", p, joinedNodes(st), st.Workloads,
				strings.Join(st.Events, "\n"), tail(strings.TrimRight(f.serverLog.String(), "\n"), 30))
		})
		return st
	}
	running := func(st reconciler.Status, name string) int {
		for _, w := range st.Workloads {
			if w.Name == name {
				return w.Running
			}
		}
		return -1
	}

	// min 1: the first machine at once; one replica on it.
	start := time.Now()
	f.commit("a pool and one replica", map[string]string{"pool.yaml": nodePoolDoc("workers", 1, 3, "", argv),
		"hello.yaml": cpuDeployment("hello", 1, replicaCPU, "")})
	st := waitPool("the pool's first machine joined and running the replica", 90*time.Second, func(st reconciler.Status, p reconciler.PoolStatus) bool {
		return len(p.Nodes) == 1 && len(joinedNodes(st)) == 1 && running(st, "hello") == 1
	})
	first := poolOf(st, "workers").Nodes[0]
	t.Logf("min 1: machine %s joined and the replica runs %s after the commit", first, time.Since(start).Round(100*time.Millisecond))

	// Three replicas of 1.2 cpu: one a machine, so two more machines.
	grow := time.Now()
	f.commit("three replicas", map[string]string{"hello.yaml": cpuDeployment("hello", 3, replicaCPU, "")})
	var pendingAt, askedAt, joinedAt time.Duration
	st = waitPool("the pool grown to 3 machines, every replica running", 120*time.Second, func(st reconciler.Status, p reconciler.PoolStatus) bool {
		for _, w := range st.Workloads {
			if w.Name == "hello" && w.Pending > 0 && pendingAt == 0 {
				pendingAt = time.Since(grow)
			}
		}
		if len(p.Joining) > 0 && askedAt == 0 {
			askedAt = time.Since(grow)
		}
		if len(joinedNodes(st)) == 3 && joinedAt == 0 {
			joinedAt = time.Since(grow)
		}
		return len(p.Nodes) == 3 && len(p.Joining) == 0 && running(st, "hello") == 3
	})
	grown := poolOf(st, "workers").Nodes
	// The figures of docs/benchmarks.md ("Node pools").
	t.Logf("grow 1 → 3: replicas pending %s, machines asked for %s (pendingFor 1s), joined %s, every replica running %s after the commit",
		pendingAt.Round(10*time.Millisecond), askedAt.Round(10*time.Millisecond), joinedAt.Round(10*time.Millisecond), time.Since(grow).Round(10*time.Millisecond))
	events := strings.Join(st.Events, "\n")
	if !strings.Contains(events, "NodePool workers: asked for 2 machines (replicas fit nowhere): 1 → 3") {
		t.Fatalf("no scale-up event:\n%s", events)
	}
	for _, w := range st.Workloads {
		if w.Name != "hello" {
			continue
		}
		nodes := map[string]bool{}
		for _, r := range w.Replicas {
			nodes[r.Node] = true
		}
		if len(w.Replicas) != 3 || len(nodes) != 3 {
			t.Fatalf("three replicas of 1.2 cpu on machines of 2, one each: %+v", w.Replicas)
		}
	}
	if out := call(`{"version":1,"op":"list","pool":"workers"}`); strings.Count(out, `"name"`) != 3 {
		t.Fatalf("the provisioner lists: %s", out)
	}

	// The load removed: back to min after the (shortened) delays.
	shrink := time.Now()
	f.commit("one replica", map[string]string{"hello.yaml": cpuDeployment("hello", 1, replicaCPU, "")})
	st = waitPool("the pool back to 1 machine", 120*time.Second, func(st reconciler.Status, p reconciler.PoolStatus) bool {
		return len(p.Nodes) == 1 && len(p.Draining)+len(p.Deleting) == 0 && len(joinedNodes(st)) == 1 && running(st, "hello") == 1
	})
	t.Logf("shrink 3 → 1: %s after the commit", time.Since(shrink).Round(100*time.Millisecond))
	events = strings.Join(st.Events, "\n")
	for _, want := range []string{"its replicas fit elsewhere: draining it", "drained: deleting it (3 → 2)", "drained: deleting it (2 → 1)", "deleted by the provisioner; credential of workers-"} {
		if !strings.Contains(events, want) {
			t.Fatalf("no %q in the events:\n%s", want, events)
		}
	}
	if out := call(`{"version":1,"op":"list","pool":"workers"}`); strings.Count(out, `"name"`) != 1 {
		t.Fatalf("the provisioner still has: %s", out)
	}
	// The deleted machines are gone from this host: their network
	// namespaces and their containerd namespaces.
	kept := poolOf(st, "workers").Nodes[0]
	netnss, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	ctrnss, _ := exec.Command("ctr", "--address", f.sock, "namespaces", "list", "--quiet").CombinedOutput()
	for _, name := range grown {
		has := strings.Contains(string(netnss), "bm-"+name) || strings.Contains(string(ctrnss), "baton-"+name)
		if has != (name == kept) {
			t.Fatalf("machine %s (kept: %s): network namespaces\n%s\ncontainerd namespaces\n%s", name, kept, netnss, ctrnss)
		}
	}
	// The deleted machines' credentials are gone from node ls.
	out, err := f.baton(f.ops, nil, "node", "ls", "--nats", f.natsURL, "--creds", f.adminCreds)
	if err != nil || strings.Count(out, "workers-") != 1 {
		t.Fatalf("node ls after the scale-down: %v\n%s", err, out)
	}

	// Never fits: said, no machine asked for. A failing provisioner:
	// asked once, then backs off (30 s), said in the status.
	calls := filepath.Join(f.dir, "broken-calls")
	broken := filepath.Join(provDir, "broken.sh")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nread req\ncase \"$req\" in *'\"op\":\"create\"'*) echo create >> "+calls+";; esac\necho 'quota exceeded in zone z1' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.commit("too big, and a broken pool", map[string]string{
		"huge.yaml":   cpuDeployment("huge", 1, hugeCPU, ""),
		"broken.yaml": nodePoolDoc("broken", 0, 2, "    labels: {kind: gpu}\n", []string{broken}),
		"gpu.yaml":    cpuDeployment("gpu", 1, "500m", "      nodeSelector: {kind: gpu}\n"),
	})
	var bp reconciler.PoolStatus
	testenv.WaitFor(t, 60*time.Second, "the broken pool failing once", func() (bool, string) {
		st = f.status(admin)
		bp = poolOf(st, "broken")
		return bp.Failures == 1 && !bp.RetryAt.IsZero(), fmt.Sprintf("%+v\n%s", bp, strings.Join(st.Events, "\n"))
	})
	events = strings.Join(st.Events, "\n")
	for _, want := range []string{"NodePool broken: the provisioner did not make 1 machine", "quota exceeded in zone z1",
		"no NodePool can take 1 replica of huge: NodePool broken: a new machine would not fit it", "NodePool workers: a new machine would not fit it"} {
		if !strings.Contains(events, want) {
			t.Fatalf("no %q in the events:\n%s", want, events)
		}
	}
	if until := time.Until(bp.RetryAt); until < 20*time.Second || until > 31*time.Second {
		t.Fatalf("back-off until %s (%s from now), want about 30 s", bp.RetryAt, until)
	}
	time.Sleep(5 * time.Second) // a window of passes: no second call within the back-off
	if b, _ := os.ReadFile(calls); strings.Count(string(b), "create") != 1 {
		t.Fatalf("the failing provisioner was asked to create %d times within its back-off", strings.Count(string(b), "create"))
	}
	if p := poolOf(f.status(admin), "workers"); len(p.Nodes) != 1 || len(p.Joining) != 0 {
		t.Fatalf("a replica that fits no machine made the pool grow: %+v", p)
	}
}
