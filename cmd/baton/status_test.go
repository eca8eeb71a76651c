package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
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
		{"/tmp/b", "tls://127.0.0.1:14222", "export BATON_CREDS=/tmp/b/admin.creds BATON_NATS=tls://127.0.0.1:14222\n"},
	} {
		cmd := &cobra.Command{}
		var b bytes.Buffer
		cmd.SetOut(&b)
		printWelcome(cmd, serverOptions{dataDir: tc.dataDir, repo: "/r"}, tc.url, true)
		got := b.String()
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
