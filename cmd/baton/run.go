package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/gitsource"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
	"github.com/batonhq/baton/reconciler/lease"
	"github.com/batonhq/baton/reconciler/store"
	"github.com/batonhq/baton/schedule"
)

// serverOptions configure the reconciler and the git source it follows.
type serverOptions struct {
	repo, branch, path string
	poll               time.Duration
	dataDir            string
	nodeGrace          time.Duration
	bucketReplicas     int
	secretKey          string // age identity file for SealedSecrets
	git                gitFlags
	id                 string         // this server's name in the leader lease
	leaseTTL           time.Duration  // 0: DefaultLeaseTTL
	placement          string         // spread (default) or binpack
	apiListen          string         // control-plane HTTP API address ("" for none)
	apiListener        net.Listener   // tests: a listener made already (wins over apiListen)
	apiTokens          string         // tokens file for the API ("": open)
	bus                *secureBus     // the embedded bus and the identity, when this process holds them
	cluster            *serverCluster // this server's cluster of servers (nil: the only one)
	join               joinOptions    // the join endpoint (with bus only)
	provisionerDirs    []string       // --provisioner-dir: NodePools' executables
}

// serverID is this server's name in the leader lease.
func (o serverOptions) serverID() string {
	if o.id == "" {
		return defaultServerID()
	}
	return o.id
}

// runServer runs the reconciler, fed by a git source, until ctx ends.
func runServer(ctx context.Context, nc *nats.Conn, o serverOptions) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	st, err := openWhenFormed(ctx, o.cluster, "state", func(ctx context.Context) (*store.Store, error) {
		return store.Open(ctx, js, o.bucketReplicas)
	})
	if err != nil {
		return err
	}
	if err := applyRestore(ctx, js, o); err != nil {
		return err
	}
	if _, err := openWhenFormed(ctx, o.cluster, "images", func(ctx context.Context) (*nodeagent.ObjectImageStore, error) {
		return nodeagent.ExistingImageStore(ctx, js, o.bucketReplicas)
	}); err != nil {
		return err
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	go nodeagent.RelayPushes(relayCtx, js, nc)
	metrics := httpapi.NewMetrics()
	gcfg := gitsource.Config{URL: o.repo, Branch: o.branch, Path: o.path, CacheDir: filepath.Join(o.dataDir, "git"), OnFetch: metrics.FetchDone}
	if err := o.git.apply(&gcfg); err != nil {
		return err
	}
	src, err := gitsource.New(gcfg)
	if err != nil {
		return err
	}
	hook, stopHook, err := o.git.webhook(*zerolog.Ctx(ctx), src)
	if err != nil {
		return err
	}
	defer stopHook()
	cfg := reconciler.Config{NATS: nc, Store: st, NodeGrace: o.nodeGrace, ID: o.serverID(), Observer: metrics, ProvisionerDirs: o.provisionerDirs}
	switch o.placement {
	case "", "spread":
	case "binpack":
		cfg.Strategy = schedule.BinPack
	default:
		return fmt.Errorf("--placement %q: want spread or binpack", o.placement)
	}
	if err := o.git.writeBack(&cfg, src); err != nil {
		return err
	}
	if o.secretKey != "" {
		if cfg.Unsealer, err = unsealer(o.secretKey); err != nil {
			return err
		}
	}
	ttl := o.leaseTTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if cfg.Events, err = openWhenFormed(ctx, o.cluster, "events", func(ctx context.Context) (*store.EventLog, error) {
		return store.OpenEventLog(ctx, js, o.bucketReplicas)
	}); err != nil {
		return err
	}
	ls, err := openWhenFormed(ctx, o.cluster, "lease", func(ctx context.Context) (*lease.Lease, error) {
		return lease.Open(ctx, js, cfg.ID, ttl, o.bucketReplicas)
	})
	if err != nil {
		return err
	}
	log := zerolog.Ctx(ctx).With().Str("server", cfg.ID).Logger()
	ctx = log.WithContext(ctx)
	api, stopAPI, err := serveAPI(log, js, cfg.ID, o.apiListener, o.apiListen, o.apiTokens, metrics)
	if err != nil {
		return err
	}
	defer stopAPI()
	if o.bus != nil {
		forget := func(node string) {
			if rec := api.Leader(); rec != nil {
				rec.ForgetNode(node)
			}
		}
		h, machines, stopJoin, err := serveJoining(ctx, nc, js, o.bus, o.join, o.bucketReplicas, forget)
		if err != nil {
			return err
		}
		cfg.Machines = machines
		defer stopJoin()
		api.SetJoining(h)
		stopWatch, err := watchDisconnects(ctx, o.bus, api.Leader)
		if err != nil {
			return err
		}
		defer stopWatch()
	}
	stopAsk, err := api.ServeNATS(ctx, nc)
	if err != nil {
		return err
	}
	defer stopAsk()
	if hook != nil {
		api.SetWebhook(hook)
	}
	log.Info().Str("repo", gitsource.Redact(o.repo)).Str("branch", o.branch).Str("tag", gcfg.Tag).
		Str("semver", gcfg.SemVer).Str("commit", gcfg.Commit).Str("path", o.path).Str("auth", gcfg.Auth.String()).
		Dur("poll", o.poll).Dur("leaseTTL", ttl).Msg("following config repository")
	for {
		term, err := ls.Acquire(ctx)
		if err != nil {
			return nil // ctx ended while standing by
		}
		cfg.Term = term
		err = lead(ctx, js, ls, src, o.poll, cfg, api)
		if ctx.Err() != nil || errors.Is(err, reconciler.ErrDeposed) {
			// Hand over at once instead of after the TTL.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := ls.Release(rctx); err != nil {
				log.Warn().Err(err).Msg("release leader lease")
			}
			cancel()
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn().Err(err).Uint64("term", term).Msg("leadership ended; standing by")
	}
}

// DefaultLeaseTTL is how long a dead leader keeps the lease: a standby takes
// over within about this long.
const DefaultLeaseTTL = 2500 * time.Millisecond

// lead runs the reconciler, the git source and the pin watcher while the
// lease is held; it returns why leadership ended, once every goroutine it
// started has.
func lead(ctx context.Context, js jetstream.JetStream, ls *lease.Lease, src *gitsource.Source, poll time.Duration, cfg reconciler.Config, api *httpapi.Server) error {
	g, ctx := errgroup.WithContext(ctx)
	cfg.Revisions = cachedRevisions{src}
	rec := reconciler.New(cfg)
	api.SetLeader(rec)
	defer api.SetLeader(nil)
	apply := func(s gitsource.Snapshot) {
		rev := reconciler.Revision{ID: s.Revision, Ref: s.Ref, Message: s.Message, Author: s.Author, Time: s.Time}
		_ = rec.SetRevision(ctx, rev, s.Files) // a bad revision is logged and shown in status
	}
	log := zerolog.Ctx(ctx)
	// The lease: its loss ends the group (and so the reconciler).
	g.Go(func() error { return ls.Hold(ctx) })
	g.Go(func() error { return rec.Run(ctx) })
	// While pinned, the reconciler takes no other revision than the pinned
	// one: new commits are polled and loaded, and not applied.
	g.Go(func() error {
		src.Poll(ctx, poll, apply, rec.SetSourceError)
		return nil
	})
	// A repository on this machine is watched too: a commit is fetched at
	// once, not at the next poll. Without the watch, polling still works.
	g.Go(func() error {
		if err := src.Watch(ctx); err != nil && !errors.Is(err, gitsource.ErrNotLocal) {
			log.Warn().Err(err).Msg("cannot watch the repository; polling only")
		}
		return nil
	})
	// baton node cordon / drain / uncordon.
	g.Go(func() error { return store.WatchNodeControls(ctx, js, rec.SetNodeControls) })
	// baton pin / unpin: apply a cached revision and stop following the
	// branch, or follow it again.
	var pinned *store.Pin // only the watcher's goroutine uses it
	g.Go(func() error {
		return store.WatchPin(ctx, js, func(p *store.Pin) {
			prev := pinned
			pinned = p
			switch {
			case p != nil:
				fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				snap, err := src.AtOrFetch(fctx, p.Revision)
				cancel()
				if err != nil {
					log.Error().Err(err).Str("revision", p.Revision).Msg("pinned revision is not in the cache")
					rec.SetSourceError(fmt.Errorf("pinned revision %s: %w", p.Revision, err))
				}
				rec.SetPinned(p)
				if err == nil {
					snap.Ref = reconciler.PinnedRef
					apply(snap)
				}
			case prev != nil:
				rec.SetPinned(nil)
				if snap, err := src.Fetch(ctx); err != nil {
					rec.SetSourceError(err)
				} else {
					apply(snap)
				}
			}
		})
	})
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// cachedRevisions reads earlier revisions from the git source's cache,
// fetching the branches when one is not there yet.
type cachedRevisions struct{ src *gitsource.Source }

func (c cachedRevisions) At(ctx context.Context, rev string) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	snap, err := c.src.AtOrFetch(ctx, rev)
	return snap.Files, err
}

func defaultServerID() string {
	h, _ := os.Hostname()
	if h == "" {
		h = "server"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

// agentOptions configure a node agent.
type agentOptions struct {
	node        string
	labels      map[string]string
	socket      string
	namespace   string
	dataDir     string
	heartbeat   time.Duration
	stopGrace   time.Duration
	pollPeriod  time.Duration
	hostPaths   []string // hostPath volumes allowed
	privileged  bool     // --allow-privileged: --pod-security privileged
	podSecurity string   // the Pod Security Standards level the node enforces
	network     string   // "cni" or "none"
	address     string   // --node-ip: the node's address between nodes ("": the one that reaches the bus)
	backend     string   // --network-backend: auto, host-gw or vxlan
	resources   []string // --resource NAME=QUANTITY: extra resources for placement
	taints      []string // --taint KEY[=VALUE]:EFFECT
	clusterCIDR string   // --cluster-cidr: every pod address of the cluster (traffic to it is not masqueraded)
	dnsUpstream []string // --dns-upstream: where the pods' DNS forwards other names ("": the host's resolv.conf)
	cni         nodeagent.CNIConfig
	metrics     string // --metrics-listen: where the agent serves its Prometheus metrics ("": nowhere)
}

// podSecurityLevel is the level the node enforces: --pod-security
// (baseline when unset), or privileged with --allow-privileged.
func (o agentOptions) podSecurityLevel() (desired.PodSecurity, error) {
	switch {
	case o.privileged:
		return desired.PodSecurityPrivileged, nil
	case o.podSecurity == "":
		return desired.PodSecurityBaseline, nil
	}
	l, err := desired.ParsePodSecurity(o.podSecurity)
	if err != nil {
		return "", fmt.Errorf("--pod-security: %w", err)
	}
	return l, nil
}

// checkedAgent is what agentOptions.check reads from the flags.
type checkedAgent struct {
	level  desired.PodSecurity
	extra  map[string]int64
	taints []desired.Taint
}

// check reads and checks the flags the agent needs before anything
// connects, so a bad flag is said as such (not as a bus that cannot be
// reached): the pod security level, the network backend, the resources
// and the taints.
func (o agentOptions) check() (checkedAgent, error) {
	var ck checkedAgent
	var err error
	if ck.level, err = o.podSecurityLevel(); err != nil {
		return ck, err
	}
	if err := nodeagent.ValidBackend(o.backend); err != nil {
		return ck, fmt.Errorf("--network-backend: %w", err)
	}
	if ck.extra, err = nodeResources(o.resources, o.dataDir); err != nil {
		return ck, err
	}
	if ck.taints, err = parseTaints(o.taints); err != nil {
		return ck, err
	}
	return ck, nil
}

// runAgent runs a node agent on containerd until ctx ends.
func runAgent(ctx context.Context, nc *nats.Conn, o agentOptions) error {
	ck, err := o.check()
	if err != nil {
		return err
	}
	level := ck.level
	cli, err := nodeagent.DialContainerd(ctx, o.socket)
	if err != nil {
		return err
	}
	defer cli.Close()
	rt, err := nodeagent.NewContainerd(cli, o.namespace, o.dataDir)
	if err != nil {
		return err
	}
	defer rt.StopProbes()
	var metrics *nodeagent.Metrics
	if o.metrics != "" {
		metrics = nodeagent.NewMetrics(o.node)
		ln, err := net.Listen("tcp", o.metrics)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler())
		log := zerolog.Ctx(ctx).With().Str("address", ln.Addr().String()).Logger()
		log.Info().Msg("agent metrics (GET /metrics)")
		defer serveHTTP(log, &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}, ln, "agent metrics")()
	}
	rt.SetMetrics(metrics)
	rt.SetHostPathAllow(o.hostPaths)
	rt.SetPodSecurity(level)
	var (
		routes   nodeagent.Routes
		services nodeagent.ServiceRules
		podDNS   *nodeagent.DNS
	)
	extra, taints := ck.extra, ck.taints
	addr := o.address
	if addr == "" {
		addr = nodeAddress(nc)
	}
	rt.SetNode(o.node, addr)
	switch o.network {
	case "cni":
		cfg := o.cni
		cfg.StateDir = filepath.Join(o.dataDir, "cni")
		n, err := nodeagent.NewCNI(cfg)
		if err != nil {
			return fmt.Errorf("pod network (--network none runs pods with loopback only): %w", err)
		}
		cidr := o.clusterCIDR
		if cidr == "" { // options made without the flags (tests)
			cidr = join.DefaultClusterCIDR
		}
		if err := n.EnsureMasquerade(ctx, cidr); err != nil {
			return fmt.Errorf("pod network: %w", err)
		}
		rt.SetNetwork(n, cfg.HostNetNS)
		if _, err := exec.LookPath("nft"); err != nil {
			return errors.New("pod network: Services are programmed with nft, which is not installed (Debian: apt-get install nftables; or --network none)")
		}
		hr := &nodeagent.HostRoutes{NetNS: cfg.HostNetNS, Backend: o.backend, Address: addr, Subnet: cfg.Subnet}
		nft := &nodeagent.NFTables{NetNS: cfg.HostNetNS, PodSubnet: cfg.Subnet, ClusterCIDR: cidr}
		routes, services = hr, nft
		// A node removed from the cluster (its credential refused) takes
		// its routes to the other nodes and its Services' rules away.
		defer func() {
			var closed *busClosedError
			if !errors.As(context.Cause(ctx), &closed) || !closed.revoked() {
				return
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := errors.Join(hr.Apply(cctx, nil), nft.Remove(cctx)); err != nil {
				zerolog.Ctx(ctx).Error().Err(err).Msg("remove this node's routes and Service rules")
				return
			}
			zerolog.Ctx(ctx).Info().Msg("node removed from the cluster: its routes and Service rules are gone")
		}()
		gw, err := nodeagent.Gateway(cfg.Subnet)
		if err != nil {
			return err
		}
		upstream := o.dnsUpstream
		if len(upstream) == 0 {
			upstream = nodeagent.HostUpstream("/etc/resolv.conf")
		}
		podDNS = &nodeagent.DNS{Listen: net.JoinHostPort(gw, "53"), NetNS: cfg.HostNetNS, Upstream: upstream}
		if err := podDNS.Start(ctx); err != nil {
			return err
		}
		defer podDNS.Stop()
		if err := rt.SetPodResolvConf(podDNS.ResolvConf); err != nil {
			return err
		}
	case "none":
		if o.cni.HostNetNS != "" {
			rt.SetNetwork(nil, o.cni.HostNetNS)
		}
	default:
		return fmt.Errorf("--network %q: want cni or none", o.network)
	}
	if js, err := jetstream.New(nc); err == nil {
		rt.SetImageStore(nodeagent.LazyImageStore{JS: js, NC: nc})
	}
	subnet := ""
	if o.network == "cni" {
		subnet = o.cni.Subnet
	}
	a, err := nodeagent.New(nodeagent.Config{
		Node: o.node, Labels: o.labels, NATS: nc, Runtime: rt, Version: Version, Address: addr, PodSubnet: subnet, Extra: extra, Taints: taints, Routes: routes, Services: services, DNS: dnsRecords(podDNS),
		HeartbeatInterval: o.heartbeat, StopGrace: o.stopGrace, PollInterval: o.pollPeriod,
		TermFile: filepath.Join(o.dataDir, "leader-term"), Metrics: metrics,
	})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// dnsRecords is d as the agent's DNS (nil when there is none).
func dnsRecords(d *nodeagent.DNS) interface{ SetRecords([]protocol.DNSRecord) } {
	if d == nil {
		return nil
	}
	return d
}

// nodeAddress is this machine's address on the way to the bus (the source
// address of a route to the NATS server; nothing is sent), "" when it
// cannot tell or that is a loopback address.
func nodeAddress(nc *nats.Conn) string {
	u, err := url.Parse(nc.ConnectedUrl())
	if err != nil || u.Host == "" {
		return ""
	}
	c, err := net.Dial("udp", u.Host)
	if err != nil {
		return ""
	}
	defer c.Close()
	// A loopback address (a bus on this machine, baton up's in-process
	// agent) is no address for the other nodes.
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsLoopback() {
		return a.IP.String()
	}
	return ""
}

// serveAPI starts the control-plane HTTP API on ln, else on addr ("" for none).
func serveAPI(log zerolog.Logger, js jetstream.JetStream, id string, ln net.Listener, addr, tokensFile string, metrics *httpapi.Metrics) (*httpapi.Server, func(), error) {
	var tokens map[string]string
	if tokensFile != "" {
		t, err := httpapi.ReadTokens(tokensFile)
		if err != nil {
			return nil, nil, err
		}
		tokens = t
	}
	api := httpapi.New(httpapi.Config{JS: js, ID: id, Tokens: tokens, Log: log, Metrics: metrics})
	if ln == nil && addr == "" {
		return api, func() {}, nil
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, nil, fmt.Errorf("API listener: %w", err)
		}
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	log.Info().Str("address", ln.Addr().String()).Bool("tokens", tokens != nil).Msg("control-plane API (/healthz, /readyz, /api/v1/..., /metrics)")
	return api, serveHTTP(log, srv, ln, "control-plane API"), nil
}

// serveHTTP serves srv on ln until the returned stop is called; stop waits
// for the serving goroutine, so nothing of the server outlives it.
func serveHTTP(log zerolog.Logger, srv *http.Server, ln net.Listener, what string) (stop func()) {
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg(what + " stopped")
		}
	}()
	return func() { _ = srv.Close(); <-served }
}
