package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
)

// in runs a command in the network namespace at ns and returns its output.
func in(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns}, args...)...).CombinedOutput()
	return string(out), err
}

// TestUpDown: baton up runs pods, one with a host port behind a Service, on
// this machine (played by a network namespace); after Ctrl-C the pods keep
// running; baton down stops and removes them and leaves no iptables rule,
// nftables table, bridge or route of Baton behind, and says what it did; a
// second down has nothing to do.
func TestUpDown(t *testing.T) {
	sock := testenv.ContainerdSocket(t)
	testenv.RequireCNI(t)
	hostNS := testenv.HostNetNS(t)
	archive := testenv.HelloArchive(t)
	dir := t.TempDir()
	ns := fmt.Sprintf("baton-down-%d", rand.Uint32()%1_000_000)
	repoDir := filepath.Join(t.TempDir(), "repo")
	repo, err := git.PlainInit(repoDir, false)
	if err != nil {
		t.Fatal(err)
	}
	app := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: %[1]s
          imagePullPolicy: Never
          ports: [{containerPort: 8080, hostPort: 18080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  replicas: 1
  template:
    spec:
      containers: [{name: worker, image: %[1]s, imagePullPolicy: Never}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`, testenv.HelloImage)
	if err := os.WriteFile(filepath.Join(repoDir, "web.yaml"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	wt, _ := repo.Worktree()
	if _, err := wt.Add("web.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Commit("web", &git.CommitOptions{Author: &object.Signature{Name: "e2e", Email: "e2e@localhost", When: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	where := []string{"--data-dir", dir, "--containerd", sock, "--namespace", ns, "--host-netns", hostNS, "--node", "n1", "--stop-grace", "2s"}
	cli, err := nodeagent.DialContainerd(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() }) // after the cleanup below, which uses it
	cctx := namespaces.WithNamespace(context.Background(), ns)
	tasks := func() int { // running ones
		l, err := cli.TaskService().List(cctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, tk := range l.Tasks {
			if tk.Status == tasktypes.Status_RUNNING {
				n++
			}
		}
		return n
	}
	down := []string{"down", "--data-dir", dir, "--stop-grace", "2s"} // the rest from baton up's up.json
	t.Cleanup(func() {                                                // whatever happened, nothing is left
		_, _, _ = run(t, down...)
		if err := testenv.RemoveContainerdNamespace(context.Background(), cli, ns); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, errOut, err := runCtx(ctx, append([]string{"up", "--repo", repoDir, "--image", archive, "--nats-listen", "127.0.0.1:" + freePort(t),
			"--api-listen", "", "--join-listen", ""}, where...)...)
		if err != nil {
			err = fmt.Errorf("%w: %s", err, errOut)
		}
		done <- err
	}()
	defer cancel()
	testenv.WaitFor(t, 90*time.Second, "2 pods, their host port and the Service's rules", func() (bool, string) {
		nat, _ := in(t, hostNS, "iptables", "-t", "nat", "-S")
		table, _ := in(t, hostNS, "nft", "list", "table", "ip", "baton")
		n := tasks()
		return n == 2 && strings.Contains(nat, "BATON-MASQ") && strings.Contains(nat, "18080") && strings.Contains(table, "10.78."),
			fmt.Sprintf("%d tasks\n%s\n%s", n, nat, table)
	})
	if b, err := os.ReadFile(upPIDPath(dir)); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("baton up's record: %q %v", b, err)
	}

	// Ctrl-C: baton up ends, its pods stay (the next up adopts them).
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("baton up: %v", err)
	}
	if n := tasks(); n != 2 {
		t.Fatalf("%d pods after baton up stopped, want them kept", n)
	}
	if _, err := os.Stat(upPIDPath(dir)); !os.IsNotExist(err) {
		t.Fatalf("baton up left its record: %v", err)
	}

	if out, _, err := run(t, "down", "--data-dir", t.TempDir()); err != nil || !strings.Contains(out, "no baton up ran with data dir") {
		t.Fatalf("down where no baton up ran: %v\n%s", err, out)
	}
	out, errOut, err := run(t, down...)
	if err != nil {
		t.Fatalf("baton down: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"stopped and removed 2 pods", "BATON-MASQ", "CNI-HOSTPORT-DNAT", "the bridge baton0", "nothing of baton up is left running"} {
		if !strings.Contains(out, want) {
			t.Errorf("baton down did not say %q:\n%s", want, out)
		}
	}
	if n := tasks(); n != 0 {
		t.Errorf("%d tasks left", n)
	}
	ctrs, err := cli.Containers(cctx)
	if err != nil || len(ctrs) != 0 {
		t.Errorf("containers left: %d %v", len(ctrs), err)
	}
	nat, err := in(t, hostNS, "iptables", "-t", "nat", "-S")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(nat), "\n") {
		if !strings.HasPrefix(line, "-P ") { // the built-in chains' policies
			t.Errorf("iptables rule left: %s", line)
		}
	}
	if table, err := in(t, hostNS, "nft", "list", "tables"); err != nil || strings.Contains(table, "baton") {
		t.Errorf("nftables left: %v %s", err, table)
	}
	if links, _ := in(t, hostNS, "ip", "-o", "link"); strings.Contains(links, "baton") || strings.Contains(links, "veth") {
		t.Errorf("links left:\n%s", links)
	}
	if out, _, err := run(t, down...); err != nil || !strings.Contains(out, "stopped and removed 0 pods") {
		t.Errorf("a second down: %v\n%s", err, out)
	}
}

// baton down stops a running baton up by its locked record: SIGTERM, then
// it waits for the lock to be let go; a record nobody holds is dropped and
// its process (now another program's) not signalled; a second baton up on
// the data dir is refused.
func TestStopUp(t *testing.T) {
	dir := t.TempDir()
	release, err := lockUp(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockUp(dir); err == nil || !strings.Contains(err.Error(), "another baton up runs") {
		t.Fatalf("a second baton up: %v", err)
	}
	release()

	// A stand-in baton up: a child whose number the record holds, the lock
	// held until it ends.
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(upPIDPath(dir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strconv.Itoa(child.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	ended := make(chan *os.ProcessState, 1)
	go func() { _ = child.Wait(); ended <- child.ProcessState; f.Close() }()
	pid, err := stopUp(context.Background(), dir, 10*time.Second)
	if err != nil || pid != child.Process.Pid {
		t.Fatalf("stopUp: %d %v", pid, err)
	}
	if st := <-ended; st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("the stand-in did not end by SIGTERM: %v", st)
	}

	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	if err := os.WriteFile(upPIDPath(dir), []byte(strconv.Itoa(other.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if pid, err := stopUp(context.Background(), dir, time.Second); err != nil || pid != 0 {
		t.Fatalf("a record nobody holds: %d %v", pid, err)
	}
	if _, err := os.Stat(upPIDPath(dir)); !os.IsNotExist(err) {
		t.Fatal("the stale record was kept")
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("another program's process was signalled: %v", err)
	}
}
