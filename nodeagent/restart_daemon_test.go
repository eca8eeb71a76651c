package nodeagent_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// TestContainerdRestart: pods keep running while containerd is down, and
// the same runtime (the agent's client) carries on when it is back.
func TestContainerdRestart(t *testing.T) {
	ctrd := testenv.PrivateContainerd(t)
	ctx := context.Background()
	cli, err := nodeagent.DialContainerd(ctx, ctrd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := nodeagent.Import(ctx, cli, "baton", testenv.HelloArchive(t)); err != nil {
		t.Fatal(err)
	}
	rt, err := nodeagent.NewContainerd(cli, "baton", filepath.Join(t.TempDir(), "agent"))
	if err != nil {
		t.Fatal(err)
	}
	spec := podSpec("hello-ctrd-1", desired.Container{Name: "a", Image: testenv.HelloImage})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	pids, _ := rt.Debug(ctx, spec.ID)

	ctrd.Kill()
	if err := syscall.Kill(pids["a"], 0); err != nil {
		t.Fatalf("the pod died with containerd: %v", err)
	}
	if _, err := rt.List(ctx); err == nil {
		t.Fatal("List worked without containerd")
	}
	ctrd.Start()
	var reps []protocol.Replica
	testenv.WaitFor(t, 20*time.Second, "the client to reconnect", func() (bool, string) {
		if reps, err = rt.List(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if len(reps) != 1 || reps[0].ID != spec.ID || reps[0].State != protocol.StateRunning {
		t.Fatalf("after the restart: %+v", reps)
	}
	if again, _ := rt.Debug(ctx, spec.ID); again["a"] != pids["a"] {
		t.Fatalf("the process changed: %d -> %d", pids["a"], again["a"])
	}
	// And it still stops cleanly.
	if err := rt.Stop(ctx, spec.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
