package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestPin: baton pin applies an earlier revision from the server's cache
// and holds it while new commits land; baton unpin follows the branch again.
func TestPin(t *testing.T) {
	c := newCluster(t, 8*time.Second)
	c.startAgent("n1")
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := rootCmd()
		cmd.SetOut(&out)
		cmd.SetArgs(append(args, "--nats", c.ns.ClientURL()))
		if err := cmd.ExecuteContext(c.ctx); err != nil {
			t.Fatalf("baton %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	v1, v2, v3 := deployment(2, "v1"), deployment(2, "v2"), deployment(2, "v3")
	rev1 := c.commit("v1", v1)
	c.converged(t, 2, hashOf(t, v1), "n1")
	c.commit("v2", v2)
	c.converged(t, 2, hashOf(t, v2), "n1")

	run("pin", rev1[:10], "--reason", "incident 42")
	c.converged(t, 2, hashOf(t, v1), "n1")
	if st := c.status(); st.Pin == nil || st.Pin.Revision != rev1 || st.Pin.Reason != "incident 42" {
		t.Fatalf("status pin %+v", st.Pin)
	}
	c.commit("v3", v3)
	time.Sleep(2 * time.Second) // polls every 100 ms: v3 is seen, and not applied
	c.converged(t, 2, hashOf(t, v1), "n1")

	run("unpin")
	c.converged(t, 2, hashOf(t, v3), "n1")
	if st := c.status(); st.Pin != nil {
		t.Fatalf("still pinned: %+v", st.Pin)
	}
}
