package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/batonhq/baton/internal/fsutil"
	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/natsserver"
	"github.com/batonhq/baton/reconciler/httpapi"
)

// Where a server keeps the cluster's identity and what it gives root on
// its machine, under its data dir.
func identityDir(dataDir string) string    { return filepath.Join(dataDir, "identity") }
func adminCredsPath(dataDir string) string { return filepath.Join(dataDir, "admin.creds") }
func caPath(dataDir string) string         { return filepath.Join(dataDir, "ca.crt") }

// nodeCredsPath is where a joined agent keeps its credential (its CA
// beside it, as ca.crt).
func nodeCredsPath(agentDir string) string { return filepath.Join(agentDir, "node.creds") }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// credName makes s (a host name, a server ID) a credential name: letters,
// digits, '-' and '_', at most 63.
func credName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 || b[0] == '-' || b[0] == '_' {
		b = append([]byte("s"), b...)
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return string(b)
}

// secureBus is an embedded NATS server that trusts the cluster's identity
// only: decentralized JWT auth, and TLS on the client port.
type secureBus struct {
	ns      *server.Server
	id      *identity.Identity
	dataDir string // where admin.creds and ca.crt are

	mu     sync.Mutex
	agents []*identity.Credential // in-process agents' credentials, recorded by name at the join store
}

// busCluster is how the embedded server takes part in a cluster of
// servers (nil: it is the only one).
type busCluster struct {
	c      *serverCluster
	listen string // the routes' address
}

// startSecureNATS opens the cluster identity in dataDir (making it on a
// fresh one), writes root's admin credential and the CA beside it, and
// starts the embedded NATS server on listen with JetStream under dataDir,
// its certificate naming the listen address and sans; with cl, it is a
// member of a cluster of servers.
func startSecureNATS(log *zerolog.Logger, listen, dataDir string, sans []string, cl *busCluster) (*secureBus, error) {
	id, err := identity.Open(identityDir(dataDir))
	if err != nil {
		return nil, err
	}
	root := "root"
	if cl != nil {
		// Each server's root has its own name: listed and revocable apart.
		root = credName("root-" + cl.c.st.Name)
	}
	if err := writeAdminCreds(id, dataDir, root); err != nil {
		return nil, err
	}
	hosts, err := certHosts(listen, sans)
	if err != nil {
		return nil, err
	}
	cfg := natsserver.Config{Listen: listen, StoreDir: filepath.Join(dataDir, "nats"),
		Secure: func(o *server.Options) error { return id.Configure(o, hosts...) }, Log: log}
	if cl != nil {
		if cfg.Cluster, err = cl.c.natsCluster(id, cl.listen, sans); err != nil {
			return nil, err
		}
		cfg.Name = cl.c.st.Name
	}
	ns, err := natsserver.Start(cfg)
	if err != nil {
		return nil, err
	}
	return &secureBus{ns: ns, id: id, dataDir: dataDir}, nil
}

// writeAdminCreds gives root on this machine an admin credential, once
// (revoke it as any other), and the CA every client checks the server with.
func writeAdminCreds(id *identity.Identity, dataDir, name string) error {
	if err := fsutil.WriteFileAtomic(caPath(dataDir), id.CAPEM(), 0o644); err != nil {
		return fmt.Errorf("write the CA: %w", err)
	}
	p := adminCredsPath(dataDir)
	if fileExists(p) {
		return nil
	}
	creds, err := id.IssueCreds(identity.RoleAdmin, name, 0)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(p, creds, 0o600); err != nil {
		return fmt.Errorf("write the admin credential: %w", err)
	}
	return nil
}

// certHosts are the names the server's certificate carries: the listen
// host (every address of this machine when it is unspecified), localhost,
// the loopback addresses, the hostname, and sans.
func certHosts(listen string, sans []string) ([]string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", listen, err)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					hosts = append(hosts, n.IP.String())
				}
			}
		}
		if h, err := os.Hostname(); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	} else {
		hosts = append(hosts, host)
	}
	return append(hosts, sans...), nil
}

// local connects inside this process as role and name, with a credential
// made for the connection.
func (b *secureBus) local(role identity.Role, name string, opts ...nats.Option) (*nats.Conn, error) {
	c, err := b.id.Local(role, name)
	if err != nil {
		return nil, err
	}
	if role == identity.RoleAgent {
		b.mu.Lock()
		b.agents = append(b.agents, c)
		b.mu.Unlock()
	}
	opts = append(append([]nats.Option{nats.InProcessServer(b.ns), nats.Name("baton-" + string(role) + "-" + name)}, c.Options()...), opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to the embedded nats as %s %s: %w", role, name, err)
	}
	return nc, nil
}

// systemConn connects inside this process to the system account.
func (b *secureBus) systemConn(name string) (*nats.Conn, error) {
	c, err := b.id.LocalSystem(name)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect("", append(c.Options(), nats.InProcessServer(b.ns), nats.Name(name))...)
	if err != nil {
		return nil, fmt.Errorf("connect to the system account: %w", err)
	}
	return nc, nil
}

// connectNATS connects a daemon to url, reconnecting forever.
func connectNATS(bus busFlags, name string, opts ...nats.Option) (*nats.Conn, *identity.Credential, error) {
	auth, cred, err := bus.options()
	if err != nil {
		return nil, nil, err
	}
	// A server that stops answering (its host cut off) is left for
	// another of the cluster within seconds (pings), not minutes.
	opts = append(append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond),
		nats.PingInterval(clientPingInterval), nats.MaxPingsOutstanding(2)}, auth...), opts...)
	nc, err := nats.Connect(bus.url, opts...)
	if err != nil {
		return nil, nil, bus.explain(err, cred)
	}
	return nc, cred, nil
}

// clientPingInterval is how often a daemon pings its server.
const clientPingInterval = 2 * time.Second

// defaultNATS is where the operator commands find NATS by default.
const defaultNATS = "nats://127.0.0.1:4222"

// defaultCreds is root's admin credential on a server's machine.
var defaultCreds = adminCredsPath("/var/lib/baton")

// busFlags say where the bus is and how to prove who we are on it.
type busFlags struct {
	url, creds, ca string
}

// register adds --nats, --creds and --ca.
func (b *busFlags) register(f *pflag.FlagSet) {
	url := os.Getenv("BATON_NATS")
	if url == "" {
		url = defaultNATS
	}
	f.StringVar(&b.url, "nats", url, "NATS server URL ($BATON_NATS)")
	f.StringVar(&b.creds, "creds", os.Getenv("BATON_CREDS"), "credentials file ($BATON_CREDS; default "+defaultCreds+" when it exists, written by baton up and baton server for root)")
	f.StringVar(&b.ca, "ca", os.Getenv("BATON_CA"), "CA certificate the server is checked with ($BATON_CA; default: ca.crt beside the credentials file)")
}

// credsPath is the credentials file the flags name ("" for none).
func (b busFlags) credsPath() string {
	if b.creds == "" && fileExists(defaultCreds) {
		return defaultCreds
	}
	return b.creds
}

// options are the connect options the flags give: none for an open bus
// (no credential found), else the credential, TLS against the CA, and the
// credential's inbox prefix.
func (b busFlags) options() ([]nats.Option, *identity.Credential, error) {
	creds := b.credsPath()
	if creds == "" {
		return nil, nil, nil
	}
	ca := b.ca
	if ca == "" {
		ca = filepath.Join(filepath.Dir(creds), "ca.crt")
	}
	opts, cred, err := identity.ClientOptions(creds, ca)
	if err != nil {
		return nil, nil, fmt.Errorf("--creds/--ca: %w", err)
	}
	return opts, cred, nil
}

// explain turns a refused connection into what to do about it; cred is
// the credential the connection offered (nil: none).
func (b busFlags) explain(err error, cred *identity.Credential) error {
	switch {
	case cred == nil && (errors.Is(err, nats.ErrAuthorization) || strings.Contains(err.Error(), "Authorization Violation") || strings.Contains(err.Error(), "tls")):
		return fmt.Errorf("connect to nats at %s: %w: the bus needs a credential: --creds FILE (baton up and baton server write DATA-DIR/admin.creds for root; baton token create makes join tokens)", b.url, err)
	case errors.Is(err, nats.ErrSecureConnRequired), strings.Contains(err.Error(), "certificate"):
		return fmt.Errorf("connect to nats at %s: %w: the server's certificate is checked with the cluster's CA: --ca FILE (DATA-DIR/ca.crt on a server)", b.url, err)
	case errors.Is(err, nats.ErrAuthExpired), strings.Contains(err.Error(), "expired"):
		return fmt.Errorf("connect to nats at %s: %w: the credential has expired: get a new one", b.url, err)
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(err.Error(), "Authorization Violation"):
		return fmt.Errorf("connect to nats at %s: %w: the server refused the credential %s %s (revoked, or of another cluster)", b.url, err, cred.Role, cred.Name)
	}
	return fmt.Errorf("connect to nats at %s (is baton up or baton server running?): %w", b.url, err)
}

// busClosedError is the bus closing a daemon's connection for good.
type busClosedError struct{ err error }

// revoked reports whether the bus refused the credential (the node was
// removed).
func (e *busClosedError) revoked() bool {
	return e.err != nil && strings.Contains(strings.ToLower(e.err.Error()), "authorization")
}

func (e *busClosedError) Error() string {
	if e.revoked() {
		return fmt.Sprintf("the cluster refused this node's credential (removed with baton node rm, or revoked): %v; join again with a new token", e.err)
	}
	return fmt.Sprintf("the connection to the bus was closed: %v", e.err)
}

func (e *busClosedError) Unwrap() error { return e.err }

// cliConn is an operator command's connection to the bus: a request the
// bus refuses (a permission violation: a viewer asking to pin) ends at once
// with that refusal instead of waiting for an answer that cannot come.
type cliConn struct {
	*nats.Conn
	cred    *identity.Credential
	refused chan error
}

// dialCLI connects a short-lived operator command to NATS.
func dialCLI(bus busFlags, name string) (*cliConn, error) {
	auth, cred, err := bus.options()
	if err != nil {
		return nil, err
	}
	c := &cliConn{cred: cred, refused: make(chan error, 1)}
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case c.refused <- err:
			default:
			}
		}
	})
	nc, err := nats.Connect(bus.url, append([]nats.Option{nats.Name(name), nats.Timeout(3 * time.Second), onErr}, auth...)...)
	if err != nil {
		return nil, bus.explain(err, cred)
	}
	c.Conn = nc
	return c, nil
}

// ask makes one request to the servers; a refusal by the bus ends it.
func (c *cliConn) ask(ctx context.Context, subject string, body, out any) error {
	return c.guard(ctx, subject, func(ctx context.Context) error { return httpapi.Ask(ctx, c.Conn, subject, body, out) })
}

// guard runs do until it ends or the bus refuses what it sent (a
// permission violation), which ends it at once, said as what is not
// allowed for whom.
func (c *cliConn) guard(ctx context.Context, what string, do func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-c.refused:
			cancel(err)
		case <-ctx.Done():
		}
	}()
	err := do(ctx)
	if cause := context.Cause(ctx); errors.Is(cause, nats.ErrPermissionViolation) {
		who := "this connection"
		if c.cred != nil {
			who = fmt.Sprintf("%s %s", c.cred.Role, c.cred.Name)
		}
		return fmt.Errorf("%s: not allowed for %s: %w", what, who, cause)
	}
	return err
}
