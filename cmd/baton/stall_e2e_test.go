package main

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/reconciler"
)

// TestAgentStallAndDeath, with the default node grace (10 s) and agents as
// separate processes on their own hosts: an agent stopped for 2 s
// (SIGSTOP, SIGCONT) loses nothing; a host cut off is found silent by the
// bus's pings and its replica runs elsewhere before the node grace (and is
// stopped when the host returns); an agent killed (SIGKILL) is noticed from
// its connection closing, and its replicas run on the other node within
// seconds.
func TestAgentStallAndDeath(t *testing.T) {
	f := newFleetCluster(t)
	n2 := f.fleet.Host("n2")
	a1 := f.startAgent(f.node, "n1", &lockedBuffer{})
	a2 := f.startAgent(n2, "n2", &lockedBuffer{})
	admin := f.as(f.ops, f.adminCreds)
	testenv.WaitFor(t, 30*time.Second, "two nodes ready", func() (bool, string) {
		st := f.status(admin)
		return readyNodes(st) == 2, fmt.Sprint(st.Nodes)
	})
	files := deployment(2, "stall")
	hash := specHash(t, files)
	f.commit("two", files)
	ids := func() []string {
		var out []string
		for _, r := range f.status(admin).Workloads[0].Replicas {
			out = append(out, r.ID+"@"+r.Node)
		}
		slices.Sort(out)
		return out
	}
	var before []string
	testenv.WaitFor(t, 60*time.Second, "a replica of the template on each node, and nothing else", func() (bool, string) {
		before = ids()
		return len(before) == 2 && strings.Contains(before[0], hash[:8]) && strings.Contains(before[1], hash[:8]) &&
			f.runningOn("n1") == 1 && f.runningOn("n2") == 1, fmt.Sprint(before)
	})

	// Stalled for 2 s: nothing moves.
	if err := a1.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := a1.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "n1 heard from after the stall", func() (bool, string) {
		n, ok := nodeOfStatus(f.status(admin), "n1")
		return ok && time.Since(n.LastHeartbeat) < time.Second, fmt.Sprint(n)
	})
	time.Sleep(reconciler.DisconnectGrace + time.Second) // a disconnection would have been acted on by now
	if after := ids(); !slices.Equal(before, after) || f.runningOn("n2") != 1 {
		t.Fatalf("a 2 s stall moved replicas: %v → %v", before, after)
	}
	if l := f.serverLog.String(); strings.Contains(l, "agent disconnected") {
		t.Fatal("a 2 s stall closed the agent's connection")
	}

	// n1's host cut off: the bus finds it silent (pings), its replica runs
	// on n2 before the node grace; plugged back in, n1's superseded replica
	// is stopped.
	start := time.Now()
	f.fleet.Cut(f.node)
	testenv.WaitFor(t, 30*time.Second, "two replicas on n2", func() (bool, string) { return f.runningOn("n2") == 2, "" })
	t.Logf("n1's host cut off → its replica running on n2 in %s (node grace 10s)", time.Since(start).Round(10*time.Millisecond))
	f.fleet.Plug(f.node)
	testenv.WaitFor(t, 60*time.Second, "n1 back, its superseded replica stopped", func() (bool, string) {
		n, ok := nodeOfStatus(f.status(admin), "n1")
		return ok && n.Ready && f.runningOn("n1") == 0 && f.runningOn("n2") == 2, fmt.Sprint(n)
	})

	// n2's agent killed: its replicas run on n1 within seconds.
	start = time.Now()
	if err := a2.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "two replicas on n1", func() (bool, string) { return f.runningOn("n1") == 2, "" })
	took := time.Since(start)
	t.Logf("agent process killed → its replicas running on n1 in %s (node grace 10s)", took.Round(10*time.Millisecond))
	if took > 8*time.Second {
		t.Fatalf("the killed agent was noticed after %s", took)
	}
}
