package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
)

// TestDrain: `baton node drain` during a rollout moves every replica off
// the node (replacements first, within maxUnavailable), shows progress and
// ends when the node holds nothing; a cordoned node takes no replica until
// uncordoned; draining the last node that fits leaves the replicas where
// they are, pending, and says why.
func TestDrain(t *testing.T) {
	c := newCluster(t, 10*time.Second)
	c.startAgent("n1")
	c.startAgent("n2")
	c.waitReady(t, 2)
	c.commit("four", deployment(4, "v1"))
	testenv.WaitFor(t, 60*time.Second, "2 replicas on each node", func() (bool, string) {
		return c.running("n1", "") == 2 && c.running("n2", "") == 2, ""
	})

	// A rollout starts, and the drain with it.
	files := deployment(4, "v2")
	hash := specHash(t, files)
	c.commit("v2", files)
	out, err := c.baton("node", "drain", "n1", "--timeout", "90s")
	if err != nil || !strings.Contains(out, "node n1 drained") || !strings.Contains(out, "replicas left") {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 60*time.Second, "4 replicas of v2 on n2, none on n1", func() (bool, string) {
		return c.running("n2", hash) == 4 && len(c.tasks("n1")) == 0, ""
	})
	// The rollout's last old replica on n2 may still be stopping: the
	// leader counts it on n2 until its agent reports it gone.
	testenv.WaitFor(t, 30*time.Second, "the leader to see 4 replicas on n2", func() (bool, string) {
		n, ok := nodeOfStatus(c.status(), "n2")
		return ok && n.Replicas == 4, fmt.Sprintf("%d", n.Replicas)
	})
	st, err := c.baton("status")
	if err != nil || !strings.Contains(st, "draining") {
		t.Fatalf("status does not show the draining node: %v\n%s", err, st)
	}
	if ev, _ := c.baton("events"); !strings.Contains(ev, "node n1 draining") || !strings.Contains(ev, "node n1 draining (") {
		t.Fatalf("events: %s", ev)
	}

	// Cordoned: nothing placed there, and the last node that fits is
	// drained in vain: its replicas stay, the replacements are pending.
	if out, err := c.baton("node", "uncordon", "n1"); err != nil || !strings.Contains(out, "uncordoned") {
		t.Fatalf("uncordon: %v\n%s", err, out)
	}
	if out, err := c.baton("node", "cordon", "n1"); err != nil {
		t.Fatalf("cordon: %v\n%s", err, out)
	}
	out, err = c.baton("node", "drain", "n2", "--timeout", "3s")
	if err == nil || !strings.Contains(err.Error(), "still holds 4 replicas") || !strings.Contains(err.Error(), "node cordoned") {
		t.Fatalf("drain of the last node: %v\n%s", err, out)
	}
	c.waitPasses(t, 3)
	if n := c.running("n2", hash); n != 4 {
		t.Fatalf("draining the last node stopped replicas: %d left", n)
	}
	// Uncordoned: the replacements find a place, and n2 drains.
	if out, err := c.baton("node", "uncordon", "n1"); err != nil {
		t.Fatalf("uncordon: %v\n%s", err, out)
	}
	out, err = c.baton("node", "drain", "n2", "--timeout", "90s")
	if err != nil || !strings.Contains(out, "node n2 drained") {
		t.Fatalf("drain n2: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 60*time.Second, "4 replicas on n1", func() (bool, string) { return c.running("n1", hash) == 4, "" })
	if out, err := c.baton("node", "drain", "n9"); err == nil || !strings.Contains(err.Error(), `no node named "n9"`) {
		t.Fatalf("drain of an unknown node: %v\n%s", err, out)
	}

	// A PodDisruptionBudget that wants more ready pods than there are
	// holds the drain: replacements start on n2, no replica of n1 stops,
	// and status says why. Without it, n1 drains.
	if out, err := c.baton("node", "uncordon", "n2"); err != nil {
		t.Fatalf("uncordon: %v\n%s", err, out)
	}
	files["pdb.yaml"] = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: hello}\nspec: {minAvailable: 6, selector: {}}\n"
	rev := c.commit("a budget", files)
	testenv.WaitFor(t, 30*time.Second, "the budget in force", func() (bool, string) {
		id := c.status().Synced.ID
		return id == rev, id
	})
	out, err = c.baton("node", "drain", "n1", "--timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "still holds 4 replicas") {
		t.Fatalf("drain under a budget: %v\n%s", err, out)
	}
	if n := c.running("n1", hash); n != 4 {
		t.Fatalf("a drain under the budget stopped replicas: %d left on n1", n)
	}
	if st, _ := c.baton("status"); !strings.Contains(st, "drain of node n1 waits: PodDisruptionBudget hello allows no more disruption (6 ready pods wanted)") {
		t.Fatalf("status does not say why the drain waits:\n%s", st)
	}
	c.git("rm", "-q", "pdb.yaml")
	c.git("commit", "-qm", "no budget")
	out, err = c.baton("node", "drain", "n1", "--timeout", "90s")
	if err != nil || !strings.Contains(out, "node n1 drained") {
		t.Fatalf("drain n1 without the budget: %v\n%s", err, out)
	}
}
