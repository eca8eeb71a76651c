package main

import (
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
)

// TestDeadAgentDetected: an agent whose connection closes (its process
// died) is noticed from the bus's connection events: its replicas run on
// another node within seconds, long before the 10 s node grace.
func TestDeadAgentDetected(t *testing.T) {
	c := newCluster(t, 10*time.Second)
	c.startAgent("n1")
	c.startAgent("n2")
	c.waitReady(t, 2)
	c.commit("two", deployment(2, "detect"))
	testenv.WaitFor(t, 60*time.Second, "one replica on each node", func() (bool, string) {
		return c.running("n1", "") == 1 && c.running("n2", "") == 1, ""
	})
	start := time.Now()
	c.stopAgent("n1") // its connection closes; its container keeps running
	testenv.WaitFor(t, 30*time.Second, "two replicas on n2", func() (bool, string) {
		return c.running("n2", "") == 2, ""
	})
	took := time.Since(start)
	t.Logf("agent gone → its replica running on n2 in %s (node grace 10s)", took.Round(10*time.Millisecond))
	if took > 8*time.Second {
		t.Fatalf("the dead agent was noticed after %s: not from its disconnection", took)
	}
}
