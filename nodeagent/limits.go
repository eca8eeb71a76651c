package nodeagent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// DefaultPidsLimit caps the processes of one container.
const DefaultPidsLimit = 4096

// cpuPeriod is the CFS period, in microseconds.
const cpuPeriod = 100_000

// securityOpts applies a container's securityContext on top of the secure
// defaults every container gets: no new privileges (unless
// allowPrivilegeEscalation) and containerd's default seccomp profile, on top
// of the default spec's capability set (Docker's default list) and
// masked/read-only /proc paths. A privileged container reaches here only on
// a node whose pod security level allows it (Start checks the level first).
func securityOpts(sc *desired.SecurityContext, seccompDir string) []oci.SpecOpts {
	if sc == nil {
		sc = &desired.SecurityContext{}
	}
	var opts []oci.SpecOpts
	if sc.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed)
	} else {
		switch {
		case sc.Seccomp == "Unconfined":
		case strings.HasPrefix(sc.Seccomp, "Localhost/"):
			opts = append(opts, seccomp.WithProfile(filepath.Join(seccompDir, strings.TrimPrefix(sc.Seccomp, "Localhost/"))))
		default:
			opts = append(opts, seccomp.WithDefaultProfile())
		}
		if !sc.AllowPrivilegeEscalation {
			opts = append(opts, oci.WithNoNewPrivileges)
		}
	}
	caps := func(names []string) []string {
		out := make([]string, 0, len(names))
		for _, n := range names {
			out = append(out, "CAP_"+strings.TrimPrefix(n, "CAP_"))
		}
		return out
	}
	for _, d := range sc.CapDrop {
		if d == "ALL" {
			opts = append(opts, oci.WithCapabilities(nil))
		}
	}
	if len(sc.CapDrop) > 0 {
		opts = append(opts, oci.WithDroppedCapabilities(caps(sc.CapDrop)))
	}
	if len(sc.CapAdd) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(caps(sc.CapAdd)))
	}
	if sc.RunAsUser != nil || sc.RunAsGroup != nil {
		var uid, gid int64
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
		opts = append(opts, oci.WithUIDGID(uint32(uid), uint32(gid)))
	}
	if sc.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	return opts
}

// resourceLimits turns requests and limits into cgroup settings: the memory
// limit, a CFS quota for the CPU limit, CPU shares in proportion to the
// request, and a pids limit.
func resourceLimits(r desired.Resources) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithPidsLimit(DefaultPidsLimit)}
	if r.Limits.MemoryBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(r.Limits.MemoryBytes)))
	}
	if r.Limits.CPUMilli > 0 {
		opts = append(opts, oci.WithCPUCFS(r.Limits.CPUMilli*cpuPeriod/1000, cpuPeriod))
	}
	if r.Requests.CPUMilli > 0 {
		// As the kubelet does: 1024 shares per core, at least 2.
		opts = append(opts, oci.WithCPUShares(uint64(max(2, r.Requests.CPUMilli*1024/1000))))
	}
	return opts
}

// oomKilled reports whether the kernel's OOM killer killed a process of the
// container's cgroup (read before the task is deleted, while the cgroup exists).
func oomKilled(ctx context.Context, c client.Container) bool {
	spec, err := c.Spec(ctx)
	if err != nil || spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return false
	}
	p := spec.Linux.CgroupsPath
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", p, "memory.oom_control"), // cgroup v1
		filepath.Join("/sys/fs/cgroup", p, "memory.events"),             // cgroup v2
	} {
		if n, ok := readCounter(f, "oom_kill"); ok {
			return n > 0
		}
	}
	return false
}

func readCounter(file, key string) (int64, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// exitReason names why a container stopped, as Kubernetes does.
func exitReason(state protocol.ReplicaState, code int, msg string) string {
	if state != protocol.StateExited {
		return ""
	}
	switch {
	case strings.Contains(msg, "OOMKilled"):
		return "OOMKilled"
	case code == 0:
		return "Completed"
	}
	return "Error"
}

// podGroupsAndSysctls gives a container its pod's groups (fsGroup and
// supplementalGroups, beside its own) and sets the pod's sysctls in its
// namespaces (runc writes them inside the container's namespaces).
func podGroupsAndSysctls(p desired.PodSpec) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process != nil {
			groups := slices.Clone(p.SupplementalGroups)
			if p.FSGroup != nil {
				groups = append(groups, *p.FSGroup)
			}
			for _, g := range groups {
				if !slices.Contains(s.Process.User.AdditionalGids, uint32(g)) {
					s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
				}
			}
		}
		if len(p.Sysctls) > 0 {
			if s.Linux == nil {
				s.Linux = &specs.Linux{}
			}
			if s.Linux.Sysctl == nil {
				s.Linux.Sysctl = map[string]string{}
			}
			for _, sy := range p.Sysctls {
				s.Linux.Sysctl[sy.Name] = sy.Value
			}
		}
		return nil
	}
}

// checkNonRoot refuses to start a container with runAsNonRoot and no
// runAsUser whose image runs as root (no user, 0, root) or as a user by
// name (which cannot be told non-root without the image's files), as the
// kubelet does.
func checkNonRoot(ctx context.Context, img client.Image, c desired.Container) error {
	sc := c.SecurityContext
	if sc == nil || !sc.RunAsNonRoot || sc.RunAsUser != nil {
		return nil
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return fmt.Errorf("container %s: read the image's user: %w", c.Name, err)
	}
	user, _, _ := strings.Cut(spec.Config.User, ":")
	uid, err := strconv.ParseUint(user, 10, 32)
	switch {
	case user == "" || user == "root" || (err == nil && uid == 0):
		return fmt.Errorf("%w: container %s has runAsNonRoot and its image %s runs as root (give runAsUser, or an image with a non-root USER)", ErrInvalidSpec, c.Name, c.Image)
	case err != nil:
		return fmt.Errorf("%w: container %s has runAsNonRoot and its image %s runs as the user %q, which cannot be told non-root: give a numeric runAsUser", ErrInvalidSpec, c.Name, c.Image, user)
	}
	return nil
}
