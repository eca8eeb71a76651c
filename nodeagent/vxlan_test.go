package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// podHost is a host of the tunnel test: its pods played by an address on
// a bridge with no port (as the bridge of the pods has the gateway address).
type podHost struct {
	h      testenv.Host
	subnet string
	pod    string
	routes *nodeagent.HostRoutes
}

func newPodHost(t testing.TB, h testenv.Host, k int, backend string) *podHost {
	t.Helper()
	p := &podHost{h: h, subnet: fmt.Sprintf("10.77.%d.0/24", k), pod: fmt.Sprintf("10.77.%d.1", k)}
	for _, args := range [][]string{
		{"link", "add", "pods", "type", "bridge"},
		{"addr", "add", p.pod + "/24", "dev", "pods"},
		{"link", "set", "pods", "up"},
	} {
		if out, err := h.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: ip %v: %v: %s", h.Name, args, err, out)
		}
	}
	p.routes = &nodeagent.HostRoutes{NetNS: "/var/run/netns/" + h.Name, Backend: backend, Address: h.IP, Subnet: p.subnet}
	return p
}

func (p *podHost) route(node string) protocol.Route {
	return protocol.Route{Node: node, Subnet: p.subnet, Via: p.h.IP}
}

// reach sends 200 kB from a pod address of from to one of to over TCP
// and returns the address to saw it from.
func reach(t *testing.T, from, to *podHost) string {
	t.Helper()
	ln, err := to.h.Listen("tcp", net.JoinHostPort(to.pod, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		got <- fmt.Sprintf("%s %d", host, n)
	}()
	c, err := from.h.DialFrom("tcp", from.pod, ln.Addr().String())
	if err != nil {
		t.Fatalf("%s → %s: %v", from.pod, to.pod, err)
	}
	if _, err := c.Write(make([]byte, 200_000)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("%s → %s: nothing arrived", from.pod, to.pod)
	}
	return ""
}

func listRoutes(t *testing.T, p *podHost) string {
	t.Helper()
	l, err := p.routes.List()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(l, "; ")
}

// TestHostRoutesTunnel: three hosts, two on one switch and one behind a
// router. With the automatic backend each host routes straight to a host
// on its link and through the vxlan tunnel to the other; pods' addresses
// reach each other both ways, whole (200 kB), seen as themselves. The
// forced vxlan backend tunnels between hosts that share a link too, and
// routes taken away remove the tunnel.
func TestHostRoutesTunnel(t *testing.T) {
	testenv.RequireCNI(t) // root, ip
	fl := testenv.NewFleet(t)
	a := newPodHost(t, fl.Host("a"), 1, nodeagent.BackendAuto)
	b := newPodHost(t, fl.Host("b"), 2, nodeagent.BackendVXLAN)
	c := newPodHost(t, fl.RoutedHost("c"), 3, "")
	ctx := context.Background()
	all := map[string]*podHost{"a": a, "b": b, "c": c}
	for name, p := range all {
		var rs []protocol.Route
		for other, q := range all {
			if other != name {
				rs = append(rs, q.route(other))
			}
		}
		if err := p.routes.Apply(ctx, rs); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Applying again changes nothing and fails nothing.
		if err := p.routes.Apply(ctx, rs); err != nil {
			t.Fatalf("%s again: %v", name, err)
		}
	}
	for p, want := range map[*podHost]string{
		a: "10.77.2.0/24 via " + b.h.IP + "; 10.77.3.0/24 via 10.77.3.0 (baton.vxlan)",
		b: "10.77.1.0/24 via 10.77.1.0 (baton.vxlan); 10.77.3.0/24 via 10.77.3.0 (baton.vxlan)",
		c: "10.77.1.0/24 via 10.77.1.0 (baton.vxlan); 10.77.2.0/24 via 10.77.2.0 (baton.vxlan)",
	} {
		if got := listRoutes(t, p); got != want {
			t.Errorf("%s: routes %q, want %q", p.h.Name, got, want)
		}
	}
	for _, pair := range [][2]*podHost{{a, b}, {b, a}, {a, c}, {c, a}, {b, c}, {c, b}} {
		if got, want := reach(t, pair[0], pair[1]), pair[0].pod+" 200000"; got != want {
			t.Errorf("%s → %s: got %q, want %q", pair[0].pod, pair[1].pod, got, want)
		}
	}
	// Without a route to it, c's pods are out of a's reach; and a's
	// tunnel goes with its last tunnelled route.
	if err := a.routes.Apply(ctx, []protocol.Route{b.route("b")}); err != nil {
		t.Fatal(err)
	}
	if got := listRoutes(t, a); got != "10.77.2.0/24 via "+b.h.IP {
		t.Fatalf("a's routes after c left: %q", got)
	}
	if out, err := a.h.Command("ip", "link", "show", nodeagent.VXLANDevice).CombinedOutput(); err == nil {
		t.Fatalf("a's tunnel is still there: %s", out)
	}
	// (Unreachable, not refused: refused would mean c answered.)
	if conn, err := a.h.DialFrom("tcp", a.pod, net.JoinHostPort(c.pod, "9")); !errors.Is(err, syscall.ENETUNREACH) {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("a dialling c's pods after c left: %v, want unreachable", err)
	}
	// b tunnels with no route at all: nothing of Baton's is left.
	if err := b.routes.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := listRoutes(t, b); got != "" {
		t.Fatalf("b's routes after all left: %q", got)
	}
	if out, err := b.h.Command("ip", "link", "show", nodeagent.VXLANDevice).CombinedOutput(); err == nil {
		t.Fatalf("b's tunnel is still there: %s", out)
	}
	// Forced host-gw cannot route to a host behind a router: said.
	gw := &nodeagent.HostRoutes{NetNS: a.routes.NetNS, Backend: nodeagent.BackendHostGW}
	if err := gw.Apply(ctx, []protocol.Route{b.route("b"), c.route("c")}); err == nil || !strings.Contains(err.Error(), "10.77.3.0/24 via "+c.h.IP) {
		t.Fatalf("host-gw to a host on another link: %v", err)
	}
}
