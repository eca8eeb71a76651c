package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/batonhq/baton/internal/fsutil"
	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/internal/natsserver"
)

// clusterName names the NATS cluster of a Baton cluster's servers.
const clusterName = "baton"

// clusterFlags say how baton server takes part in a cluster of servers.
type clusterFlags struct {
	servers     int
	listen      string // the routes' address
	join, token string
}

func (c *clusterFlags) register(f *pflag.FlagSet) {
	f.IntVar(&c.servers, "servers", 1, "how many servers the cluster is made of, on its first server (3: the state is kept on all three and the cluster runs while two do); the others learn it when they --join")
	f.StringVar(&c.listen, "cluster-listen", "0.0.0.0:8422", "address of the routes between the servers of a cluster (mutual TLS)")
	f.StringVar(&c.join, "join", "", "join the cluster of the server whose join endpoint this is (host:8421), once: the identity and the routes are kept in the data dir")
	f.StringVar(&c.token, "token", os.Getenv("BATON_TOKEN"), "server token for --join ($BATON_TOKEN; DATA-DIR/identity/server-token on a server, or baton token create --role server)")
}

// clusterState is a clustered server's record of its cluster, kept in
// DATA-DIR/cluster.json.
type clusterState struct {
	// Name is this server's name, for good: JetStream knows its peers by
	// their names.
	Name string `json:"name"`
	// Servers is how many servers the cluster was made for.
	Servers int `json:"servers"`
	// Advertise is where the others reach this server's routes
	// (host:port), once known.
	Advertise string `json:"advertise,omitempty"`
	// Members are the servers known, by name: their route URLs.
	Members map[string]string `json:"members"`
	// Routes are route URLs given at join whose servers' names are not
	// known yet.
	Routes []string `json:"routes,omitempty"`
}

func clusterStatePath(dataDir string) string { return filepath.Join(dataDir, "cluster.json") }

// serverCluster is a clustered server's view of its cluster.
type serverCluster struct {
	path string
	port int // the routes' port

	mu    sync.Mutex
	st    clusterState
	store *join.Store // once the cluster has formed
}

// openCluster reads this server's cluster, joining it first with
// --join, or making it with --servers on the first server. It returns nil
// for a one-server cluster (no routes; JetStream unclustered).
func openCluster(ctx context.Context, dataDir, name string, cf clusterFlags) (*serverCluster, error) {
	_, portStr, err := net.SplitHostPort(cf.listen)
	if err != nil {
		return nil, fmt.Errorf("--cluster-listen %q: %w", cf.listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("--cluster-listen %q: want a port (the other servers are told it)", cf.listen)
	}
	c := &serverCluster{path: clusterStatePath(dataDir), port: port}
	b, err := os.ReadFile(c.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &c.st); err != nil || !identity.ValidName(c.st.Name) || c.st.Servers < 1 {
			return nil, fmt.Errorf("%s: not a cluster record (%v): restore it from a backup", c.path, err)
		}
		if c.st.Members == nil {
			c.st.Members = map[string]string{}
		}
		return c, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if !identity.ValidName(name) {
		return nil, fmt.Errorf("server name %q: letters, digits, '-' and '_', at most 63 (--id)", name)
	}
	c.st = clusterState{Name: name, Members: map[string]string{}}
	switch {
	case cf.join != "":
		if fileExists(filepath.Join(identityDir(dataDir), "ca.key")) {
			return nil, fmt.Errorf("--join: %s holds a cluster identity already: a server joins with a fresh data dir", dataDir)
		}
		if cf.token == "" {
			return nil, errors.New("--join needs --token (DATA-DIR/identity/server-token on the first server)")
		}
		j, err := join.JoinAsServer(ctx, nil, cf.join, cf.token, name, port)
		if err != nil {
			return nil, err
		}
		if _, err := identity.Install(identityDir(dataDir), j.Files); err != nil {
			return nil, err
		}
		c.st.Servers, c.st.Advertise, c.st.Routes = j.Cluster.Servers, j.Cluster.Advertise, j.Cluster.Routes
		c.st.Members[name] = "tls://" + j.Cluster.Advertise
	case cf.servers > 1:
		if fileExists(filepath.Join(dataDir, "nats")) {
			return nil, fmt.Errorf("--servers %d: %s holds the store of a one-server cluster; a cluster of several servers is made on a fresh data dir", cf.servers, dataDir)
		}
		c.st.Servers = cf.servers
	case cf.servers < 1:
		return nil, fmt.Errorf("--servers %d: want 1 or more", cf.servers)
	default:
		return nil, nil
	}
	if err := c.saveLocked(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *serverCluster) saveLocked() error {
	b, err := json.MarshalIndent(c.st, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(c.path, b, 0o600)
}

// replicas is how many copies of each bucket the cluster keeps.
func (c *serverCluster) replicas() int { return min(c.st.Servers, 3) }

// routes are the other servers' route URLs.
func (c *serverCluster) routes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	self := ""
	if c.st.Advertise != "" {
		self = "tls://" + c.st.Advertise
	}
	var out []string
	for n, r := range c.st.Members {
		if n != c.st.Name && r != self && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	for _, r := range c.st.Routes {
		if r != self && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// natsCluster is the embedded NATS server's cluster configuration.
func (c *serverCluster) natsCluster(id *identity.Identity, listen string, sans []string) (*natsserver.Cluster, error) {
	hosts, err := certHosts(listen, sans)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	adv := c.st.Advertise
	c.mu.Unlock()
	if h, _, err := net.SplitHostPort(adv); err == nil {
		hosts = append(hosts, h)
	}
	tc, err := id.RouteTLS(hosts...)
	if err != nil {
		return nil, err
	}
	return &natsserver.Cluster{Name: clusterName, Listen: listen, Advertise: adv, Routes: c.routes(), TLS: tc}, nil
}

// admit decides whether server name may join from remote, and tells it
// where the others are (join.Admit).
func (c *serverCluster) admit(name string, local, remote net.Addr, port int) (join.ClusterInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.st.Members[name]; ok || name == c.st.Name {
		return join.ClusterInfo{}, fmt.Errorf("%w: a server named %s is a member of the cluster: remove it first (baton server rm %s) or pick another --id", join.ErrNameTaken, name, name)
	}
	rip, ok := remote.(*net.TCPAddr)
	if !ok || rip == nil {
		return join.ClusterInfo{}, fmt.Errorf("%w: no remote address", join.ErrBadRequest)
	}
	if c.st.Advertise == "" {
		if l, ok := local.(*net.TCPAddr); ok && l != nil && !l.IP.IsUnspecified() {
			c.st.Advertise = net.JoinHostPort(l.IP.String(), strconv.Itoa(c.port))
			c.st.Members[c.st.Name] = "tls://" + c.st.Advertise
			c.recordSelfLocked()
		}
	}
	adv := net.JoinHostPort(rip.IP.String(), strconv.Itoa(port))
	var routes []string
	for _, r := range c.st.Members {
		routes = append(routes, r)
	}
	routes = append(routes, c.st.Routes...)
	slices.Sort(routes)
	routes = slices.Compact(routes)
	c.st.Members[name] = "tls://" + adv
	if err := c.saveLocked(); err != nil {
		return join.ClusterInfo{}, err
	}
	return join.ClusterInfo{Servers: c.st.Servers, Routes: routes, Advertise: adv}, nil
}

// recordSelfLocked records this server's route in the bucket, once the
// cluster has one and the route is known; c.mu is held.
func (c *serverCluster) recordSelfLocked() {
	if c.store == nil || c.st.Advertise == "" {
		return
	}
	st, name, route := c.store, c.st.Name, "tls://"+c.st.Advertise
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = st.PutServer(ctx, name, route)
	}()
}

// follow records this server in the cluster's bucket and keeps the record
// of members in step with it until ctx ends: a server restarted later
// dials every member it knows.
func (c *serverCluster) follow(ctx context.Context, st *join.Store) error {
	c.mu.Lock()
	c.store = st
	c.recordSelfLocked()
	c.mu.Unlock()
	return st.WatchServers(ctx, func(name, route string) { c.noteServer(ctx, name, route) })
}

// noteServer records server name's route from the cluster's bucket: ""
// once it was removed (baton server rm), when every server forgets it.
func (c *serverCluster) noteServer(ctx context.Context, name, route string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name == c.st.Name {
		return
	}
	gone := route
	if route == "" {
		gone = c.st.Members[name]
		delete(c.st.Members, name)
	} else {
		c.st.Members[name] = route
	}
	// A route given at join is now known by name (or gone).
	c.st.Routes = slices.DeleteFunc(c.st.Routes, func(r string) bool { return r == gone })
	if err := c.saveLocked(); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("keep the cluster's members")
	}
}

// runEmbeddedServer runs baton server with its own NATS server: alone, or
// a member of a cluster of servers.
func runEmbeddedServer(cmd *cobra.Command, so serverOptions, cf clusterFlags, natsListen string, sans []string) error {
	ctx := cmd.Context()
	log := zerolog.Ctx(ctx)
	name := so.id
	if name == "" {
		name, _ = os.Hostname()
	}
	member := fileExists(clusterStatePath(so.dataDir))
	cl, err := openCluster(ctx, so.dataDir, credName(name), cf)
	if err != nil {
		return err
	}
	var bc *busCluster
	if cl != nil {
		bc = &busCluster{c: cl, listen: cf.listen}
		if !cmd.Flags().Changed("kv-replicas") {
			so.bucketReplicas = cl.replicas()
		}
		if so.id == "" {
			so.id = cl.st.Name
		}
		if cf.join != "" && member {
			log.Info().Str("server", cl.st.Name).Msg("this data dir's server is a member of its cluster already: --join is ignored")
		}
	}
	sb, err := startSecureNATS(log, natsListen, so.dataDir, sans, bc)
	if err != nil {
		return err
	}
	defer sb.ns.Shutdown()
	if cl != nil {
		auth := newAuthority(sb, so.join)
		auth.Admit = cl.admit
		stop, bound, err := serveJoinEndpoint(*log, auth, sb, so.join)
		if err != nil {
			return err
		}
		defer stop()
		so.join.auth, so.join.cluster, so.join.bound = auth, cl, bound
		if _, err := join.ServerToken(sb.id); err != nil {
			return err
		}
		log.Info().Str("server", cl.st.Name).Int("servers", cl.st.Servers).Strs("routes", cl.routes()).
			Str("serverToken", filepath.Join(identityDir(so.dataDir), "server-token")).
			Msg("cluster of servers: the others join with baton server --join THIS-HOST:8421 --token $(cat the server token)")
	}
	// Nothing is buffered while cut off: a command is sent now or fails,
	// never replayed later by the client library.
	nc, err := sb.local(identity.RoleServer, credName(so.serverID()), nats.ReconnectBufSize(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	so.bus = sb
	so.cluster = cl
	log.Info().Str("nats", sb.ns.ClientURL()).Str("admin", adminCredsPath(so.dataDir)).
		Str("ca", sb.id.CAFingerprint()).Msg("cluster bus: JWT auth and TLS")
	return runServer(ctx, nc, so)
}

// aloneRetry is how long a server of its own tries again to open what its
// embedded JetStream answered with a server-side error (it can while it
// starts, on a loaded machine) before it gives up.
const aloneRetry = 30 * time.Second

// openAlone opens what open opens on a server of its own, trying again,
// and saying why, while JetStream answers with a server-side error or not
// at all, for up to aloneRetry.
func openAlone[T any](ctx context.Context, what string, open func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(aloneRetry)
	for {
		v, err := open(ctx)
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return v, fatal.err
		}
		if err == nil || !transientJetStream(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return v, err
		}
		zerolog.Ctx(ctx).Warn().Err(err).Str("what", what).Msg("JetStream refused for now: trying again")
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// transientJetStream reports whether err is JetStream failing on its side
// (an API error of code 500 or more, no answer yet): worth a second try.
func transientJetStream(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.Code >= 500
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// fatalError is an error that waiting for the cluster does not mend.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// untilFormed runs do as openWhenFormed opens.
func untilFormed(ctx context.Context, cl *serverCluster, what string, do func(context.Context) error) error {
	_, err := openWhenFormed(ctx, cl, what, func(ctx context.Context) (struct{}, error) { return struct{}{}, do(ctx) })
	return err
}

// openWhenFormed opens what open opens, trying again while the cluster is
// forming (fewer servers than it was made for have joined) or has lost
// its majority, and saying so every few seconds.
func openWhenFormed[T any](ctx context.Context, cl *serverCluster, what string, open func(context.Context) (T, error)) (T, error) {
	if cl == nil {
		return openAlone(ctx, what, open)
	}
	log := zerolog.Ctx(ctx)
	var said time.Time
	for {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := open(octx)
		cancel()
		var fatal *fatalError
		switch {
		case err == nil:
			return v, nil
		case errors.As(err, &fatal):
			return v, fatal.err
		case ctx.Err() != nil:
			return v, ctx.Err()
		}
		if time.Since(said) > 5*time.Second {
			log.Warn().Err(err).Int("servers", cl.st.Servers).Str("what", what).
				Msg("waiting for the cluster's servers: the store needs a majority of them (baton server --join on the others)")
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
