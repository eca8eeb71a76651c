package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
)

// These benchmarks run the real path (go-git commit, poll every 100ms,
// reconciler, NATS, agent, containerd) and measure wall time per operation:
//
//	BATON_E2E=1 go test -run '^$' -bench 'CommitToRunning|Heal' -benchtime 5x ./cmd/baton/

func specHash(b *testing.B, files map[string]string) string {
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
				waitFor(b, 60*time.Second, "no tasks", func() (bool, string) {
					n := len(c.tasks("n1"))
					return n == 0, fmt.Sprintf("%d tasks", n)
				})
				files := deployment(n, fmt.Sprintf("bench-%d", i))
				hash := specHash(b, files)
				b.StartTimer()
				c.commit("deploy", files)
				waitFor(b, 60*time.Second, "all running", func() (bool, string) {
					got := c.running("n1", hash)
					return got == n, fmt.Sprintf("%d running", got)
				})
			}
		})
	}
}

// BenchmarkHeal: time from SIGKILL of a replica's process to a replacement
// RUNNING (3 replicas running again, the killed one gone).
func BenchmarkHeal(b *testing.B) {
	c := newCluster(b, 10*time.Second)
	c.startAgent("n1")
	files := deployment(3, "heal")
	hash := specHash(b, files)
	c.commit("deploy", files)
	waitFor(b, 60*time.Second, "3 running", func() (bool, string) {
		return c.running("n1", hash) == 3 && len(c.tasks("n1")) == 3, ""
	})
	for b.Loop() {
		victim := c.tasks("n1")[0]
		if err := syscall.Kill(int(victim.pid), syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 60*time.Second, "replacement running", func() (bool, string) {
			ts := c.tasks("n1")
			for _, t := range ts {
				if t.replica == victim.replica {
					return false, "victim still there"
				}
			}
			return c.running("n1", hash) == 3, fmt.Sprintf("%d running", c.running("n1", hash))
		})
	}
}
