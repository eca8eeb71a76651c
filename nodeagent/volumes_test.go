package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// inContainer is a path as the container with pid sees it.
func inContainer(pid int, p string) string { return fmt.Sprintf("/proc/%d/root%s", pid, p) }

func TestVolumes(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "motd"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt.SetHostPathAllow([]string{host})
	pod := func(id string) protocol.ReplicaSpec {
		s := podSpec(id, desired.Container{Name: "a", Image: testenv.HelloImage, VolumeMounts: []desired.VolumeMount{
			{Name: "scratch", MountPath: "/scratch"},
			{Name: "cfg", MountPath: "/etc/app"},
			{Name: "sec", MountPath: "/etc/sec"},
			{Name: "data", MountPath: "/data"},
			{Name: "host", MountPath: "/host", ReadOnly: true},
		}})
		s.Pod.Volumes = []desired.Volume{
			{Name: "scratch", EmptyDir: &desired.EmptyDir{}},
			{Name: "cfg", ConfigMap: &desired.FilesFrom{Name: "cfg", DefaultMode: 0o644, Files: map[string][]byte{"app.conf": []byte("x=1")}}},
			{Name: "sec", Secret: &desired.FilesFrom{Name: "sec", DefaultMode: 0o400, Files: map[string][]byte{"password": []byte("hunter2")}}},
			{Name: "data", Claim: &desired.ClaimMount{Claim: "data"}},
			{Name: "host", HostPath: host},
		}
		return s
	}
	p1 := pod("hello-vol-1")
	if err := rt.Start(ctx, p1); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, p1.ID, protocol.StateRunning)
	pids, _ := rt.Debug(ctx, p1.ID)
	pid := pids["a"]
	read := func(p string) string {
		b, err := os.ReadFile(inContainer(pid, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if read("/etc/app/app.conf") != "x=1" || read("/etc/sec/password") != "hunter2" || read("/host/motd") != "from the host" {
		t.Fatal("volume contents")
	}
	// Secrets and config maps live on tmpfs, never on the node's disk.
	var fs unix.Statfs_t
	if err := unix.Statfs(inContainer(pid, "/etc/sec"), &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("secret volume is not tmpfs: %x %v", fs.Type, err)
	}
	if info, err := os.Stat(inContainer(pid, "/etc/sec/password")); err != nil || info.Mode().Perm() != 0o400 {
		t.Fatalf("secret file mode: %v %v", info.Mode(), err)
	}
	// Read-only mounts are read-only.
	if err := os.WriteFile(inContainer(pid, "/etc/app/new"), []byte("x"), 0o644); err == nil {
		t.Fatal("wrote into a configMap volume")
	}
	if err := os.WriteFile(inContainer(pid, "/host/new"), []byte("x"), 0o644); err == nil {
		t.Fatal("wrote into a readOnly hostPath")
	}
	// Data written to the claim survives the pod.
	if err := os.WriteFile(inContainer(pid, "/data/kept"), []byte("state"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inContainer(pid, "/scratch/gone"), []byte("tmp"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, p1.ID, 5e9); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rt.DataDir(), "pods", p1.ID)); !os.IsNotExist(err) {
		t.Fatalf("pod volumes left behind: %v", err)
	}
	if got := rt.Claims(); len(got) != 1 || got[0] != "data" {
		t.Fatalf("claims %v", got)
	}
	p2 := pod("hello-vol-2")
	if err := rt.Start(ctx, p2); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, p2.ID, protocol.StateRunning)
	pids, _ = rt.Debug(ctx, p2.ID)
	pid = pids["a"]
	if read("/data/kept") != "state" {
		t.Fatal("claim data lost")
	}
	if _, err := os.Stat(inContainer(pid, "/scratch/gone")); !os.IsNotExist(err) {
		t.Fatal("an emptyDir outlived its pod")
	}
	// The claim data of namespace shop is another volume.
	p3 := pod("hello-vol-4")
	p3.Workload = "shop/hello"
	p3.Pod.Volumes[3].Claim.Claim = "shop/data"
	if err := rt.Start(ctx, p3); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, p3.ID, protocol.StateRunning)
	pids, _ = rt.Debug(ctx, p3.ID)
	pid = pids["a"]
	if _, err := os.Stat(inContainer(pid, "/data/kept")); !os.IsNotExist(err) {
		t.Fatalf("shop/data sees default's data: %v", err)
	}
	if got := rt.Claims(); fmt.Sprint(got) != "[data shop/data]" {
		t.Fatalf("claims %v", got)
	}

	// A hostPath outside the allow-list is refused, and nothing is left.
	bad := podSpec("hello-vol-3", desired.Container{Name: "a", Image: testenv.HelloImage,
		VolumeMounts: []desired.VolumeMount{{Name: "etc", MountPath: "/x"}}})
	bad.Pod.Volumes = []desired.Volume{{Name: "etc", HostPath: "/etc"}}
	if err := rt.Start(ctx, bad); !errors.Is(err, nodeagent.ErrHostPathNotAllowed) {
		t.Fatalf("hostPath /etc: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rt.DataDir(), "pods", bad.ID)); !os.IsNotExist(err) {
		t.Fatal("refused pod left files")
	}
}

// A projected volume on real containerd: a ConfigMap's and a Secret's
// files with the pod's own fields (its name from the node, a limit in
// divisor units, labels known from the manifest), on tmpfs, read-only.
func TestProjectedVolume(t *testing.T) {
	rt := newRuntime(t)
	rt.SetNode("n9", "192.0.2.9")
	ctx := context.Background()
	spec := podSpec("hello-proj-1", desired.Container{Name: "a", Image: testenv.HelloImage,
		Resources:    desired.Resources{Limits: desired.Amount{CPUMilli: 250}},
		VolumeMounts: []desired.VolumeMount{{Name: "all", MountPath: "/all"}}})
	spec.Pod.Volumes = []desired.Volume{{Name: "all", Projected: &desired.Projected{DefaultMode: 0o640,
		ConfigMaps: []*desired.FilesFrom{{Name: "cfg", DefaultMode: 0o644, Files: map[string][]byte{"conf/a": []byte("one")}}},
		Secrets:    []*desired.FilesFrom{{Name: "creds", DefaultMode: 0o400, Files: map[string][]byte{"pw": []byte("s3cret")}}},
		Downward: []desired.DownwardFile{{Path: "labels", Value: "app=\"web\"\n"}, {Path: "name", FieldRef: "metadata.name"},
			{Path: "node", FieldRef: "spec.nodeName"}, {Path: "cpu", ResourceFieldRef: &desired.ResourceFieldRef{Container: "a", Resource: "limits.cpu", Divisor: 1}}}}}}
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	pids, _ := rt.Debug(ctx, spec.ID)
	pid := pids["a"]
	for path, want := range map[string]string{"/all/conf/a": "one", "/all/pw": "s3cret", "/all/labels": "app=\"web\"\n", "/all/name": "hello-proj-1",
		"/all/node": "n9", "/all/cpu": "250"} {
		if b, err := os.ReadFile(inContainer(pid, path)); err != nil || string(b) != want {
			t.Errorf("%s: %q (%v), want %q", path, b, err, want)
		}
	}
	if info, err := os.Stat(inContainer(pid, "/all/name")); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("downward file mode: %v %v, want the volume's 0640", info.Mode(), err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(inContainer(pid, "/all"), &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("projected volume is not tmpfs: %x %v", fs.Type, err)
	}
	if err := os.WriteFile(inContainer(pid, "/all/new"), []byte("x"), 0o644); err == nil {
		t.Fatal("wrote into a projected volume")
	}
}

// A hostPath's type is checked (or made) before the pod starts, as the
// kubelet does: a wrong or missing one fails the start and leaves nothing.
func TestHostPathTypes(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	host := t.TempDir()
	rt.SetHostPathAllow([]string{host})
	sock, err := net.Listen("unix", filepath.Join(host, "app.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if err := os.WriteFile(filepath.Join(host, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		path, typ string
		ok        bool
	}{
		{"app.sock", "Socket", true},
		{"file", "Socket", false},
		{"made/dir", "DirectoryOrCreate", true},
		{"made.conf", "FileOrCreate", true},
		{"file", "File", true},
		{"file", "Directory", false},
		{"missing", "Directory", false},
		{"file", "CharDevice", false},
		{"file", "BlockDevice", false},
		{"file", "", true}, // no type: no check
	} {
		s := podSpec(fmt.Sprintf("hello-hp-%d", i), desired.Container{Name: "a", Image: testenv.HelloImage,
			VolumeMounts: []desired.VolumeMount{{Name: "h", MountPath: "/h"}}})
		s.Pod.Volumes = []desired.Volume{{Name: "h", HostPath: filepath.Join(host, tc.path), HostPathType: tc.typ}}
		err := rt.Start(ctx, s)
		if (err == nil) != tc.ok {
			t.Errorf("%s as %q: %v", tc.path, tc.typ, err)
			continue
		}
		if err != nil {
			if _, serr := os.Stat(filepath.Join(rt.DataDir(), "pods", s.ID)); !os.IsNotExist(serr) {
				t.Errorf("%s as %q: the refused pod left files", tc.path, tc.typ)
			}
			continue
		}
		if err := rt.Stop(ctx, s.ID, 1e9); err != nil {
			t.Fatal(err)
		}
	}
	// A type that makes its path makes nothing through a symlink out of
	// the allowed directories.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(host, "link")); err != nil {
		t.Fatal(err)
	}
	for i, typ := range []string{"DirectoryOrCreate", "FileOrCreate"} {
		s := podSpec(fmt.Sprintf("hello-hpx-%d", i), desired.Container{Name: "a", Image: testenv.HelloImage,
			VolumeMounts: []desired.VolumeMount{{Name: "h", MountPath: "/h"}}})
		s.Pod.Volumes = []desired.Volume{{Name: "h", HostPath: filepath.Join(host, "link", "made", "x"), HostPathType: typ}}
		if err := rt.Start(ctx, s); !errors.Is(err, nodeagent.ErrHostPathNotAllowed) {
			t.Errorf("%s through a symlink out: %v", typ, err)
		}
		if _, err := os.Stat(filepath.Join(outside, "made")); !os.IsNotExist(err) {
			t.Fatalf("%s made a path outside the allowed directories: %v", typ, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(host, "made/dir")); err != nil || !fi.IsDir() {
		t.Errorf("DirectoryOrCreate made %v, %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(host, "made.conf")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("FileOrCreate made %v, %v", fi, err)
	}
}
