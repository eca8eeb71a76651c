package main

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
)

// hashOf is the pod spec hash the loader gives a deployment.
func hashOf(t *testing.T, files map[string]string) string {
	t.Helper()
	bs := map[string][]byte{}
	for k, v := range files {
		bs[k] = []byte(v)
	}
	st, err := desired.Load(bs)
	if err != nil {
		t.Fatal(err)
	}
	return st.Workloads[0].Hash
}

// converged waits until the nodes run exactly want replicas of hash in all,
// nothing else, and the reconciler's status agrees.
func (c *cluster) converged(t *testing.T, want int, hash string, nodes ...string) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, fmt.Sprintf("%d replicas of %s", want, hash), func() (bool, string) {
		total, all := 0, 0
		var state []string
		for _, n := range nodes {
			total += c.running(n, hash)
			all += len(c.tasks(n))
			state = append(state, fmt.Sprintf("%s: %d running of %s, %d tasks", n, c.running(n, hash), hash, len(c.tasks(n))))
		}
		if total != want || all != want {
			return false, strings.Join(state, "; ")
		}
		st := c.status()
		for _, w := range st.Workloads {
			if w.Name == "hello" && w.Current == want && w.Running == want && len(w.Replicas) == want {
				return true, ""
			}
		}
		return false, fmt.Sprintf("status: %+v", st.Workloads)
	})
}

func TestEndToEnd(t *testing.T) {
	// The grace period is long enough that an agent restart under a loaded CI
	// machine (race detector, packages in parallel) does not count as a loss.
	c := newCluster(t, 8*time.Second)
	c.startAgent("n1")

	// 1. A 3-replica Deployment becomes 3 running tasks.
	v1 := deployment(3, "v1")
	hash1 := hashOf(t, v1)
	c.commit("hello: 3 replicas", v1)
	c.converged(t, 3, hash1, "n1")
	// Each pod has its own address on n1's pod bridge, and answers there.
	ips := map[string]bool{}
	for _, r := range c.status().Workloads[0].Replicas {
		if ips[r.PodIP] || !strings.HasPrefix(r.PodIP, strings.TrimSuffix(testenv.TestSubnet, "0/24")) {
			t.Fatalf("replica %s: pod IP %q (seen: %v)", r.ID, r.PodIP, ips)
		}
		ips[r.PodIP] = true
		if body := testenv.GetIn(t, c.hostNS["n1"], r.PodIP+":8080"); !strings.Contains(body, "v1 (pod "+r.ID) {
			t.Fatalf("pod %s at %s answered %q", r.ID, r.PodIP, body)
		}
	}

	// 2. Scale to 5, then change args: every replica is replaced.
	c.commit("hello: 5 replicas", deployment(5, "v1"))
	c.converged(t, 5, hash1, "n1")
	v2 := deployment(5, "v2")
	hash2 := hashOf(t, v2)
	if hash2 == hash1 {
		t.Fatal("changed args must change the hash")
	}
	c.commit("hello: message v2", v2)
	c.converged(t, 5, hash2, "n1")

	// 3. Reverting the last two commits brings back the first revision's spec.
	c.git("revert", "--no-edit", "HEAD~2..HEAD")
	c.converged(t, 3, hash1, "n1")

	// 4. A second node joins; new replicas spread over both.
	c.startAgent("n2")
	testenv.WaitFor(t, 10*time.Second, "n2 ready", func() (bool, string) {
		for _, n := range c.status().Nodes {
			if n.Name == "n2" && n.Ready {
				return true, ""
			}
		}
		return false, "n2 not ready"
	})
	c.commit("hello: 6 replicas", deployment(6, "v1"))
	c.converged(t, 6, hash1, "n1", "n2")
	if n1, n2 := c.running("n1", hash1), c.running("n2", hash1); n1 != 3 || n2 != 3 {
		t.Fatalf("spread: n1 runs %d, n2 runs %d; want 3 and 3", n1, n2)
	}

	// A restarted agent re-adopts its containers: nothing is started or stopped.
	before := replicaIDs(c.tasks("n2"))
	c.stopAgent("n2")
	c.startAgent("n2")
	c.waitPasses(t, 3) // no change may happen: give the reconciler passes to (not) act
	c.converged(t, 6, hash1, "n1", "n2")
	if after := replicaIDs(c.tasks("n2")); !slices.Equal(before, after) {
		t.Fatalf("restarted agent: replicas %v, want %v", after, before)
	}

	// Stop n1's agent: its connection closes, and its replicas run on n2
	// DisconnectGrace later (not after the node grace).
	lostAt := time.Now()
	c.stopAgent("n1")
	testenv.WaitFor(t, 30*time.Second, "6 replicas on n2", func() (bool, string) {
		n := c.running("n2", hash1)
		return n == 6, fmt.Sprintf("n2 runs %d", n)
	})
	t.Logf("node n1 lost: its replicas ran on n2 %s later (node grace 8s, disconnect grace 2s)", time.Since(lostAt).Round(10*time.Millisecond))
	// n1 comes back: its superseded replicas are stopped, 6 in all remain.
	c.startAgent("n1")
	c.converged(t, 6, hash1, "n1", "n2")
	if n := c.running("n2", hash1); n != 6 {
		t.Fatalf("after n1 returned, n2 runs %d, want the 6 placed there", n)
	}

	// 5. Kill a container's process: its agent restarts it in place
	// (restartPolicy Always), and the status counts the restart.
	victim := c.tasks("n2")[0]
	if err := syscall.Kill(int(victim.pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "killed container restarted", func() (bool, string) {
		for _, tk := range c.tasks("n2") {
			if tk.replica == victim.replica {
				return tk.status == client.Running && tk.pid != victim.pid, fmt.Sprintf("%s pid %d", tk.status, tk.pid)
			}
		}
		return false, "victim gone"
	})
	testenv.WaitFor(t, 10*time.Second, "restart in status", func() (bool, string) {
		for _, w := range c.status().Workloads {
			for _, r := range w.Replicas {
				if r.ID == victim.replica {
					return r.Restarts == 1 && r.LastExit == "137 Error", fmt.Sprintf("%+v", r)
				}
			}
		}
		return false, "no replica"
	})
	c.converged(t, 6, hash1, "n1", "n2")

	// 6. Invalid YAML: the previous revision keeps running; status names file and line.
	good := c.status().Synced.ID
	bad := c.commit("hello: typo", map[string]string{"hello.yaml": strings.Replace(deployment(2, "v1")["hello.yaml"], "replicas:", "replicaz:", 1)})
	testenv.WaitFor(t, 10*time.Second, "status shows the bad revision", func() (bool, string) {
		st := c.status()
		return st.Error != nil && st.Error.Revision == bad, fmt.Sprintf("%+v", st.Error)
	})
	st := c.status()
	if st.Synced.ID != good {
		t.Fatalf("synced revision moved to %s, want %s", st.Synced.ID, good)
	}
	if want := "hello.yaml:6:3: spec.replicaz: field not allowed"; !strings.Contains(strings.Join(st.Error.Errors, "\n"), want) {
		t.Fatalf("errors %q do not contain %q", st.Error.Errors, want)
	}
	out, err := c.baton("status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "hello.yaml:6:3") || !strings.Contains(out, "does not load") {
		t.Fatalf("baton status does not show the error:\n%s", out)
	}
	c.waitPasses(t, 3) // the bad revision changes nothing
	c.converged(t, 6, hash1, "n1", "n2")

	// baton logs: the output of every replica, from its node.
	if out, err = c.baton("logs", "hello", "--tail", "1"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, `hello: "v1" listening on :8080`); n != 6 {
		t.Fatalf("baton logs printed %d start lines, want 6:\n%s", n, out)
	}

	// baton events: the decisions, with their reasons.
	if out, err = c.baton("events"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"start hello/hello-", "replicas of template", "stop hello/hello-", "forget hello/hello-", "node lost"} {
		if !strings.Contains(out, want) {
			t.Fatalf("baton events does not show %q:\n%s", want, out)
		}
	}
}

func replicaIDs(ts []task) []string {
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.replica)
	}
	slices.Sort(ids)
	return ids
}
