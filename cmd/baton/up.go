package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/nodeagent"
)

func defaultNode() string {
	h, err := os.Hostname()
	if err != nil || !nodeagent.NodeName.MatchString(h) {
		return "node-1"
	}
	return h
}

func upCmd() *cobra.Command {
	var (
		so         serverOptions
		ao         agentOptions
		natsListen string
		images     []string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything on this machine: embedded NATS, the reconciler and a node agent",
		Long: `up runs Baton all-in-one, like 'nomad agent -dev' or k3s: an embedded NATS
server with JetStream (data under --data-dir), the reconciler, and a node agent
on the local containerd (started as a child process if none is running).

With no --repo it creates a config repository under the data dir, seeded from
examples/hello, and follows it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			daemon.Store(true)
			ctx := cmd.Context()
			log := zerolog.Ctx(ctx)
			if _, err := ao.check(); err != nil {
				return err
			}
			if err := os.MkdirAll(so.dataDir, 0o700); err != nil {
				return err
			}
			ao.dataDir = filepath.Join(so.dataDir, "agent")
			removePID, err := lockUp(so.dataDir)
			if err != nil {
				return err
			}
			defer removePID()
			sock, stopContainerd, err := ensureContainerd(ctx, ao.socket, so.dataDir)
			if err != nil {
				return err
			}
			defer stopContainerd()
			ao.socket = sock
			if err := writeUpSettings(so.dataDir, ao); err != nil {
				return err
			}
			if err := importImages(ctx, sock, ao.namespace, images); err != nil {
				return err
			}

			seeded := false
			if so.repo == "" {
				so.repo = filepath.Join(so.dataDir, "repo")
				if seeded, err = seedRepo(so.repo); err != nil {
					return err
				}
			}

			sb, err := startSecureNATS(log, natsListen, so.dataDir, nil, nil)
			if err != nil {
				return err
			}
			defer sb.ns.Shutdown()
			so.bus = sb
			snc, err := sb.local(identity.RoleServer, credName(so.serverID()), nats.ReconnectBufSize(-1))
			if err != nil {
				return err
			}
			defer snc.Close()
			anc, err := sb.local(identity.RoleAgent, ao.node)
			if err != nil {
				return err
			}
			defer anc.Close()

			printWelcome(cmd, so, sb.ns.ClientURL(), seeded)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			errc := make(chan error, 2)
			go func() { errc <- runAgent(ctx, anc, ao) }()
			go func() { errc <- runServer(ctx, snc, so) }()
			err = <-errc
			cancel()
			if err2 := <-errc; err == nil {
				err = err2
			}
			log.Info().Msg("stopped; the containers keep running until the next baton up")
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&so.dataDir, "data-dir", "/var/lib/baton", "where baton keeps its state")
	f.StringVar(&so.repo, "repo", "", "config repository to follow: a path, file:// or any URL go-git reads (default: a local repository seeded from examples/hello)")
	f.DurationVar(&so.poll, "poll", 2*time.Second, "how often to fetch the repository")
	so.register(f)
	f.StringVar(&natsListen, "nats-listen", "127.0.0.1:4222", "address of the embedded NATS server")
	f.StringVar(&so.join.listen, "join-listen", "127.0.0.1:8421", "HTTPS address where machines and operators redeem join tokens (\"\" for none)")
	f.StringVar(&so.join.advertise, "join-advertise", "", "host:port machines made by node pools join at (default: --join-listen's; for an unspecified host, this machine's first address)")
	ao.register(f)
	f.StringArrayVar(&images, "image", nil, "OCI image archive to import before starting (repeatable)")
	so.bucketReplicas = 1
	return cmd
}

// dialableURL is a listening server's URL as a client on this machine
// dials it: an unspecified host (0.0.0.0, ::) is loopback, which the
// server's certificate names.
func dialableURL(u string) string {
	scheme, addr, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return u
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func printWelcome(cmd *cobra.Command, so serverOptions, natsURL string, seeded bool) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Baton is up. NATS: %s (TLS; credentials required)\n", natsURL)
	// Off the defaults, the operator commands the hints name need to be
	// told where the bus and root's credential are.
	var env []string
	if so.dataDir != "/var/lib/baton" {
		env = append(env, "BATON_CREDS="+adminCredsPath(so.dataDir))
	}
	if u := dialableURL(natsURL); !strings.HasSuffix(defaultNATS, "://"+strings.SplitN(u, "://", 2)[1]) { // tls:// or nats://: the address counts
		env = append(env, "BATON_NATS="+u)
	}
	if len(env) > 0 {
		fmt.Fprintf(w, "Operator commands (baton status, logs, ...) need: export %s\n", strings.Join(env, " "))
	}
	if so.apiListen != "" {
		fmt.Fprintf(w, "Dashboard and API: %s/\n", dialableURL("http://"+so.apiListen))
	}
	fmt.Fprintf(w, "Following config repository: %s\n", so.repo)
	if seeded {
		fmt.Fprintf(w, "It was created from examples/hello. Try:\n")
		fmt.Fprintf(w, "  cd %s\n", so.repo)
		fmt.Fprintf(w, "  sed -i 's/replicas: 3/replicas: 5/' hello.yaml && git commit -am 'hello: 5 replicas'\n")
		fmt.Fprintf(w, "  baton status            # in another terminal: watch the replicas converge\n")
		fmt.Fprintf(w, "  git revert --no-edit HEAD   # and back to 3\n")
	}
	fmt.Fprintln(w, "Stop with Ctrl-C; containers keep running and are re-adopted by the next 'baton up'. 'baton down' stops everything, pods and their network rules included.")
}
