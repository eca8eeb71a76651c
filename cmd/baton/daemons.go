package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent"
)

func serverCmd() *cobra.Command {
	var (
		so      serverOptions
		natsURL string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the reconciler alone, against a NATS server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if so.repo == "" {
				return fmt.Errorf("--repo is required")
			}
			if err := os.MkdirAll(so.dataDir, 0o700); err != nil {
				return err
			}
			// Nothing is buffered while cut off: a command is sent now or
			// fails, never replayed later by the client library.
			nc, err := connectNATS(natsURL, "baton-server", nats.ReconnectBufSize(-1))
			if err != nil {
				return err
			}
			defer nc.Close()
			return runServer(cmd.Context(), nc, so)
		},
	}
	f := cmd.Flags()
	f.StringVar(&natsURL, "nats", defaultNATS, "NATS server URL (JetStream enabled)")
	f.StringVar(&so.dataDir, "data-dir", "/var/lib/baton", "where the server keeps its git cache")
	f.StringVar(&so.repo, "repo", "", "config repository to follow: a path, file:// or any URL go-git reads")
	f.DurationVar(&so.poll, "poll", 15*time.Second, "how often to fetch the repository")
	so.register(f)
	f.IntVar(&so.bucketReplicas, "kv-replicas", 1, "replicas of the JetStream KV buckets (3 on a NATS cluster)")
	f.StringVar(&so.id, "id", "", "this server's name in the leader lease (default: hostname-pid)")
	f.DurationVar(&so.leaseTTL, "lease-ttl", DefaultLeaseTTL, "leader lease TTL: run several servers; one leads, the others take over within about this long of its death")
	return cmd
}

func agentCmd() *cobra.Command {
	var (
		ao      agentOptions
		natsURL string
		labels  []string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node agent on the local containerd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := ao.podSecurityLevel(); err != nil {
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
			nc, err := connectNATS(natsURL, "baton-agent-"+ao.node)
			if err != nil {
				return err
			}
			defer nc.Close()
			return runAgent(cmd.Context(), nc, ao)
		},
	}
	f := cmd.Flags()
	f.StringVar(&natsURL, "nats", defaultNATS, "NATS server URL")
	ao.register(f)
	f.StringArrayVar(&labels, "label", nil, "node label key=value (repeatable)")
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
	f.StringVar(&so.placement, "placement", "spread", "how replicas are placed among the nodes that fit: spread (across nodes and zones) or binpack (fill the fullest node first)")
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
	f.StringVar(&ao.cni.Subnet, "pod-subnet", nodeagent.DefaultSubnet, "addresses of this node's pods (give each node its own)")
	f.StringVar(&ao.cni.Bridge, "cni-bridge", nodeagent.DefaultBridge, "name of the node's pod bridge")
	f.StringArrayVar(&ao.cni.BinDirs, "cni-bin-dir", nodeagent.DefaultCNIBinDirs, "directory of the CNI plugins (repeatable)")
	f.StringVar(&ao.cni.HostNetNS, "host-netns", "", "network namespace that plays the host for the pod network and hostNetwork pods (default: the agent's own)")
}
