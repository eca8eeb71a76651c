package testenv

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/netns"
	"github.com/containernetworking/cni/pkg/invoke"
	cnins "github.com/containernetworking/plugins/pkg/ns"

	"github.com/batonhq/baton/nodeagent"
)

// HostNetNS makes a network namespace that plays a node's host network for
// a test: the CNI bridge, routes and port-forwarding rules go there, never
// into the machine's own network. Its loopback is up. It is removed, with
// everything in it, when the test ends; register it before anything that
// uses it, so it is removed last.
func HostNetNS(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("network namespaces need root")
	}
	ns, err := netns.NewNetNS(tb.TempDir())
	if err != nil {
		tb.Fatalf("create host network namespace: %v", err)
	}
	tb.Cleanup(func() { _ = ns.Remove() })
	if err := ns.Do(nodeagent.LoopbackUp); err != nil {
		tb.Fatalf("loopback up: %v", err)
	}
	return ns.GetPath()
}

// TestSubnet is the pod subnet of CNI networks made by CNI; each lives in
// its own namespace, so they never meet.
const TestSubnet = "10.244.0.0/24"

// RequireCNI skips the test when the CNI plugins are not installed, and
// fails it with BATON_E2E=1.
func RequireCNI(tb testing.TB) {
	tb.Helper()
	if _, err := invoke.FindInPath("bridge", nodeagent.DefaultCNIBinDirs); err != nil {
		if os.Getenv("BATON_E2E") == "1" {
			tb.Fatalf("BATON_E2E=1 but the CNI plugins are not installed (apt-get install containernetworking-plugins iptables): %v", err)
		}
		tb.Skipf("CNI plugins not installed: %v", err)
	}
}

// CNIConfig is a node's pod network whose host is hostNS, a namespace of
// the test's own (HostNetNS).
func CNIConfig(hostNS, stateDir string) nodeagent.CNIConfig {
	return nodeagent.CNIConfig{HostNetNS: hostNS, Bridge: "batontest0", Subnet: TestSubnet, StateDir: stateDir}
}

// CNI returns a pod network whose host is a network namespace of the test's
// own (HostNetNS), and that namespace.
func CNI(tb testing.TB) (*nodeagent.CNI, string) {
	tb.Helper()
	RequireCNI(tb)
	host := HostNetNS(tb)
	n, err := nodeagent.NewCNI(CNIConfig(host, tb.TempDir()))
	if err != nil {
		tb.Fatal(err)
	}
	return n, host
}

// GetIn makes an HTTP/1.0 GET / to addr from inside the network namespace
// nsPath, retrying the connection for up to 10 s, and returns the response.
func GetIn(tb testing.TB, nsPath, addr string) string {
	return GetPathIn(tb, nsPath, addr, "/")
}

// GetPathIn is GetIn for another path.
func GetPathIn(tb testing.TB, nsPath, addr, path string) string {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, err := TryGetIn(nsPath, addr, path)
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			tb.Fatal(err)
		}
	}
}

// TryGetIn makes one HTTP/1.0 GET of path to addr from inside the network
// namespace nsPath (for a pod that may be going away).
func TryGetIn(nsPath, addr, path string) (string, error) {
	var conn net.Conn
	err := netns.LoadNetNS(nsPath).Do(func(cnins.NetNS) error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		conn = c
		return err
	})
	if err != nil {
		return "", fmt.Errorf("connect to %s in %s: %w", addr, nsPath, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: pod\r\n\r\n", path)
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("read from %s: %w", addr, err)
	}
	return string(b), nil
}

// RequireCommands skips the test when a command it runs is not installed,
// or fails it with BATON_E2E=1 (as in CI, where make test-deps installs
// them).
func RequireCommands(tb testing.TB, names ...string) {
	tb.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("BATON_E2E") == "1" {
				tb.Fatalf("BATON_E2E=1 but %s is not installed (make test-deps)", name)
			}
			tb.Skipf("%s is not installed (make test-deps)", name)
		}
	}
}
