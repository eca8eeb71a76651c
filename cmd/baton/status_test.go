package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

// The replica table says which replicas are ready (a replica stopping is
// not, whatever its last probe said), and a pending line says why
// without claiming the replicas fit nowhere.
func TestPrintStatusReady(t *testing.T) {
	now := time.Now()
	st := reconciler.Status{Workloads: []reconciler.WorkloadStatus{{Name: "web", Desired: 2, Current: 1, Running: 1, Ready: 1,
		Pending: 1, PendingReason: "drain of node n1 waits: PodDisruptionBudget web allows no more disruption (2 ready pods wanted)",
		Replicas: []reconciler.ReplicaStatus{
			{ID: "web-1", Node: "n1", State: protocol.StateRunning, Ready: true},
			{ID: "web-2", Node: "n1", State: protocol.StateStopping, Ready: true},
		}}}}
	var b bytes.Buffer
	printStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{"REPLICA  NODE  STATE     READY", "web-1    n1    running   yes", "web-2    n1    stopping  no",
		"Pending: web: 1 replica(s): drain of node n1 waits"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing from:\n%s", want, out)
		}
	}
}

// The history table keeps to a terminal's width unless --wide, and says
// when it cut something.
func TestPrintHistoryWidth(t *testing.T) {
	long := strings.Repeat("the rollout of web failed: ", 10)
	h := []store.HistoryEntry{{Revision: "0123456789abcdef", Applied: time.Now(), Outcome: "failed", Reason: long, Author: "ann", Message: "web v2"}}
	var b bytes.Buffer
	if err := printHistory(&b, h, false); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if n := len([]rune(line)); n > 140 {
			t.Errorf("a line of %d characters: %s", n, line)
		}
	}
	if !strings.Contains(b.String(), "…") || !strings.Contains(b.String(), "baton history --wide") {
		t.Errorf("no cut said:\n%s", b.String())
	}
	b.Reset()
	if err := printHistory(&b, h, true); err != nil || !strings.Contains(b.String(), long) || strings.Contains(b.String(), "--wide") {
		t.Errorf("--wide: %v\n%s", err, b.String())
	}
}

// baton up's hints work as printed: off the default port and data dir,
// they say what to export first.
func TestWelcomeHints(t *testing.T) {
	for _, tc := range []struct {
		dataDir, url, want string
	}{
		{"/var/lib/baton", "tls://127.0.0.1:4222", ""},
		{"/var/lib/baton", "tls://127.0.0.1:14222", "export BATON_NATS=tls://127.0.0.1:14222\n"},
		{"/var/lib/baton", "tls://0.0.0.0:4222", ""}, // listening everywhere: loopback is the default
		{"/var/lib/baton", "tls://[::]:14222", "export BATON_NATS=tls://127.0.0.1:14222\n"},
		{"/tmp/b", "tls://127.0.0.1:14222", "export BATON_CREDS=/tmp/b/admin.creds BATON_NATS=tls://127.0.0.1:14222\n"},
	} {
		cmd := &cobra.Command{}
		var b bytes.Buffer
		cmd.SetOut(&b)
		printWelcome(cmd, serverOptions{dataDir: tc.dataDir, repo: "/r", apiListen: ":8420"}, tc.url, true)
		got := b.String()
		if !strings.Contains(got, "Dashboard and API: http://127.0.0.1:8420/\n") {
			t.Errorf("no dashboard address in %q", got)
		}
		if tc.want == "" && strings.Contains(got, "export") || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s %s: %q lacks %q", tc.dataDir, tc.url, got, tc.want)
		}
	}
}

// Shell completion scripts for the shells people use.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "bash completion V2 for baton", "zsh": "#compdef baton", "fish": "fish completion for baton"} {
		out, _, err := run(t, "completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("baton completion %s: %v\n%.200s", shell, err, out)
		}
	}
}

// baton wait's progress line: ready against the count, and pending.
func TestWaitProgress(t *testing.T) {
	st := reconciler.Status{Workloads: []reconciler.WorkloadStatus{
		{Name: "web", Desired: 3, Current: 1, Ready: 3, Pending: 2}, {Name: "shop/api", Desired: 1, Current: 1, Ready: 1}, {Name: "job/migrate", Desired: 0}}}
	if got := waitProgress(st); got != "web 1/3 updated, 3 ready (2 pending), shop/api 1/1 updated, 1 ready" {
		t.Fatalf("%q", got)
	}
}

// baton top sums the usage agents report, per workload and per node
// against its capacity.
func TestTop(t *testing.T) {
	u := func(cpu, mib int64) *protocol.Usage { return &protocol.Usage{CPUMilli: cpu, MemoryBytes: mib << 20} }
	st := reconciler.Status{
		Nodes: []reconciler.NodeStatus{{Name: "n1", Ready: true, Replicas: 2, Capacity: protocol.Resources{CPUMilli: 2000, MemoryBytes: 1 << 30}},
			{Name: "n2", Ready: true, Replicas: 1}},
		Workloads: []reconciler.WorkloadStatus{{Name: "web", Replicas: []reconciler.ReplicaStatus{
			{ID: "a", Node: "n1", Usage: u(250, 64)}, {ID: "b", Node: "n1", Usage: u(250, 64)}, {ID: "c", Node: "n2"}}}},
		Jobs: []reconciler.JobStatus{{JobProgress: reconciler.JobProgress{Name: "batch"}, Replicas: []reconciler.ReplicaStatus{{ID: "d", Node: "n2", Usage: u(100, 32)}}}},
	}
	var b bytes.Buffer
	if err := printTopWorkloads(&b, st); err != nil || !strings.Contains(b.String(), "web        2/3 reporting  500m  128Mi") ||
		!strings.Contains(b.String(), "job/batch  1/1 reporting  100m  32Mi") {
		t.Fatalf("top workloads: %v\n%s", err, b.String())
	}
	b.Reset()
	if err := printTopNodes(&b, st); err != nil || !strings.Contains(b.String(), "n1    yes    500m  25%   128Mi   13%      2") ||
		!strings.Contains(b.String(), "n2    yes    100m  -     32Mi    -        1") {
		t.Fatalf("top nodes: %v\n%s", err, b.String())
	}
}

// The first interrupt ends the command gracefully and says a second one
// quits at once; the second does.
func TestOnSignals(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	exited := make(chan int, 1)
	daemon.Store(true)
	defer daemon.Store(false)
	go onSignals(sigs, cancel, &log, func(code int) { exited <- code })
	sigs <- os.Interrupt
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first interrupt did not end the command")
	}
	if !strings.Contains(logs.String(), "interrupt again to quit at once") {
		t.Fatalf("logs: %s", logs.String())
	}
	sigs <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code != 143 {
			t.Fatalf("exit %d, want 143 (SIGTERM)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second signal did not quit")
	}
}

// The node pools' table: size, bounds, machines coming and going, the
// last decision with the back-off, and what no pool takes.
func TestPrintStatusPools(t *testing.T) {
	now := time.Now()
	st := reconciler.Status{Workloads: []reconciler.WorkloadStatus{}, Pools: []reconciler.PoolStatus{
		{Name: "workers", Min: 1, Max: 3, Nodes: []string{"workers-a", "workers-b"}, Joining: []string{"workers-c"}, Wanted: 1, Last: "asked for 1 machines (replicas fit nowhere): 2 → 3"},
		{Name: "gpu", Max: 2, Nodes: []string{}, Failures: 2, RetryAt: now.Add(time.Minute), Last: "the provisioner did not make 1 machines (quota): asking again after 1m0s"},
	}, PoolUnserved: []string{"1 replica of huge: NodePool workers: a new machine would not fit it"}}
	var b bytes.Buffer
	printStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{"NODE POOL  NODES  MIN  MAX  JOINING    DRAINING  DELETING  WANTED  LAST DECISION",
		"workers    2      1    3    workers-c  -         -         1       asked for 1 machines",
		"gpu        0      0    2    -", "(2 failures; next try in 1m0s)",
		"No node pool can take 1 replica of huge: NodePool workers: a new machine would not fit it"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing from:\n%s", want, out)
		}
	}
}
