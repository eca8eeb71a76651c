package reconciler

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// DefaultServiceCIDR holds the Services' virtual addresses.
const DefaultServiceCIDR = "10.78.0.0/16"

// headless reports whether s has no virtual address.
func headless(s desired.Service) bool { return s.ClusterIP == "None" }

// AllocateServiceIPs gives every Service but headless ones its virtual
// address: the one it holds, else the one its manifest asks for (refused
// if outside cidr or held by another), else the lowest free one (the
// network's first address is never given). Addresses of Services gone are
// freed. It returns the addresses held now and, by Service, why one has
// none. Pure.
func AllocateServiceIPs(services []desired.Service, held map[string]string, cidr string) (map[string]string, map[string]string) {
	out, errs := map[string]string{}, map[string]string{}
	_, ipn, err := net.ParseCIDR(cidr)
	if err != nil || ipn.IP.To4() == nil {
		for _, s := range services {
			errs[s.Name] = fmt.Sprintf("service CIDR %q is not an IPv4 network", cidr)
		}
		return out, errs
	}
	taken := map[string]string{} // address → Service
	want := map[string]desired.Service{}
	for _, s := range services {
		if !headless(s) {
			want[s.Name] = s
		}
	}
	// Those held and still wanted keep theirs (unless the manifest now
	// asks for another).
	for _, name := range slices.Sorted(maps.Keys(held)) {
		s, ok := want[name]
		if !ok || (s.ClusterIP != "" && s.ClusterIP != held[name]) {
			continue
		}
		out[name], taken[held[name]] = held[name], name
	}
	names := slices.Sorted(maps.Keys(want))
	// Then those that ask for an address, then the rest.
	for _, name := range names {
		s := want[name]
		if _, ok := out[name]; ok || s.ClusterIP == "" {
			continue
		}
		ip := net.ParseIP(s.ClusterIP).To4()
		switch {
		case ip == nil || !ipn.Contains(ip):
			errs[name] = fmt.Sprintf("spec.clusterIP %s is outside the service CIDR %s", s.ClusterIP, cidr)
		case taken[ip.String()] != "":
			errs[name] = fmt.Sprintf("spec.clusterIP %s is the address of Service %s", s.ClusterIP, taken[ip.String()])
		default:
			out[name], taken[ip.String()] = ip.String(), name
		}
	}
	base := binary.BigEndian.Uint32(ipn.IP.To4())
	ones, bits := ipn.Mask.Size()
	size := uint32(1) << (bits - ones)
	next := uint32(1)
	for _, name := range names {
		if _, ok := out[name]; ok || want[name].ClusterIP != "" {
			continue
		}
		for ; next < size-1 && taken[ipOf(base+next)] != ""; next++ {
		}
		if next >= size-1 {
			errs[name] = fmt.Sprintf("the service CIDR %s is full", cidr)
			continue
		}
		ip := ipOf(base + next)
		out[name], taken[ip] = ip, name
	}
	return out, errs
}

// Node ports are given from Kubernetes' range.
const (
	NodePortMin = 30000
	NodePortMax = 32767
)

// nodePortKey names a port of a Service.
func nodePortKey(service string, port int) string { return service + "." + strconv.Itoa(port) }

// AllocateNodePorts gives every port of every NodePort (or LoadBalancer,
// served the same way) Service its node
// port: the one it holds, else the one its manifest asks for (refused if
// another holds it), else the lowest free one. Those of ports gone are
// freed. It returns the ports held now (by Service.port) and, by Service,
// why one has none. Pure.
func AllocateNodePorts(services []desired.Service, held map[string]int) (map[string]int, map[string]string) {
	out, errs := map[string]int{}, map[string]string{}
	taken := map[int]string{}
	type want struct {
		key   string
		svc   string
		asked int
	}
	var wants []want
	for _, s := range services {
		if s.Type != "NodePort" && s.Type != "LoadBalancer" { // LoadBalancer: node ports on every node, as k3s's
			continue
		}
		for _, p := range s.Ports {
			wants = append(wants, want{key: nodePortKey(s.Name, p.Port), svc: s.Name, asked: p.NodePort})
		}
	}
	slices.SortFunc(wants, func(a, b want) int { return strings.Compare(a.key, b.key) })
	for _, w := range wants {
		if h, ok := held[w.key]; ok && (w.asked == 0 || w.asked == h) && taken[h] == "" {
			out[w.key], taken[h] = h, w.key
		}
	}
	for _, w := range wants {
		if _, ok := out[w.key]; ok || w.asked == 0 {
			continue
		}
		if other := taken[w.asked]; other != "" {
			errs[w.svc] = fmt.Sprintf("nodePort %d is taken by %s", w.asked, other)
			continue
		}
		out[w.key], taken[w.asked] = w.asked, w.key
	}
	next := NodePortMin
	for _, w := range wants {
		if _, ok := out[w.key]; ok || w.asked != 0 {
			continue
		}
		for ; next <= NodePortMax && taken[next] != ""; next++ {
		}
		if next > NodePortMax {
			errs[w.svc] = "no free node port"
			continue
		}
		out[w.key], taken[next] = next, w.key
	}
	return out, errs
}

func ipOf(v uint32) string {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, v)
	return b.String()
}

// ServiceRules are the rules every node programs: one per port of each
// Service with an address, its endpoints the ready pods it selects (running,
// passing readiness, on a ready node, with an address), on the target port
// by number or by the name of a container port. Sorted. Pure.
func ServiceRules(st *desired.State, ips map[string]string, nodePorts map[string]int, live *Live) []protocol.ServiceRule {
	if st == nil {
		return nil
	}
	var out []protocol.ServiceRule
	endpoints := st.EndpointsByName()
	for _, s := range st.Services {
		ip := ips[s.Name]
		manual, hasManual := endpoints[s.Name]
		if ip == "" || (len(s.Selector) == 0 && !hasManual) {
			continue
		}
		var selected []desired.Workload
		for _, w := range st.Workloads {
			if selects(s, w) {
				selected = append(selected, w)
			}
		}
		for _, p := range s.Ports {
			rule := protocol.ServiceRule{Service: s.Name, IP: ip, Port: p.Port, Protocol: p.Protocol, Endpoints: []string{},
				NodePort: nodePorts[nodePortKey(s.Name, p.Port)], AffinitySeconds: s.AffinitySeconds, InternalLocal: s.InternalLocal}
			rule.ExternalLocal = s.ExternalLocal && rule.NodePort != 0
			if len(s.Selector) == 0 { // a Service without a selector: its Endpoints object's
				rule.Endpoints = append(rule.Endpoints, manual.Serving(p.Name, p.Protocol)...)
			}
			for _, w := range selected {
				port, ok := targetPort(p.TargetPort, w.Pod)
				if !ok {
					continue
				}
				for _, r := range live.Of(w.Name) {
					if r.gone() || r.State != protocol.StateRunning || !r.Ready || r.PodIP == "" || !live.Ready[r.node] {
						continue
					}
					rule.Endpoints = append(rule.Endpoints, net.JoinHostPort(r.PodIP, strconv.Itoa(port)))
				}
			}
			slices.Sort(rule.Endpoints)
			rule.Endpoints = slices.Compact(rule.Endpoints)
			if len(rule.Endpoints) > protocol.MaxEndpoints {
				rule.Endpoints = rule.Endpoints[:protocol.MaxEndpoints]
			}
			out = append(out, rule)
		}
	}
	slices.SortFunc(out, func(a, b protocol.ServiceRule) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.Port - b.Port
	})
	return out
}

// DNSRecords are the Services' names: a Service with an address answers
// it; a headless one its ready pods' addresses. Pure.
func DNSRecords(st *desired.State, ips map[string]string, live *Live) []protocol.DNSRecord {
	if st == nil {
		return nil
	}
	out := []protocol.DNSRecord{}
	endpoints := st.EndpointsByName()
	for _, s := range st.Services {
		switch {
		case ips[s.Name] != "":
			out = append(out, protocol.DNSRecord{Service: s.Name, IPs: []string{ips[s.Name]}})
		case headless(s):
			rec := protocol.DNSRecord{Service: s.Name, IPs: []string{}}
			if manual, ok := endpoints[s.Name]; ok && len(s.Selector) == 0 {
				for _, sub := range manual.Subsets {
					rec.IPs = append(rec.IPs, sub.Addresses...)
				}
			}
			for _, w := range st.Workloads {
				if !selects(s, w) {
					continue
				}
				for _, r := range live.Of(w.Name) {
					if !r.gone() && r.State == protocol.StateRunning && r.Ready && r.PodIP != "" && live.Ready[r.node] {
						rec.IPs = append(rec.IPs, r.PodIP)
					}
				}
			}
			slices.Sort(rec.IPs)
			rec.IPs = slices.Compact(rec.IPs)
			if len(rec.IPs) > protocol.MaxEndpoints {
				rec.IPs = rec.IPs[:protocol.MaxEndpoints]
			}
			out = append(out, rec)
			out = append(out, podNames(st, s, live)...)
		}
	}
	slices.SortFunc(out, func(a, b protocol.DNSRecord) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// selects tells whether Service s selects the pods of w: a selector, and
// w in s's namespace.
func selects(s desired.Service, w desired.Workload) bool {
	return len(s.Selector) > 0 && desired.SelectsPods(s.Name, s.Selector, nil, w)
}

// targetPort is a Service port's target on pods of spec: a number, or
// the name of one of its containers' ports.
func targetPort(target string, spec desired.PodSpec) (int, bool) {
	if n, err := strconv.Atoi(target); err == nil {
		return n, n > 0 && n < 65536
	}
	for _, c := range spec.AllContainers() {
		for _, p := range c.Ports {
			if p.Name == target {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

// podNames are the names a headless Service gives the ready pods whose
// subdomain it is: <hostname>.<service> (the pod's hostname: a
// StatefulSet's <name>-<ordinal>; else its replica ID), as Kubernetes
// names them, in the Service's namespace.
func podNames(st *desired.State, s desired.Service, live *Live) []protocol.DNSRecord {
	byName := map[string][]string{}
	for _, w := range st.Workloads {
		if w.Pod.Subdomain != s.Name || !selects(s, w) {
			continue
		}
		for _, r := range live.Of(w.Name) {
			if r.gone() || r.State != protocol.StateRunning || !r.Ready || r.PodIP == "" || !live.Ready[r.node] {
				continue
			}
			host := w.Pod.Hostname
			if k, ok := ordinalOf(w, r.ID); ok && w.Stateful != nil {
				host = desired.ShortName(desired.OrdinalName(w.Name, k))
			} else if host == "" {
				host = r.ID
			}
			name := desired.Qualify(desired.NamespaceOf(s.Name), host+"."+desired.ShortName(s.Name))
			byName[name] = append(byName[name], r.PodIP)
		}
	}
	var out []protocol.DNSRecord
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		ips := byName[name]
		slices.Sort(ips)
		out = append(out, protocol.DNSRecord{Service: name, IPs: slices.Compact(ips)})
	}
	return out
}
