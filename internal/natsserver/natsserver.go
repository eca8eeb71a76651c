package natsserver

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// Config says where an embedded server listens and stores.
type Config struct {
	// Listen is host:port; port 0 lets the kernel choose.
	Listen string
	// StoreDir is where JetStream keeps its streams ("" disables JetStream).
	StoreDir string
	// Name names the server ("baton" by default).
	Name string
	// Quiet turns the server's own log off (tests).
	Quiet bool
	// Secure, when set, adds authentication and TLS to the options (the
	// cluster identity's Configure).
	Secure func(*server.Options) error
	// Cluster, when set, makes the server a member of a cluster of
	// servers joined by routes (JetStream clustered: replicated streams).
	Cluster *Cluster
	// Log, when set, receives the server's notices, warnings and errors
	// (refused connections, permission violations) with component=nats.
	Log *zerolog.Logger
}

// Cluster says how a server reaches the other servers of its cluster.
type Cluster struct {
	// Name is the cluster's name, the same on every server.
	Name string
	// Listen is the route port's host:port (a port, not 0: the others
	// are told it).
	Listen string
	// Advertise is host:port the others reach this server's routes by
	// ("": the server picks one of its addresses).
	Advertise string
	// Routes are the other servers' route URLs (tls://host:port). With
	// none, the server routes to itself, which it drops: JetStream in a
	// cluster needs a route configured, and the others will dial in.
	Routes []string
	// TLS is mutual TLS on the routes (identity.RouteTLS).
	TLS *tls.Config
}

// routes are the options' route URLs for c, listening on host:port.
func (c *Cluster) routes(host string, port int) ([]*url.URL, error) {
	raw := c.Routes
	if len(raw) == 0 {
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		raw = []string{"tls://" + net.JoinHostPort(host, strconv.Itoa(port))}
	}
	var out []*url.URL
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("route %q: want tls://host:port", r)
		}
		out = append(out, u)
	}
	return out, nil
}

// logger adapts zerolog to the server's Logger.
type logger struct{ l zerolog.Logger }

func (z logger) Noticef(f string, v ...any) { z.l.Info().Msgf(f, v...) }
func (z logger) Warnf(f string, v ...any)   { z.l.Warn().Msgf(f, v...) }
func (z logger) Fatalf(f string, v ...any)  { z.l.Error().Msgf(f, v...) }
func (z logger) Errorf(f string, v ...any)  { z.l.Error().Msgf(f, v...) }
func (z logger) Debugf(f string, v ...any)  { z.l.Debug().Msgf(f, v...) }
func (z logger) Tracef(f string, v ...any)  { z.l.Trace().Msgf(f, v...) }

// PingInterval is how often the embedded server pings its clients.
const PingInterval = 1500 * time.Millisecond

// Options are the embedded server's settings: JetStream under StoreDir, a
// payload limit of protocol.MaxMessageBytes (every message Baton decodes),
// no signal handlers.
func Options(c Config) (*server.Options, error) {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := c.Name
	if name == "" {
		name = "baton"
	}
	o := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  c.StoreDir != "",
		StoreDir:   c.StoreDir,
		NoSigs:     true,
		NoLog:      c.Quiet,
		MaxPayload: protocol.MaxMessageBytes,
		// A client that stops answering pings (its host cut off) is closed
		// after about three intervals (4.5 s), which the reconciler hears
		// as a disconnection; a 2 s stall is not enough to close it.
		PingInterval: PingInterval,
		MaxPingsOut:  2,
	}
	if c.Cluster != nil {
		if err := clusterOptions(o, c.Cluster); err != nil {
			return nil, err
		}
	}
	if c.Secure != nil {
		if err := c.Secure(o); err != nil {
			return nil, fmt.Errorf("secure the embedded nats server: %w", err)
		}
	}
	return o, nil
}

// clusterOptions adds the routes of cluster c to o.
func clusterOptions(o *server.Options, c *Cluster) error {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("cluster listen address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 {
		return fmt.Errorf("cluster listen port %q: want a port number (the other servers are told it)", portStr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if c.Name == "" {
		return fmt.Errorf("cluster without a name")
	}
	routes, err := c.routes(host, port)
	if err != nil {
		return err
	}
	o.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port, Advertise: c.Advertise,
		TLSConfig: c.TLS, TLSTimeout: 2, ConnectRetries: 0}
	o.Routes = routes
	return nil
}

// Start starts an embedded server and waits until it takes connections.
func Start(c Config) (*server.Server, error) {
	opts, err := Options(c)
	if err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if c.Log != nil && !c.Quiet {
		s.SetLoggerV2(logger{c.Log.With().Str("component", "nats").Logger()}, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats did not start listening on %s", c.Listen)
	}
	return s, nil
}
