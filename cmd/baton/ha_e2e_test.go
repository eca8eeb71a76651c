package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
)

// leader asks the cluster who leads, tolerating the moments without one.
func (c *cluster) leader() string {
	nc := c.connect("status")
	defer nc.Close()
	st, err := fetchStatus(c.ctx, nc)
	if err != nil {
		return ""
	}
	return st.Leader
}

// TestLeaderFailover: two servers; the leader is killed in the middle of a
// rollout and the standby finishes it; a later takeover moves and restarts
// nothing.
func TestLeaderFailover(t *testing.T) {
	c := newCluster(t, 8*time.Second)
	testenv.WaitFor(t, 10*time.Second, "s1 leads", func() (bool, string) {
		l := c.leader()
		return l == "s1", "leader " + l
	})
	c.startServer("s2")
	c.startAgent("n1")

	v1 := deployment(3, "v1")
	hash1 := hashOf(t, v1)
	c.commit("hello: 3 replicas", v1)
	c.converged(t, 3, hash1, "n1")
	if l := c.leader(); l != "s1" {
		t.Fatalf("leader %q, want s1 (the standby must not take over)", l)
	}

	// A rollout begins; the leader dies in its middle.
	v2 := deployment(3, "v2")
	hash2 := hashOf(t, v2)
	c.commit("hello: v2", v2)
	testenv.WaitFor(t, 20*time.Second, "rollout begun", func() (bool, string) {
		for _, tk := range c.tasks("n1") {
			if tk.hash == hash2 {
				return true, ""
			}
		}
		return false, "no new pod yet"
	})
	killed := time.Now()
	c.killServer("s1")
	t.Logf("leader killed with %d old and %d new pods running", c.running("n1", hash1), c.running("n1", hash2))
	testenv.WaitFor(t, 30*time.Second, "s2 leads", func() (bool, string) {
		l := c.leader()
		return l == "s2", "leader " + l
	})
	takeover := time.Since(killed)
	if takeover > 4*time.Second {
		t.Errorf("takeover took %s with the default lease TTL %s", takeover, DefaultLeaseTTL)
	}
	c.converged(t, 3, hash2, "n1")
	t.Logf("standby led %s after the leader was killed (lease TTL %s); rollout finished %s after", takeover.Round(10*time.Millisecond), DefaultLeaseTTL, time.Since(killed).Round(10*time.Millisecond))

	// Another takeover, with nothing to do: no replica moves or restarts.
	before := c.tasks("n1")
	c.startServer("s1")
	time.Sleep(500 * time.Millisecond) // s1 is standing by
	c.killServer("s2")
	testenv.WaitFor(t, 30*time.Second, "s1 leads again", func() (bool, string) {
		l := c.leader()
		return l == "s1", "leader " + l
	})
	c.waitPasses(t, 3) // give the new leader passes to (not) act
	c.converged(t, 3, hash2, "n1")
	after := c.tasks("n1")
	key := func(ts []task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, fmt.Sprintf("%s/%d", t.replica, t.pid))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(key(before), key(after)) {
		t.Fatalf("takeover changed the pods: before %v, after %v", key(before), key(after))
	}

	// The decisions of every leader are kept, across takeovers.
	out, err := c.baton("events", "--tail", "0")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[s1 term ", "[s2 term ", "start hello/"} {
		if !strings.Contains(out, want) {
			t.Fatalf("baton events lacks %q:\n%s", want, out)
		}
	}
	// The status of the new leader shows them too, not only its own.
	if ev := strings.Join(c.status().Events, "\n"); !strings.Contains(ev, "[s2 term ") {
		t.Fatalf("the status of s1 lacks s2's events:\n%s", ev)
	}
}
