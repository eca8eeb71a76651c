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
// (numgen, a map to address . port);
// ports without ready endpoints are rejected. The whole table is written
// at once by `nft -f` (one transaction: never half written).
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
	chain     string
	proto     string
	nodePort  int
	endpoints []string
}

// svcKey is a Service port's key in the services map.
func svcKey(r protocol.ServiceRule) string {
	return fmt.Sprintf("%s . %s . %d", r.IP, strings.ToLower(r.Protocol), r.Port)
}

// svcChain is the chain of a Service port: named after its key, so it
// keeps its name as other Services come and go.
func svcChain(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "svc-" + hex.EncodeToString(sum[:6])
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

func stateOf(rules []protocol.ServiceRule) map[string]svcState {
	out := make(map[string]svcState, len(rules))
	for _, r := range rules {
		k := svcKey(r)
		out[k] = svcState{chain: svcChain(k), proto: strings.ToLower(r.Protocol), nodePort: r.NodePort, endpoints: r.Endpoints}
	}
	return out
}

// elements are the map and set elements of a Service port in state st.
func (st svcState) elements(key string) (services, nodePorts, empty string) {
	if len(st.endpoints) == 0 {
		return "", "", key
	}
	services = key + " : goto " + st.chain
	if st.nodePort != 0 {
		nodePorts = fmt.Sprintf("%s . %d : goto %s", st.proto, st.nodePort, st.chain)
	}
	return services, nodePorts, ""
}

// keyOf is a map element's key ("" stays "").
func keyOf(elem string) string {
	k, _, _ := strings.Cut(elem, " : ")
	return k
}

// update is the nft script that takes the table from the Service ports in
// old to those in now, touching only those that changed (one transaction).
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
	keys := slices.Sorted(maps.Keys(old))
	for _, k := range keys {
		o := old[k]
		n, ok := now[k]
		if ok && o.nodePort == n.nodePort && slices.Equal(o.endpoints, n.endpoints) {
			continue
		}
		// A map element is deleted by its key alone.
		svc, np, empty := o.elements(k)
		del("services", keyOf(svc))
		del("nodeports", keyOf(np))
		del("no-endpoints", empty)
		if !ok {
			fmt.Fprintf(&b, "delete chain ip baton %s\n", o.chain)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(now)) {
		n := now[k]
		o, ok := old[k]
		if ok && o.nodePort == n.nodePort && slices.Equal(o.endpoints, n.endpoints) {
			continue
		}
		if !ok {
			fmt.Fprintf(&b, "add chain ip baton %s\n", n.chain)
		} else {
			fmt.Fprintf(&b, "flush chain ip baton %s\n", n.chain)
		}
		if len(n.endpoints) > 0 {
			fmt.Fprintf(&b, "add rule ip baton %s %s\n", n.chain, dnatRule(n.proto, n.endpoints))
		}
		svc, np, empty := n.elements(k)
		add("services", svc)
		add("nodeports", np)
		add("no-endpoints", empty)
	}
	return b.String()
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
	state := stateOf(rules)
	var elems, empty, nodePorts []string
	for _, k := range slices.Sorted(maps.Keys(state)) {
		svc, np, e := state[k].elements(k)
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
	if n.ClusterCIDR != "" {
		fmt.Fprintf(&b, "\t\tct status dnat ip saddr != %s masquerade\n", n.ClusterCIDR)
	}
	b.WriteString("\t}\n")
	for _, hook := range []string{"input", "forward", "output"} {
		fmt.Fprintf(&b, "\tchain filter-%s {\n\t\ttype filter hook %s priority -1; policy accept;\n\t\tip daddr . meta l4proto . th dport @no-endpoints reject\n\t}\n", hook, hook)
	}
	// A chain per Service port, named after it, whose one rule DNATs to an
	// endpoint picked at random (a map from the random number to
	// address . port): no chain per endpoint.
	for _, k := range slices.Sorted(maps.Keys(state)) {
		st := state[k]
		fmt.Fprintf(&b, "\tchain %s {\n", st.chain)
		if len(st.endpoints) > 0 {
			fmt.Fprintf(&b, "\t\t%s\n", dnatRule(st.proto, st.endpoints))
		}
		b.WriteString("\t}\n")
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
	now := stateOf(rules)
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
