package nodeagent

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// ErrHostPathNotAllowed is returned for a hostPath outside the operator's allow-list.
var ErrHostPathNotAllowed = fmt.Errorf("hostPath %w", ErrNotAllowed)

// Volume layout under the agent's data dir:
//
//	pods/<replica>/volumes/<name>  emptyDir (disk), or a tmpfs for a Memory
//	                               emptyDir, a configMap or a secret; removed
//	                               with the pod
//	claims/<claim>                 a PersistentVolumeClaim's local volume (claims/<namespace>_<claim>
//	                               outside the default namespace); kept
//	                               across pod and agent restarts
const tmpfsDefaultSize = 64 << 20

func (r *Containerd) podDir(replica string) string { return filepath.Join(r.dataDir, "pods", replica) }

// SetHostPathAllow sets the host directories pods may mount with hostPath.
func (r *Containerd) SetHostPathAllow(dirs []string) { r.hostPathAllow = dirs }

func (r *Containerd) hostPathAllowed(p string) bool {
	p = filepath.Clean(p)
	for _, a := range r.hostPathAllow {
		a = filepath.Clean(a)
		roots := []string{a}
		if resolved, err := filepath.EvalSymlinks(a); err == nil && resolved != a {
			roots = append(roots, resolved)
		}
		for _, root := range roots {
			if p == root || strings.HasPrefix(p, root+string(filepath.Separator)) {
				return true
			}
		}
	}
	return false
}

// prepareVolumes makes the pod's volumes and returns their host paths by name.
func (r *Containerd) prepareVolumes(spec protocol.ReplicaSpec, net podNet) (map[string]string, error) {
	paths := map[string]string{}
	for _, v := range spec.Pod.Volumes {
		dir := filepath.Join(r.podDir(spec.ID), "volumes", v.Name)
		switch {
		case v.HostPath != "":
			// The path symlinks lead to must be allowed too: a link under an
			// allowed directory may point anywhere. What does not exist yet
			// is resolved from its longest existing parent, so a type that
			// makes the path (DirectoryOrCreate) makes it where it is
			// allowed; once made, it is resolved and checked again.
			notAllowed := fmt.Errorf("%w: volume %s: %s (allowed: %s)", ErrHostPathNotAllowed, v.Name, v.HostPath, strings.Join(r.hostPathAllow, ", "))
			p := resolveExisting(filepath.Clean(v.HostPath))
			if !r.hostPathAllowed(v.HostPath) || !r.hostPathAllowed(p) {
				return nil, notAllowed
			}
			if err := hostPathType(p, v.HostPathType); err != nil {
				// Not for good: the path may come (a socket a daemon makes).
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if p = resolveExisting(p); !r.hostPathAllowed(p) {
				return nil, notAllowed
			}
			paths[v.Name] = p
			continue
		case v.Claim != nil:
			dir = filepath.Join(r.dataDir, "claims", claimDir(v.Claim.Claim))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.EmptyDir != nil && !v.EmptyDir.Memory:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		default: // a Memory emptyDir, a configMap or a secret: tmpfs
			size := int64(tmpfsDefaultSize)
			if v.EmptyDir != nil && v.EmptyDir.SizeLimitBytes > 0 {
				size = v.EmptyDir.SizeLimitBytes
			}
			if err := mountTmpfs(dir, size); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			sources := []*desired.FilesFrom{v.ConfigMap, v.Secret}
			if pj := v.Projected; pj != nil {
				sources = append(append(sources, pj.ConfigMaps...), pj.Secrets...)
				if err := r.writeDownward(dir, pj, spec, net); err != nil {
					return nil, fmt.Errorf("volume %s: %w", v.Name, err)
				}
			}
			for _, ff := range sources {
				if ff != nil {
					if err := writeFiles(dir, ff); err != nil {
						return nil, fmt.Errorf("volume %s: %w", v.Name, err)
					}
				}
			}
		}
		if fg := spec.Pod.FSGroup; fg != nil && (v.Claim != nil || v.EmptyDir != nil || v.ConfigMap != nil || v.Secret != nil || v.Projected != nil) {
			if err := groupOwn(dir, int(*fg), v.Claim != nil || v.EmptyDir != nil); err != nil {
				return nil, fmt.Errorf("volume %s: fsGroup %d: %w", v.Name, *fg, err)
			}
		}
		paths[v.Name] = dir
	}
	return paths, nil
}

// groupOwn gives the pod's fsGroup a volume, as the kubelet does: every
// file's group, and for a writable volume (emptyDir, a claim) the group's
// write permission and setgid on its directories, so new files keep the
// group.
func groupOwn(dir string, gid int, writable bool) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(p, -1, gid); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		switch {
		case d.IsDir() && writable:
			return os.Chmod(p, mode.Perm()|0o070|os.ModeSetgid)
		case writable:
			return os.Chmod(p, mode.Perm()|0o060)
		}
		return nil
	})
}

func mountTmpfs(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if mounted(dir) {
		return nil
	}
	return unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=0755,size=%d", size))
}

func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// writeDownward writes a projected volume's files of the pod's own fields:
// values known from the manifest, and those the node fills in.
func (r *Containerd) writeDownward(dir string, pj *desired.Projected, spec protocol.ReplicaSpec, net podNet) error {
	for _, d := range pj.Downward {
		if !filepath.IsLocal(d.Path) {
			return fmt.Errorf("file %q leaves the volume", d.Path)
		}
		value := r.downward(desired.EnvVar{Value: d.Value, FieldRef: d.FieldRef, ResourceFieldRef: d.ResourceFieldRef}, spec, net)
		mode := os.FileMode(d.Mode & 0o777)
		if mode == 0 {
			mode = os.FileMode(pj.DefaultMode & 0o777)
		}
		if mode == 0 {
			mode = 0o644
		}
		p := filepath.Join(dir, d.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(value), mode); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	return nil
}

// writeFiles writes projected files, refusing paths that leave dir.
func writeFiles(dir string, ff *desired.FilesFrom) error {
	names := make([]string, 0, len(ff.Files))
	for n := range ff.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	mode := os.FileMode(ff.DefaultMode & 0o777)
	if mode == 0 {
		mode = 0o644
	}
	for _, n := range names {
		if !filepath.IsLocal(n) {
			return fmt.Errorf("file %q leaves the volume", n)
		}
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, ff.Files[n], mode); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	return nil
}

// volumeMounts are a container's mounts of the pod's volumes.
func volumeMounts(c desired.Container, pod desired.PodSpec, paths map[string]string) (oci.SpecOpts, error) {
	readOnly := map[string]bool{}
	for _, v := range pod.Volumes {
		readOnly[v.Name] = v.ConfigMap != nil || v.Secret != nil || v.Projected != nil || (v.Claim != nil && v.Claim.ReadOnly)
	}
	var mounts []specs.Mount
	for _, m := range c.VolumeMounts {
		src, ok := paths[m.Name]
		if !ok {
			return nil, fmt.Errorf("no volume %q", m.Name)
		}
		if m.SubPath != "" {
			if !filepath.IsLocal(m.SubPath) {
				return nil, fmt.Errorf("subPath %q leaves volume %s", m.SubPath, m.Name)
			}
			src = filepath.Join(src, m.SubPath)
		}
		opts := []string{"rbind", "rw"}
		if m.ReadOnly || readOnly[m.Name] {
			opts[1] = "ro"
		}
		mounts = append(mounts, specs.Mount{Destination: m.MountPath, Type: "bind", Source: src, Options: opts})
	}
	return oci.WithMounts(mounts), nil
}

// removeVolumes unmounts and deletes a pod's own volumes (claims stay).
func (r *Containerd) removeVolumes(replica string) error {
	dir := filepath.Join(r.podDir(replica), "volumes")
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if mounted(p) {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", p, err)
			}
		}
	}
	return os.RemoveAll(r.podDir(replica))
}

// Claims lists the PersistentVolumeClaims whose local volumes this node
// holds, by their qualified names.
func (r *Containerd) Claims() []string {
	entries, _ := os.ReadDir(filepath.Join(r.dataDir, "claims"))
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, strings.Replace(e.Name(), "_", "/", 1))
		}
	}
	return out
}

// claimDir is the directory of a claim under claims/: its name, after its
// namespace and '_' outside the default namespace ("shop_data": no DNS
// name holds a '_', so no two claims share one).
func claimDir(claim string) string { return strings.Replace(claim, "/", "_", 1) }

// hostPathType checks what is at a hostPath volume's path, as its type
// asks, making it for DirectoryOrCreate (0755) and FileOrCreate (an empty
// file, 0644), as the kubelet does.
func hostPathType(p, typ string) error {
	t, ok := hostPathTypes[typ]
	if !ok {
		return fmt.Errorf("hostPath %s: unknown type %q", p, typ)
	}
	if t.make != nil {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			if err := t.make(p); err != nil {
				return fmt.Errorf("hostPath %s: %w", p, err)
			}
		}
	}
	if t.mode == nil {
		return nil
	}
	fi, err := os.Stat(p)
	if err != nil || !t.mode(fi.Mode()) {
		return fmt.Errorf("hostPath %s: want type %s: %v", p, typ, statDesc(fi, err))
	}
	return nil
}

// hostPathTypes are what each type makes of a missing path, and what it
// wants there.
var hostPathTypes = map[string]struct {
	make func(string) error
	mode func(os.FileMode) bool
}{
	"":                  {},
	"DirectoryOrCreate": {make: func(p string) error { return os.MkdirAll(p, 0o755) }, mode: os.FileMode.IsDir},
	"Directory":         {mode: os.FileMode.IsDir},
	"FileOrCreate": {make: func(p string) error {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY|unix.O_NOFOLLOW, 0o644)
		if err == nil {
			err = f.Close()
		}
		return err
	}, mode: os.FileMode.IsRegular},
	"File":        {mode: os.FileMode.IsRegular},
	"Socket":      {mode: func(m os.FileMode) bool { return m.Type() == os.ModeSocket }},
	"CharDevice":  {mode: func(m os.FileMode) bool { return m.Type() == os.ModeDevice|os.ModeCharDevice }},
	"BlockDevice": {mode: func(m os.FileMode) bool { return m.Type() == os.ModeDevice }},
}

// resolveExisting is p with every symlink resolved: the longest part of
// it that exists resolved, and the rest as written.
func resolveExisting(p string) string {
	rest := ""
	for cur := p; ; {
		if resolved, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(resolved, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

func statDesc(fi os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		return "it is a directory"
	case m.IsRegular():
		return "it is a file"
	case m&os.ModeSocket != 0:
		return "it is a socket"
	case m&os.ModeCharDevice != 0:
		return "it is a character device"
	case m&os.ModeDevice != 0:
		return "it is a block device"
	}
	return "it is " + fi.Mode().Type().String()
}
