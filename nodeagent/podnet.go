package nodeagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"

	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// Routes programs this node's routes to the other nodes' pod subnets.
type Routes interface {
	// Apply makes the routes exactly these: adds and replaces them, and
	// removes the ones it made before that are not among them.
	Apply(ctx context.Context, routes []protocol.Route) error
}

// routeProtocol marks the routes Baton made (the routing table's
// "protocol" field), so it removes its own and no other.
const routeProtocol netlink.RouteProtocol = 77

// HostRoutes is Routes in the node's host network namespace, through
// netlink: straight through the other node's address when the two share
// a link (host-gw), through a vxlan tunnel otherwise (Backend).
type HostRoutes struct {
	// NetNS is the host's network namespace ("": the agent's own; tests
	// set one they made).
	NetNS string
	// Backend is BackendAuto (""), BackendHostGW or BackendVXLAN.
	Backend string
	// Address is this node's address between nodes (the tunnel's source).
	Address string
	// Subnet is this node's pod subnet (its first address is this node's
	// tunnel end).
	Subnet string
}

func (h *HostRoutes) handle() (*netlink.Handle, error) {
	if h.NetNS == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(h.NetNS)
	if err != nil {
		return nil, fmt.Errorf("host network namespace %s: %w", h.NetNS, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// ValidRoutes checks routes as a node receives them.
func ValidRoutes(routes []protocol.Route) error {
	if len(routes) > protocol.MaxRoutes {
		return fmt.Errorf("%d routes: at most %d", len(routes), protocol.MaxRoutes)
	}
	for _, r := range routes {
		_, ipn, err := net.ParseCIDR(r.Subnet)
		if err != nil || ipn.IP.To4() == nil {
			return fmt.Errorf("route of node %q: subnet %q: want an IPv4 CIDR", cutString(r.Node), cutString(r.Subnet))
		}
		if ip := net.ParseIP(r.Via); ip == nil || ip.To4() == nil || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() {
			return fmt.Errorf("route of node %q: address %q: want a unicast IPv4 address", cutString(r.Node), cutString(r.Via))
		}
	}
	return nil
}

// Apply implements Routes.
func (h *HostRoutes) Apply(_ context.Context, routes []protocol.Route) error {
	if err := ValidRoutes(routes); err != nil {
		return err
	}
	nh, err := h.handle()
	if err != nil {
		return err
	}
	defer nh.Close()
	want := map[string]bool{}
	var errs []error
	var tunnelled []protocol.Route
	for _, r := range routes {
		_, dst, _ := net.ParseCIDR(r.Subnet)
		via := net.ParseIP(r.Via).To4()
		if !h.direct(nh, via) {
			tunnelled = append(tunnelled, r)
			continue
		}
		rt := &netlink.Route{Dst: dst, Gw: via, Protocol: routeProtocol}
		if err := nh.RouteReplace(rt); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s (node %s): %w", r.Subnet, r.Via, r.Node, err))
			continue
		}
		want[dst.String()] = true
	}
	made, err := h.tunnelRoutes(nh, tunnelled)
	if err != nil {
		errs = append(errs, err)
	}
	for dst := range made {
		want[dst] = true
	}
	mine, err := nh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list routes: %w", err))...)
	}
	for _, rt := range mine {
		if rt.Dst != nil && !want[rt.Dst.String()] {
			if err := nh.RouteDel(&rt); err != nil {
				errs = append(errs, fmt.Errorf("remove route %s: %w", rt.Dst, err))
			}
		}
	}
	return errors.Join(errs...)
}

// List returns the routes Baton made, as "subnet via address" (followed
// by the tunnel's name for those through it), sorted.
func (h *HostRoutes) List() ([]string, error) {
	nh, err := h.handle()
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	mine, err := nh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rt := range mine {
		if rt.Dst != nil {
			s := rt.Dst.String() + " via " + rt.Gw.String()
			if rt.Flags&int(netlink.FLAG_ONLINK) != 0 {
				s += " (" + VXLANDevice + ")"
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out, nil
}

// masqChain is the NAT chain of the pods' traffic leaving the cluster.
const masqChain = "BATON-MASQ"

// EnsureMasquerade masquerades the pods' traffic that leaves the cluster
// (to an address outside clusterCIDR) behind the node's address, and no
// other: pods see each other's real addresses across nodes. It is
// idempotent (the chain is rewritten whole).
func (c *CNI) EnsureMasquerade(ctx context.Context, clusterCIDR string) error {
	if _, _, err := net.ParseCIDR(clusterCIDR); err != nil {
		return fmt.Errorf("cluster CIDR %q: %w", clusterCIDR, err)
	}
	run := func(args ...string) error { return c.iptables(ctx, args...) }
	if err := run("-t", "nat", "-N", masqChain); err != nil && !strings.Contains(err.Error(), "exists") {
		return err
	}
	if err := run("-t", "nat", "-F", masqChain); err != nil {
		return err
	}
	for _, rule := range [][]string{
		{"-d", clusterCIDR, "-j", "RETURN"},
		{"-d", "224.0.0.0/4", "-j", "RETURN"},
		{"-j", "MASQUERADE"},
	} {
		if err := run(append([]string{"-t", "nat", "-A", masqChain}, rule...)...); err != nil {
			return err
		}
	}
	jump := []string{"POSTROUTING", "-s", c.cfg.Subnet, "-m", "comment", "--comment", "baton: pods leaving the cluster", "-j", masqChain}
	if err := run(append([]string{"-t", "nat", "-C"}, jump...)...); err != nil {
		return run(append([]string{"-t", "nat", "-A"}, jump...)...)
	}
	return nil
}

// iptables runs iptables in the host's network namespace.
func (c *CNI) iptables(ctx context.Context, args ...string) error {
	_, err := c.iptablesOut(ctx, args...)
	return err
}

// inNetNS runs fn on a thread in the network namespace at path ("": the
// caller's): what fn makes there (sockets, processes) stays there.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return cnins.WithNetNSPath(path, func(cnins.NetNS) error { return fn() })
}

// runIn runs a command started in the network namespace netns, with stdin,
// and returns its output; a failure carries the output.
func runIn(ctx context.Context, netns, stdin, name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.Stdout, cmd.Stderr = &out, &out
	err := inNetNS(netns, cmd.Start)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
