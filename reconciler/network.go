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

// syncNetwork sends every ready node with a pod network its routes when
// they changed (a node joined, left or moved), and again every
// NetworkResend.
func (r *Reconciler) syncNetwork(ctx context.Context, now time.Time) {
	st := r.st
	heartbeats := make(map[string]protocol.Heartbeat, len(st.nodes))
	for name, n := range st.nodes {
		heartbeats[name] = n.hb
	}
	type send struct {
		node   string
		routes []protocol.Route
		key    string
		err    error
	}
	var sends []*send
	for name, n := range st.nodes {
		if n.hb.PodSubnet == "" || !NodeReady(st.views[name], now, r.cfg.NodeGrace) {
			continue
		}
		routes := NetworkRoutes(heartbeats, name)
		key := fmt.Sprint(routes)
		if s, ok := st.netSent[name]; ok && s.key == key && now.Sub(s.at) < NetworkResend {
			continue
		}
		sends = append(sends, &send{node: name, routes: routes, key: key})
	}
	if len(sends) == 0 {
		return
	}
	var g errgroup.Group
	g.SetLimit(maxNodesInFlight)
	for _, s := range sends {
		g.Go(func() error {
			_, s.err = r.command(ctx, s.node, protocol.Command{Version: protocol.Version, Op: protocol.OpNetwork, Network: &protocol.Network{Routes: s.routes}})
			return nil
		})
	}
	_ = g.Wait()
	for _, s := range sends {
		if s.err != nil {
			zerolog.Ctx(ctx).Warn().Err(s.err).Str("node", s.node).Msg("send the node its routes to other nodes' pods")
			delete(st.netSent, s.node) // tried again next pass
			continue
		}
		st.netSent[s.node] = netSent{key: s.key, at: now}
	}
}
