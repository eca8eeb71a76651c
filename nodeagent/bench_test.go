package nodeagent_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// Figures for docs/benchmarks.md (real containerd, image present):
//
//	BATON_E2E=1 go test -run '^$' -bench 'PodStart|CtrRun|AgentIdle' -benchtime 10x ./nodeagent

func benchPod(id string, n int) protocol.ReplicaSpec {
	var cs []desired.Container
	for i := range n {
		cs = append(cs, desired.Container{Name: fmt.Sprintf("c%d", i), Image: testenv.HelloImage,
			Args:           []string{"-listen", fmt.Sprintf(":%d", 8080+i)},
			ReadinessProbe: &desired.Probe{TCPSocket: &desired.TCPSocket{Port: fmt.Sprint(8080 + i)}, PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3}})
	}
	return podSpec(id, cs...)
}

// BenchmarkPodStart: Start (the agent's work for a start command) until
// every container is RUNNING, and until the pod is ready.
func BenchmarkPodStart(b *testing.B) {
	for _, c := range []struct {
		n   int
		cni bool
	}{{1, false}, {1, true}, {3, false}, {3, true}} {
		n, network := c.n, "none"
		if c.cni {
			network = "cni"
		}
		b.Run(fmt.Sprintf("containers=%d/network=%s", n, network), func(b *testing.B) {
			var cni *nodeagent.CNI
			var host string
			if c.cni {
				cni, host = testenv.CNI(b)
			}
			rt := newRuntime(b)
			if cni != nil {
				rt.SetNetwork(cni, host)
			}
			defer rt.StopProbes()
			ctx := context.Background()
			var toRunning, toReady time.Duration
			for i := range b.N {
				spec := benchPod(fmt.Sprintf("bench-%d-%d", n, i), n)
				start := time.Now()
				if err := rt.Start(ctx, spec); err != nil {
					b.Fatal(err)
				}
				running := false
				for {
					reps, err := rt.List(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if len(reps) == 1 && reps[0].State == protocol.StateRunning && !running {
						running, toRunning = true, toRunning+time.Since(start)
					}
					if len(reps) == 1 && reps[0].Ready {
						toReady += time.Since(start)
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				b.StopTimer()
				if err := rt.Stop(ctx, spec.ID, time.Second); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(toRunning.Milliseconds())/float64(b.N), "ms-to-running")
			b.ReportMetric(float64(toReady.Milliseconds())/float64(b.N), "ms-to-ready")
		})
	}
}

// BenchmarkCtrRun: `ctr run -d` of the same image, for comparison.
func BenchmarkCtrRun(b *testing.B) {
	rt := newRuntime(b)
	_ = rt
	sock := testenv.ContainerdSocket(b)
	ns := nsOf(rt)
	for i := range b.N {
		id := fmt.Sprintf("ctr-bench-%d", i)
		if out, err := exec.Command("ctr", "-a", sock, "-n", ns, "run", "-d", testenv.HelloImage, id).CombinedOutput(); err != nil {
			b.Fatalf("ctr run: %v: %s", err, out)
		}
		b.StopTimer()
		_ = exec.Command("ctr", "-a", sock, "-n", ns, "task", "kill", "-s", "SIGKILL", id).Run()
		time.Sleep(100 * time.Millisecond)
		_ = exec.Command("ctr", "-a", sock, "-n", ns, "task", "rm", "-f", id).Run()
		_ = exec.Command("ctr", "-a", sock, "-n", ns, "container", "rm", id).Run()
		b.StartTimer()
	}
}

// BenchmarkAgentIdle: the agent's CPU and memory over 20 s with 50 pods
// running and nothing to do (reports, heartbeats, supervision, probes, usage).
func BenchmarkAgentIdle(b *testing.B) {
	rt := newRuntime(b)
	defer rt.StopProbes()
	ctx := context.Background()
	for i := range 50 {
		if err := rt.Start(ctx, benchPod(fmt.Sprintf("idle-%d", i), 1)); err != nil {
			b.Fatal(err)
		}
	}
	nc := testenv.NATS(b)
	a, err := nodeagent.New(nodeagent.Config{Node: "idle", NATS: nc, Runtime: rt})
	if err != nil {
		b.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = a.Run(actx) }()
	time.Sleep(5 * time.Second) // settle: probes ready, first usage samples
	for b.Loop() {
		runtime.GC()
		var before, after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		time.Sleep(20 * time.Second)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(cpu.Milliseconds())/20, "cpu-ms/s")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(after.Maxrss)/1024, "maxrss-MiB")
	}
}

// BenchmarkServiceRules: one node writing the rules of 1,000 Services × 10
// endpoints into nftables (the whole table, one transaction, real nft in a
// network namespace the benchmark makes), the same with ClientIP affinity,
// and then one endpoint changed (only that Service's chain, one
// transaction).
//
//	go test -run '^$' -bench ServiceRules -benchtime 10x ./nodeagent
func BenchmarkServiceRules(b *testing.B) {
	if _, err := exec.LookPath("nft"); err != nil {
		b.Skip("nft not installed")
	}
	rules := make([]protocol.ServiceRule, 1000)
	for i := range rules {
		eps := make([]string, 10)
		for j := range eps {
			eps[j] = fmt.Sprintf("10.77.%d.%d:8080", j+1, i%250+2)
		}
		rules[i] = protocol.ServiceRule{Service: fmt.Sprintf("svc%d", i), IP: fmt.Sprintf("10.78.%d.%d", i/250, i%250+1), Port: 80, Protocol: "TCP", Endpoints: eps}
	}
	ns := testenv.HostNetNS(b)
	ctx := context.Background()
	b.Run("services=1000x10", func(b *testing.B) {
		for range b.N {
			// A new writer knows nothing of the table: it writes it whole
			// (as an agent that just started).
			n := &nodeagent.NFTables{NetNS: ns, PodSubnet: "10.77.1.0/24"}
			if err := n.Apply(ctx, rules); err != nil {
				b.Fatal(err)
			}
		}
	})
	// With ClientIP affinity every endpoint has a chain and a set: 100
	// Services × 10 (nft's time grows faster than the sets: 1,000 × 10
	// take some 17 s).
	sticky := slices.Clone(rules[:100])
	for i := range sticky {
		sticky[i].AffinitySeconds = 10800
	}
	b.Run("services=100x10/affinity", func(b *testing.B) {
		for range b.N {
			n := &nodeagent.NFTables{NetNS: ns, PodSubnet: "10.77.1.0/24"}
			if err := n.Apply(ctx, sticky); err != nil {
				b.Fatal(err)
			}
		}
	})
	n := &nodeagent.NFTables{NetNS: ns, PodSubnet: "10.77.1.0/24"}
	if err := n.Apply(ctx, rules); err != nil {
		b.Fatal(err)
	}
	b.Run("one-endpoint-changed", func(b *testing.B) {
		for i := range b.N {
			// A new slice, as each command decodes: the table's state
			// never shares the caller's.
			rules[0].Endpoints = slices.Clone(rules[0].Endpoints)
			rules[0].Endpoints[0] = fmt.Sprintf("10.77.1.%d:8080", i%200+2)
			if err := n.Apply(ctx, rules); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPodRoutes: a stream from a pod address of one host to one of
// another (hosts played by network namespaces on one switch, real routes)
// straight through the other host's address (host-gw) and through the
// vxlan tunnel, in one run: the tunnel's cost (encapsulation, a smaller
// MTU).
//
//	go test -run '^$' -bench PodRoutes -benchtime 2000x -count 3 ./nodeagent
func BenchmarkPodRoutes(b *testing.B) {
	testenv.RequireCNI(b)
	fl := testenv.NewFleet(b)
	chunk := make([]byte, 64<<10)
	for i, backend := range []string{nodeagent.BackendHostGW, nodeagent.BackendVXLAN} {
		from := newPodHost(b, fl.Host(fmt.Sprintf("a%d", i)), 2*i+1, backend)
		to := newPodHost(b, fl.Host(fmt.Sprintf("b%d", i)), 2*i+2, backend)
		for _, pair := range [][2]*podHost{{from, to}, {to, from}} {
			if err := pair[0].routes.Apply(context.Background(), []protocol.Route{pair[1].route("peer")}); err != nil {
				b.Fatal(err)
			}
		}
		ln, err := to.h.Listen("tcp", net.JoinHostPort(to.pod, "0"))
		if err != nil {
			b.Fatal(err)
		}
		got := make(chan int64, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- -1
				return
			}
			n, _ := io.Copy(io.Discard, c)
			c.Close()
			got <- n
		}()
		c, err := from.h.DialFrom("tcp", from.pod, ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Run("backend="+backend, func(b *testing.B) {
			b.SetBytes(int64(len(chunk)))
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
		c.Close()
		<-got
		ln.Close()
	}
}
