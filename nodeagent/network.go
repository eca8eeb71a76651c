package nodeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// Network attaches pods to the node's network. The agent calls Attach after
// making a pod's network namespace and Detach before removing it.
type Network interface {
	// Attach gives the pod in nsPath an address and publishes its host ports,
	// returning the pod's IP.
	Attach(ctx context.Context, replica, nsPath string, ports []protocol.PortBinding) (string, error)
	// Detach releases what Attach made; detaching twice succeeds.
	Detach(ctx context.Context, replica, nsPath string, ports []protocol.PortBinding) error
}

// CNIConfig configures the CNI network of a node.
type CNIConfig struct {
	// BinDirs are searched for the plugins (bridge, host-local, portmap).
	BinDirs []string
	// Bridge is the node bridge's name; Subnet the pods' addresses on it.
	Bridge string
	Subnet string
	// HostNetNS is the network namespace that plays the host: where the
	// bridge, routes and port-forwarding rules live. "" is the agent's own;
	// tests set one they created, so nothing touches the machine's network.
	HostNetNS string
	// StateDir keeps address leases and CNI's result cache.
	StateDir string
}

// DefaultCNIBinDirs are where Debian and upstream install the plugins.
var DefaultCNIBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Defaults of a node's pod network.
const (
	DefaultBridge = "baton0"
	// DefaultSubnet is the first /24 of the cluster CIDR (10.77.0.0/16):
	// baton up's node's; a node that joins leases another one.
	DefaultSubnet = "10.77.0.0/24"
	networkName   = "baton"
	podInterface  = "eth0"
)

// ErrNoCNIPlugins is returned by NewCNI when the plugins are not installed.
var ErrNoCNIPlugins = errors.New("CNI plugins not found")

// CNI is the Network made of the standard CNI plugins: a bridge with
// host-local addresses, and portmap for host ports.
type CNI struct {
	cfg  CNIConfig
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

// NewCNI checks that the plugins are present and returns the network.
func NewCNI(cfg CNIConfig) (*CNI, error) {
	if len(cfg.BinDirs) == 0 {
		cfg.BinDirs = DefaultCNIBinDirs
	}
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.Subnet == "" {
		cfg.Subnet = DefaultSubnet
	}
	if _, _, err := net.ParseCIDR(cfg.Subnet); err != nil {
		return nil, fmt.Errorf("pod subnet %q: %w", cfg.Subnet, err)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("CNI state dir not set")
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := invoke.FindInPath(p, cfg.BinDirs); err != nil {
			return nil, fmt.Errorf("%w: %s in %v (Debian: apt-get install containernetworking-plugins iptables)", ErrNoCNIPlugins, p, cfg.BinDirs)
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("CNI state dir: %w", err)
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       networkName,
		"plugins": []any{
			map[string]any{
				// Masquerading is EnsureMasquerade's: only traffic leaving
				// the cluster, so pods see each other's addresses.
				"type": "bridge", "bridge": cfg.Bridge, "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": cfg.Subnet}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(cfg.StateDir, "ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
		},
	}
	b, _ := json.Marshal(conf)
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("CNI config: %w", err)
	}
	ex := &nsExec{hostNS: cfg.HostNetNS}
	return &CNI{cfg: cfg, list: list, cni: libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, filepath.Join(cfg.StateDir, "cache"), ex)}, nil
}

// Config returns the network's settings.
func (c *CNI) Config() CNIConfig { return c.cfg }

func (c *CNI) runtimeConf(replica, nsPath string, ports []protocol.PortBinding) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: replica, NetNS: nsPath, IfName: podInterface}
	if len(ports) > 0 {
		pm := make([]map[string]any, 0, len(ports))
		for _, p := range ports {
			m := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": protocolName(p.Protocol)}
			if p.HostIP != "" {
				m["hostIP"] = p.HostIP
			}
			pm = append(pm, m)
		}
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

func protocolName(p string) string {
	switch p {
	case "UDP", "udp":
		return "udp"
	case "SCTP", "sctp":
		return "sctp"
	}
	return "tcp"
}

// Attach implements Network.
func (c *CNI) Attach(ctx context.Context, replica, nsPath string, ports []protocol.PortBinding) (string, error) {
	res, err := c.cni.AddNetworkList(ctx, c.list, c.runtimeConf(replica, nsPath, ports))
	if err != nil {
		return "", fmt.Errorf("attach pod %s to network %s: %w", replica, networkName, err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return "", fmt.Errorf("attach pod %s: result: %w", replica, err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			return ip.Address.IP.String(), nil
		}
	}
	if len(r.IPs) > 0 {
		return r.IPs[0].Address.IP.String(), nil
	}
	return "", fmt.Errorf("attach pod %s: the network gave no address", replica)
}

// Detach implements Network.
func (c *CNI) Detach(ctx context.Context, replica, nsPath string, ports []protocol.PortBinding) error {
	if err := c.cni.DelNetworkList(ctx, c.list, c.runtimeConf(replica, nsPath, ports)); err != nil {
		return fmt.Errorf("detach pod %s from network %s: %w", replica, networkName, err)
	}
	return nil
}

// nsExec runs CNI plugins with hostNS as their network namespace: the
// process is forked from a thread that entered it, and inherits it.
type nsExec struct {
	hostNS string
}

func (e *nsExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = environ, bytes.NewReader(stdin), &stdout, &stderr
	if err := inNetNS(e.hostNS, cmd.Start); err != nil {
		return nil, fmt.Errorf("run CNI plugin %s: %w", filepath.Base(pluginPath), err)
	}
	if err := cmd.Wait(); err != nil {
		// Plugins describe their failures as a JSON error on stdout.
		var perr types.Error
		if json.Unmarshal(stdout.Bytes(), &perr) == nil && perr.Msg != "" {
			return nil, &perr
		}
		return nil, fmt.Errorf("CNI plugin %s: %w: %s", filepath.Base(pluginPath), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func (e *nsExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (e *nsExec) Decode(b []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(b)
}
