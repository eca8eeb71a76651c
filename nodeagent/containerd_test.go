package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// nsOf is the containerd namespace of a runtime made by newRuntime.
func nsOf(rt *nodeagent.Containerd) string { return rt.Namespace() }

// newRuntime returns a Containerd runtime in a fresh namespace holding the hello image.
func newRuntime(t testing.TB) *nodeagent.Containerd {
	sock := testenv.ContainerdSocket(t)
	archive := testenv.HelloArchive(t)
	ctx := context.Background()
	cli, err := nodeagent.DialContainerd(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("baton-test-rt-%d", rand.Uint32()%1_000_000)
	if _, err := nodeagent.Import(ctx, cli, ns, archive); err != nil {
		t.Fatal(err)
	}
	rt, err := nodeagent.NewContainerd(cli, ns, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		reps, _ := rt.List(ctx)
		for _, r := range reps {
			_ = rt.Stop(ctx, r.ID, time.Second)
		}
		if err := testenv.RemoveContainerdNamespace(ctx, cli, ns); err != nil { // with the hello image, and any the test added
			t.Errorf("cleanup: %v", err)
		}
		cli.Close()
	})
	return rt
}

func podSpec(id string, containers ...desired.Container) protocol.ReplicaSpec {
	return protocol.ReplicaSpec{ID: id, Workload: "hello", SpecHash: "0123456789abcdef", Pod: desired.PodSpec{Containers: containers}}
}

func waitState(t *testing.T, rt *nodeagent.Containerd, id string, want protocol.ReplicaState) protocol.Replica {
	t.Helper()
	var found protocol.Replica
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("replica %s %s", id, want), func() (bool, string) {
		reps, err := rt.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reps {
			if r.ID == id && r.State == want {
				found = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", reps)
	})
	return found
}

// getInPod makes an HTTP request to 127.0.0.1:port inside the pod's network namespace.
func getInPod(t *testing.T, nsPath string, port int) string {
	t.Helper()
	return getIn(t, nsPath, fmt.Sprintf("127.0.0.1:%d", port))
}

// getIn makes an HTTP request to addr from inside the network namespace nsPath.
func getIn(t *testing.T, nsPath, addr string) string {
	t.Helper()
	return testenv.GetIn(t, nsPath, addr)
}

func netnsOf(t *testing.T, pid int) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestContainerdPod(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	spec := podSpec("hello-pod-1",
		desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-listen", ":8080", "-message", "from a"},
			Env: []desired.EnvVar{{Name: "GREETING", Value: "salut"}}},
		desired.Container{Name: "b", Image: testenv.HelloImage, Command: []string{"/hello", "-listen", ":8081"}, Args: []string{"-message", "from b"}})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := waitState(t, rt, spec.ID, protocol.StateRunning)
	if r.Workload != "hello" || r.SpecHash != spec.SpecHash || r.StartedAt.IsZero() {
		t.Fatalf("replica %+v", r)
	}
	pids, nsPath := rt.Debug(ctx, spec.ID)
	if len(pids) != 2 {
		t.Fatalf("pids %v", pids)
	}
	// Both containers share one network namespace, not the host's.
	if a, b := netnsOf(t, pids["a"]), netnsOf(t, pids["b"]); a != b || a == netnsOf(t, os.Getpid()) {
		t.Fatalf("network namespaces a=%s b=%s host=%s", a, b, netnsOf(t, os.Getpid()))
	}
	// Both serve on the pod's loopback; args, command, env and hostname are applied.
	if got := getInPod(t, nsPath, 8080); !strings.Contains(got, `from a (pod hello-pod-1, GREETING="salut")`) {
		t.Fatalf("container a answered %q", got)
	}
	if got := getInPod(t, nsPath, 8081); !strings.Contains(got, "from b (pod hello-pod-1") {
		t.Fatalf("container b answered %q", got)
	}
	// Start is idempotent: the same processes keep running.
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if again, _ := rt.Debug(ctx, spec.ID); again["a"] != pids["a"] || again["b"] != pids["b"] {
		t.Fatalf("second start replaced processes: %v -> %v", pids, again)
	}
	// A killed process shows with its code, waiting for its restart
	// (restartPolicy Always; restarts happen in Supervise, tested below).
	if err := syscall.Kill(pids["b"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r = waitState(t, rt, spec.ID, protocol.StateWaiting)
	if r.ExitCode != 137 || r.Reason != "Error" || !strings.Contains(r.Message, "container b") {
		t.Fatalf("after kill: %+v", r)
	}
	// Stop removes containers and the network namespace; a second stop is a no-op.
	if err := rt.Stop(ctx, spec.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if reps, _ := rt.List(ctx); len(reps) != 0 {
		t.Fatalf("after stop: %+v", reps)
	}
	if _, err := os.Stat(nsPath); !os.IsNotExist(err) {
		t.Fatalf("network namespace %s left behind: %v", nsPath, err)
	}
	if err := rt.Stop(ctx, spec.ID, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestContainerdMissingImage(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	spec := podSpec("hello-pod-2",
		desired.Container{Name: "a", Image: testenv.HelloImage},
		desired.Container{Name: "b", Image: "127.0.0.1:1/absent:v0"})
	err := rt.Start(ctx, spec)
	if !errors.Is(err, nodeagent.ErrImageNotFound) || !strings.Contains(err.Error(), "127.0.0.1:1/absent:v0") {
		t.Fatalf("err = %v", err)
	}
	// (Pulling from 127.0.0.1:1 is refused at once: no traffic leaves the machine.)
	// Nothing half-made is left: container a was removed again, and the
	// pod's network namespace too.
	if reps, _ := rt.List(ctx); len(reps) != 0 {
		t.Fatalf("left behind: %+v", reps)
	}
	if left, _ := filepath.Glob(filepath.Join(rt.DataDir(), "netns", "*")); len(left) != 0 {
		t.Fatalf("network namespaces left behind: %v", left)
	}
	// The same when the first container's image is the missing one.
	err = rt.Start(ctx, podSpec("hello-pod-3", desired.Container{Name: "a", Image: "127.0.0.1:1/absent:v0"}))
	if !errors.Is(err, nodeagent.ErrImageNotFound) {
		t.Fatalf("err = %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(rt.DataDir(), "netns", "*")); len(left) != 0 {
		t.Fatalf("network namespaces left behind: %v", left)
	}
}

func cgroupFile(t *testing.T, rt *nodeagent.Containerd, id, container, file string) string {
	t.Helper()
	spec, err := rt.OCISpec(context.Background(), id, container)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		filepath.Join("/sys/fs/cgroup/memory", spec.Linux.CgroupsPath, file),
		filepath.Join("/sys/fs/cgroup/cpu", spec.Linux.CgroupsPath, file),
		filepath.Join("/sys/fs/cgroup/pids", spec.Linux.CgroupsPath, file),
		filepath.Join("/sys/fs/cgroup", spec.Linux.CgroupsPath, file),
	} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no cgroup file %s for %s", file, spec.Linux.CgroupsPath)
	return ""
}

func TestContainerdResourcesAndSecurity(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	res := desired.Resources{
		Requests: desired.Amount{CPUMilli: 250, MemoryBytes: 32 << 20},
		Limits:   desired.Amount{CPUMilli: 500, MemoryBytes: 64 << 20},
	}
	spec := podSpec("hello-res-1", desired.Container{Name: "a", Image: testenv.HelloImage, Resources: res})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	// The kernel enforces what the spec says.
	if got := cgroupFile(t, rt, spec.ID, "a", "memory.limit_in_bytes"); got != fmt.Sprint(64<<20) {
		t.Errorf("memory limit %s", got)
	}
	if got := cgroupFile(t, rt, spec.ID, "a", "cpu.cfs_quota_us"); got != "50000" {
		t.Errorf("cpu quota %s", got)
	}
	if got := cgroupFile(t, rt, spec.ID, "a", "cpu.shares"); got != "256" {
		t.Errorf("cpu shares %s", got)
	}
	if got := cgroupFile(t, rt, spec.ID, "a", "pids.max"); got != fmt.Sprint(nodeagent.DefaultPidsLimit) {
		t.Errorf("pids limit %s", got)
	}
	oci, _ := rt.OCISpec(ctx, spec.ID, "a")
	if !oci.Process.NoNewPrivileges || oci.Linux.Seccomp == nil || len(oci.Linux.MaskedPaths) == 0 {
		t.Errorf("secure defaults missing: nnp=%v seccomp=%v masked=%d", oci.Process.NoNewPrivileges, oci.Linux.Seccomp != nil, len(oci.Linux.MaskedPaths))
	}
	for _, c := range oci.Process.Capabilities.Bounding {
		if c == "CAP_SYS_ADMIN" || c == "CAP_NET_ADMIN" {
			t.Errorf("capability %s granted", c)
		}
	}
}

func TestContainerdOOMKilled(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	res := desired.Resources{Limits: desired.Amount{MemoryBytes: 32 << 20}}
	spec := podSpec("hello-oom-1", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-alloc-mb", "128"}, Resources: res})
	spec.Pod.RestartPolicy = "Never"
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := waitState(t, rt, spec.ID, protocol.StateExited)
	if r.Reason != "OOMKilled" || r.ExitCode != 137 || !strings.Contains(r.Message, "OOMKilled") {
		t.Fatalf("replica over its memory limit: %+v", r)
	}
	// Within its limit, the same program runs.
	ok := podSpec("hello-oom-2", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-alloc-mb", "8"}, Resources: desired.Resources{Limits: desired.Amount{MemoryBytes: 64 << 20}}})
	if err := rt.Start(ctx, ok); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, ok.ID, protocol.StateRunning)
}

// supervised polls Supervise and List until the replica matches ok.
func supervised(t *testing.T, rt *nodeagent.Containerd, id string, ok func(protocol.Replica) bool) protocol.Replica {
	t.Helper()
	var last protocol.Replica
	testenv.WaitFor(t, 20*time.Second, "replica "+id+" to match", func() (bool, string) {
		if _, _, err := rt.Supervise(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
		reps, err := rt.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reps {
			if r.ID == id {
				last = r
				return ok(r), fmt.Sprintf("%+v", r)
			}
		}
		return false, "not listed"
	})
	return last
}

func TestContainerdRestartPolicies(t *testing.T) {
	rt := newRuntime(t)
	rt.SetBackoff(nodeagent.Backoff{Base: 1500 * time.Millisecond, Max: 5 * time.Second, ResetAfter: time.Hour})
	ctx := context.Background()

	// Always: a killed process is restarted in place at once, then with back-off.
	spec := podSpec("hello-restart-1", desired.Container{Name: "a", Image: testenv.HelloImage})
	spec.Pod.RestartPolicy = "Always"
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	pids, _ := rt.Debug(ctx, spec.ID)
	if err := syscall.Kill(pids["a"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := supervised(t, rt, spec.ID, func(r protocol.Replica) bool { return r.State == protocol.StateRunning && r.Restarts == 1 })
	if r.LastExit != "137 Error" {
		t.Fatalf("last exit %q", r.LastExit)
	}
	again, _ := rt.Debug(ctx, spec.ID)
	if again["a"] == pids["a"] || again["a"] == 0 {
		t.Fatalf("not restarted: pid %d -> %d", pids["a"], again["a"])
	}
	_ = syscall.Kill(again["a"], syscall.SIGKILL)
	supervised(t, rt, spec.ID, func(r protocol.Replica) bool { return r.State == protocol.StateWaiting })
	supervised(t, rt, spec.ID, func(r protocol.Replica) bool { return r.State == protocol.StateRunning && r.Restarts == 2 })

	// OnFailure: a clean exit stays exited, Completed.
	done := podSpec("hello-restart-2", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-h"}})
	done.Pod.RestartPolicy = "OnFailure"
	if err := rt.Start(ctx, done); err != nil {
		t.Fatal(err)
	}
	r = supervised(t, rt, done.ID, func(r protocol.Replica) bool { return r.State == protocol.StateExited })
	if r.Reason != "Completed" || r.ExitCode != 0 || r.Restarts != 0 {
		t.Fatalf("completed: %+v", r)
	}
	// Never: a failure stays exited, Error.
	fail := podSpec("hello-restart-3", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-listen", "bad"}})
	fail.Pod.RestartPolicy = "Never"
	if err := rt.Start(ctx, fail); err != nil {
		t.Fatal(err)
	}
	r = supervised(t, rt, fail.ID, func(r protocol.Replica) bool { return r.State == protocol.StateExited })
	if r.Reason != "Error" || r.ExitCode != 1 {
		t.Fatalf("failed: %+v", r)
	}
}

func TestContainerdHostNetwork(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // find a free loopback port
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	spec := podSpec("hello-hostnet-1", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-listen", addr, "-message", "on the host"}})
	spec.Pod.HostNetwork = true
	// Refused at the default level (baseline), run at privileged.
	if err := rt.Start(ctx, spec); !errors.Is(err, nodeagent.ErrPodSecurity) || !strings.Contains(err.Error(), "hostNetwork") {
		t.Fatalf("a hostNetwork pod at baseline: %v", err)
	}
	if has, _ := rt.Has(ctx, spec.ID); has {
		t.Fatal("a refused pod left something behind")
	}
	rt.SetPodSecurity(desired.PodSecurityPrivileged)
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	pids, nsPath := rt.Debug(ctx, spec.ID)
	if nsPath != "" || netnsOf(t, pids["a"]) != netnsOf(t, os.Getpid()) {
		t.Fatalf("not in the host's network namespace: %q", nsPath)
	}
	var body string
	testenv.WaitFor(t, 10*time.Second, "the host port to answer", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return true, ""
	})
	if !strings.Contains(body, "on the host") {
		t.Fatalf("host answered %q", body)
	}
}

func TestContainerdUsage(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	// One busy core under a 300m limit, holding 48 MiB.
	spec := podSpec("hello-usage-1", desired.Container{Name: "a", Image: testenv.HelloImage,
		Args:      []string{"-burn", "-alloc-mb", "48"},
		Resources: desired.Resources{Limits: desired.Amount{CPUMilli: 300, MemoryBytes: 256 << 20}}})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	var u *protocol.Usage
	testenv.WaitFor(t, 20*time.Second, "usage", func() (bool, string) {
		reps, err := rt.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reps {
			if r.ID == spec.ID && r.Usage != nil {
				u = r.Usage
			}
		}
		return u != nil, ""
	})
	if u == nil {
		t.Fatal("no usage reported")
	}
	// The CFS quota holds the busy loop near 300m.
	if u.CPUMilli < 150 || u.CPUMilli > 400 {
		t.Errorf("cpu %dm, want about 300m", u.CPUMilli)
	}
	if u.MemoryBytes < 48<<20 || u.MemoryBytes > 128<<20 {
		t.Errorf("memory %d bytes, want about 48 MiB", u.MemoryBytes)
	}
}

func TestContainerdGracePeriod(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	spec := podSpec("hello-grace-1", desired.Container{Name: "a", Image: testenv.HelloImage, Args: []string{"-ignore-term"}})
	spec.Pod.TerminationGracePeriodSeconds = 1
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	// The process ignores SIGTERM once it says so (not as soon as it runs).
	waitLog(t, rt, spec.ID, "a", "ignoring SIGTERM")
	start := time.Now()
	if err := rt.Stop(ctx, spec.ID, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// SIGTERM is ignored: SIGKILL after the pod's 1 s, not the agent's 30 s.
	if d := time.Since(start); d < 900*time.Millisecond || d > 10*time.Second {
		t.Fatalf("stop took %s, want about 1s", d)
	}
}

// waitLog waits until a container's log holds line.
func waitLog(t *testing.T, rt *nodeagent.Containerd, replica, container, line string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("container %s of %s to log %q", container, replica, line), func() (bool, string) {
		files, err := rt.LogFiles(context.Background(), replica)
		if err != nil {
			return false, err.Error()
		}
		b, err := os.ReadFile(files[container])
		return err == nil && strings.Contains(string(b), line), fmt.Sprintf("%d bytes logged", len(b))
	})
}
