package reconciler

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// netRetry is how long after a failed send it is tried again.
const netRetry = 10 * time.Second

// NetworkResend is how often a node is sent its routes again although
// they did not change (a host that rebooted has lost them).
const NetworkResend = time.Minute

// NetworkRoutes are the routes node programs: every other node's pod
// subnet through that node's address, from their heartbeats (nodes that
// report no subnet or no address have none), sorted by node. Pure.
func NetworkRoutes(heartbeats map[string]protocol.Heartbeat, node string) []protocol.Route {
	return routesFor(routeTable(heartbeats), node)
}

// routeTable is every node's route (its pod subnet through its address),
// sorted by node.
func routeTable(heartbeats map[string]protocol.Heartbeat) []protocol.Route {
	out := make([]protocol.Route, 0, len(heartbeats))
	for name, hb := range heartbeats {
		// A node that gave no address others can use (none, loopback) has
		// no route: it must not spoil every other node's routes.
		if ip := net.ParseIP(hb.Address); hb.PodSubnet != "" && ip != nil && ip.To4() != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
			out = append(out, protocol.Route{Node: name, Subnet: hb.PodSubnet, Via: hb.Address})
		}
	}
	slices.SortFunc(out, func(a, b protocol.Route) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// routesFor is table without node's own route.
func routesFor(table []protocol.Route, node string) []protocol.Route {
	return slices.DeleteFunc(slices.Clone(table), func(r protocol.Route) bool { return r.Node == node })
}

// netSent is the routes last sent to a node.
type netSent struct {
	key string
	at  time.Time
}

// netJob is a command for a node's network (its routes, or the Service
// rules) to send beside the loop.
type netJob struct {
	node string
	kind string // "routes" or "services": a failure is retried for its kind
	cmd  protocol.Command
}

// netFailure names a failed netJob.
type netFailure struct{ kind, node string }

// networkQueue bounds the route updates waiting to be sent.
const networkQueue = 4096

// syncNetwork queues, for every ready node with a pod network, its routes
// when they changed (a node joined, left or moved), when it came back,
// and every NetworkResend. The sends happen beside the loop
// (networkWorker): a slow node never holds a pass up.
func (r *Reconciler) syncNetwork(now time.Time) {
	st := r.st
	r.netMu.Lock()
	// A failed send is tried again netRetry later (at once if what the
	// node should have changed meanwhile): a node that cannot take it is
	// not asked every pass.
	for f := range r.netFailed {
		sent := st.netSent
		if f.kind != "routes" {
			sent = st.svcSent
		}
		if s, ok := sent[f.node]; ok {
			sent[f.node] = netSent{key: s.key, at: now.Add(netRetry - NetworkResend)}
		}
	}
	clear(r.netFailed)
	r.netMu.Unlock()
	// One table and one key a pass (each node's routes are the table
	// without its own): a pass with nothing to send builds no per-node
	// list.
	heartbeats := make(map[string]protocol.Heartbeat, len(st.nodes))
	for name, n := range st.nodes {
		heartbeats[name] = n.hb
	}
	table := routeTable(heartbeats)
	key := fmt.Sprint(table)
	for name, n := range st.nodes {
		if n.hb.PodSubnet == "" || !NodeReady(st.views[name], now, r.cfg.NodeGrace) {
			continue
		}
		if s, ok := st.netSent[name]; ok && s.key == key && now.Sub(s.at) < NetworkResend {
			continue
		}
		cmd := protocol.Command{Version: protocol.Version, Op: protocol.OpNetwork, Network: &protocol.Network{Routes: routesFor(table, name)}}
		select {
		case r.netq <- netJob{node: name, kind: "routes", cmd: cmd}:
			st.netSent[name] = netSent{key: key, at: now}
		default: // full: queued at a later pass
		}
	}
}

// networkWorker sends the queued route updates, several nodes at once,
// until ctx ends; a failed send is queued again by the next pass.
func (r *Reconciler) networkWorker(ctx context.Context) {
	log := zerolog.Ctx(ctx)
	var g errgroup.Group
	g.SetLimit(maxNodesInFlight)
	defer func() { _ = g.Wait() }()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-r.netq:
			g.Go(func() error {
				_, err := r.command(ctx, j.node, j.cmd)
				if err != nil {
					if ctx.Err() == nil {
						log.Warn().Err(err).Str("node", j.node).Str("what", j.kind).Msg("send the node its pod network")
					}
					r.netMu.Lock()
					r.netFailed[netFailure{j.kind, j.node}] = true
					r.netMu.Unlock()
				}
				return nil
			})
		}
	}
}

// serviceIPPrefix keys a Service's virtual address in the state bucket,
// nodePortPrefix a Service port's node port.
const (
	serviceIPPrefix = "svcip."
	nodePortPrefix  = "nodeport."
)

// syncServices gives the Services of the revision in force their
// addresses (kept in KV), and queues for every ready node with a pod
// network the rules of every Service when they changed (an endpoint became
// ready or not, a node was lost, a Service came or went) and every
// NetworkResend.
func (r *Reconciler) syncServices(ctx context.Context, d *desired.State, live *Live, now time.Time) {
	st := r.st
	if d == nil {
		return // no revision yet: the addresses held stay
	}
	ips, errs := AllocateServiceIPs(d.Services, st.serviceIPs, r.cfg.ServiceCIDR)
	ports, portErrs := AllocateNodePorts(d.Services, st.nodePorts)
	writes := append(changedKeys(serviceIPPrefix, st.serviceIPs, ips), changedKeys(nodePortPrefix, st.nodePorts, ports)...)
	for name, why := range portErrs {
		if errs[name] == "" {
			errs[name] = why
		}
	}
	r.save(ctx, writes)
	st.serviceIPs, st.nodePorts = ips, ports
	for name, why := range errs {
		if st.serviceErrs[name] != why {
			r.events(fmt.Sprintf("service %s has no address: %s", name, why))
		}
	}
	st.serviceErrs = errs
	rules := ServiceRules(d, ips, ports, live)
	records := DNSRecords(d, ips, live)
	st.services = serviceStatuses(d.Services, ips, errs, rules)
	key := fmt.Sprint(rules, records)
	if key != st.rulesKey {
		if changed := endpointChanges(st.rules, rules); st.rulesKey != "" && changed != "" {
			r.events("service endpoints changed: " + changed)
		}
		st.rulesKey, st.rules = key, rules
	}
	for name, n := range st.nodes {
		if n.hb.PodSubnet == "" || !NodeReady(st.views[name], now, r.cfg.NodeGrace) {
			continue
		}
		if s, ok := st.svcSent[name]; ok && s.key == key && now.Sub(s.at) < NetworkResend {
			continue
		}
		cmd := protocol.Command{Version: protocol.Version, Op: protocol.OpServices, Services: rules, DNS: records}
		select {
		case r.netq <- netJob{node: name, kind: "services", cmd: cmd}:
			st.svcSent[name] = netSent{key: key, at: now}
		default:
		}
	}
}

// changedKeys are the KV writes that take the records under prefix from
// old to now: those new or changed, and deletions of those gone.
func changedKeys[T comparable](prefix string, old, now map[string]T) []kvWrite {
	var out []kvWrite
	for k, v := range now {
		if o, ok := old[k]; !ok || o != v {
			out = append(out, kvWrite{key: prefix + k, value: v})
		}
	}
	for k := range old {
		if _, ok := now[k]; !ok {
			out = append(out, kvWrite{key: prefix + k})
		}
	}
	return out
}

// endpointChanges says which Service ports' endpoints changed between two
// passes' rules, with their ready count now (at most 10 named).
func endpointChanges(before, after []protocol.ServiceRule) string {
	key := func(r protocol.ServiceRule) string { return fmt.Sprintf("%s:%d", r.Service, r.Port) }
	old := make(map[string][]string, len(before))
	for _, r := range before {
		old[key(r)] = r.Endpoints
	}
	var parts []string
	more := 0
	for _, r := range after {
		if e, ok := old[key(r)]; ok && slices.Equal(e, r.Endpoints) {
			continue
		}
		if len(parts) == 10 {
			more++
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d ready", key(r), len(r.Endpoints)))
	}
	if more > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", more))
	}
	return strings.Join(parts, ", ")
}

// serviceStatuses are the Services as status shows them.
func serviceStatuses(services []desired.Service, ips, errs map[string]string, rules []protocol.ServiceRule) []ServiceStatus {
	ports := make(map[string][]ServicePortStatus, len(services))
	for _, r := range rules {
		ports[r.Service] = append(ports[r.Service], ServicePortStatus{Port: r.Port, Protocol: r.Protocol, NodePort: r.NodePort, Endpoints: r.Endpoints})
	}
	out := make([]ServiceStatus, 0, len(services))
	for _, s := range services {
		ss := ServiceStatus{Name: s.Name, IP: ips[s.Name], Error: errs[s.Name], Ports: ports[s.Name]}
		if headless(s) {
			ss.IP = "None"
		}
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}
