package reconciler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// NetworkResend is how often a node is sent its routes again although
// they did not change (a host that rebooted has lost them).
const NetworkResend = time.Minute

// NetworkRoutes are the routes node programs: every other node's pod
// subnet through that node's address, from their heartbeats (nodes that
// report no subnet or no address have none), sorted by node. Pure.
func NetworkRoutes(heartbeats map[string]protocol.Heartbeat, node string) []protocol.Route {
	out := make([]protocol.Route, 0, len(heartbeats))
	for name, hb := range heartbeats {
		if name == node || hb.PodSubnet == "" || hb.Address == "" {
			continue
		}
		out = append(out, protocol.Route{Node: name, Subnet: hb.PodSubnet, Via: hb.Address})
	}
	slices.SortFunc(out, func(a, b protocol.Route) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// netSent is the routes last sent to a node.
type netSent struct {
	key string
	at  time.Time
}

// netJob is a node's routes to send.
type netJob struct {
	node   string
	routes []protocol.Route
}

// networkQueue bounds the route updates waiting to be sent.
const networkQueue = 4096

// syncNetwork queues, for every ready node with a pod network, its routes
// when they changed (a node joined, left or moved), when it came back,
// and every NetworkResend. The sends happen beside the loop
// (networkWorker): a slow node never holds a pass up.
func (r *Reconciler) syncNetwork(now time.Time) {
	st := r.st
	r.netMu.Lock()
	for node := range r.netFailed {
		delete(st.netSent, node) // tried again now
	}
	clear(r.netFailed)
	r.netMu.Unlock()
	heartbeats := make(map[string]protocol.Heartbeat, len(st.nodes))
	for name, n := range st.nodes {
		heartbeats[name] = n.hb
	}
	for name, n := range st.nodes {
		if n.hb.PodSubnet == "" || !NodeReady(st.views[name], now, r.cfg.NodeGrace) {
			continue
		}
		routes := NetworkRoutes(heartbeats, name)
		key := fmt.Sprint(routes)
		if s, ok := st.netSent[name]; ok && s.key == key && now.Sub(s.at) < NetworkResend {
			continue
		}
		select {
		case r.netq <- netJob{node: name, routes: routes}:
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
				_, err := r.command(ctx, j.node, protocol.Command{Version: protocol.Version, Op: protocol.OpNetwork, Network: &protocol.Network{Routes: j.routes}})
				if err != nil {
					if ctx.Err() == nil {
						log.Warn().Err(err).Str("node", j.node).Msg("send the node its routes to other nodes' pods")
					}
					r.netMu.Lock()
					r.netFailed[j.node] = true
					r.netMu.Unlock()
				}
				return nil
			})
		}
	}
}
