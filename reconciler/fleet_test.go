package reconciler_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/internal/natsserver"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/nodeagent/simruntime"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
)

// fleet is a reconciler and many real agents on simulated runtimes, all on
// one embedded NATS server.
type fleet struct {
	rec  *reconciler.Reconciler
	sims []*simruntime.Runtime
	// joined is how long the agents took from their first join request to
	// every node ready (mode busJoin).
	joined time.Duration
}

// busMode is how the fleet's bus is secured.
type busMode string

const (
	// busOpen: no authentication, no TLS (the cost baseline).
	busOpen busMode = "open"
	// busSecure: the cluster identity's JWT auth and TLS, a credential of
	// its role for every connection (issued in memory).
	busSecure busMode = "jwt+tls"
	// busJoin: busSecure, and every agent joins with a one-time token over
	// the HTTPS join endpoint, all at once, as a new fleet would.
	busJoin busMode = "join"
	// busCluster: busSecure on three servers joined by routes with mutual
	// TLS, the state replicated on all three (R3); the agents spread over
	// the servers.
	busCluster busMode = "3-servers-R3"
)

func startFleetOn(tb testing.TB, ctx context.Context, nodes int, mode busMode) *fleet {
	var (
		id       *identity.Identity
		s        *server.Server
		serverNC *nats.Conn
	)
	servers := []*server.Server{}
	replicas := 1
	switch mode {
	case busOpen:
		s = testenv.NATSServer(tb)
		serverNC = connectTo(tb, s.ClientURL())
	case busCluster:
		var err error
		if id, err = identity.Open(filepath.Join(tb.TempDir(), "identity")); err != nil {
			tb.Fatal(err)
		}
		servers = secureCluster(tb, id, 3)
		s, replicas = servers[0], 3
		serverNC = connectTo(tb, s.ClientURL(), local(tb, id, identity.RoleServer, "s1")...)
	default:
		var err error
		if id, err = identity.Open(filepath.Join(tb.TempDir(), "identity")); err != nil {
			tb.Fatal(err)
		}
		s = secureServer(tb, id)
		serverNC = connectTo(tb, s.ClientURL(), local(tb, id, identity.RoleServer, "s1")...)
	}
	js, err := jetstream.New(serverNC)
	if err != nil {
		tb.Fatal(err)
	}
	kv, err := store.Open(ctx, js, replicas)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fleet{}
	f.rec = reconciler.New(reconciler.Config{NATS: serverNC, Store: kv, Resync: 500 * time.Millisecond})
	go func() { _ = f.rec.Run(ctx) }()

	names := make([]string, nodes)
	for i := range nodes {
		names[i] = fmt.Sprintf("node-%04d", i)
	}
	var connOpts func(i int) []nats.Option
	switch mode {
	case busOpen:
		connOpts = func(int) []nats.Option { return nil }
	case busSecure, busCluster:
		connOpts = func(i int) []nats.Option { return local(tb, id, identity.RoleAgent, names[i]) }
	case busJoin:
		connOpts = joinAll(tb, ctx, id, s, js, names)
	}
	start := time.Now()
	f.sims = make([]*simruntime.Runtime, nodes)
	var g errgroup.Group
	g.SetLimit(64)
	for i := range nodes {
		g.Go(func() error {
			url := s.ClientURL()
			if len(servers) > 0 {
				url = servers[i%len(servers)].ClientURL()
			}
			conn, err := nats.Connect(url, connOpts(i)...)
			if err != nil {
				return fmt.Errorf("%s: %w", names[i], err)
			}
			tb.Cleanup(conn.Close)
			sim := simruntime.New()
			a, err := nodeagent.New(nodeagent.Config{Node: names[i], NATS: conn, Runtime: sim,
				HeartbeatInterval: time.Second, PollInterval: 2 * time.Second})
			if err != nil {
				return err
			}
			f.sims[i] = sim
			go func() { _ = a.Run(ctx) }()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		tb.Fatal(err)
	}
	testenv.WaitFor(tb, 2*time.Minute, "every node ready", func() (bool, string) {
		ready := 0
		for _, n := range f.rec.Status().Nodes {
			if n.Ready {
				ready++
			}
		}
		return ready == nodes, fmt.Sprintf("%d of %d ready", ready, nodes)
	})
	f.joined = time.Since(start)
	return f
}

func connectTo(tb testing.TB, url string, opts ...nats.Option) *nats.Conn {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// secureServer starts the embedded server as baton server runs it: JWT
// auth and TLS with the identity.
func secureServer(tb testing.TB, id *identity.Identity) *server.Server {
	s, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: tb.TempDir(), Quiet: true,
		Secure: func(o *server.Options) error { return id.Configure(o, "127.0.0.1") }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// secureCluster starts n secured servers on loopback joined by routes
// with mutual TLS (the cluster identity's RouteTLS), as baton server
// --servers n runs them, and waits for JetStream to have a leader.
func secureCluster(tb testing.TB, id *identity.Identity, n int) []*server.Server {
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	tc, err := id.RouteTLS("127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	var out []*server.Server
	for i := range n {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("tls://127.0.0.1:%d", p))
			}
		}
		cfg := natsserver.Config{Listen: "127.0.0.1:0", StoreDir: tb.TempDir(), Quiet: true, Name: fmt.Sprintf("s%d", i+1),
			Secure:  func(o *server.Options) error { return id.Configure(o, "127.0.0.1") },
			Cluster: &natsserver.Cluster{Name: "baton", Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes, TLS: tc}}
		s, err := natsserver.Start(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(s.Shutdown)
		out = append(out, s)
	}
	testenv.WaitFor(tb, time.Minute, "a JetStream leader", func() (bool, string) {
		return out[0].JetStreamIsClustered() && out[0].JetStreamIsCurrent(), ""
	})
	return out
}

// local is a connection's options with a credential of role issued in
// memory, over TLS.
func local(tb testing.TB, id *identity.Identity, role identity.Role, name string) []nats.Option {
	c, err := id.Local(role, name)
	if err != nil {
		tb.Fatal(err)
	}
	return append(c.Options(), nats.Secure(id.ClientTLS()))
}

// joinAll serves the join endpoint and makes one token per node; the
// returned options join (over HTTPS, pinning the CA) when called, and
// connect with the credential written.
func joinAll(tb testing.TB, ctx context.Context, id *identity.Identity, s *server.Server, js jetstream.JetStream, names []string) func(int) []nats.Option {
	st, err := join.OpenStore(ctx, js, 1)
	if err != nil {
		tb.Fatal(err)
	}
	auth := &join.Authority{ID: id, Store: st, NATS: s}
	tc, err := id.ServerTLS("127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(auth.Handler(zerolog.Nop()))
	hs.TLS = tc
	hs.StartTLS()
	tb.Cleanup(hs.Close)
	tokens := make([]string, len(names))
	for i := range names {
		ans, err := auth.CreateToken(ctx, join.TokenRequest{Role: identity.RoleAgent, TTL: "1h"})
		if err != nil {
			tb.Fatal(err)
		}
		tokens[i] = ans.Token
	}
	dir := tb.TempDir()
	return func(i int) []nats.Option {
		creds := filepath.Join(dir, names[i], "node.creds")
		j, err := join.Join(ctx, hs.Listener.Addr().String(), tokens[i], []identity.Role{identity.RoleAgent}, names[i], creds)
		if err != nil {
			tb.Error(err)
			return nil
		}
		opts, _, err := identity.ClientOptions(j.CredsPath, j.CAPath)
		if err != nil {
			tb.Error(err)
		}
		return opts
	}
}

func manifests(workloads, replicas int) map[string][]byte {
	files := map[string][]byte{}
	for i := range workloads {
		files[fmt.Sprintf("w%04d.yaml", i)] = fmt.Appendf(nil, `apiVersion: apps/v1
kind: Deployment
metadata: {name: w%04d}
spec:
  replicas: %d
  template:
    spec:
      containers: [{name: app, image: "app:1", resources: {requests: {cpu: 10m, memory: 16Mi}}}]
`, i, replicas)
	}
	return files
}

// converge applies a revision and waits until every replica runs; it
// returns how long that took after the revision loaded.
func (f *fleet) converge(tb testing.TB, ctx context.Context, rev string, files map[string][]byte, total int) time.Duration {
	if err := f.rec.SetRevision(ctx, reconciler.Revision{ID: rev}, files); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	testenv.WaitFor(tb, 5*time.Minute, "every replica running and counted", func() (bool, string) {
		running := 0
		for _, s := range f.sims {
			running += s.Len()
		}
		if running != total {
			return false, fmt.Sprintf("%d of %d running", running, total)
		}
		current := 0
		for _, w := range f.rec.StatusWith(reconciler.StatusRequest{Replicas: reconciler.ReplicasNone}).Workloads {
			current += w.Current
		}
		return current == total, fmt.Sprintf("%d of %d counted", current, total)
	})
	return time.Since(start)
}

// TestFleet: 100 real agents (simulated pods) over real NATS take 1,000
// replicas from an empty cluster to converged, spread evenly; a bounded
// version of BenchmarkFleet.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The agents join as a new fleet would: each with its own one-time
	// token over HTTPS, then on the bus with JWT auth and TLS.
	f := startFleetOn(t, ctx, 100, busJoin)
	t.Logf("100 agents joined and ready in %s", f.joined.Round(time.Millisecond))
	d := f.converge(t, ctx, "rev1", manifests(100, 10), 1000)
	for i, s := range f.sims {
		if n := s.Len(); n != 10 {
			t.Fatalf("node %d runs %d replicas, want 10 (even spread)", i, n)
		}
	}
	t.Logf("100 nodes, 1,000 replicas: converged in %s", d.Round(time.Millisecond))
}

// BenchmarkFleet: 1,000 nodes, 10,000 replicas from an empty cluster to
// converged, through real NATS with simulated pods, on an open bus and on
// the secured one (JWT auth and TLS, a credential per agent): the cost of
// authentication in placements/s, in one run.
//
//	go test -run '^$' -bench Fleet -benchtime 1x -timeout 30m ./reconciler
func BenchmarkFleet(b *testing.B) {
	for _, mode := range []busMode{busOpen, busSecure, busCluster} {
		b.Run("bus="+string(mode), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := startFleetOn(b, ctx, 1000, mode)
			files := manifests(1000, 10)
			for i := range b.N {
				// Each iteration deploys 10,000 replicas, then removes them.
				d := f.converge(b, ctx, fmt.Sprintf("rev%d", i), files, 10000)
				b.ReportMetric(d.Seconds(), "s-to-converge")
				b.ReportMetric(10000/d.Seconds(), "placements/s")
				b.ReportMetric(10000/d.Seconds()/float64(runtime.GOMAXPROCS(0)), "placements/s/core")
				b.StopTimer()
				f.converge(b, ctx, fmt.Sprintf("empty%d", i), manifests(0, 0), 0)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkFleetJoin: 1,000 agents (simulated runtimes, real credentials)
// join at once, each with its own one-time token over the HTTPS join
// endpoint, then connect with JWT auth and TLS: the time until every node
// is ready.
//
//	go test -run '^$' -bench FleetJoin -benchtime 1x -timeout 30m ./reconciler
func BenchmarkFleetJoin(b *testing.B) {
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		f := startFleetOn(b, ctx, 1000, busJoin)
		b.ReportMetric(f.joined.Seconds(), "s-to-ready")
		cancel()
	}
}

// BenchmarkCommandRoundTrip: one command to a node and its answer (a stop
// of a replica the node does not run: decode, runtime, reply), on an open
// bus and on the secured one.
//
//	go test -run '^$' -bench CommandRoundTrip ./reconciler
func BenchmarkCommandRoundTrip(b *testing.B) {
	for _, mode := range []busMode{busOpen, busSecure} {
		b.Run("bus="+string(mode), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var (
				s        *server.Server
				agentOpt []nats.Option
				srvOpt   []nats.Option
			)
			if mode == busOpen {
				s = testenv.NATSServer(b)
			} else {
				id, err := identity.Open(filepath.Join(b.TempDir(), "identity"))
				if err != nil {
					b.Fatal(err)
				}
				s = secureServer(b, id)
				agentOpt, srvOpt = local(b, id, identity.RoleAgent, "n1"), local(b, id, identity.RoleServer, "s1")
			}
			a, err := nodeagent.New(nodeagent.Config{Node: "n1", NATS: connectTo(b, s.ClientURL(), agentOpt...), Runtime: simruntime.New(),
				HeartbeatInterval: time.Second, PollInterval: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			go func() { _ = a.Run(ctx) }()
			nc := connectTo(b, s.ClientURL(), srvOpt...)
			cmd := protocol.Encode(protocol.Command{Version: protocol.Version, Op: protocol.OpStop, StopID: "absent-0"})
			testenv.WaitFor(b, 10*time.Second, "the agent answering", func() (bool, string) {
				_, err := nc.Request(protocol.CommandSubject("n1"), cmd, time.Second)
				return err == nil, fmt.Sprint(err)
			})
			for b.Loop() {
				if _, err := nc.Request(protocol.CommandSubject("n1"), cmd, 5*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKVPut: one write to the state's KV bucket and its
// acknowledgement, on one server (R1) and on three (R3: the write is
// replicated to a majority before it is acknowledged), in one run.
//
//	go test -run '^$' -bench KVPut ./reconciler
func BenchmarkKVPut(b *testing.B) {
	for _, servers := range []int{1, 3} {
		b.Run(fmt.Sprintf("servers=%d", servers), func(b *testing.B) {
			ctx := context.Background()
			id, err := identity.Open(filepath.Join(b.TempDir(), "identity"))
			if err != nil {
				b.Fatal(err)
			}
			s := []*server.Server{secureServer(b, id)}
			if servers > 1 {
				s = secureCluster(b, id, servers)
			}
			js, err := jetstream.New(connectTo(b, s[0].ClientURL(), local(b, id, identity.RoleServer, "s1")...))
			if err != nil {
				b.Fatal(err)
			}
			var kv jetstream.KeyValue
			testenv.WaitFor(b, time.Minute, "the bucket", func() (bool, string) {
				kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench", Replicas: servers})
				return err == nil, fmt.Sprint(err)
			})
			val := make([]byte, 256)
			b.ResetTimer()
			for i := range b.N {
				if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i%100), val); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
