package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/netns"
	cnins "github.com/containernetworking/plugins/pkg/ns"
)

// Fleet is a network of machines played by network namespaces the test
// makes: each host namespace has eth0, a veth whose peer is a port of a
// bridge in a namespace that plays the switch, and an address in
// 10.99.0.0/24. Nothing touches the machine's own network; everything is
// removed when the test ends.
type Fleet struct {
	tb     testing.TB
	prefix string
	sw     string
	hosts  int
	onSw   []string // the namespaces of the hosts on the switch
	router string   // the router's namespace ("": none yet)
	routed int
}

// RoutedSubnets are the subnets of the hosts behind the router
// (RoutedHost): 10.98.K.0/24 for the K-th.
const RoutedSubnets = "10.98.0.0/16"

// routerIP is the router's address on the switch.
const routerIP = "10.99.0.254"

// FleetSubnet is the hosts' subnet (each fleet is its own world).
const FleetSubnet = "10.99.0.0/24"

// NewFleet makes the switch of a fleet.
func NewFleet(tb testing.TB) *Fleet {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("network namespaces need root")
	}
	for _, c := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(c); err != nil {
			tb.Fatalf("the %s command is not installed (iproute2, util-linux)", c)
		}
	}
	f := &Fleet{tb: tb, prefix: fmt.Sprintf("bt%05d", rand.IntN(100000))}
	f.sw = f.netns("sw")
	f.ip(f.sw, "link", "add", "br0", "type", "bridge")
	f.ip(f.sw, "link", "set", "br0", "up")
	return f
}

// netns makes a named network namespace, removed at the end of the test.
func (f *Fleet) netns(name string) string {
	ns := f.prefix + "-" + name
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		f.tb.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	f.tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	f.ip(ns, "link", "set", "lo", "up")
	return ns
}

// ip runs an ip command inside the namespace ns.
func (f *Fleet) ip(ns string, args ...string) {
	f.tb.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		f.tb.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
}

// Host is a machine of the fleet.
type Host struct {
	Name string // the namespace's name (ip netns)
	IP   string
}

// Host adds a machine to the fleet, plugged into the switch.
func (f *Fleet) Host(name string) Host {
	f.tb.Helper()
	f.hosts++
	ns := f.netns(name)
	port := fmt.Sprintf("p%d", f.hosts)
	f.ip(f.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	f.ip(f.sw, "link", "set", port, "master", "br0")
	f.ip(f.sw, "link", "set", port, "up")
	ip := fmt.Sprintf("10.99.0.%d", f.hosts)
	f.ip(ns, "addr", "add", ip+"/24", "dev", "eth0")
	f.ip(ns, "link", "set", "eth0", "up")
	f.onSw = append(f.onSw, ns)
	if f.router != "" {
		f.ip(ns, "route", "add", RoutedSubnets, "via", routerIP)
	}
	return Host{Name: ns, IP: ip}
}

// RoutedHost adds a machine that shares no link with the others: it is
// on a link of its own to a router (a namespace plugged into the switch
// at 10.99.0.254), in 10.98.K.0/24, and the hosts on the switch reach it
// through that router, as machines in another rack or zone.
func (f *Fleet) RoutedHost(name string) Host {
	f.tb.Helper()
	if f.router == "" {
		f.router = f.netns("router")
		f.ip(f.sw, "link", "add", "prt", "type", "veth", "peer", "name", "eth0", "netns", f.router)
		f.ip(f.sw, "link", "set", "prt", "master", "br0")
		f.ip(f.sw, "link", "set", "prt", "up")
		f.ip(f.router, "addr", "add", routerIP+"/24", "dev", "eth0")
		f.ip(f.router, "link", "set", "eth0", "up")
		if out, err := (Host{Name: f.router}).Command("sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
			f.tb.Fatalf("router: sysctl: %v: %s", err, out)
		}
		for _, ns := range f.onSw {
			f.ip(ns, "route", "add", RoutedSubnets, "via", routerIP)
		}
	}
	f.routed++
	ns := f.netns(name)
	port := fmt.Sprintf("r%d", f.routed)
	f.ip(f.router, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	f.ip(f.router, "addr", "add", fmt.Sprintf("10.98.%d.1/24", f.routed), "dev", port)
	f.ip(f.router, "link", "set", port, "up")
	ip := fmt.Sprintf("10.98.%d.2", f.routed)
	f.ip(ns, "addr", "add", ip+"/24", "dev", "eth0")
	f.ip(ns, "link", "set", "eth0", "up")
	f.ip(ns, "route", "add", "default", "via", fmt.Sprintf("10.98.%d.1", f.routed))
	return Host{Name: ns, IP: ip}
}

// Command is a process run on host h: in its network namespace only
// (nsenter --net), not in a mount namespace of its own as ip netns exec
// would make, so what it mounts (pods' network namespaces) containerd sees.
func (h Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + h.Name, "--", name}, args...)...)
}

// Dial dials from host h: the socket is made inside its namespace (and
// stays there, whichever thread uses it afterwards).
func (h Host) Dial(network, addr string) (net.Conn, error) {
	var c net.Conn
	err := netns.LoadNetNS("/var/run/netns/" + h.Name).Do(func(cnins.NetNS) error {
		var err error
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		return err
	})
	return c, err
}

// DialFrom dials from host h with the local address local (an address of
// one of its interfaces).
func (h Host) DialFrom(network, local, addr string) (net.Conn, error) {
	var c net.Conn
	err := netns.LoadNetNS("/var/run/netns/" + h.Name).Do(func(cnins.NetNS) error {
		la, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(local, "0"))
		if err != nil {
			return err
		}
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: la}
		c, err = d.Dial(network, addr)
		return err
	})
	return c, err
}

// Listen listens on host h.
func (h Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := netns.LoadNetNS("/var/run/netns/" + h.Name).Do(func(cnins.NetNS) error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Switch is the network namespace that plays the fleet's switch, and its
// bridge: a machine plugged into it (a veth port on the bridge, an address
// in FleetSubnet) reaches every host on the switch.
func (f *Fleet) Switch() (netns, bridge string) { return f.sw, "br0" }

// Cut unplugs host h from the switch (its link goes down: no packet in or
// out, no connection closed), until Plug.
func (f *Fleet) Cut(h Host) { f.ip(h.Name, "link", "set", "eth0", "down") }

// Plug plugs host h back in.
func (f *Fleet) Plug(h Host) { f.ip(h.Name, "link", "set", "eth0", "up") }
