package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/nats-io/nats.go"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
)

// The attack suite: a server, a node and an attacker, each a machine played
// by a network namespace of the test's own, joined by a switch; the server
// and the node are separate baton processes, as in production. Every
// attack must fail closed, be logged, and crash nothing; after them all the
// cluster still follows its repository.

var agentRole = []identity.Role{identity.RoleAgent}

// fleetCluster is the suite's cluster.
type fleetCluster struct {
	t                   testing.TB
	fleet               *testenv.Fleet
	server, node, ops   testenv.Host
	evil                testenv.Host
	dir, repoDir, ctrNS string
	repo                *git.Repository
	serverLog           *lockedBuffer
	natsURL, joinAddr   string
	adminCreds          string
	sock                string
}

// baton runs the test binary as baton on host h and waits for it.
func (f *fleetCluster) baton(h testenv.Host, env []string, args ...string) (string, error) {
	cmd := h.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), asBaton+"=1"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// daemon starts the test binary as a baton daemon on host h; it is stopped
// (SIGTERM, then killed) when the test ends.
func (f *fleetCluster) daemon(h testenv.Host, logs *lockedBuffer, args ...string) *exec.Cmd {
	cmd := h.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asBaton+"=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	f.t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return cmd
}

func (f *fleetCluster) commit(msg string, files map[string]string) {
	wt, err := f.repo.Worktree()
	if err != nil {
		f.t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(f.repoDir, name), []byte(body), 0o644); err != nil {
			f.t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "e2e", Email: "e2e@localhost", When: time.Now()}}); err != nil {
		f.t.Fatal(err)
	}
}

// remove removes files from the repository and commits.
func (f *fleetCluster) remove(msg string, files ...string) {
	wt, err := f.repo.Worktree()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, name := range files {
		if _, err := wt.Remove(name); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "e2e", Email: "e2e@localhost", When: time.Now()}}); err != nil {
		f.t.Fatal(err)
	}
}

// user is a connection from a host, with the errors the bus sent it.
type user struct {
	nc   *nats.Conn
	mu   sync.Mutex
	errs []string
}

func (u *user) refusals() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.errs, "\n")
}

// connect connects from host h with opts.
func (f *fleetCluster) connect(h testenv.Host, opts ...nats.Option) (*user, error) {
	u := &user{}
	opts = append([]nats.Option{nats.SetCustomDialer(h), nats.MaxReconnects(0), nats.Timeout(5 * time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			u.mu.Lock()
			u.errs = append(u.errs, err.Error())
			u.mu.Unlock()
		})}, opts...)
	nc, err := nats.Connect(f.natsURL, opts...)
	if err != nil {
		return nil, err
	}
	u.nc = nc
	f.t.Cleanup(nc.Close)
	return u, nil
}

// as connects from h with a credentials file.
func (f *fleetCluster) as(h testenv.Host, creds string) *user {
	f.t.Helper()
	opts, _, err := identity.ClientOptions(creds, filepath.Join(filepath.Dir(creds), "ca.crt"))
	if err != nil {
		f.t.Fatal(err)
	}
	u, err := f.connect(h, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// refused checks that the bus refused what do did to u, by subject.
func refused(t *testing.T, u *user, subject string, do func() error) {
	t.Helper()
	if err := do(); err != nil && !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("%s: %v", subject, err)
	}
	testenv.WaitFor(t, 10*time.Second, "a permissions violation on "+subject, func() (bool, string) {
		r := u.refusals()
		return strings.Contains(r, "Permissions Violation") && strings.Contains(r, subject), r
	})
}

func (f *fleetCluster) status(u *user) reconciler.Status {
	f.t.Helper()
	var st reconciler.Status
	testenv.WaitFor(f.t, 20*time.Second, "the status", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		st, err = reconciler.FetchStatus(ctx, u.nc, reconciler.StatusRequest{Replicas: reconciler.ReplicasAll})
		return err == nil, fmt.Sprint(err)
	})
	return st
}

// fleetNodes are the nodes a fleet cluster may run (a containerd
// namespace each).
var fleetNodes = []string{"n1", "n2", "n3"}

func (f *fleetCluster) nodeNS(node string) string { return f.ctrNS + "-" + node }

// startAgent joins node from host h and runs its agent.
func (f *fleetCluster) startAgent(h testenv.Host, node string, logs *lockedBuffer) *exec.Cmd {
	return f.daemon(h, logs, "agent", "--join", f.joinAddr, "--token", f.token(), "--node", node, "--data-dir", filepath.Join(f.dir, node),
		"--containerd", f.sock, "--namespace", f.nodeNS(node), "--network", "none", "--heartbeat", "300ms")
}

// running counts n1's running replicas in containerd.
func (f *fleetCluster) running() int { return f.runningOn("n1") }

// runningOn counts the node's running replicas in containerd.
func (f *fleetCluster) runningOn(node string) int {
	n := 0
	for _, r := range f.replicasOn(node) {
		if r.State == protocol.StateRunning {
			n++
		}
	}
	return n
}

// replicasOn lists the node's replicas in containerd.
func (f *fleetCluster) replicasOn(node string) []protocol.Replica {
	cli, err := nodeagent.DialContainerd(context.Background(), f.sock)
	if err != nil {
		f.t.Fatal(err)
	}
	defer cli.Close()
	rt, err := nodeagent.NewContainerd(cli, f.nodeNS(node), filepath.Join(f.dir, "probe"))
	if err != nil {
		f.t.Fatal(err)
	}
	reps, err := rt.List(namespaces.WithNamespace(context.Background(), f.nodeNS(node)))
	if err != nil {
		f.t.Fatal(err)
	}
	return reps
}

func (f *fleetCluster) waitRunning(u *user, want int) {
	f.t.Helper()
	testenv.WaitFor(f.t, 60*time.Second, fmt.Sprintf("%d replicas running on n1", want), func() (bool, string) {
		st := f.status(u)
		n, ok := nodeOfStatus(st, "n1")
		return ok && n.Ready && f.running() == want && st.Workloads[0].Running == want, fmt.Sprintf("containerd %d, status %+v", f.running(), st.Workloads)
	})
}

// newFleetBase is a fleet with n1 and ops (and evil) hosts, the test image
// in every node's containerd namespace, and the repository: no server yet.
func newFleetBase(t testing.TB) *fleetCluster {
	sock := testenv.ContainerdSocket(t)
	archive := testenv.HelloArchive(t)
	fl := testenv.NewFleet(t)
	f := &fleetCluster{t: t, fleet: fl, node: fl.Host("n1"), evil: fl.Host("evil"), ops: fl.Host("ops"),
		dir: t.TempDir(), serverLog: &lockedBuffer{}, sock: sock}
	f.ctrNS = fmt.Sprintf("baton-attack-%d", time.Now().UnixNano()%1_000_000)
	cli, err := nodeagent.DialContainerd(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, node := range fleetNodes {
		if _, err := nodeagent.Import(context.Background(), cli, f.nodeNS(node), archive); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { f.cleanupContainerd() })

	f.repoDir = filepath.Join(f.dir, "repo")
	if f.repo, err = git.PlainInitWithOptions(f.repoDir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.Main}}); err != nil {
		t.Fatal(err)
	}
	f.commit("hello", deployment(1, "attacked"))
	return f
}

func newFleetCluster(t testing.TB, serverArgs ...string) *fleetCluster {
	f := newFleetBase(t)
	f.server = f.fleet.Host("server")
	f.natsURL = "tls://" + net.JoinHostPort(f.server.IP, "4222")
	f.joinAddr = net.JoinHostPort(f.server.IP, "8421")
	sdir := filepath.Join(f.dir, "server")
	f.adminCreds = adminCredsPath(sdir)
	args := []string{"server", "--repo", f.repoDir, "--branch", "main", "--poll", "200ms", "--data-dir", sdir,
		"--nats-listen", f.server.IP + ":4222", "--join-listen", f.joinAddr, "--api-listen", "", "--id", "s1"}
	f.daemon(f.server, f.serverLog, append(args, serverArgs...)...)
	testenv.WaitFor(t, 30*time.Second, "the server's admin credential", func() (bool, string) {
		return fileExists(f.adminCreds), f.serverLog.String()
	})
	return f
}

// token makes a join token on the ops host with root's admin credential.
func (f *fleetCluster) token(args ...string) string {
	f.t.Helper()
	var out string
	testenv.WaitFor(f.t, 30*time.Second, "a join token", func() (bool, string) {
		o, err := f.baton(f.ops, nil, append([]string{"token", "create", "--nats", f.natsURL, "--creds", f.adminCreds}, args...)...)
		out = o
		return err == nil, o
	})
	return strings.SplitN(out, "\n", 2)[0]
}

func (f *fleetCluster) cleanupContainerd() {
	cli, err := nodeagent.DialContainerd(context.Background(), f.sock)
	if err != nil {
		return
	}
	defer cli.Close()
	for _, node := range fleetNodes {
		rt, err := nodeagent.NewContainerd(cli, f.nodeNS(node), filepath.Join(f.dir, node))
		if err != nil {
			continue
		}
		ctx := context.Background()
		if reps, err := rt.List(ctx); err == nil {
			for _, r := range reps {
				_ = rt.Stop(ctx, r.ID, time.Second)
			}
		}
		if err := testenv.RemoveContainerdNamespace(ctx, cli, f.nodeNS(node)); err != nil {
			f.t.Errorf("cleanup: %v", err)
		}
	}
}

func TestAttacks(t *testing.T) {
	f := newFleetCluster(t, "--node-grace", "5s")

	// The node joins from its own machine, as an operator would join it.
	nodeLog := &lockedBuffer{}
	f.startAgent(f.node, "n1", nodeLog)
	admin := f.as(f.ops, f.adminCreds)
	f.waitRunning(admin, 1)

	// The attacker holds a real agent credential, for a machine of its own
	// that it joined with a token it was given.
	evilDir := filepath.Join(f.dir, "evil")
	dialEvil := func(ctx context.Context, network, addr string) (net.Conn, error) { return f.evil.Dial(network, addr) }
	if _, err := join.JoinVia(context.Background(), dialEvil, f.joinAddr, f.token(), agentRole, "evil", nodeCredsPath(evilDir)); err != nil {
		t.Fatal(err)
	}
	evil := f.as(f.evil, nodeCredsPath(evilDir))

	t.Run("no credential", func(t *testing.T) {
		if _, err := f.connect(f.evil); err == nil {
			t.Fatal("connected without TLS or a credential")
		}
		ca, _ := os.ReadFile(caPath(filepath.Join(f.dir, "server")))
		tc, err := identity.TrustCA(ca)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.connect(f.evil, nats.Secure(tc)); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
			t.Fatalf("connected with TLS and no credential: %v", err)
		}
		out, err := f.baton(f.evil, []string{"BATON_CREDS="}, "pin", "HEAD", "--nats", f.natsURL)
		if err == nil || !(strings.Contains(out, "needs a credential") || strings.Contains(out, "refused")) {
			t.Fatalf("baton pin --nats with no credential: %v\n%s", err, out)
		}
	})

	t.Run("a client without the CA", func(t *testing.T) {
		if _, err := f.connect(f.evil, nats.UserCredentials(nodeCredsPath(evilDir)), nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12})); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("connected trusting the system's CAs: %v", err)
		}
	})

	t.Run("a start command from another client", func(t *testing.T) {
		spec := protocol.Command{Version: protocol.Version, Op: protocol.OpStart, Term: math.MaxUint64,
			Start: &protocol.ReplicaSpec{ID: "evil-1", Workload: "evil"}}
		refused(t, evil, "baton.node.n1.cmd", func() error {
			return evil.nc.PublishRequest(protocol.CommandSubject("n1"), evil.nc.NewRespInbox(), protocol.Encode(spec))
		})
		refused(t, admin, "baton.node.n1.cmd", func() error { return admin.nc.Publish(protocol.CommandSubject("n1"), protocol.Encode(spec)) })
	})

	t.Run("reading the nodes' commands (secrets)", func(t *testing.T) {
		// Another node's exec input (an admin's keystrokes) and log
		// followers' keep-alives are that node's alone.
		for _, subj := range []string{"baton.node.n1.cmd", "baton.node.*.cmd", ">", "baton.node.n1.exec.in.*", "baton.node.*.exec.in.*", "baton.node.n1.logs.alive.*"} {
			refused(t, evil, subj, func() error { _, err := evil.nc.SubscribeSync(subj); return err })
		}
		refused(t, admin, "baton.node.*.cmd", func() error { _, err := admin.nc.SubscribeSync("baton.node.*.cmd"); return err })
	})

	t.Run("a resync with term 2^64-1", func(t *testing.T) {
		body := protocol.Encode(protocol.Resync{Version: protocol.Version, Term: math.MaxUint64, Leader: "evil"})
		refused(t, evil, protocol.ResyncSubject, func() error { return evil.nc.Publish(protocol.ResyncSubject, body) })
		refused(t, admin, protocol.ResyncSubject, func() error { return admin.nc.Publish(protocol.ResyncSubject, body) })
	})

	t.Run("heartbeats and reports for another node or a phantom", func(t *testing.T) {
		hb := protocol.Encode(protocol.Heartbeat{Version: protocol.Version, Node: "phantom"})
		refused(t, evil, "baton.node.phantom.heartbeat", func() error { return evil.nc.Publish(protocol.HeartbeatSubject("phantom"), hb) })
		empty := protocol.Encode(protocol.Report{Version: protocol.Version, Node: "n1"})
		refused(t, evil, "baton.node.n1.report", func() error { return evil.nc.Publish(protocol.ReportSubject("n1"), empty) })
		refused(t, evil, "baton.node.n1.heartbeat", func() error { return evil.nc.Publish(protocol.HeartbeatSubject("n1"), hb) })
	})

	t.Run("writes into KV, consumers delivering anywhere", func(t *testing.T) {
		for _, u := range []*user{evil, admin} {
			// A consumer on the image store delivering onto n1's commands
			// would bypass the subject permissions: no role but the
			// server's may make consumers.
			for _, subj := range []string{"$KV.baton-leader.lease", "$KV.baton-state.pin", "$JS.API.STREAM.DELETE.KV_baton-leader", "$JS.API.STREAM.PURGE.KV_baton-state",
				"$JS.API.CONSUMER.CREATE.OBJ_baton-images.evil", "$JS.API.CONSUMER.DURABLE.CREATE.OBJ_baton-images.evil"} {
				refused(t, u, subj, func() error { return u.nc.Publish(subj, []byte(`{}`)) })
			}
		}
	})

	t.Run("a viewer", func(t *testing.T) {
		vdir := filepath.Join(f.dir, "viewer")
		out, err := f.baton(f.ops, nil, "login", f.joinAddr, "--token", f.token("--role", "viewer"), "--name", "vic", "--creds", filepath.Join(vdir, "vic.creds"))
		if err != nil {
			t.Fatalf("login: %v\n%s", err, out)
		}
		v := []string{"--nats", f.natsURL, "--creds", filepath.Join(vdir, "vic.creds")}
		if out, err := f.baton(f.ops, nil, append([]string{"status"}, v...)...); err != nil || !strings.Contains(out, "hello") {
			t.Fatalf("a viewer's status: %v\n%s", err, out)
		}
		for _, args := range [][]string{{"pin", "HEAD"}, {"unpin"}, {"node", "rm", "n1"}, {"token", "create"}} {
			out, err := f.baton(f.ops, nil, append(args, v...)...)
			if err == nil || !strings.Contains(out, "not allowed for viewer vic") {
				t.Fatalf("a viewer's %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		// baton exec: only admins (the bus refuses the request at once).
		if out, err := f.baton(f.ops, nil, append(append([]string{"exec"}, v...), "hello", "--", "/hello", "-h")...); err == nil ||
			!strings.Contains(out, "exec (admins only): not allowed for viewer vic") {
			t.Fatalf("a viewer's exec: %v\n%s", err, out)
		}
		u := f.as(f.ops, filepath.Join(vdir, "vic.creds"))
		refused(t, u, "$KV.baton-state.pin", func() error { return u.nc.Publish("$KV.baton-state.pin", []byte(`{}`)) })

		// Revoked by an admin: disconnected, and refused from then on.
		a := []string{"--nats", f.natsURL, "--creds", f.adminCreds}
		if out, err := f.baton(f.ops, nil, append([]string{"user", "ls"}, a...)...); err != nil || !strings.Contains(out, "vic") || !strings.Contains(out, "root") {
			t.Fatalf("user ls: %v\n%s", err, out)
		}
		if out, err := f.baton(f.ops, nil, append([]string{"user", "rm", "vic"}, a...)...); err != nil || !strings.Contains(out, "viewer vic revoked") {
			t.Fatalf("user rm: %v\n%s", err, out)
		}
		testenv.WaitFor(t, 10*time.Second, "the revoked viewer disconnected", func() (bool, string) { return u.nc.IsClosed(), u.nc.Status().String() })
		if out, err := f.baton(f.ops, nil, append([]string{"status"}, v...)...); err == nil || !strings.Contains(out, "refused the credential viewer vic") {
			t.Fatalf("a revoked viewer's status: %v\n%s", err, out)
		}
	})

	t.Run("tokens: wrong, expired, used twice, for another CA", func(t *testing.T) {
		dialOps := func(ctx context.Context, network, addr string) (net.Conn, error) { return f.ops.Dial(network, addr) }
		tryJoin := func(tok, name string) error {
			_, err := join.JoinVia(context.Background(), dialOps, f.joinAddr, tok, agentRole, name, filepath.Join(t.TempDir(), "n.creds"))
			return err
		}
		tok := f.token()
		parsed, err := join.ParseToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		wrong := parsed
		wrong.Secret = strings.Repeat("A", len(parsed.Secret)-1) + "A"
		if err := tryJoin(wrong.String(), "x1"); err == nil || !strings.Contains(err.Error(), "wrong secret") {
			t.Fatalf("a wrong secret: %v", err)
		}
		if err := tryJoin(tok, "n1"); err == nil || !strings.Contains(err.Error(), "holds a credential") {
			t.Fatalf("joining as a node that is joined: %v", err)
		}
		if err := tryJoin(tok, "x1"); err != nil {
			t.Fatalf("the right token after those refusals: %v", err)
		}
		if err := tryJoin(tok, "x2"); err == nil || !strings.Contains(err.Error(), "already used") {
			t.Fatalf("a token used twice: %v", err)
		}
		short := f.token("--ttl", "1s")
		time.Sleep(1500 * time.Millisecond)
		if err := tryJoin(short, "x3"); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("an expired token: %v", err)
		}
		other := parsed
		other.CAFingerprint = strings.Repeat("0", 64)
		if err := tryJoin(other.String(), "x4"); err == nil || !strings.Contains(err.Error(), "not from the CA the token pins") {
			t.Fatalf("a token pinning another CA: %v", err)
		}
	})

	t.Run("an impostor join endpoint", func(t *testing.T) {
		fake, err := identity.Open(filepath.Join(t.TempDir(), "fake"))
		if err != nil {
			t.Fatal(err)
		}
		tc, err := fake.ServerTLS(f.evil.IP)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := f.evil.Listen("tcp", f.evil.IP+":8421")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { t.Error("the impostor was sent a join request") }), TLSConfig: tc}
		go func() { _ = srv.Serve(tls.NewListener(ln, tc)) }()
		defer srv.Close()
		dialOps := func(ctx context.Context, network, addr string) (net.Conn, error) { return f.ops.Dial(network, addr) }
		_, err = join.JoinVia(context.Background(), dialOps, f.evil.IP+":8421", f.token(), agentRole, "x5", filepath.Join(t.TempDir(), "n.creds"))
		if err == nil || !strings.Contains(err.Error(), "not from the CA the token pins") {
			t.Fatalf("joined through an impostor: %v", err)
		}
	})

	t.Run("malformed and oversized messages from an authenticated agent", func(t *testing.T) {
		for _, body := range [][]byte{[]byte("not json"), []byte(`{"version":1,"node":"n1"}`), bytes.Repeat([]byte("["), 100_000)} {
			if err := evil.nc.Publish(protocol.HeartbeatSubject("evil"), body); err != nil {
				t.Fatal(err)
			}
			if err := evil.nc.Publish(protocol.ReportSubject("evil"), body); err != nil {
				t.Fatal(err)
			}
		}
		if err := evil.nc.Publish(protocol.ReportSubject("evil"), make([]byte, 2<<20)); !errors.Is(err, nats.ErrMaxPayload) {
			t.Fatalf("a 2 MiB message: %v", err)
		}
		// Logged at a bounded rate (one line, then a count of those held
		// back): a flood of garbage does not flood the log.
		testenv.WaitFor(t, 20*time.Second, "the server logging the rejections", func() (bool, string) {
			l := f.serverLog.String()
			return strings.Contains(l, "rejected") && strings.Contains(l, "baton.node.evil."), ""
		})
	})

	t.Run("a removed node reconnecting", func(t *testing.T) {
		if out, err := f.baton(f.ops, nil, "node", "rm", "evil", "--nats", f.natsURL, "--creds", f.adminCreds); err != nil {
			t.Fatalf("node rm: %v\n%s", err, out)
		}
		testenv.WaitFor(t, 10*time.Second, "the removed node disconnected", func() (bool, string) { return evil.nc.IsClosed(), evil.nc.Status().String() })
		if _, err := f.connect(f.evil, nats.UserCredentials(nodeCredsPath(evilDir)), nats.RootCAs(filepath.Join(evilDir, "ca.crt"))); err == nil {
			t.Fatal("a removed node connected again")
		}
	})

	// After all that: the server and the node run, the node obeys the
	// leader (the resync did not reach it), nothing else runs on it, no
	// phantom is known, and the cluster still follows its repository.
	st := f.status(admin)
	if len(st.Nodes) != 1 || st.Nodes[0].Name != "n1" {
		t.Fatalf("nodes after the attacks: %+v", st.Nodes)
	}
	f.commit("hello: 2", deployment(2, "attacked"))
	f.waitRunning(admin, 2)
	for _, l := range []string{"Publish Violation", "Subscription Violation"} {
		if !strings.Contains(f.serverLog.String(), l) {
			t.Errorf("the server did not log a %s", l)
		}
	}
	if strings.Contains(f.serverLog.String(), "panic") || strings.Contains(nodeLog.String(), "panic") {
		t.Fatalf("a panic:\n%s\n%s", f.serverLog.String(), nodeLog.String())
	}
}
