package nodeagent

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// How a node reaches another node's pods (HostRoutes.Backend).
const (
	// BackendAuto routes straight to a node on a link this node shares
	// (host-gw) and through the vxlan tunnel to any other, chosen per node
	// (as flannel's vxlan backend with DirectRouting).
	BackendAuto = "auto"
	// BackendHostGW routes every node's pods through its address: the
	// nodes must share a link.
	BackendHostGW = "host-gw"
	// BackendVXLAN sends every node's pods' traffic through the tunnel.
	BackendVXLAN = "vxlan"
)

// The tunnel between nodes: every node's device has the same name, VNI
// and UDP port. 8472 is Linux's and flannel's vxlan port (not IANA's
// 4789), and 50 bytes is what the outer headers take of the link's MTU.
const (
	VXLANDevice   = "baton.vxlan"
	VXLANPort     = 8472
	vxlanVNI      = 77
	vxlanOverhead = 50
)

// vtep is a node's end of the tunnel: the first address of its pod
// subnet (its network address, never given to a pod), with a MAC made of
// that address, so every node knows every other's from its route alone.
func vtep(subnet string) (net.IP, net.HardwareAddr, error) {
	_, ipn, err := net.ParseCIDR(subnet)
	if err != nil || ipn.IP.To4() == nil {
		return nil, nil, fmt.Errorf("pod subnet %q: want an IPv4 CIDR", subnet)
	}
	ip := ipn.IP.To4()
	// 0a:58: locally administered, unicast (as CNI plugins derive theirs).
	return ip, net.HardwareAddr{0x0a, 0x58, ip[0], ip[1], ip[2], ip[3]}, nil
}

// ValidBackend checks a --network-backend value ("" is auto).
func ValidBackend(b string) error {
	switch b {
	case "", BackendAuto, BackendHostGW, BackendVXLAN:
		return nil
	}
	return fmt.Errorf("network backend %q: want %s, %s or %s", b, BackendAuto, BackendHostGW, BackendVXLAN)
}

// direct tells whether the node at via is reached straight (host-gw) or
// through the tunnel.
func (h *HostRoutes) direct(nh *netlink.Handle, via net.IP) bool {
	switch h.Backend {
	case BackendHostGW:
		return true
	case BackendVXLAN:
		return false
	}
	// On a shared link when the kernel's route to it has no gateway.
	rts, err := nh.RouteGet(via)
	return err == nil && len(rts) > 0 && rts[0].Gw == nil
}

// tunnel makes (or keeps) the vxlan device: its source this node's
// address, on the interface that holds it, its own tunnel end address.
func (h *HostRoutes) tunnel(nh *netlink.Handle) (netlink.Link, error) {
	src := net.ParseIP(h.Address).To4()
	if src == nil {
		return nil, fmt.Errorf("vxlan: this node has no address between nodes (--node-ip)")
	}
	ip, mac, err := vtep(h.Subnet)
	if err != nil {
		return nil, fmt.Errorf("vxlan: %w", err)
	}
	addrs, err := nh.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("vxlan: list addresses: %w", err)
	}
	var parent netlink.Link
	for _, a := range addrs {
		if a.IP.Equal(src) {
			if parent, err = nh.LinkByIndex(a.LinkIndex); err != nil {
				return nil, fmt.Errorf("vxlan: the interface of %s: %w", src, err)
			}
		}
	}
	if parent == nil {
		return nil, fmt.Errorf("vxlan: the node's address %s is on none of this host's interfaces", src)
	}
	if l, err := nh.LinkByName(VXLANDevice); err == nil {
		vx, ok := l.(*netlink.Vxlan)
		if ok && vx.VxlanId == vxlanVNI && vx.Port == VXLANPort && vx.SrcAddr.Equal(src) && vx.VtepDevIndex == parent.Attrs().Index && bytes.Equal(vx.HardwareAddr, mac) {
			return l, h.tunnelUp(nh, l, ip)
		}
		// Made for another address or subnet: made again.
		if err := nh.LinkDel(l); err != nil {
			return nil, fmt.Errorf("vxlan: remove the old %s: %w", VXLANDevice, err)
		}
	}
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: VXLANDevice, MTU: parent.Attrs().MTU - vxlanOverhead, HardwareAddr: mac},
		VxlanId:   vxlanVNI, VtepDevIndex: parent.Attrs().Index, SrcAddr: src, Port: VXLANPort,
	}
	if err := nh.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("vxlan: add %s: %w", VXLANDevice, err)
	}
	l, err := nh.LinkByName(VXLANDevice)
	if err != nil {
		return nil, fmt.Errorf("vxlan: %w", err)
	}
	return l, h.tunnelUp(nh, l, ip)
}

func (h *HostRoutes) tunnelUp(nh *netlink.Handle, l netlink.Link, ip net.IP) error {
	if err := nh.AddrReplace(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}}); err != nil {
		return fmt.Errorf("vxlan: address %s: %w", ip, err)
	}
	if err := nh.LinkSetUp(l); err != nil {
		return fmt.Errorf("vxlan: up: %w", err)
	}
	return nil
}

// tunnelRoutes programs the routes through the tunnel: for each node, its
// tunnel end's MAC (ARP) and where that MAC is (the forwarding database:
// the node's address), and its pods' subnet through its tunnel end. The
// entries for nodes no longer among them are removed; with none, the
// device goes.
func (h *HostRoutes) tunnelRoutes(nh *netlink.Handle, routes []protocol.Route) (map[string]bool, error) {
	made := map[string]bool{}
	if len(routes) == 0 {
		if l, err := nh.LinkByName(VXLANDevice); err == nil {
			if err := nh.LinkDel(l); err != nil {
				return made, fmt.Errorf("vxlan: remove %s: %w", VXLANDevice, err)
			}
		}
		return made, nil
	}
	l, err := h.tunnel(nh)
	if err != nil {
		return made, err
	}
	idx := l.Attrs().Index
	arp, fdb := map[string]bool{}, map[string]bool{}
	var errs []error
	for _, r := range routes {
		ip, mac, err := vtep(r.Subnet)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, dst, _ := net.ParseCIDR(r.Subnet)
		steps := []struct {
			what string
			do   func() error
		}{
			{"arp", func() error {
				return nh.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST, IP: ip, HardwareAddr: mac})
			}},
			{"fdb", func() error {
				return nh.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT, IP: net.ParseIP(r.Via).To4(), HardwareAddr: mac})
			}},
			{"route", func() error {
				return nh.RouteReplace(&netlink.Route{Dst: dst, Gw: ip, LinkIndex: idx, Flags: int(netlink.FLAG_ONLINK), Protocol: routeProtocol})
			}},
		}
		var failed error
		for _, s := range steps {
			if err := s.do(); err != nil {
				failed = fmt.Errorf("vxlan %s of %s via %s (node %s): %w", s.what, r.Subnet, r.Via, r.Node, err)
				break
			}
		}
		if failed != nil {
			errs = append(errs, failed)
			continue
		}
		arp[ip.String()], fdb[mac.String()] = true, true
		made[dst.String()] = true
	}
	// Entries of nodes no longer tunnelled to.
	for _, fam := range []int{netlink.FAMILY_V4, unix.AF_BRIDGE} {
		ns, err := nh.NeighList(idx, fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("vxlan: list neighbours: %w", err))
			continue
		}
		for _, n := range ns {
			keep := (fam == netlink.FAMILY_V4 && arp[n.IP.String()]) || (fam == unix.AF_BRIDGE && fdb[n.HardwareAddr.String()])
			if !keep && n.State&netlink.NUD_PERMANENT != 0 {
				if err := nh.NeighDel(&n); err != nil {
					errs = append(errs, fmt.Errorf("vxlan: remove neighbour %s %s: %w", n.IP, n.HardwareAddr, err))
				}
			}
		}
	}
	return made, errors.Join(errs...)
}
