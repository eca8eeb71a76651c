package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// A pod's securityContext on real containerd: fsGroup and
// supplementalGroups among the process's groups, fsGroup owning the
// emptyDir (setgid), a namespaced sysctl set in the pod's network
// namespace only, seccomp Unconfined and Localhost, and runAsNonRoot
// checked against the image's user.
func TestPodSecurityContext(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	uid, fsGroup := int64(1000), int64(3000)
	spec := podSpec("hello-psc-1", desired.Container{Name: "a", Image: testenv.HelloImage,
		SecurityContext: &desired.SecurityContext{RunAsUser: &uid, Seccomp: "Unconfined"},
		VolumeMounts:    []desired.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}})
	spec.Pod.FSGroup, spec.Pod.SupplementalGroups = &fsGroup, []int64{4000}
	spec.Pod.Sysctls = []desired.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "80"}}
	spec.Pod.Volumes = []desired.Volume{{Name: "scratch", EmptyDir: &desired.EmptyDir{}}}
	// Unconfined is beyond the baseline level.
	if err := rt.Start(ctx, spec); !errors.Is(err, nodeagent.ErrPodSecurity) || !strings.Contains(err.Error(), "seccompProfile: Unconfined") {
		t.Fatalf("seccomp Unconfined at baseline: %v", err)
	}
	rt.SetPodSecurity(desired.PodSecurityPrivileged)
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	pids, _ := rt.Debug(ctx, spec.ID)
	pid := pids["a"]
	if groups := strings.Fields(procStatus(t, pid, "Groups")); !slices.Contains(groups, "3000") || !slices.Contains(groups, "4000") {
		t.Errorf("groups %v, want 3000 and 4000 among them", groups)
	}
	if s := procStatus(t, pid, "Seccomp"); s != "0" {
		t.Errorf("seccomp %s with Unconfined, want 0", s)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(inContainer(pid, "/scratch"), &st); err != nil || st.Gid != 3000 || st.Mode&syscall.S_ISGID == 0 || st.Mode&0o070 != 0o070 {
		t.Errorf("emptyDir: gid %d mode %o (%v), want gid 3000, setgid, group rwx", st.Gid, st.Mode, err)
	}
	read := func(ns string) string {
		out, err := exec.Command("nsenter", "--net="+ns, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start").CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := read(fmt.Sprintf("/proc/%d/ns/net", pid)); got != "80" {
		t.Errorf("the pod's sysctl: %s, want 80", got)
	}
	if got := read("/proc/self/ns/net"); got == "80" {
		t.Error("the sysctl reached the host's namespace")
	}

	// A Localhost profile from the node's seccomp directory.
	dir := filepath.Join(rt.DataDir(), "seccomp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "allow.json"), []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	local := podSpec("hello-psc-2", desired.Container{Name: "a", Image: testenv.HelloImage,
		SecurityContext: &desired.SecurityContext{Seccomp: "Localhost/allow.json"}})
	if err := rt.Start(ctx, local); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, local.ID, protocol.StateRunning)
	pids, _ = rt.Debug(ctx, local.ID)
	if s := procStatus(t, pids["a"], "Seccomp"); s != "2" {
		t.Errorf("seccomp %s with a Localhost profile, want 2 (a filter)", s)
	}

	// runAsNonRoot without runAsUser: the image runs as root, refused.
	nonRoot := podSpec("hello-psc-3", desired.Container{Name: "a", Image: testenv.HelloImage,
		SecurityContext: &desired.SecurityContext{RunAsNonRoot: true}})
	if err := rt.Start(ctx, nonRoot); !errors.Is(err, nodeagent.ErrInvalidSpec) || !strings.Contains(err.Error(), "runs as root") {
		t.Fatalf("runAsNonRoot with a root image: %v", err)
	}
}

// The downward API's node-side fields, filled in when the container is
// made: the pod's name and uid, the node's name and address, and a
// container's limit (an unset one is the node's capacity) in divisor
// units, rounded up; read from the process's environment.
func TestDownwardAPI(t *testing.T) {
	rt := newRuntime(t)
	rt.SetNode("n7", "192.0.2.7")
	ctx := context.Background()
	spec := podSpec("hello-down-1", desired.Container{Name: "a", Image: testenv.HelloImage,
		Resources: desired.Resources{Limits: desired.Amount{CPUMilli: 1500, MemoryBytes: 64 << 20}},
		Env: []desired.EnvVar{{Name: "POD", FieldRef: "metadata.name"}, {Name: "NODE", FieldRef: "spec.nodeName"},
			{Name: "HOST_IP", FieldRef: "status.hostIP"}, {Name: "PLAIN", Value: "x"},
			{Name: "CPUS", ResourceFieldRef: &desired.ResourceFieldRef{Container: "a", Resource: "limits.cpu"}},
			{Name: "MEM_MI", ResourceFieldRef: &desired.ResourceFieldRef{Container: "a", Resource: "limits.memory", Divisor: 1 << 20}},
			{Name: "REQ_CPU", ResourceFieldRef: &desired.ResourceFieldRef{Container: "a", Resource: "requests.cpu", Divisor: 1}}}})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	pids, _ := rt.Debug(ctx, spec.ID)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pids["a"]))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for k, want := range map[string]string{"POD": "hello-down-1", "NODE": "n7", "HOST_IP": "192.0.2.7", "PLAIN": "x", "CPUS": "2", "MEM_MI": "64", "REQ_CPU": "0"} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
}

// hostPID and hostIPC: refused below privileged; on a privileged node the
// pod shares the node's process and IPC namespaces.
func TestHostPIDAndIPC(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	spec := podSpec("hello-hostpid-1", desired.Container{Name: "a", Image: testenv.HelloImage})
	spec.Pod.HostPID, spec.Pod.HostIPC = true, true
	if err := rt.Start(ctx, spec); !errors.Is(err, nodeagent.ErrPodSecurity) || !strings.Contains(err.Error(), "hostPID") || !strings.Contains(err.Error(), "hostIPC") {
		t.Fatalf("hostPID at baseline: %v", err)
	}
	rt.SetPodSecurity(desired.PodSecurityPrivileged)
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	pids, _ := rt.Debug(ctx, spec.ID)
	for _, ns := range []string{"pid", "ipc"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pids["a"], ns))
		if mine == "" || mine != theirs {
			t.Errorf("%s namespace %q, want the node's %q", ns, theirs, mine)
		}
	}
}
