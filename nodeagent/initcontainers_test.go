package nodeagent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// Init containers on real containerd: they run in order, each to success,
// before the containers; a sidecar (restartPolicy Always) starts in its
// turn and keeps running; a failed init container is run again (pod
// Always) or fails the pod (pod Never); a Job's pod is done when its
// containers are, whatever its sidecar does.
func TestInitContainers(t *testing.T) {
	rt := newRuntime(t)
	defer rt.StopProbes()
	rt.SetBackoff(nodeagent.Backoff{Base: time.Second, Max: time.Second, ResetAfter: time.Hour})
	ctx := context.Background()
	hello := func(name string, args ...string) desired.Container {
		return desired.Container{Name: name, Image: testenv.HelloImage, Args: args}
	}
	start := func(id, policy string, inits []desired.Container, cs ...desired.Container) {
		t.Helper()
		spec := podSpec(id, cs...)
		spec.Pod.InitContainers, spec.Pod.RestartPolicy = inits, policy
		if err := rt.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	side := hello("side", "-listen", ":8081")
	side.Sidecar = true

	// A 2 s init container, then a sidecar, then the container.
	start("hello-init-1", "Always", []desired.Container{hello("wait", "-exit-after", "2s"), side}, hello("a"))
	r := replicaNow(t, rt, "hello-init-1")
	if r.State != protocol.StateCreating || !strings.Contains(r.Message, "init container wait (1 of 2)") {
		t.Fatalf("while the first init container runs: %s %q", r.State, r.Message)
	}
	if pids, _ := rt.Debug(ctx, "hello-init-1"); pids["a"] != 0 || pids["side"] != 0 {
		t.Fatalf("started before the init container finished: %v", pids)
	}
	eventually(t, "hello-init-1 running", 20*time.Second, func() bool { return replicaNow(t, rt, "hello-init-1").State == protocol.StateRunning })
	if pids, _ := rt.Debug(ctx, "hello-init-1"); pids["a"] == 0 || pids["side"] == 0 {
		t.Fatalf("the sidecar and the container should run: %v", pids)
	}
	if r := replicaNow(t, rt, "hello-init-1"); r.Restarts != 0 {
		t.Errorf("restarts %d: an init container that succeeded is not run again", r.Restarts)
	}

	// A failing init container: run again while the pod restarts...
	start("hello-init-2", "Always", []desired.Container{hello("fail", "-exit-after", "100ms", "-exit-code", "3")}, hello("a"))
	eventually(t, "hello-init-2's init container run again", 20*time.Second, func() bool { return replicaNow(t, rt, "hello-init-2").Restarts >= 1 })
	if r := replicaNow(t, rt, "hello-init-2"); r.State == protocol.StateRunning {
		t.Fatalf("running with a failing init container: %+v", r)
	}
	if pids, _ := rt.Debug(ctx, "hello-init-2"); pids["a"] != 0 {
		t.Fatal("the container started after a failed init container")
	}
	// ... and failing the pod that never restarts.
	start("hello-init-3", "Never", []desired.Container{hello("fail", "-exit-after", "100ms", "-exit-code", "3")}, hello("a"))
	eventually(t, "hello-init-3 failed", 20*time.Second, func() bool {
		r := replicaNow(t, rt, "hello-init-3")
		return r.State == protocol.StateExited && r.ExitCode == 3
	})

	// An agent that restarts while an init container runs keeps the pod
	// (its containers without a task wait for their turn) and moves on.
	start("hello-init-5", "Always", []desired.Container{hello("wait", "-exit-after", "1s")}, hello("a"))
	removed, err := rt.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range removed {
		if r.ID == "hello-init-5" {
			t.Fatal("recovery removed a pod whose init container was running")
		}
	}
	eventually(t, "hello-init-5 running after the recovery", 20*time.Second, func() bool {
		return replicaNow(t, rt, "hello-init-5").State == protocol.StateRunning
	})

	// A Job's pod with a sidecar: done when its container is.
	start("hello-init-4", "Never", []desired.Container{side}, hello("job", "-exit-after", "500ms"))
	eventually(t, "hello-init-4 done", 20*time.Second, func() bool {
		r := replicaNow(t, rt, "hello-init-4")
		return r.State == protocol.StateExited && r.ExitCode == 0
	})
}
