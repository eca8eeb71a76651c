package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// procStatus returns a field of /proc/<pid>/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

func capSet(t *testing.T, hex string) uint64 {
	v, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const (
	capNetBindService = 10
	capNetRaw         = 13
	capSysAdmin       = 21
	capSysTime        = 25
)

func TestSecurityContext(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	uid, gid := int64(1000), int64(2000)
	spec := podSpec("hello-sec-1", desired.Container{Name: "a", Image: testenv.HelloImage,
		SecurityContext: &desired.SecurityContext{RunAsUser: &uid, RunAsGroup: &gid, ReadOnlyRootFilesystem: true,
			CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE"}}})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	pids, _ := rt.Debug(ctx, spec.ID)
	pid := pids["a"]
	if f := strings.Fields(procStatus(t, pid, "Uid")); f[0] != "1000" {
		t.Errorf("uid %v", f)
	}
	if f := strings.Fields(procStatus(t, pid, "Gid")); f[0] != "2000" {
		t.Errorf("gid %v", f)
	}
	if procStatus(t, pid, "NoNewPrivs") != "1" {
		t.Error("no_new_privs is off")
	}
	if procStatus(t, pid, "Seccomp") != "2" {
		t.Error("no seccomp filter")
	}
	bounding := capSet(t, procStatus(t, pid, "CapBnd"))
	if bounding != 1<<capNetBindService {
		t.Errorf("bounding capabilities %x, want only NET_BIND_SERVICE", bounding)
	}
	if err := os.WriteFile(inContainer(pid, "/written"), []byte("x"), 0o644); err == nil {
		t.Error("wrote to a read-only root filesystem")
	}

	// Defaults: Docker's capability set, nothing more.
	def := podSpec("hello-sec-2", desired.Container{Name: "a", Image: testenv.HelloImage})
	if err := rt.Start(ctx, def); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, def.ID, protocol.StateRunning)
	pids, _ = rt.Debug(ctx, def.ID)
	b := capSet(t, procStatus(t, pids["a"], "CapBnd"))
	if b&(1<<capNetRaw) == 0 || b&(1<<capSysAdmin) != 0 || b&(1<<capSysTime) != 0 {
		t.Errorf("default capabilities %x", b)
	}

	// Privileged only where the node allows it.
	priv := podSpec("hello-sec-3", desired.Container{Name: "a", Image: testenv.HelloImage,
		SecurityContext: &desired.SecurityContext{Privileged: true}})
	if err := rt.Start(ctx, priv); !errors.Is(err, nodeagent.ErrPodSecurity) || !errors.Is(err, nodeagent.ErrNotAllowed) ||
		!strings.Contains(err.Error(), "containers[a].securityContext.privileged") {
		t.Fatalf("privileged on a node that does not allow it: %v", err)
	}
	rt.SetPodSecurity(desired.PodSecurityPrivileged)
	if err := rt.Start(ctx, priv); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, priv.ID, protocol.StateRunning)
	pids, _ = rt.Debug(ctx, priv.ID)
	if b := capSet(t, procStatus(t, pids["a"], "CapBnd")); b&(1<<capSysAdmin) == 0 {
		t.Errorf("privileged capabilities %x", b)
	}
}
