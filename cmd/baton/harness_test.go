package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/reconciler"
)

// The end-to-end harness runs the real parts in-process: an embedded NATS
// server, the reconciler following a go-git repository on disk, and node
// agents on the machine's containerd, each agent in its own containerd
// namespace (one namespace per simulated node).

const testImage = testenv.HelloImage

type cluster struct {
	tb      testing.TB
	ctx     context.Context
	sock    string
	cli     *client.Client
	ns      *server.Server
	bus     *secureBus // the cluster identity and the embedded NATS it secures
	dir     string
	repo    *git.Repository
	prefix  string // containerd namespace prefix
	agents  map[string]*runningAgent
	stopAll []func()
	// hostNS is each node's host network namespace, made by the test: the
	// pod bridges and port forwarding of the nodes live there.
	hostNS    map[string]string
	servers   map[string]*runningServer
	joinAddr  map[string]string // each server's join endpoint
	nodeGrace time.Duration
	// serverOpts adjust every server's options (git write-back flags...).
	serverOpts []func(*serverOptions)
	// logs keeps everything the daemons log, at every level (the secret
	// canary test reads it).
	logs *lockedBuffer
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type runningAgent struct {
	cancel context.CancelFunc
	done   chan error
	nc     *nats.Conn
}

func newCluster(tb testing.TB, nodeGrace time.Duration, serverOpts ...func(*serverOptions)) *cluster {
	sock := testenv.ContainerdSocket(tb)
	archive := testenv.HelloArchive(tb)
	ctx, cancel := context.WithCancel(context.Background())
	shown := zerolog.WarnLevel // in the test's output; BATON_E2E_LOG=1 shows more
	if os.Getenv("BATON_E2E_LOG") != "" {
		shown = zerolog.InfoLevel
	}
	logs := &lockedBuffer{}
	log := zerolog.New(zerolog.MultiLevelWriter(logs, &zerolog.FilteredLevelWriter{
		Writer: zerolog.LevelWriterAdapter{Writer: zerolog.NewTestWriter(tb)}, Level: shown,
	})).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	ctx = log.WithContext(ctx)
	c := &cluster{tb: tb, ctx: ctx, sock: sock, dir: tb.TempDir(), agents: map[string]*runningAgent{},
		prefix: fmt.Sprintf("baton-e2e-%d", rand.Uint32()%1_000_000), logs: logs}
	cli, err := nodeagent.DialContainerd(ctx, sock)
	if err != nil {
		tb.Fatal(err)
	}
	c.cli = cli
	testenv.RequireCNI(tb)
	c.hostNS = map[string]string{}
	for _, node := range []string{"n1", "n2", "n3"} {
		c.hostNS[node] = testenv.HostNetNS(tb) // removed after the cleanup below
	}
	tb.Cleanup(func() {
		for name := range c.agents {
			c.stopAgent(name)
		}
		cancel()
		for _, f := range c.stopAll {
			f()
		}
		c.cleanupContainerd()
		cli.Close()
	})

	// The bus is secured as baton server secures it: every connection of
	// the suite has a credential of its role and goes over TLS, so the
	// roles' permissions are exercised by every end-to-end test.
	c.bus, err = startSecureNATS(zerolog.Ctx(ctx), "127.0.0.1:0", c.dir, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	c.ns = c.bus.ns
	c.stopAll = append(c.stopAll, c.ns.Shutdown)

	c.repo, err = git.PlainInitWithOptions(filepath.Join(c.dir, "repo"), &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.Main}})
	if err != nil {
		tb.Fatal(err)
	}
	c.nodeNamespaces(archive)

	c.nodeGrace, c.serverOpts = nodeGrace, serverOpts
	c.servers, c.joinAddr = map[string]*runningServer{}, map[string]string{}
	c.startServer("s1")
	return c
}

type runningServer struct {
	cancel context.CancelFunc
	done   chan error
	nc     *nats.Conn
}

// startServer starts a baton server (reconciler, git source, leader lease)
// named id; the first one leads, others stand by.
func (c *cluster) startServer(id string) {
	ctx, cancel := context.WithCancel(c.ctx)
	nc := c.connect("server-" + id)
	rs := &runningServer{cancel: cancel, done: make(chan error, 1), nc: nc}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.tb.Fatal(err)
	}
	c.joinAddr[id] = ln.Addr().String()
	o := serverOptions{repo: filepath.Join(c.dir, "repo"), branch: "main", poll: 100 * time.Millisecond,
		dataDir: filepath.Join(c.dir, "server-"+id), nodeGrace: c.nodeGrace, bucketReplicas: 1, id: id, leaseTTL: DefaultLeaseTTL,
		bus: c.bus, join: joinOptions{listener: ln}}
	for _, f := range c.serverOpts {
		f(&o)
	}
	go func() { rs.done <- runServer(ctx, nc, o) }()
	c.servers[id] = rs
	c.stopAll = append([]func(){func() {
		if c.servers[id] != rs {
			return // killed: killServer waited for it
		}
		if err := <-rs.done; err != nil {
			c.tb.Errorf("server %s: %v", id, err)
		}
	}}, c.stopAll...)
}

// killServer ends a server as a crash would: its connection drops first, so
// it cannot hand the lease over; a standby must wait for it to expire.
func (c *cluster) killServer(id string) {
	rs := c.servers[id]
	rs.nc.Close()
	rs.cancel()
	<-rs.done
	delete(c.servers, id)
}

// cniConfig is the pod network of node (n1, n2 or n3), inside its host
// namespace: never the machine's own.
func (c *cluster) cniConfig(node string) nodeagent.CNIConfig {
	if c.hostNS[node] == "" {
		c.tb.Fatalf("node %s has no host network namespace in this harness (n1, n2, n3)", node)
	}
	return testenv.CNIConfig(c.hostNS[node], "")
}

func (c *cluster) namespace(node string) string { return c.prefix + "-" + node }

// nodeNamespaces imports the test image into the namespaces of nodes n1 and n2.
func (c *cluster) nodeNamespaces(archive string) {
	for _, node := range []string{"n1", "n2"} {
		if _, err := nodeagent.Import(c.ctx, c.cli, c.namespace(node), archive); err != nil {
			c.tb.Fatal(err)
		}
	}
}

// connect connects with a server credential, over TCP and TLS.
func (c *cluster) connect(name string) *nats.Conn {
	return c.connectAs(identity.RoleServer, name)
}

// connectAs connects with a credential of role named name, written to a
// file as a client on another machine holds it.
func (c *cluster) connectAs(role identity.Role, name string) *nats.Conn {
	nc, err := nats.Connect(c.ns.ClientURL(), append(c.credsOptions(role, name), nats.Name(name))...)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.stopAll = append(c.stopAll, nc.Close)
	return nc
}

// credsOptions issues a credential of role for name into a file and
// returns the options of a client holding it and the cluster's CA.
func (c *cluster) credsOptions(role identity.Role, name string) []nats.Option {
	creds, err := c.bus.id.IssueCreds(role, credName(name), 0)
	if err != nil {
		c.tb.Fatal(err)
	}
	p := filepath.Join(c.dir, fmt.Sprintf("%s-%s-%d.creds", role, credName(name), rand.Uint32()))
	if err := os.WriteFile(p, creds, 0o600); err != nil {
		c.tb.Fatal(err)
	}
	opts, _, err := identity.ClientOptions(p, caPath(c.dir))
	if err != nil {
		c.tb.Fatal(err)
	}
	return opts
}

func (c *cluster) startAgent(node string, mods ...func(*agentOptions)) {
	ctx, cancel := context.WithCancel(c.ctx)
	nc := c.connectAs(identity.RoleAgent, node)
	ra := &runningAgent{cancel: cancel, done: make(chan error, 1), nc: nc}
	o := agentOptions{node: node, socket: c.sock, namespace: c.namespace(node),
		dataDir: filepath.Join(c.dir, "agent-"+node), heartbeat: 250 * time.Millisecond, stopGrace: 5 * time.Second,
		pollPeriod: 200 * time.Millisecond, network: "cni", cni: c.cniConfig(node)}
	for _, m := range mods {
		m(&o)
	}
	go func() { ra.done <- runAgent(ctx, nc, o) }()
	c.agents[node] = ra
}

// stopAgent ends an agent as its process would end: no more heartbeats,
// reports or commands; its containers keep running.
func (c *cluster) stopAgent(node string) {
	ra := c.agents[node]
	ra.cancel()
	if err := <-ra.done; err != nil {
		c.tb.Errorf("agent %s: %v", node, err)
	}
	ra.nc.Close()
	delete(c.agents, node)
}

// commit writes files into the repository and commits them; it returns the revision.
func (c *cluster) commit(msg string, files map[string]string) string {
	wt, err := c.repo.Worktree()
	if err != nil {
		c.tb.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(c.dir, "repo", name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			c.tb.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			c.tb.Fatal(err)
		}
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "e2e", Email: "e2e@localhost", When: time.Now()}})
	if err != nil {
		c.tb.Fatal(err)
	}
	return h.String()
}

// git runs the git command line in the repository.
func (c *cluster) git(args ...string) {
	cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@localhost"}, args...)...)
	cmd.Dir = filepath.Join(c.dir, "repo")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// baton runs a baton command against the cluster's NATS and returns what
// it printed.
func (c *cluster) baton(args ...string) (string, error) {
	out, errOut, err := run(c.tb, append(args, "--nats", c.ns.ClientURL(), "--creds", adminCredsPath(c.dir))...)
	return out + errOut, err
}

// gitOut runs the git command line in the repository and returns its output.
func (c *cluster) gitOut(args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = filepath.Join(c.dir, "repo")
	out, err := cmd.Output()
	if err != nil {
		c.tb.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// task is a containerd task of a replica.
type task struct {
	replica, hash string
	pid           uint32
	status        client.ProcessStatus
}

// tasks lists the tasks in a node's containerd namespace.
func (c *cluster) tasks(node string) []task {
	ctx := namespaces.WithNamespace(c.ctx, c.namespace(node))
	cs, err := c.cli.Containers(ctx)
	if err != nil {
		c.tb.Fatal(err)
	}
	var out []task
	for _, ct := range cs {
		labels, err := ct.Labels(ctx)
		if err != nil {
			continue
		}
		t := task{replica: labels[nodeagent.LabelReplica], hash: labels[nodeagent.LabelSpecHash]}
		if tk, err := ct.Task(ctx, nil); err == nil {
			t.pid = tk.Pid()
			if st, err := tk.Status(ctx); err == nil {
				t.status = st.Status
			}
		}
		out = append(out, t)
	}
	return out
}

// running counts the RUNNING tasks of a node with the given spec hash ("" for any).
func (c *cluster) running(node, hash string) int {
	n := 0
	for _, t := range c.tasks(node) {
		if t.status == client.Running && (hash == "" || t.hash == hash) {
			n++
		}
	}
	return n
}

func (c *cluster) status() reconciler.Status {
	nc := c.connect("status")
	defer nc.Close()
	st, err := fetchStatus(c.ctx, nc)
	if err != nil {
		c.tb.Fatal(err)
	}
	return st
}

// waitPasses waits until the leader has run n passes after this call, so a
// test that checks that nothing happens gives the loop its chances to act
// instead of a fixed time. A new leader's passes count from its own first.
func (c *cluster) waitPasses(tb testing.TB, n int64) {
	tb.Helper()
	from := c.status()
	testenv.WaitFor(tb, 30*time.Second, fmt.Sprintf("%d passes", n), func() (bool, string) {
		st := c.status()
		if st.Term != from.Term {
			return st.Pass >= n, fmt.Sprintf("term %d pass %d", st.Term, st.Pass)
		}
		return st.Pass >= from.Pass+n, fmt.Sprintf("pass %d (from %d)", st.Pass, from.Pass)
	})
}

// cleanupContainerd removes everything the test created in containerd.
func (c *cluster) cleanupContainerd() {
	ctx := context.Background()
	for _, node := range slices.Sorted(maps.Keys(c.hostNS)) {
		ns := c.namespace(node)
		// The agent's data directory: Stop unmounts its pods' volumes.
		rt, err := nodeagent.NewContainerd(c.cli, ns, filepath.Join(c.dir, "agent-"+node))
		if err != nil {
			continue
		}
		cfg := c.cniConfig(node)
		cfg.StateDir = filepath.Join(c.dir, "agent-"+node, "cni")
		if n, err := nodeagent.NewCNI(cfg); err == nil {
			rt.SetNetwork(n, cfg.HostNetNS)
		}
		reps, err := rt.List(ctx)
		if err == nil {
			for _, r := range reps {
				if err := rt.Stop(ctx, r.ID, time.Second); err != nil {
					c.tb.Errorf("cleanup %s: %v", r.ID, err)
				}
			}
		}
		if err := testenv.RemoveContainerdNamespace(ctx, c.cli, ns); err != nil {
			c.tb.Errorf("cleanup: %v", err)
		}
	}
}

func deployment(replicas int, message string) map[string]string {
	return map[string]string{"hello.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: %d
  template:
    spec:
      containers:
        - name: web
          image: %s
          args: ["-message", %q]
`, replicas, testImage, message)}
}
