package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/internal/natsserver"
	"github.com/batonhq/baton/internal/ociarchive"
	"github.com/batonhq/baton/nodeagent"
)

// DefaultSocket is Debian's containerd socket.
const DefaultSocket = "/run/containerd/containerd.sock"

// HelloImage is the name the hello archive gives its image.
const HelloImage = "baton.local/hello:e2e"

var (
	once    sync.Once
	archive string
	binary  []byte
	err     error
)

// HelloArchive builds examples/images/hello into an OCI image archive named
// HelloImage and returns its path.
func HelloArchive(tb testing.TB) string {
	once.Do(func() {
		archive, binary, err = buildExample("hello", HelloImage)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return archive
}

var (
	archivesMu sync.Mutex
	archives   = map[string]string{} // "name ref" → archive
)

// ExampleArchive builds the example image in examples/images/<name> (a
// static binary) into an OCI image archive of image ref, once a test
// binary, and returns its path.
func ExampleArchive(tb testing.TB, name, ref string) string {
	tb.Helper()
	archivesMu.Lock()
	defer archivesMu.Unlock()
	if a, ok := archives[name+" "+ref]; ok {
		return a
	}
	a, _, err := buildExample(name, ref)
	if err != nil {
		tb.Fatal(err)
	}
	archives[name+" "+ref] = a
	return a
}

// buildExample builds examples/images/<name> statically and packs it at
// /<name> into an OCI archive of image ref, in a new temporary directory.
func buildExample(name, ref string) (string, []byte, error) {
	dir, err := os.MkdirTemp("", "baton-test-image-")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, "github.com/batonhq/baton/examples/images/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("build %s: %v\n%s", name, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", nil, err
	}
	a := filepath.Join(dir, name+".oci.tar")
	img := ociarchive.Image{Ref: ref, Files: []ociarchive.File{{Path: "/" + name, Mode: 0o755, Data: data}}, Entrypoint: []string{"/" + name}}
	if err := ociarchive.WriteFile(a, img); err != nil {
		return "", nil, err
	}
	return a, data, nil
}

// NATS starts the embedded NATS server (NATSServer) and returns a
// connection to it.
func NATS(tb testing.TB) *nats.Conn {
	tb.Helper()
	s := NATSServer(tb)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// NATSServer starts the server Baton embeds (internal/natsserver: the
// production settings), on a loopback port chosen by the kernel, with
// JetStream in a temporary directory; it is shut down when the test ends.
func NATSServer(tb testing.TB) *server.Server {
	tb.Helper()
	s, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: tb.TempDir(), Quiet: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// HelloBinary returns the static hello server binary (built by HelloArchive).
func HelloBinary(tb testing.TB) []byte {
	HelloArchive(tb)
	return binary
}

// ContainerdSocket returns the socket of a containerd that answers, or skips
// the test; with BATON_E2E=1 (as in CI) a missing containerd fails it.
func ContainerdSocket(tb testing.TB) string {
	sock := os.Getenv("BATON_CONTAINERD")
	if sock == "" {
		sock = DefaultSocket
	}
	c, err := nodeagent.DialContainerd(context.Background(), sock)
	if err != nil {
		if os.Getenv("BATON_E2E") == "1" {
			tb.Fatalf("BATON_E2E=1 but containerd is not reachable: %v", err)
		}
		tb.Skipf("containerd not reachable (set BATON_E2E=1 to require it): %v", err)
	}
	c.Close()
	return sock
}

// Containerd is a containerd daemon of a test's own, with its root, state
// and socket in a temporary directory, so a test may kill and restart it.
type Containerd struct {
	Socket string
	dir    string
	cmd    *exec.Cmd
	tb     testing.TB
}

// PrivateContainerd starts a containerd of the test's own (skipping, or
// failing with BATON_E2E=1, when containerd is not installed).
func PrivateContainerd(tb testing.TB) *Containerd {
	ContainerdSocket(tb) // the same skip rules
	bin, err := exec.LookPath("containerd")
	if err != nil {
		tb.Skip("containerd binary not installed")
	}
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		tb.Fatal(err)
	}
	c := &Containerd{Socket: filepath.Join(dir, "c.sock"), dir: dir, tb: tb}
	conf := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	c.cmd = exec.Command(bin, "--config", filepath.Join(dir, "config.toml"))
	c.Start()
	tb.Cleanup(func() {
		c.Kill()
		// Shims outlive their daemon: end them and their containers.
		_ = exec.Command("pkill", "-KILL", "-f", "containerd-shim.*-address "+c.Socket).Run()
		time.Sleep(200 * time.Millisecond)
		_ = exec.Command("sh", "-c", "grep ' "+dir+"' /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l").Run()
		_ = os.RemoveAll(dir)
	})
	return c
}

// Start (re)starts the daemon and waits until it answers.
func (c *Containerd) Start() {
	c.tb.Helper()
	log, err := os.OpenFile(filepath.Join(c.dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.tb.Fatal(err)
	}
	cmd := exec.Command(c.cmd.Path, c.cmd.Args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.tb.Fatal(err)
	}
	c.cmd = cmd
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cl, err := nodeagent.DialContainerd(context.Background(), c.Socket); err == nil {
			cl.Close()
			return
		}
	}
	c.tb.Fatalf("private containerd did not start; see %s", log.Name())
}

// Kill ends the daemon with SIGKILL (its shims, and so the containers, live on).
func (c *Containerd) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
		_, _ = c.cmd.Process.Wait()
	}
}
