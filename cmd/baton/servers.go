package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler/httpapi"
)

// serverInfo is a server of the cluster as baton server ls shows it.
type serverInfo struct {
	Name    string `json:"name"`
	Route   string `json:"route,omitempty"`
	Leader  bool   `json:"leader"`  // leads JetStream's meta group (the store), not the reconciler
	Current bool   `json:"current"` // caught up with the leader
	Offline bool   `json:"offline"`
	Seen    string `json:"seen,omitempty"` // since the leader last heard from it
	Lag     uint64 `json:"lag,omitempty"`  // operations behind
}

// serverList is the cluster's servers: every server answering the system
// account's JetStream ping is running; the store's leader says how far
// behind each follower is.
func serverList(ctx context.Context, sb *secureBus, cl *serverCluster) ([]serverInfo, error) {
	routes := map[string]string{}
	if cl != nil {
		cl.mu.Lock()
		for n, r := range cl.st.Members {
			routes[n] = r
		}
		cl.mu.Unlock()
	}
	self := sb.ns.Name()
	if cl == nil {
		return []serverInfo{{Name: self, Leader: true, Current: true}}, nil
	}
	answers, err := pingJSZ(ctx, sb, len(routes))
	if err != nil {
		return nil, err
	}
	byName := map[string]*serverInfo{}
	for n, r := range routes {
		byName[n] = &serverInfo{Name: n, Route: r, Offline: true, Seen: "not answering"}
	}
	get := func(n string) *serverInfo {
		if byName[n] == nil {
			byName[n] = &serverInfo{Name: n, Route: routes[n], Offline: true}
		}
		return byName[n]
	}
	for n, jsz := range answers {
		s := get(n)
		s.Offline, s.Seen = false, ""
		if jsz.Meta == nil || jsz.Meta.Leader != n {
			continue
		}
		s.Leader, s.Current = true, true
		for _, p := range jsz.Meta.Replicas {
			f := get(p.Name)
			f.Current, f.Lag = p.Current && !p.Offline, p.Lag
			if f.Offline {
				f.Seen = p.Active.Round(time.Millisecond).String() + " ago"
			}
		}
	}
	out := make([]serverInfo, 0, len(byName))
	for _, s := range byName {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b serverInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// pingJSZ asks every server of the cluster for its JetStream view, over
// the system account, and gathers the answers for up to a second (or
// until want have answered).
func pingJSZ(ctx context.Context, sb *secureBus, want int) (map[string]*server.JSInfo, error) {
	nc, err := sb.systemConn("baton-server-ls")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$SYS.REQ.SERVER.PING.JSZ", inbox, []byte("{}")); err != nil {
		return nil, err
	}
	out := map[string]*server.JSInfo{}
	deadline := time.After(time.Second)
	for len(out) < want || want == 0 {
		select {
		case m := <-ch:
			var a struct {
				Server *server.ServerInfo `json:"server"`
				Data   *server.JSInfo     `json:"data"`
			}
			if json.Unmarshal(m.Data, &a) == nil && a.Server != nil && a.Data != nil {
				out[a.Server.Name] = a.Data
			}
		case <-deadline:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

// removeServer removes server name from the cluster for good: JetStream
// stops counting it (its replicas move to the servers left) and every
// server stops dialing it. A server still running is refused: stop it
// first, or it would come back.
func removeServer(ctx context.Context, sb *secureBus, cl *serverCluster, st *join.Store, name string) error {
	if cl == nil {
		return &httpapi.AnswerError{Code: 400, Msg: "this cluster has one server: there is no other server to remove"}
	}
	list, err := serverList(ctx, sb, cl)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(list, func(s serverInfo) bool { return s.Name == name })
	if i < 0 {
		return &httpapi.AnswerError{Code: 404, Msg: fmt.Sprintf("no server named %s (baton server ls)", name)}
	}
	if !list[i].Offline || name == cl.st.Name {
		return &httpapi.AnswerError{Code: 409, Msg: fmt.Sprintf("server %s is running: stop it first (a running server would take its place again)", name)}
	}
	nc, err := sb.systemConn("baton-server-rm")
	if err != nil {
		return err
	}
	defer nc.Close()
	body, _ := json.Marshal(server.JSApiMetaServerRemoveRequest{Server: name})
	m, err := nc.RequestWithContext(ctx, server.JSApiRemoveServer, body)
	if err != nil {
		return fmt.Errorf("remove %s from the store's peers: %w", name, err)
	}
	var ans server.JSApiMetaServerRemoveResponse
	if err := json.Unmarshal(m.Data, &ans); err != nil {
		return fmt.Errorf("remove %s from the store's peers: %w", name, err)
	}
	if ans.Error != nil && !ans.Success {
		return fmt.Errorf("remove %s from the store's peers: %s", name, ans.Error.Description)
	}
	// Every server (this one too) forgets it from the deletion (follow).
	return st.DeleteServer(ctx, name)
}

// serverHandlers answer baton server ls and rm over the bus.
func serverHandlers(sb *secureBus, cl *serverCluster, st *join.Store) map[string]httpapi.Handler {
	return map[string]httpapi.Handler{
		protocol.ServersSubject: func(ctx context.Context, _ []byte) (any, error) { return serverList(ctx, sb, cl) },
		protocol.ServerRemoveSubject: func(ctx context.Context, body []byte) (any, error) {
			var req struct{ Name string }
			if err := json.Unmarshal(body, &req); err != nil || !identity.ValidName(req.Name) {
				return nil, &httpapi.AnswerError{Code: 400, Msg: `want {"name": SERVER}`}
			}
			if err := removeServer(ctx, sb, cl, st, req.Name); err != nil {
				return nil, err
			}
			return map[string]string{"server": req.Name}, nil
		},
	}
}

// serverSubcommands are baton server ls and baton server rm.
func serverSubcommands() []*cobra.Command {
	var bus busFlags
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the cluster's servers: which leads the store, which are current, offline, behind",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list []serverInfo
			if err := ask(cmd.Context(), bus, "baton-server-ls", protocol.ServersSubject, nil, &list); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTORE\tSTATE\tSEEN\tLAG\tROUTE")
			for _, s := range list {
				role, state := "follower", "current"
				if s.Leader {
					role = "leader"
				}
				switch {
				case s.Offline:
					state = "offline"
				case !s.Current:
					state = "catching up"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, role, state, s.Seen, s.Lag, s.Route)
			}
			return w.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a stopped server from the cluster for good (its machine is gone); a replacement joins with the server token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := ask(cmd.Context(), bus, "baton-server-rm", protocol.ServerRemoveSubject, map[string]string{"name": args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server %s removed from the cluster\n", args[0])
			return nil
		},
	}
	bus.register(ls.Flags())
	bus.register(rm.Flags())
	return []*cobra.Command{ls, rm}
}
