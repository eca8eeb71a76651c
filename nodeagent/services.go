package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// ServiceRules programs the Services' virtual addresses on the node.
type ServiceRules interface {
	// Apply makes the node's rules exactly these, in one transaction.
	Apply(ctx context.Context, rules []protocol.ServiceRule) error
}

// NFTables is ServiceRules much as kube-proxy's nftables mode does it: a
// table `ip baton` with a verdict map from address.protocol.port to a chain
// per Service port whose one rule DNATs to an endpoint picked at random
// (numgen, a map to address . port), or, with ClientIP session affinity,
// to a chain per endpoint that remembers its clients in a set with a
// timeout; ports without ready endpoints are rejected. Traffic policy
// Local keeps the endpoints on this node. Changes are written by `nft -f`,
// each one transaction (never half written).
type NFTables struct {
	// NetNS is the host's network namespace ("": the agent's own).
	NetNS string
	// PodSubnet is this node's pods' addresses: a pod reaching a Service
	// whose chosen endpoint is on this node (itself included) is
	// masqueraded, so the answer comes back through the node.
	PodSubnet string
	// ClusterCIDR holds every pod address: traffic from elsewhere (a node
	// port reached from outside, the host itself) that was sent to a
	// Service is masqueraded, so the answer comes back through this node.
	ClusterCIDR string

	mu      sync.Mutex
	applied map[string]svcState // what the table holds, by Service key; nil: unknown (write it whole)
}

// svcState is one Service port as the table holds it.
type svcState struct {
	chain    string // the chain of traffic to the Service's address
	extChain string // the chain of traffic to its node port
	proto    string
	nodePort int
	cluster  []string // the endpoints of traffic to the Service's address
	external []string // the endpoints of traffic to its node port
	affinity int      // ClientIP affinity, seconds (0: none)
	key      string
	chains   []nftChain // endpoints' chains first
	sets     []string   // the affinity sets' declarations, by name
	setNames []string
	sig      string // everything above, to tell a change
}

// nftChain is a chain of the table and its rules.
type nftChain struct {
	name  string
	rules []string
}

// svcKey is a Service port's key in the services map.
func svcKey(r protocol.ServiceRule) string {
	return fmt.Sprintf("%s . %s . %d", r.IP, strings.ToLower(r.Protocol), r.Port)
}

// svcChain is the chain of a Service port: named after its key, so it
// keeps its name as other Services come and go.
func svcChain(key string) string { return "svc-" + shortHash(key) }

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// dnatRule picks one of endpoints at random.
func dnatRule(proto string, endpoints []string) string {
	pick := make([]string, 0, len(endpoints))
	for j, e := range endpoints {
		host, port, _ := net.SplitHostPort(e)
		pick = append(pick, fmt.Sprintf("%d : %s . %s", j, host, port))
	}
	return fmt.Sprintf("meta l4proto %s dnat ip to numgen random mod %d map { %s }", proto, len(endpoints), strings.Join(pick, ", "))
}

// local keeps the endpoints in subnet.
func local(endpoints []string, subnet *net.IPNet) []string {
	out := []string{}
	for _, e := range endpoints {
		host, _, _ := net.SplitHostPort(e)
		if ip := net.ParseIP(host); ip != nil && subnet != nil && subnet.Contains(ip) {
			out = append(out, e)
		}
	}
	return out
}

// stateOf is the table's Service ports for rules, on a node whose pods
// are in podSubnet (traffic policy Local keeps the endpoints there).
func stateOf(rules []protocol.ServiceRule, podSubnet string) map[string]svcState {
	_, mine, _ := net.ParseCIDR(podSubnet)
	out := make(map[string]svcState, len(rules))
	for _, r := range rules {
		k := svcKey(r)
		st := svcState{key: k, chain: svcChain(k), proto: strings.ToLower(r.Protocol), nodePort: r.NodePort, affinity: r.AffinitySeconds,
			cluster: r.Endpoints, external: r.Endpoints}
		if st.cluster == nil {
			st.cluster, st.external = []string{}, []string{}
		}
		if r.InternalLocal {
			st.cluster = local(r.Endpoints, mine)
		}
		st.extChain = st.chain
		if r.ExternalLocal && r.NodePort != 0 {
			st.external = local(r.Endpoints, mine)
			st.extChain = "ext-" + shortHash(k)
		}
		st.build()
		out[k] = st
	}
	return out
}

// build makes the Service port's chains and sets. Without affinity a
// chain's one rule DNATs to an endpoint picked at random. With ClientIP
// affinity (as kube-proxy's nftables mode) each endpoint has a chain that
// records the client in the endpoint's set (with the affinity's timeout)
// and DNATs to it; the Service port's chain first sends a client found in
// an endpoint's set to that endpoint, then picks one at random.
func (st *svcState) build() {
	type portChain struct {
		name      string
		endpoints []string
	}
	pcs := []portChain{{st.chain, st.cluster}}
	if st.extChain != st.chain {
		pcs = append(pcs, portChain{st.extChain, st.external})
	}
	if st.affinity == 0 {
		for _, pc := range pcs {
			c := nftChain{name: pc.name}
			if len(pc.endpoints) > 0 {
				c.rules = []string{dnatRule(st.proto, pc.endpoints)}
			}
			st.chains = append(st.chains, c)
		}
	} else {
		epChain := func(e string) string { return "ep-" + shortHash(fmt.Sprintf("%s|%s|%d", st.key, e, st.affinity)) }
		affSet := func(e string) string { return "aff-" + strings.TrimPrefix(epChain(e), "ep-") }
		var eps []string
		for _, pc := range pcs {
			eps = append(eps, pc.endpoints...)
		}
		slices.Sort(eps)
		for _, e := range slices.Compact(eps) {
			host, port, _ := net.SplitHostPort(e)
			st.setNames = append(st.setNames, affSet(e))
			st.sets = append(st.sets, fmt.Sprintf("set %s { type ipv4_addr; flags dynamic,timeout; timeout %ds; }", affSet(e), st.affinity))
			st.chains = append(st.chains, nftChain{name: epChain(e), rules: []string{
				fmt.Sprintf("update @%s { ip saddr }", affSet(e)),
				fmt.Sprintf("meta l4proto %s dnat to %s:%s", st.proto, host, port),
			}})
		}
		for _, pc := range pcs {
			c := nftChain{name: pc.name}
			var pick []string
			for j, e := range pc.endpoints {
				c.rules = append(c.rules, fmt.Sprintf("ip saddr @%s goto %s", affSet(e), epChain(e)))
				pick = append(pick, fmt.Sprintf("%d : goto %s", j, epChain(e)))
			}
			if len(pick) > 0 {
				c.rules = append(c.rules, fmt.Sprintf("numgen random mod %d vmap { %s }", len(pick), strings.Join(pick, ", ")))
			}
			st.chains = append(st.chains, c)
		}
	}
	var b strings.Builder
	svc, np, empty := st.elements()
	fmt.Fprintf(&b, "%s|%s|%s|%v", svc, np, empty, st.sets)
	for _, c := range st.chains {
		fmt.Fprintf(&b, "|%s:%s", c.name, strings.Join(c.rules, ";"))
	}
	st.sig = b.String()
}

// elements are the map and set elements of a Service port.
func (st svcState) elements() (services, nodePorts, empty string) {
	if len(st.cluster) == 0 {
		empty = st.key
	} else {
		services = st.key + " : goto " + st.chain
	}
	if st.nodePort != 0 && len(st.external) > 0 {
		nodePorts = fmt.Sprintf("%s . %d : goto %s", st.proto, st.nodePort, st.extChain)
	}
	return services, nodePorts, empty
}

// keyOf is a map element's key ("" stays "").
func keyOf(elem string) string {
	k, _, _ := strings.Cut(elem, " : ")
	return k
}

func (st svcState) hasChain(name string) bool {
	return slices.ContainsFunc(st.chains, func(c nftChain) bool { return c.name == name })
}

// update is the nft script that takes the table from the Service ports in
// old to those in now, touching only those that changed (one transaction):
// their elements removed, their chains flushed, the chains and sets they
// no longer need deleted; then the sets and chains they need made, the
// chains filled and the elements added. Sets of endpoints that stay are
// kept (clients keep their affinity).
func update(old, now map[string]svcState) string {
	var b strings.Builder
	del := func(set, elem string) {
		if elem != "" {
			fmt.Fprintf(&b, "delete element ip baton %s { %s }\n", set, elem)
		}
	}
	add := func(set, elem string) {
		if elem != "" {
			fmt.Fprintf(&b, "add element ip baton %s { %s }\n", set, elem)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(old)) {
		o := old[k]
		n, ok := now[k]
		if ok && o.sig == n.sig {
			continue
		}
		// A map element is deleted by its key alone; one that stays as it
		// is, is left.
		svc, np, empty := o.elements()
		nsvc, nnp, nempty := n.elements()
		del("services", keyOf(changed(svc, nsvc, ok)))
		del("nodeports", keyOf(changed(np, nnp, ok)))
		del("no-endpoints", changed(empty, nempty, ok))
		for _, c := range o.chains {
			fmt.Fprintf(&b, "flush chain ip baton %s\n", c.name)
		}
		for _, c := range o.chains {
			if !n.hasChain(c.name) {
				fmt.Fprintf(&b, "delete chain ip baton %s\n", c.name)
			}
		}
		for _, name := range o.setNames {
			if !slices.Contains(n.setNames, name) {
				fmt.Fprintf(&b, "delete set ip baton %s\n", name)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(now)) {
		n := now[k]
		o, ok := old[k]
		if ok && o.sig == n.sig {
			continue
		}
		for i, name := range n.setNames {
			if !slices.Contains(o.setNames, name) {
				fmt.Fprintf(&b, "add %s\n", strings.Replace(n.sets[i], "set ", "set ip baton ", 1))
			}
		}
		for _, c := range n.chains {
			if !o.hasChain(c.name) {
				fmt.Fprintf(&b, "add chain ip baton %s\n", c.name)
			}
		}
		for _, c := range n.chains {
			for _, r := range c.rules {
				fmt.Fprintf(&b, "add rule ip baton %s %s\n", c.name, r)
			}
		}
		svc, np, empty := n.elements()
		osvc, onp, oempty := o.elements()
		add("services", changed(svc, osvc, ok))
		add("nodeports", changed(np, onp, ok))
		add("no-endpoints", changed(empty, oempty, ok))
	}
	return b.String()
}

// changed is elem unless the other state (when there is one) has it too.
func changed(elem, other string, ok bool) string {
	if ok && elem == other {
		return ""
	}
	return elem
}

// ValidServiceRules checks rules as a node receives them.
func ValidServiceRules(rules []protocol.ServiceRule) error {
	if len(rules) > protocol.MaxServiceRules {
		return fmt.Errorf("%d service rules: at most %d", len(rules), protocol.MaxServiceRules)
	}
	seen := map[string]bool{}
	for _, r := range rules {
		ip := net.ParseIP(r.IP)
		if ip == nil || ip.To4() == nil {
			return fmt.Errorf("service %q: address %q: want IPv4", cutString(r.Service), cutString(r.IP))
		}
		if r.Port <= 0 || r.Port > 65535 || (r.Protocol != "TCP" && r.Protocol != "UDP") {
			return fmt.Errorf("service %q: port %d/%s: want 1-65535 and TCP or UDP", cutString(r.Service), r.Port, cutString(r.Protocol))
		}
		k := r.IP + "/" + r.Protocol + "/" + strconv.Itoa(r.Port)
		if seen[k] {
			return fmt.Errorf("service %q: %s twice", cutString(r.Service), k)
		}
		seen[k] = true
		if r.NodePort != 0 {
			np := "node/" + r.Protocol + "/" + strconv.Itoa(r.NodePort)
			if r.NodePort < 0 || r.NodePort > 65535 || seen[np] {
				return fmt.Errorf("service %q: node port %d: out of range or twice", cutString(r.Service), r.NodePort)
			}
			seen[np] = true
		}
		if r.AffinitySeconds < 0 || r.AffinitySeconds > protocol.MaxAffinitySeconds {
			return fmt.Errorf("service %q: affinity of %d s: want 0 to %d", cutString(r.Service), r.AffinitySeconds, protocol.MaxAffinitySeconds)
		}
		if len(r.Endpoints) > protocol.MaxEndpoints {
			return fmt.Errorf("service %q: %d endpoints: at most %d", cutString(r.Service), len(r.Endpoints), protocol.MaxEndpoints)
		}
		for _, e := range r.Endpoints {
			host, port, err := net.SplitHostPort(e)
			p, perr := strconv.Atoi(port)
			if ip := net.ParseIP(host); err != nil || perr != nil || ip == nil || ip.To4() == nil || p <= 0 || p > 65535 {
				return fmt.Errorf("service %q: endpoint %q: want ipv4:port", cutString(r.Service), cutString(e))
			}
		}
	}
	return nil
}

// Ruleset is the nft script for rules: the table made anew.
func (n *NFTables) Ruleset(rules []protocol.ServiceRule) string {
	var b strings.Builder
	b.WriteString("table ip baton\ndelete table ip baton\ntable ip baton {\n")
	state := stateOf(rules, n.PodSubnet)
	var elems, empty, nodePorts []string
	for _, k := range slices.Sorted(maps.Keys(state)) {
		svc, np, e := state[k].elements()
		for _, x := range []struct {
			list *[]string
			v    string
		}{{&elems, svc}, {&nodePorts, np}, {&empty, e}} {
			if x.v != "" {
				*x.list = append(*x.list, x.v)
			}
		}
	}
	b.WriteString("\tmap services {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n")
	if len(elems) > 0 {
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
	b.WriteString("\t}\n")
	b.WriteString("\tmap nodeports {\n\t\ttype inet_proto . inet_service : verdict\n")
	if len(nodePorts) > 0 {
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(nodePorts, ", "))
	}
	b.WriteString("\t}\n")
	b.WriteString("\tset no-endpoints {\n\t\ttype ipv4_addr . inet_proto . inet_service\n")
	if len(empty) > 0 {
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(empty, ", "))
	}
	b.WriteString("\t}\n")
	for _, hook := range []string{"prerouting", "output"} {
		fmt.Fprintf(&b, "\tchain nat-%s {\n\t\ttype nat hook %s priority -100; policy accept;\n\t\tip daddr . meta l4proto . th dport vmap @services\n\t\tfib daddr type local meta l4proto . th dport vmap @nodeports\n\t}\n", hook, hook)
	}
	b.WriteString("\tchain nat-postrouting {\n\t\ttype nat hook postrouting priority 100; policy accept;\n")
	if n.PodSubnet != "" {
		fmt.Fprintf(&b, "\t\tct status dnat ip saddr %s ip daddr %s masquerade\n", n.PodSubnet, n.PodSubnet)
	}
	switch {
	case n.ClusterCIDR != "" && n.PodSubnet != "":
		// Not to this node's own pods: their answers come back through
		// it anyway, and they see the client's address (which traffic
		// policy Local promises).
		fmt.Fprintf(&b, "\t\tct status dnat ip saddr != %s ip daddr != %s masquerade\n", n.ClusterCIDR, n.PodSubnet)
	case n.ClusterCIDR != "":
		fmt.Fprintf(&b, "\t\tct status dnat ip saddr != %s masquerade\n", n.ClusterCIDR)
	}
	b.WriteString("\t}\n")
	for _, hook := range []string{"input", "forward", "output"} {
		fmt.Fprintf(&b, "\tchain filter-%s {\n\t\ttype filter hook %s priority -1; policy accept;\n\t\tip daddr . meta l4proto . th dport @no-endpoints reject\n\t}\n", hook, hook)
	}
	// The Service ports' sets and chains (see svcState.build).
	for _, k := range slices.Sorted(maps.Keys(state)) {
		st := state[k]
		for _, set := range st.sets {
			fmt.Fprintf(&b, "\t%s\n", set)
		}
		for _, c := range st.chains {
			fmt.Fprintf(&b, "\tchain %s {\n", c.name)
			for _, r := range c.rules {
				fmt.Fprintf(&b, "\t\t%s\n", r)
			}
			b.WriteString("\t}\n")
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// Apply implements ServiceRules: the first time (and after a failure) the
// table is written whole; after that only the Service ports that changed
// are, in one transaction (as kube-proxy's nftables mode).
func (n *NFTables) Apply(ctx context.Context, rules []protocol.ServiceRule) error {
	if err := ValidServiceRules(rules); err != nil {
		return err
	}
	now := stateOf(rules, n.PodSubnet)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.applied != nil {
		script := update(n.applied, now)
		if script == "" {
			return nil
		}
		if err := n.nft(ctx, script); err == nil {
			n.applied = now
			return nil
		}
		// Written whole below: the table may not be what we think.
	}
	n.applied = nil
	if err := n.nft(ctx, n.Ruleset(rules)); err != nil {
		return err
	}
	n.applied = now
	return nil
}

// Remove deletes the table (the node leaves).
func (n *NFTables) Remove(ctx context.Context) error {
	n.mu.Lock()
	n.applied = nil
	n.mu.Unlock()
	return n.nft(ctx, "table ip baton\ndelete table ip baton\n")
}

// List is the table as nft prints it.
func (n *NFTables) List(ctx context.Context) (string, error) {
	return runIn(ctx, n.NetNS, "", "nft", "list", "table", "ip", "baton")
}

func (n *NFTables) nft(ctx context.Context, script string) error {
	_, err := runIn(ctx, n.NetNS, script, "nft", "-f", "-")
	return err
}
