package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
)

// These benchmarks run the real path (go-git commit, poll every 100ms,
// reconciler, NATS, agent, containerd) and measure wall time per operation:
//
//	BATON_E2E=1 go test -run '^$' -bench 'CommitToRunning|Heal' -benchtime 5x ./cmd/baton/

func specHash(b testing.TB, files map[string]string) string {
	st, err := desired.Load(map[string][]byte{"hello.yaml": []byte(files["hello.yaml"])})
	if err != nil {
		b.Fatal(err)
	}
	return st.Workloads[0].Hash
}

// BenchmarkCommitToRunning: time from `git commit` of an N-replica Deployment
// (on a node that runs none) to N tasks RUNNING in containerd.
func BenchmarkCommitToRunning(b *testing.B) {
	for _, n := range []int{3, 20} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			c := newCluster(b, 10*time.Second)
			c.startAgent("n1")
			i := 0
			for b.Loop() {
				b.StopTimer()
				i++
				c.commit("scale to zero", deployment(0, "bench"))
				testenv.WaitFor(b, 60*time.Second, "no tasks", func() (bool, string) {
					n := len(c.tasks("n1"))
					return n == 0, fmt.Sprintf("%d tasks", n)
				})
				files := deployment(n, fmt.Sprintf("bench-%d", i))
				hash := specHash(b, files)
				b.StartTimer()
				c.commit("deploy", files)
				testenv.WaitFor(b, 60*time.Second, "all running", func() (bool, string) {
					got := c.running("n1", hash)
					return got == n, fmt.Sprintf("%d running", got)
				})
			}
		})
	}
}

// BenchmarkHeal: time from SIGKILL of a replica's process to the container
// RUNNING again (restarted in place by its agent; the back-off resets after
// each iteration's replica is replaced, so every kill is a first crash).
func BenchmarkHeal(b *testing.B) {
	c := newCluster(b, 10*time.Second)
	c.startAgent("n1")
	files := deployment(8, "heal")
	hash := specHash(b, files)
	c.commit("deploy", files)
	testenv.WaitFor(b, 60*time.Second, "8 running", func() (bool, string) {
		return c.running("n1", hash) == 8 && len(c.tasks("n1")) == 8, ""
	})
	killed := map[string]bool{}
	for b.Loop() {
		var victim task
		for _, t := range c.tasks("n1") {
			if !killed[t.replica] && t.status == client.Running {
				victim = t
				break
			}
		}
		if victim.replica == "" {
			b.Fatal("every replica was killed once: use -benchtime of at most 8x")
		}
		killed[victim.replica] = true
		if err := syscall.Kill(int(victim.pid), syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		testenv.WaitFor(b, 60*time.Second, "restarted", func() (bool, string) {
			for _, t := range c.tasks("n1") {
				if t.replica == victim.replica {
					return t.status == client.Running && t.pid != victim.pid, string(t.status)
				}
			}
			return false, "gone"
		})
	}
}

// BenchmarkRollOutAndRevert: a 3-replica Deployment is rolled to a new
// template (commit → every replica of it running, none of the old), then
// `git revert`ed back the same way; a revert must take no longer than the
// deploy it undoes.
//
//	BATON_E2E=1 go test -run '^$' -bench RollOutAndRevert -benchtime 5x ./cmd/baton/
func BenchmarkRollOutAndRevert(b *testing.B) {
	c := newCluster(b, 10*time.Second)
	c.startAgent("n1")
	base := deployment(3, "base")
	baseHash := specHash(b, base)
	c.commit("base", base)
	only := func(hash string) {
		testenv.WaitFor(b, 60*time.Second, "rolled", func() (bool, string) {
			got, all := c.running("n1", hash), len(c.tasks("n1"))
			return got == 3 && all == 3, fmt.Sprintf("%d of %d running", got, all)
		})
	}
	only(baseHash)
	var deploy, revert time.Duration
	i := 0
	for b.Loop() {
		i++
		next := deployment(3, fmt.Sprintf("next-%d", i))
		start := time.Now()
		c.commit("roll out", next)
		only(specHash(b, next))
		deploy += time.Since(start)
		start = time.Now()
		c.git("revert", "--no-edit", "HEAD")
		only(baseHash)
		revert += time.Since(start)
	}
	b.ReportMetric(float64(deploy.Milliseconds())/float64(b.N), "ms-rollout")
	b.ReportMetric(float64(revert.Milliseconds())/float64(b.N), "ms-revert")
}
