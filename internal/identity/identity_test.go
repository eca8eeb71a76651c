package identity_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/natsserver"
	"github.com/batonhq/baton/internal/testenv"
)

func TestOpenMakesTheIdentityOnceAndKeepsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "identity")
	a, err := identity.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.CAFingerprint() != b.CAFingerprint() || a.AccountPublicKey() != b.AccountPublicKey() {
		t.Fatal("opening again made another identity")
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %o, want 700", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 7 {
		t.Fatalf("%d files, want 7", len(entries))
	}
	for _, e := range entries {
		if st, _ := os.Stat(filepath.Join(dir, e.Name())); st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %o, want 600", e.Name(), st.Mode().Perm())
		}
	}
	// Readable by others: refused, not used.
	if err := os.Chmod(filepath.Join(dir, "account.nk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.Open(dir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a key readable by others: %v", err)
	}
	// Part of an identity: refused, never replaced.
	if err := os.Remove(filepath.Join(dir, "account.nk")); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.Open(dir); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("an incomplete identity: %v", err)
	}
}

// bus is an embedded NATS server trusting one identity, with TLS.
type bus struct {
	id  *identity.Identity
	srv *server.Server
	url string
}

func startBus(t *testing.T) *bus {
	t.Helper()
	id, err := identity.Open(filepath.Join(t.TempDir(), "identity"))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := natsserver.Options(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Configure(opts, "127.0.0.1", "localhost"); err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	return &bus{id: id, srv: s, url: s.ClientURL()}
}

// user is a connection with a credential of role and name, and the async
// errors the server sent it (permission violations).
type user struct {
	nc   *nats.Conn
	mu   sync.Mutex
	errs []string
}

func (u *user) violations() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.errs, "; ")
}

func (b *bus) connect(t *testing.T, role identity.Role, name string, ttl time.Duration) (*user, string) {
	t.Helper()
	seed, pub, err := identity.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	j, err := b.id.Issue(role, name, pub, ttl)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := identity.Creds(j, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	u := &user{}
	nc, err := nats.Connect(b.url, nats.UserCredentials(path), nats.Secure(b.id.ClientTLS()),
		nats.CustomInboxPrefix(identity.InboxPrefix(role, name)), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			u.mu.Lock()
			u.errs = append(u.errs, err.Error())
			u.mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("%s %s: %v", role, name, err)
	}
	t.Cleanup(nc.Close)
	u.nc = nc
	return u, pub
}

// delivered publishes subject from u and reports whether the observer got
// it: a marker published after it on a subject u may use arrives after it
// if it arrives at all (one connection's messages stay in order).
func delivered(t *testing.T, observer *nats.Conn, u *user, subject, marker string) bool {
	t.Helper()
	sub, err := observer.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := observer.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = u.nc.Publish(subject, []byte("x"))
	if err := u.nc.Publish(marker, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	_ = u.nc.Flush()
	for {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("the marker %s never arrived: %v", marker, err)
		}
		switch m.Subject {
		case subject:
			return true
		case marker:
			return false
		}
	}
}

func TestNoCredentialNoCAnoBus(t *testing.T) {
	b := startBus(t)
	if nc, err := nats.Connect(b.url, nats.Secure(b.id.ClientTLS()), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("connected without a credential")
	}
	creds, err := b.id.IssueCreds(identity.RoleServer, "s1", 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s1.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	// A client that does not trust the cluster's CA (its system roots).
	if nc, err := nats.Connect(b.url, nats.UserCredentials(path), nats.Secure(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("connected without the cluster's CA")
	}
	// Another cluster's identity: its credentials are refused.
	other, err := identity.Open(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.IssueCreds(identity.RoleServer, "s1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(b.url, nats.UserCredentials(path), nats.Secure(b.id.ClientTLS()), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("connected with another cluster's credential")
	}
	// An expired credential.
	for _, bad := range []string{"n.1", "n*", "n>", "n 1", "", "-n", strings.Repeat("n", 64)} {
		if _, err := b.id.Issue(identity.RoleAgent, bad, "UX", 0); !errors.Is(err, identity.ErrBadName) {
			t.Fatalf("node name %q: %v", bad, err)
		}
	}
	seed, pub, _ := identity.NewUserKey()
	j, err := b.id.Issue(identity.RoleAgent, "n1", pub, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := identity.Creds(j, seed)
	if err := os.WriteFile(path, expired, 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the credential to expire", func() (bool, string) {
		nc, err := nats.Connect(b.url, nats.UserCredentials(path), nats.Secure(b.id.ClientTLS()), nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			return false, "still accepted"
		}
		return true, ""
	})
}

func TestAgentIsConfinedToItsNode(t *testing.T) {
	b := startBus(t)
	srv, _ := b.connect(t, identity.RoleServer, "s1", 0)
	n1, _ := b.connect(t, identity.RoleAgent, "n1", time.Hour)
	marker := "baton.node.n1.heartbeat"

	if !delivered(t, srv.nc, n1, "baton.node.n1.report", marker) {
		t.Fatal("an agent's own report was not delivered")
	}
	for _, forged := range []string{
		"baton.node.n2.report",    // another node's report
		"baton.node.n2.heartbeat", // a phantom's heartbeat
		"baton.node.n2.cmd",       // a command to another node
		"baton.node.n1.cmd",       // a command to itself
		"baton.agents.resync",     // a resync with a forged term
		"baton.api.admin.pin",     // an operator's request
		"$KV.baton.leader",        // the state, straight
	} {
		if delivered(t, srv.nc, n1, forged, marker) {
			t.Fatalf("an agent published %s", forged)
		}
	}
	// It receives its own commands and answers them; not another node's.
	if _, err := n1.nc.Subscribe("baton.node.n1.cmd", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }); err != nil {
		t.Fatal(err)
	}
	spy, err := n1.nc.SubscribeSync("baton.node.n2.cmd")
	if err != nil {
		t.Fatal(err)
	}
	_ = n1.nc.Flush()
	if m, err := srv.nc.Request("baton.node.n1.cmd", []byte("start"), 5*time.Second); err != nil || string(m.Data) != "ok" {
		t.Fatalf("a command to the agent's own node: %v", err)
	}
	_ = srv.nc.Publish("baton.node.n2.cmd", []byte("secret values"))
	_ = srv.nc.Flush()
	testenv.WaitFor(t, 5*time.Second, "a permission violation for the spy", func() (bool, string) {
		v := n1.violations()
		return strings.Contains(v, "baton.node.n2.cmd"), v
	})
	if m, err := spy.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("an agent read another node's command: %q", m.Data)
	}
	// No JetStream: KV is the servers'.
	js, err := jetstream.New(n1.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "forged"}); err == nil {
		t.Fatal("an agent made a KV bucket")
	}
}

func TestOperatorsReadOrAdminister(t *testing.T) {
	b := startBus(t)
	srv, _ := b.connect(t, identity.RoleServer, "s1", 0)
	viewer, _ := b.connect(t, identity.RoleViewer, "alice", time.Hour)
	admin, _ := b.connect(t, identity.RoleAdmin, "bob", time.Hour)
	// The server answers the API subjects.
	if _, err := srv.nc.Subscribe("baton.api.>", func(m *nats.Msg) { _ = m.Respond([]byte("answer")) }); err != nil {
		t.Fatal(err)
	}
	_ = srv.nc.Flush()
	for _, u := range []*user{viewer, admin} {
		if m, err := u.nc.Request("baton.api.status", nil, 5*time.Second); err != nil || string(m.Data) != "answer" {
			t.Fatalf("status: %v", err)
		}
	}
	if _, err := admin.nc.Request("baton.api.admin.pin", nil, 5*time.Second); err != nil {
		t.Fatalf("an admin's pin: %v", err)
	}
	if delivered(t, srv.nc, viewer, "baton.api.admin.pin", "baton.api.status") {
		t.Fatal("a viewer published a pin")
	}
	for _, u := range []*user{viewer, admin} {
		if delivered(t, srv.nc, u, "baton.node.n1.cmd", "baton.api.status") {
			t.Fatal("an operator sent a node a command")
		}
		if delivered(t, srv.nc, u, "$JS.API.STREAM.CREATE.KV_baton", "baton.api.status") {
			t.Fatal("an operator used JetStream")
		}
	}
}

func TestRevokedAgentIsCutOff(t *testing.T) {
	b := startBus(t)
	seed, pub, _ := identity.NewUserKey()
	j, err := b.id.Issue(identity.RoleAgent, "n1", pub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := identity.Creds(j, seed)
	path := filepath.Join(t.TempDir(), "n1.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	connect := func() (*nats.Conn, error) {
		return nats.Connect(b.url, nats.UserCredentials(path), nats.Secure(b.id.ClientTLS()), nats.MaxReconnects(0))
	}
	nc, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if _, err := b.id.Revoke(pub); err != nil {
		t.Fatal(err)
	}
	if err := b.id.UpdateServer(b.srv); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a revoked agent stayed connected")
	}
	if nc, err := connect(); err == nil {
		nc.Close()
		t.Fatal("a revoked agent connected again")
	}
	// The revocation is kept with the identity: a server started from it
	// again refuses the credential too.
	again, err := identity.Open(b.id.Dir())
	if err != nil {
		t.Fatal(err)
	}
	aj, err := again.AccountJWT()
	if err != nil {
		t.Fatal(err)
	}
	ac, err := jwt.DecodeAccountClaims(aj)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ac.Revocations[pub]; !ok {
		t.Fatalf("the revocation was not kept: %v", ac.Revocations)
	}
}

func TestServerCertificateNamesItsHosts(t *testing.T) {
	id, err := identity.Open(filepath.Join(t.TempDir(), "identity"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.ServerTLS(); err == nil {
		t.Fatal("a server certificate for no host")
	}
	tc, err := id.ServerTLS("127.0.0.1", "baton-1.example")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(id.CAPEM())
	for _, host := range []string{"127.0.0.1", "baton-1.example"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Fatalf("%s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.example"}); err == nil {
		t.Fatal("the certificate verifies for a host it does not name")
	}
}
