package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/nodeagent"
)

func serverCmd() *cobra.Command {
	var (
		so         serverOptions
		bus        busFlags
		natsListen string
		sans       []string
		cf         clusterFlags
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: the cluster's NATS server (JWT auth and TLS) and the reconciler",
		Long: `server runs the control plane of a cluster. On a fresh data dir it makes the
cluster's identity once (a CA, NATS operator and account keys, under
DATA-DIR/identity, 0600), and it embeds a NATS server with JetStream that
takes only credentials that identity signed, over TLS. Root on this machine
gets an admin credential in DATA-DIR/admin.creds (and the CA in
DATA-DIR/ca.crt), where the operator commands find it.

A cluster of several servers: start the first with --servers 3; it keeps a
server token in DATA-DIR/identity/server-token. Start each other one with
--join FIRST:8421 --token TOKEN on a fresh data dir: it gets the identity and
the routes, and the servers replicate the store (JetStream, R3) over routes
with mutual TLS (--cluster-listen). The cluster works once all have joined,
and goes on while a majority runs. See docs/cluster.md.

With --nats it embeds nothing and joins the NATS server at that URL instead,
with the server credential given by --creds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			daemon.Store(true)
			if so.repo == "" {
				return fmt.Errorf("--repo is required")
			}
			if err := os.MkdirAll(so.dataDir, 0o700); err != nil {
				return err
			}
			// Nothing is buffered while cut off: a command is sent now or
			// fails, never replayed later by the client library.
			noBuffer := nats.ReconnectBufSize(-1)
			if !cmd.Flags().Changed("nats") {
				return runEmbeddedServer(cmd, so, cf, natsListen, sans)
			}
			nc, cred, err := connectNATS(bus, "baton-server", noBuffer)
			if err != nil {
				return err
			}
			defer nc.Close()
			if cred == nil {
				zerolog.Ctx(cmd.Context()).Warn().Str("nats", bus.url).Msg("no credential: this bus is open to anyone who reaches it")
			} else if cred.Role != identity.RoleServer {
				return fmt.Errorf("--creds: a %s credential; the server needs a server credential", cred.Role)
			}
			return runServer(cmd.Context(), nc, so)
		},
	}
	f := cmd.Flags()
	bus.register(f)
	f.Lookup("nats").Usage = "join this NATS server (JetStream enabled) instead of embedding one"
	f.StringVar(&natsListen, "nats-listen", "0.0.0.0:4222", "address of the embedded NATS server")
	f.StringArrayVar(&sans, "tls-san", nil, "another name or address clients reach this server by, for its TLS certificate (repeatable)")
	f.StringVar(&so.dataDir, "data-dir", "/var/lib/baton", "where the server keeps the cluster identity, the NATS store and its git cache")
	f.StringVar(&so.join.listen, "join-listen", ":8421", "HTTPS address where machines and operators redeem join tokens (\"\" for none)")
	f.StringVar(&so.join.advertise, "join-advertise", "", "host:port machines made by node pools join at (default: --join-listen's; for an unspecified host, this machine's first address)")
	f.StringVar(&so.repo, "repo", "", "config repository to follow: a path, file:// or any URL go-git reads")
	f.DurationVar(&so.poll, "poll", 15*time.Second, "how often to fetch the repository")
	so.register(f)
	f.IntVar(&so.bucketReplicas, "kv-replicas", 1, "replicas of the JetStream KV buckets (3 on a NATS cluster)")
	f.StringVar(&so.id, "id", "", "this server's name in the leader lease and in its cluster (default: hostname-pid; in a cluster, the hostname)")
	cf.register(f)
	for _, sub := range serverSubcommands() {
		cmd.AddCommand(sub)
	}
	f.DurationVar(&so.leaseTTL, "lease-ttl", DefaultLeaseTTL, "leader lease TTL: run several servers; one leads, the others take over within about this long of its death")
	return cmd
}

func agentCmd() *cobra.Command {
	var (
		ao                agentOptions
		bus               busFlags
		labels            []string
		joinAddr, joinTok string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node agent on the local containerd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			daemon.Store(true)
			if _, err := ao.check(); err != nil {
				return err
			}
			ao.labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: want key=value", l)
				}
				ao.labels[k] = v
			}
			switch {
			case joinAddr != "":
				if err := os.MkdirAll(ao.dataDir, 0o700); err != nil {
					return err
				}
				var err error
				if bus, err = joinOnce(cmd.Context(), bus, joinAddr, joinTok, ao.node, ao.dataDir, cmd.Flags().Changed("nats")); err != nil {
					return err
				}
			case bus.creds == "" && fileExists(nodeCredsPath(ao.dataDir)):
				bus.creds = nodeCredsPath(ao.dataDir)
				if js := readJoined(ao.dataDir); js.NATS != "" && !cmd.Flags().Changed("nats") {
					bus.url = js.NATS
				}
			}
			// A joined node's pods take the subnet it leased.
			if js := readJoined(ao.dataDir); js.PodSubnet != "" && !cmd.Flags().Changed("pod-subnet") {
				ao.cni.Subnet = js.PodSubnet
			}
			// The bus closes a connection for good when it refuses the
			// credential (revoked, expired): the agent stops and says so
			// rather than run on cut off.
			ctx, cancel := context.WithCancelCause(cmd.Context())
			defer cancel(nil)
			nc, cred, err := connectNATS(bus, "baton-agent", nats.ClosedHandler(func(nc *nats.Conn) {
				cancel(&busClosedError{err: nc.LastError()})
			}))
			if err != nil {
				return err
			}
			defer nc.Close()
			if cred != nil {
				if cred.Role != identity.RoleAgent {
					return fmt.Errorf("--creds: a %s credential; an agent needs its node's (baton token create, then baton agent --join)", cred.Role)
				}
				if !cmd.Flags().Changed("node") {
					ao.node = cred.Name
				} else if cred.Name != ao.node {
					return fmt.Errorf("--creds: the credential is node %s's, not %s's", cred.Name, ao.node)
				}
				if !cred.Expires.IsZero() {
					r := &join.Renewer{NC: nc, CredsPath: bus.credsPath()}
					go func() {
						if err := r.Run(ctx); err != nil {
							zerolog.Ctx(ctx).Error().Err(err).Msg("credential renewal stopped")
						}
					}()
				}
			}
			err = runAgent(ctx, nc, ao)
			var closed *busClosedError
			if errors.As(context.Cause(ctx), &closed) {
				return closed
			}
			return err
		},
	}
	f := cmd.Flags()
	bus.register(f)
	ao.register(f)
	f.StringArrayVar(&labels, "label", nil, "node label key=value (repeatable)")
	f.StringVar(&joinAddr, "join", "", "join the cluster through this server's join endpoint (host:8421), once: the credential is kept in the data dir")
	f.StringVar(&joinTok, "token", "", "join token for --join (baton token create, on a server)")
	f.StringVar(&ao.dataDir, "data-dir", filepath.Join("/var/lib/baton", "agent"), "where the agent keeps logs, network namespaces and volumes")
	f.DurationVar(&ao.heartbeat, "heartbeat", 2*time.Second, "heartbeat interval")
	return cmd
}

// register adds the flags that baton server and baton up share.
func (so *serverOptions) register(f *pflag.FlagSet) {
	f.StringVar(&so.branch, "branch", "", "branch to follow (default: the repository's HEAD)")
	f.StringVar(&so.path, "path", "", "directory of the repository that holds the manifests")
	f.DurationVar(&so.nodeGrace, "node-grace", 10*time.Second, "how long a node may miss heartbeats before its replicas move")
	so.git.register(f)
	f.StringVar(&so.secretKey, "secret-key", "", "age identity file that decrypts SealedSecrets (baton secret keygen)")
	f.StringVar(&so.apiListen, "api-listen", "127.0.0.1:8420", "control-plane HTTP API address (\"\" for none)")
	f.StringVar(&so.apiTokens, "api-tokens", "", "file of API bearer tokens, one \"TOKEN read|admin\" per line (default: no authentication; keep the API on loopback then)")
	f.DurationVar(&so.join.agentTTL, "agent-creds-ttl", join.DefaultAgentTTL, "how long a joined agent's credential lasts (it renews it after two thirds)")
	f.StringVar(&so.placement, "placement", "spread", "how replicas are placed among the nodes that fit: spread (across nodes and zones) or binpack (fill the fullest node first)")
	f.StringArrayVar(&so.provisionerDirs, "provisioner-dir", nil, "directory whose executables NodePools may run as provisioners, as this server's user (repeatable; none by default: only webhook provisioners)")
}

// register adds the flags that baton agent and baton up share.
func (ao *agentOptions) register(f *pflag.FlagSet) {
	f.StringVar(&ao.node, "node", defaultNode(), "this node's name")
	f.StringVar(&ao.socket, "containerd", DefaultContainerdSocket, "containerd socket")
	f.StringVar(&ao.namespace, "namespace", "baton", "containerd namespace for baton's containers")
	f.StringVar(&ao.podSecurity, "pod-security", string(desired.PodSecurityBaseline), "what pods may ask of this node, as Kubernetes' Pod Security Standards: privileged, baseline (no privileged containers, host network or capabilities beyond the default set) or restricted (baseline, and non-root, ALL capabilities dropped)")
	f.BoolVar(&ao.privileged, "allow-privileged", false, "the same as --pod-security privileged")
	f.StringArrayVar(&ao.hostPaths, "host-path-allow", nil, "host directory that pods may mount with hostPath (repeatable; none by default)")
	f.DurationVar(&ao.stopGrace, "stop-grace", 30*time.Second, "time between SIGTERM and SIGKILL when stopping a container")
	f.StringVar(&ao.network, "network", "cni", "pod network: cni (a bridge with an address per pod, hostPort through portmap) or none (loopback only)")
	f.StringVar(&ao.cni.Subnet, "pod-subnet", nodeagent.DefaultSubnet, "addresses of this node's pods (a joined node uses the /24 it leased; give each other node its own)")
	f.StringVar(&ao.clusterCIDR, "cluster-cidr", join.DefaultClusterCIDR, "every pod address of the cluster: pods' traffic to it keeps their addresses, the rest is masqueraded (the servers lease nodes their /24 of 10.77.0.0/16: change it only beside --pod-subnet on nodes that do not join)")
	f.StringArrayVar(&ao.dnsUpstream, "dns-upstream", nil, "resolver (host:port) the pods' DNS forwards names outside the cluster to (repeatable; default: those of /etc/resolv.conf)")
	f.StringVar(&ao.backend, "network-backend", nodeagent.BackendAuto, "how this node reaches other nodes' pods: auto (straight through a node on a shared link, host-gw; through a vxlan tunnel, UDP 8472, to any other), host-gw or vxlan")
	f.StringArrayVar(&ao.taints, "taint", nil, "a taint of this node, KEY[=VALUE]:EFFECT (NoSchedule, PreferNoSchedule or NoExecute; repeatable): pods that do not tolerate it are not placed here (NoExecute: and moved away)")
	f.StringArrayVar(&ao.resources, "resource", nil, "a resource this node has beyond cpu and memory, NAME=QUANTITY, for placement (repeatable): an extended resource (nvidia.com/gpu=2), huge pages (hugepages-2Mi=1Gi), or ephemeral-storage (default: the size of the data dir's filesystem)")
	f.StringVar(&ao.address, "node-ip", "", "this node's address on the network between nodes, in its heartbeats (default: the source address of the route to the bus)")
	f.StringVar(&ao.cni.Bridge, "cni-bridge", nodeagent.DefaultBridge, "name of the node's pod bridge")
	f.StringArrayVar(&ao.cni.BinDirs, "cni-bin-dir", nodeagent.DefaultCNIBinDirs, "directory of the CNI plugins (repeatable)")
	f.StringVar(&ao.cni.HostNetNS, "host-netns", "", "network namespace that plays the host for the pod network and hostNetwork pods (default: the agent's own)")
	f.StringVar(&ao.metrics, "metrics-listen", "", "address where the agent serves its Prometheus metrics at /metrics (pods, restarts, probe failures, image pulls, start latency; \"\": none). No authentication: keep it on a private address")
}
