package nodeagent_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/netns"
	cnins "github.com/containernetworking/plugins/pkg/ns"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// TestRecoverHalfMadePods: an agent that dies in the middle of a start (here
// it stops at a stage of it, as a kill -9 would leave it) leaves a network
// namespace, an address, NAT rules and containers without tasks. The next
// agent on the same node removes all of it before it serves, and says
// which replicas it removed.
func TestRecoverHalfMadePods(t *testing.T) {
	for _, stage := range []string{"network", "container"} {
		t.Run(stage, func(t *testing.T) {
			cni, host := testenv.CNI(t)
			dead := newRuntime(t)
			dead.SetNetwork(cni, host)
			ctx := context.Background()
			reached := make(chan struct{})
			nodeagent.SetStageHook(dead, func(s string) {
				if s == stage {
					close(reached)
					select {} // the agent is gone: nothing after this point runs
				}
			})
			spec := podSpec("hello-half-1", desired.Container{Name: "web", Image: testenv.HelloImage, Args: []string{"-listen", ":8080"},
				Ports: []desired.Port{{ContainerPort: 8080, HostPort: 18081, Protocol: "TCP"}}})
			go func() { _ = dead.Start(ctx, spec) }()
			select {
			case <-reached:
			case <-time.After(20 * time.Second):
				t.Fatal("the start never reached the stage")
			}
			leases := podLeases(t, cni)
			if len(leases) != 1 {
				t.Fatalf("leases before recovery: %v", leases)
			}
			if n := natChains(t, host); n == 0 {
				t.Fatal("no NAT rules for the host port before recovery")
			}

			// The next agent: the same containerd namespace and data dir.
			next, err := nodeagent.NewContainerd(clientOf(t), dead.Namespace(), dead.DataDir())
			if err != nil {
				t.Fatal(err)
			}
			next.SetNetwork(cni, host)
			removed, err := next.Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(removed) != 1 || removed[0].ID != spec.ID || removed[0].Workload != "hello" {
				t.Fatalf("removed %+v", removed)
			}
			if reps, _ := next.List(ctx); len(reps) != 0 {
				t.Fatalf("left after recovery: %+v", reps)
			}
			if has, _ := next.Has(ctx, spec.ID); has {
				t.Fatal("the runtime still holds something of the replica")
			}
			if leases := podLeases(t, cni); len(leases) != 0 {
				t.Fatalf("address leases left: %v", leases)
			}
			if n := natChains(t, host); n != 0 {
				t.Fatalf("%d NAT rules left", n)
			}
			if files, _ := os.ReadDir(filepath.Join(dead.DataDir(), "netns")); len(files) != 0 {
				t.Fatalf("network namespaces left: %v", files)
			}
			// The node starts the same pod again from scratch.
			if err := next.Start(ctx, spec); err != nil {
				t.Fatal(err)
			}
			waitState(t, next, spec.ID, protocol.StateRunning)
		})
	}
}

func clientOf(t *testing.T) *client.Client {
	cli, err := nodeagent.DialContainerd(context.Background(), testenv.ContainerdSocket(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// podLeases lists the addresses host-local holds.
func podLeases(t *testing.T, cni *nodeagent.CNI) []string {
	entries, _ := os.ReadDir(filepath.Join(cni.Config().StateDir, "ipam", "baton"))
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "last_reserved") && e.Name() != "lock" {
			out = append(out, e.Name())
		}
	}
	return out
}

// natChains counts portmap's DNAT chains in the host namespace.
func natChains(t *testing.T, host string) int {
	var out []byte
	err := netns.LoadNetNS(host).Do(func(cnins.NetNS) error {
		runtime.LockOSThread() // the command runs in this thread's namespace
		b, err := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput()
		out = b
		return err
	})
	if err != nil {
		t.Fatalf("iptables: %v\n%s", err, out)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-N CNI-DN-") {
			n++
		}
	}
	return n
}

// TestStartRefusesHostileSpecs: the runtime itself refuses a pod that would
// mount outside its directory or reach a host path through a symlink, and
// mounts nothing for it.
func TestStartRefusesHostileSpecs(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	allowed := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(allowed, "etc")); err != nil {
		t.Fatal(err)
	}
	rt.SetHostPathAllow([]string{allowed})
	target := t.TempDir()
	rel, err := filepath.Rel(filepath.Join(rt.DataDir(), "pods", "evil-1", "volumes"), target)
	if err != nil {
		t.Fatal(err)
	}
	tmpfs := podSpec("evil-1", desired.Container{Name: "a", Image: testenv.HelloImage,
		VolumeMounts: []desired.VolumeMount{{Name: rel, MountPath: "/x"}}})
	tmpfs.Pod.Volumes = []desired.Volume{{Name: rel, EmptyDir: &desired.EmptyDir{Memory: true}}}
	if err := rt.Start(ctx, tmpfs); !errors.Is(err, nodeagent.ErrInvalidSpec) {
		t.Fatalf("a volume named %q: %v, want ErrInvalidSpec", rel, err)
	}
	if mounted(t, target) {
		t.Fatalf("a tmpfs was mounted over %s", target)
	}
	link := podSpec("evil-2", desired.Container{Name: "a", Image: testenv.HelloImage,
		VolumeMounts: []desired.VolumeMount{{Name: "etc", MountPath: "/x"}}})
	link.Pod.Volumes = []desired.Volume{{Name: "etc", HostPath: filepath.Join(allowed, "etc")}}
	if err := rt.Start(ctx, link); !errors.Is(err, nodeagent.ErrHostPathNotAllowed) || nodeagent.Classify(err) != protocol.CodeNotAllowed {
		t.Fatalf("a hostPath symlink to /etc: %v, want ErrHostPathNotAllowed", err)
	}
	for _, id := range []string{"evil-1", "evil-2"} {
		if has, _ := rt.Has(ctx, id); has {
			t.Fatalf("%s left something behind", id)
		}
	}
}

func mounted(t *testing.T, dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), " "+dir+" ")
}

// TestImagesAnnouncesArrivals: an image imported into the node's namespace
// is announced at once, by its normalized name.
func TestImagesAnnouncesArrivals(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrivals := rt.Images(ctx)
	time.Sleep(200 * time.Millisecond) // subscribed
	cli := clientOf(t)
	nctx := namespaces.WithNamespace(ctx, rt.Namespace())
	if err := cli.ImageService().Delete(nctx, testenv.HelloImage); err != nil {
		t.Fatal(err)
	}
	if _, err := nodeagent.Import(ctx, cli, rt.Namespace(), testenv.HelloArchive(t)); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case name := <-arrivals:
			if name == testenv.HelloImage {
				return
			}
		case <-timeout:
			t.Fatal("the import was not announced")
		}
	}
}

// TestUnreadableStoredProbes: a container whose stored probes are damaged
// or unsafe (a zero period would panic a prober) is reported not ready with
// why, at every re-adoption; the agent never runs them.
func TestUnreadableStoredProbes(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	spec := podSpec("hello-probes-1", desired.Container{Name: "web", Image: testenv.HelloImage, Args: []string{"-listen", ":8080"},
		ReadinessProbe: &desired.Probe{TCPSocket: &desired.TCPSocket{Port: "8080"}, PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}})
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
	cli := clientOf(t)
	nctx := namespaces.WithNamespace(ctx, rt.Namespace())
	for _, label := range []string{`{"readiness":{"tcpSocket":{"port":"8080"},"periodSeconds":0,"timeoutSeconds":1,"successThreshold":1,"failureThreshold":1}}`, `{not json`} {
		c, err := cli.LoadContainer(nctx, spec.ID+".web")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.SetLabels(nctx, map[string]string{nodeagent.LabelProbes: label}); err != nil {
			t.Fatal(err)
		}
		// A new runtime re-adopts it, as a restarted agent does.
		next, err := nodeagent.NewContainerd(cli, rt.Namespace(), rt.DataDir())
		if err != nil {
			t.Fatal(err)
		}
		r := waitState(t, next, spec.ID, protocol.StateRunning)
		next.StopProbes()
		if r.Ready || !strings.Contains(r.Message, "stored probes") {
			t.Fatalf("label %s: reported %+v", label, r)
		}
	}
}
