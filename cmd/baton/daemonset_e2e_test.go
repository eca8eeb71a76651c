package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
)

func daemonSet(message string) map[string]string {
	return map[string]string{"agent.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
        - name: agent
          image: %s
          args: ["-message", %q, "-listen", ":0"]
`, testImage, message)}
}

// TestDaemonSet: a DaemonSet on real agents has one replica on every node,
// one on a node that joins, none more when a node is lost; a drain leaves
// it (as kubectl drain --ignore-daemonsets); a new template reaches every
// node.
func TestDaemonSet(t *testing.T) {
	c := newCluster(t, 3*time.Second)
	c.startAgent("n1")
	c.startAgent("n2")
	c.waitReady(t, 2)
	c.commit("daemons", daemonSet("v1"))
	testenv.WaitFor(t, 60*time.Second, "one replica on each node", func() (bool, string) {
		return c.running("n1", "") == 1 && c.running("n2", "") == 1, ""
	})
	if _, err := nodeagent.Import(c.ctx, c.cli, c.namespace("n3"), testenv.HelloArchive(t)); err != nil {
		t.Fatal(err)
	}
	c.startAgent("n3")
	testenv.WaitFor(t, 60*time.Second, "one on the node that joined", func() (bool, string) { return c.running("n3", "") == 1, "" })

	out, err := c.baton("node", "drain", "n1", "--timeout", "30s")
	if err != nil || !strings.Contains(out, "node n1 drained (1 replica(s) of DaemonSets stay") {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	if c.running("n1", "") != 1 {
		t.Fatal("the drain took the DaemonSet's replica away")
	}
	if out, err := c.baton("node", "uncordon", "n1"); err != nil {
		t.Fatalf("uncordon: %v\n%s", err, out)
	}

	// n3 lost: its replica is not made again elsewhere.
	c.stopAgent("n3")
	testenv.WaitFor(t, 30*time.Second, "a count of 2 once n3 is lost", func() (bool, string) {
		for _, w := range c.status().Workloads {
			if w.Name == "agent" {
				return w.Desired == 2, fmt.Sprint(w.Desired)
			}
		}
		return false, "no agent workload"
	})
	c.waitPasses(t, 3)
	if c.running("n1", "") != 1 || c.running("n2", "") != 1 {
		t.Fatalf("after n3 was lost: n1 %d, n2 %d", c.running("n1", ""), c.running("n2", ""))
	}

	// A new template, node by node.
	st, err := desired.Load(map[string][]byte{"agent.yaml": []byte(daemonSet("v2")["agent.yaml"])})
	if err != nil {
		t.Fatal(err)
	}
	files, hash := daemonSet("v2"), st.Workloads[0].Hash
	c.commit("v2", files)
	testenv.WaitFor(t, 60*time.Second, "v2 on both nodes, nothing else", func() (bool, string) {
		return c.running("n1", hash) == 1 && c.running("n2", hash) == 1 && c.running("n1", "") == 1 && c.running("n2", "") == 1, ""
	})
}
