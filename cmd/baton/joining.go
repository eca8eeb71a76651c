package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
)

// joinOptions configure the join endpoint of a server holding the identity.
type joinOptions struct {
	listen   string       // HTTPS address of the join endpoint ("" for none)
	listener net.Listener // tests: a listener made already (wins over listen)
	agentTTL time.Duration
	// auth, when set, is an authority whose endpoint the caller serves
	// already (a server of a cluster admits servers before its store is
	// up); serveJoining gives it the store.
	auth *join.Authority
	// cluster, when set, is this server's cluster of servers: its members
	// are kept in step with the store.
	cluster *serverCluster
	// bound is the address the endpoint listens on, once it does;
	// advertise the address node pools' machines are told to join at
	// (--join-advertise; "": bound's, with the machine's address for an
	// unspecified host).
	bound     string
	advertise string
}

// newAuthority is the join authority of the embedded bus sb.
func newAuthority(sb *secureBus, o joinOptions) *join.Authority {
	port := 0
	if a, ok := sb.ns.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	return &join.Authority{ID: sb.id, NATS: sb.ns, NATSPort: port, AgentTTL: o.agentTTL}
}

// serveJoinEndpoint serves auth's HTTPS join endpoint on o's listener, if
// any, until stop is called.
func serveJoinEndpoint(log zerolog.Logger, auth *join.Authority, sb *secureBus, o joinOptions) (stop func(), addr string, err error) {
	ln := o.listener
	if ln == nil && o.listen == "" {
		return func() {}, "", nil
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", o.listen); err != nil {
			return nil, "", fmt.Errorf("join listener: %w", err)
		}
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	hosts, err := certHosts(net.JoinHostPort(host, "0"), nil)
	if err != nil {
		ln.Close()
		return nil, "", err
	}
	tc, err := sb.id.ServerTLS(hosts...)
	if err != nil {
		ln.Close()
		return nil, "", err
	}
	srv := &http.Server{Handler: auth.Handler(log), TLSConfig: tc, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	log.Info().Str("address", ln.Addr().String()).Msg("join endpoint (HTTPS; baton agent --join)")
	return serveHTTP(log, srv, tlsListener(ln, tc), "join endpoint"), ln.Addr().String(), nil
}

// serveJoining runs what a server holding the cluster identity does for
// joining: the HTTPS join endpoint (unless o.auth is served already),
// agents' renewals on the bus, every server's revocations applied to this
// one's NATS server, and the operators' token, credentials and node
// removal requests (returned, for ServeNATS), and what node pools need of
// joining (returned, for the reconciler). forget drops a removed node
// from the leader's view.
func serveJoining(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, sb *secureBus, o joinOptions, replicas int, forget func(string)) (map[string]httpapi.Handler, reconciler.Machines, func(), error) {
	log := zerolog.Ctx(ctx)
	st, err := openWhenFormed(ctx, o.cluster, "joining", func(ctx context.Context) (*join.Store, error) {
		return join.OpenStore(ctx, js, replicas)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	auth := o.auth
	stops := []func(){}
	stop := func() {
		for _, f := range stops {
			f()
		}
	}
	if auth == nil {
		auth = newAuthority(sb, o)
		stopEndpoint, bound, err := serveJoinEndpoint(*log, auth, sb, o)
		if err != nil {
			return nil, nil, nil, err
		}
		o.bound = bound
		stops = append(stops, stopEndpoint)
	}
	auth.SetStore(st)
	// Root's admin credential and this process's own agent are listed,
	// and their names held, as any other's: a token cannot take over the
	// node of baton up, and node rm revokes it.
	locals := []*identity.Credential{}
	if c, err := identity.ReadCreds(adminCredsPath(sb.dataDir)); err == nil {
		locals = append(locals, c)
	}
	sb.mu.Lock()
	locals = append(locals, sb.agents...)
	sb.mu.Unlock()
	for _, c := range locals {
		rec := join.Credential{PublicKey: c.PublicKey, Role: c.Role, Name: c.Name, Joined: c.Issued}
		if err := untilFormed(ctx, o.cluster, "record "+c.Name, func(ctx context.Context) error { return auth.RecordLocal(ctx, rec) }); err != nil {
			stop()
			return nil, nil, nil, err
		}
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	stops = append(stops, stopWatch)
	applyRevocation := func(pub string, at int64) {
		if fresh, err := sb.id.RevokeAt(pub, at); err != nil || !fresh {
			return
		}
		if err := sb.id.UpdateServer(sb.ns); err != nil {
			log.Error().Err(err).Msg("push a revocation made by another server to this nats server")
			return
		}
		log.Info().Str("key", pub).Msg("revocation made by another server applied")
	}
	if err := untilFormed(ctx, o.cluster, "revocations", func(context.Context) error {
		return st.WatchRevocations(watchCtx, applyRevocation)
	}); err != nil {
		stop()
		return nil, nil, nil, err
	}
	if o.cluster != nil {
		if err := untilFormed(ctx, o.cluster, "servers", func(context.Context) error { return o.cluster.follow(watchCtx, st) }); err != nil {
			stop()
			return nil, nil, nil, err
		}
	}
	stopRenew, err := auth.ServeRenewals(ctx, nc)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	stops = append(stops, stopRenew)
	coded := func(err error) error {
		if err == nil {
			return nil
		}
		return &httpapi.AnswerError{Code: join.StatusOf(err), Msg: err.Error()}
	}
	handlers := serverHandlers(sb, o.cluster, st)
	for subj, h := range map[string]httpapi.Handler{
		protocol.TokenSubject: func(ctx context.Context, body []byte) (any, error) {
			var req join.TokenRequest
			if err := json.Unmarshal(body, &req); err != nil {
				return nil, coded(fmt.Errorf("%w: want {\"role\": \"agent|admin|viewer\", \"ttl\": \"1h\"}", join.ErrBadRequest))
			}
			ans, err := auth.CreateToken(ctx, req)
			return ans, coded(err)
		},
		protocol.CredentialsSubject: func(ctx context.Context, _ []byte) (any, error) {
			creds, err := st.Credentials(ctx)
			return creds, coded(err)
		},
		protocol.NodeRemoveSubject: func(ctx context.Context, body []byte) (any, error) {
			var req struct{ Name string }
			if err := json.Unmarshal(body, &req); err != nil || !identity.ValidName(req.Name) {
				return nil, coded(fmt.Errorf("%w: want {\"name\": NODE}", join.ErrBadRequest))
			}
			n, err := auth.Remove(ctx, identity.RoleAgent, req.Name)
			if err != nil {
				return nil, coded(err)
			}
			if n == 0 {
				return nil, coded(fmt.Errorf("%w: no node named %s holds a credential (baton node ls)", join.ErrNotJoined, req.Name))
			}
			forget(req.Name)
			return map[string]string{"node": req.Name, "revoked": strconv.Itoa(n)}, nil
		},
		protocol.UserRemoveSubject: func(ctx context.Context, body []byte) (any, error) {
			var req struct {
				Name string
				Role identity.Role
			}
			if err := json.Unmarshal(body, &req); err != nil || !identity.ValidName(req.Name) || (req.Role != identity.RoleAdmin && req.Role != identity.RoleViewer) {
				return nil, coded(fmt.Errorf("%w: want {\"name\": USER, \"role\": \"admin|viewer\"}", join.ErrBadRequest))
			}
			n, err := auth.Remove(ctx, req.Role, req.Name)
			if err != nil {
				return nil, coded(err)
			}
			if n == 0 {
				return nil, coded(fmt.Errorf("%w: no %s named %s", join.ErrNotJoined, req.Role, req.Name))
			}
			return map[string]string{"user": req.Name, "revoked": strconv.Itoa(n)}, nil
		},
	} {
		handlers[subj] = h
	}
	return handlers, newPoolMachines(auth, o), stop, nil
}

// tlsListener serves TLS with tc on ln.
func tlsListener(ln net.Listener, tc *tls.Config) net.Listener { return tls.NewListener(ln, tc) }

// watchDisconnects tells the leader when an agent's connection to the
// embedded bus closes (the server's system events): a dead agent's node is
// lost after reconciler.DisconnectGrace instead of the node grace. Only
// the events of agent credentials count; the node is the name in the
// credential the server checked.
func watchDisconnects(ctx context.Context, sb *secureBus, leader func() *reconciler.Reconciler) (stop func(), err error) {
	nc, err := sb.systemConn("baton-events")
	if err != nil {
		return nil, err
	}
	log := zerolog.Ctx(ctx)
	// The events come on one subscription, in the order the server sent
	// them; a node's disconnection counts only if it is of its latest
	// connection (a restarted agent may connect before the old one's
	// connection is closed). In a cluster every server's events come here;
	// a connection is named by its server and its client ID there.
	type conn struct {
		server string
		id     uint64
	}
	latest := map[string]conn{} // node → its newest connection
	_, err = nc.Subscribe("$SYS.ACCOUNT."+sb.id.AccountPublicKey()+".*", func(m *nats.Msg) {
		connect := strings.HasSuffix(m.Subject, ".CONNECT")
		if !connect && !strings.HasSuffix(m.Subject, ".DISCONNECT") {
			return
		}
		var ev server.DisconnectEventMsg // a connect event has the same fields but Reason
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			log.Warn().Err(err).Str("subject", m.Subject).Msg("connection event: not understood")
			return
		}
		if !slices.Contains(ev.Client.Tags, "role:"+string(identity.RoleAgent)) {
			return
		}
		who, err := identity.Describe(ev.Client.Jwt)
		if err != nil || who.Role != identity.RoleAgent || !identity.ValidName(who.Name) {
			return
		}
		rec := leader()
		switch {
		case connect:
			latest[who.Name] = conn{ev.Server.ID, ev.Client.ID}
			if rec != nil {
				rec.NodeConnected(who.Name, ev.Time)
			}
		case latest[who.Name] == conn{} || latest[who.Name] == conn{ev.Server.ID, ev.Client.ID}:
			log.Info().Str("node", who.Name).Str("reason", ev.Reason).Msg("agent disconnected")
			if rec != nil {
				rec.NodeDisconnected(who.Name, ev.Time)
			}
		}
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return nc.Close, nil
}
