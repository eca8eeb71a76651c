package main

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// nodeResources is what a node advertises beyond cpu and memory: the
// --resource flags (NAME=QUANTITY), and ephemeral-storage, unless given,
// as the size of the filesystem that holds dataDir (where pods' logs and
// emptyDir volumes live; containerd's layers are usually on the same disk).
func nodeResources(flags []string, dataDir string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, f := range flags {
		name, q, ok := strings.Cut(f, "=")
		if !ok || (name != desired.ResourceEphemeralStorage && !desired.IsHugePages(name) && !desired.IsExtended(name)) {
			return nil, fmt.Errorf("--resource %q: want NAME=QUANTITY, NAME ephemeral-storage, hugepages-<size> or a resource with a domain (nvidia.com/gpu)", f)
		}
		v, err := desired.ParseQuantity(q, 1)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("--resource %q: %v", f, err)
		}
		out[name] = v
	}
	if _, ok := out[desired.ResourceEphemeralStorage]; !ok {
		var st unix.Statfs_t
		if err := unix.Statfs(dataDir, &st); err == nil {
			out[desired.ResourceEphemeralStorage] = int64(st.Blocks) * st.Bsize
		}
	}
	if len(out) > protocol.MaxExtraResources {
		return nil, fmt.Errorf("--resource: %d resources, at most %d", len(out), protocol.MaxExtraResources)
	}
	return out, nil
}

// parseTaints reads --taint flags: KEY[=VALUE]:EFFECT.
func parseTaints(flags []string) ([]desired.Taint, error) {
	var out []desired.Taint
	for _, f := range flags {
		kv, effect, ok := strings.Cut(f, ":")
		key, value, _ := strings.Cut(kv, "=")
		switch {
		case !ok || key == "":
			return nil, fmt.Errorf("--taint %q: want KEY[=VALUE]:EFFECT", f)
		case effect != "NoSchedule" && effect != "PreferNoSchedule" && effect != "NoExecute":
			return nil, fmt.Errorf("--taint %q: the effect is NoSchedule, PreferNoSchedule or NoExecute", f)
		}
		out = append(out, desired.Taint{Key: key, Value: value, Effect: effect})
	}
	if len(out) > protocol.MaxTaints {
		return nil, fmt.Errorf("--taint: %d taints, at most %d", len(out), protocol.MaxTaints)
	}
	return out, nil
}
