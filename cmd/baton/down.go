package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/fsutil"
	"github.com/batonhq/baton/nodeagent"
)

// upPIDPath is where a running baton up keeps its process ID, locked
// (flock) for as long as it runs.
func upPIDPath(dataDir string) string { return filepath.Join(dataDir, "up.pid") }

// lockUp records this process as the data dir's baton up and holds the
// record's lock until the returned func: a second baton up on the data
// dir is refused, and baton down knows a record whose lock nobody holds
// is stale (whatever process now has that number).
func lockUp(dataDir string) (func(), error) {
	p := upPIDPath(dataDir)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("record this baton up: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(p)
		f.Close()
		return nil, fmt.Errorf("another baton up runs with data dir %s (process %s): baton down stops it", dataDir, strings.TrimSpace(string(b)))
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = os.Remove(p) // ours: we hold its lock
		f.Close()
	}, nil
}

// upSettings are where baton up put things on this machine, kept in the
// data dir (up.json) for baton down: it undoes exactly that, with no flag
// to repeat, and nothing where no baton up ran.
type upSettings struct {
	Containerd  string   `json:"containerd"`
	Namespace   string   `json:"namespace"`
	Network     string   `json:"network"`
	HostNetNS   string   `json:"hostNetNS,omitempty"`
	Bridge      string   `json:"bridge"`
	Subnet      string   `json:"subnet"`
	ClusterCIDR string   `json:"clusterCIDR"`
	Backend     string   `json:"backend"`
	CNIBinDirs  []string `json:"cniBinDirs,omitempty"`
}

func upSettingsPath(dataDir string) string { return filepath.Join(dataDir, "up.json") }

func writeUpSettings(dataDir string, ao agentOptions) error {
	b, _ := json.MarshalIndent(upSettings{Containerd: ao.socket, Namespace: ao.namespace, Network: ao.network, HostNetNS: ao.cni.HostNetNS,
		Bridge: ao.cni.Bridge, Subnet: ao.cni.Subnet, ClusterCIDR: ao.clusterCIDR, Backend: ao.backend, CNIBinDirs: ao.cni.BinDirs}, "", "  ")
	return fsutil.WriteFileAtomic(upSettingsPath(dataDir), append(b, '\n'), 0o600)
}

// readUpSettings fills ao with what baton up ran with; ok is false where
// no baton up ran with that data dir.
func readUpSettings(dataDir string, ao *agentOptions) (bool, error) {
	b, err := os.ReadFile(upSettingsPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var s upSettings
	if err := json.Unmarshal(b, &s); err != nil {
		return false, fmt.Errorf("%s: %w", upSettingsPath(dataDir), err)
	}
	ao.socket, ao.namespace, ao.network, ao.cni.HostNetNS = s.Containerd, s.Namespace, s.Network, s.HostNetNS
	ao.cni.Bridge, ao.cni.Subnet, ao.clusterCIDR, ao.backend = s.Bridge, s.Subnet, s.ClusterCIDR, s.Backend
	if len(s.CNIBinDirs) > 0 {
		ao.cni.BinDirs = s.CNIBinDirs
	}
	return true, nil
}

func downCmd() *cobra.Command {
	var (
		ao      agentOptions
		dataDir string
		wait    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop everything baton up started on this machine: baton up itself, its pods, their network and its rules",
		Long: `down undoes baton up on this machine: it stops the baton up of --data-dir
(if it runs), then every pod in its containerd namespace (each container
stopped, SIGTERM then SIGKILL after --stop-grace, and removed, with its
network and host ports), the routes and the vxlan tunnel to other nodes,
the Services' nftables table, the masquerade chain, the portmap plugin's
chains when no pod maps a port any more, and the pod bridge; a containerd
that baton up started is stopped again. Where things are (containerd, its
namespace, the host's network namespace, the bridge, the pod subnet) it
reads from the data dir's up.json, which baton up writes: where no baton up
ran it does nothing. The data dir (state, config repository, volumes,
images) is kept: the next baton up starts from it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			ao.dataDir = filepath.Join(dataDir, "agent")
			ran, err := readUpSettings(dataDir, &ao)
			if err != nil {
				return err
			}
			if !ran {
				// A node of baton agent (the same containerd namespace by
				// default) is never taken for baton up's.
				fmt.Fprintf(out, "no baton up ran with data dir %s (it has no up.json): nothing to stop (--data-dir names another)\n", dataDir)
				return nil
			}
			if pid, err := stopUp(ctx, dataDir, wait); err != nil {
				return err
			} else if pid > 0 {
				fmt.Fprintf(out, "stopped baton up (process %d)\n", pid)
			}
			sock, stopContainerd, err := ensureContainerd(ctx, ao.socket, dataDir)
			if errors.Is(err, errNoContainerd) {
				fmt.Fprintln(out, "containerd is not installed: no pod to stop")
				return nil
			}
			if err != nil {
				return err
			}
			defer stopContainerd()
			cli, err := nodeagent.DialContainerd(ctx, sock)
			if err != nil {
				return err
			}
			defer cli.Close()
			rt, err := nodeagent.NewContainerd(cli, ao.namespace, ao.dataDir)
			if err != nil {
				return err
			}
			defer rt.StopProbes()
			var cni *nodeagent.CNI
			if ao.network == "cni" {
				cfg := ao.cni
				cfg.StateDir = filepath.Join(ao.dataDir, "cni")
				if cni, err = nodeagent.NewCNI(cfg); err != nil && !errors.Is(err, nodeagent.ErrNoCNIPlugins) {
					return err
				}
				if cni != nil {
					rt.SetNetwork(cni, cfg.HostNetNS)
				}
			}
			reps, err := rt.List(ctx)
			if err != nil {
				return fmt.Errorf("list the pods of namespace %s: %w", ao.namespace, err)
			}
			var errs []error
			for _, r := range reps {
				if err := rt.Stop(ctx, r.ID, ao.stopGrace); err != nil {
					errs = append(errs, fmt.Errorf("stop pod %s: %w", r.ID, err))
				}
			}
			fmt.Fprintf(out, "stopped and removed %d pods (containerd namespace %s)\n", len(reps)-len(errs), ao.namespace)
			if len(errs) > 0 {
				return errors.Join(errs...) // the network stays for the pods that are left
			}
			if cni != nil {
				hr := &nodeagent.HostRoutes{NetNS: ao.cni.HostNetNS, Backend: ao.backend, Subnet: ao.cni.Subnet}
				if err := hr.Apply(ctx, nil); err != nil {
					errs = append(errs, fmt.Errorf("remove the routes to other nodes: %w", err))
				}
				nft := &nodeagent.NFTables{NetNS: ao.cni.HostNetNS, PodSubnet: ao.cni.Subnet, ClusterCIDR: ao.clusterCIDR}
				if err := nft.Remove(ctx); err != nil {
					errs = append(errs, fmt.Errorf("remove the Services' nftables table: %w", err))
				}
				removed, err := cni.Teardown(ctx)
				errs = append(errs, err)
				if len(removed) > 0 {
					fmt.Fprintf(out, "removed %s\n", strings.Join(removed, ", "))
				}
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			fmt.Fprintf(out, "nothing of baton up is left running; its data is kept in %s (the next baton up starts from it)\n", dataDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "/var/lib/baton", "the data dir of the baton up to stop")
	f.DurationVar(&wait, "wait", time.Minute, "how long baton up may take to stop before down gives up")
	f.DurationVar(&ao.stopGrace, "stop-grace", 30*time.Second, "time between SIGTERM and SIGKILL when stopping a container")
	return cmd
}

// stopUp stops the baton up recorded in dataDir, if one runs (its record
// is locked): SIGTERM (it finishes what is under way), then it waits for
// the lock to be let go. It returns the process ID (0: none ran; a record
// nobody holds is stale, and dropped).
func stopUp(ctx context.Context, dataDir string, wait time.Duration) (int, error) {
	p := upPIDPath(dataDir)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	free := func() bool { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil }
	if free() {
		_ = os.Remove(p)
		return 0, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || pid == os.Getpid() {
		return 0, fmt.Errorf("%s: %q is not the process ID of another process", p, strings.TrimSpace(string(b)))
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return 0, fmt.Errorf("stop baton up (process %d): %w", pid, err)
	}
	deadline := time.Now().Add(wait)
	for !free() {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("baton up (process %d) did not stop within %s", pid, wait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return pid, nil
}
