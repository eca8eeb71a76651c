package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/pkg/netns"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/distribution/reference"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

var (
	replicaID = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	specHash  = regexp.MustCompile(`^[0-9a-f]{1,64}$`)
	workload  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9./]{0,190}[a-z0-9])?$`)
)

// ValidateSpec checks a start command's replica spec with the rules of
// desired.ValidatePod, and the replica's ID, workload and hash, before the
// agent turns anything of it into a path, a mount or a host resource. Its
// errors wrap ErrInvalidSpec.
func ValidateSpec(s protocol.ReplicaSpec) error {
	switch {
	case !replicaID.MatchString(s.ID):
		return fmt.Errorf("%w: replica id %q", ErrInvalidSpec, cutString(s.ID))
	case !workload.MatchString(s.Workload) || !desired.IsName(desired.WorkloadNamespace(s.Workload)):
		// The namespace names the pods' resolv.conf file.
		return fmt.Errorf("%w: replica %s: workload %q", ErrInvalidSpec, s.ID, cutString(s.Workload))
	case !specHash.MatchString(s.SpecHash):
		return fmt.Errorf("%w: replica %s: spec hash %q", ErrInvalidSpec, s.ID, cutString(s.SpecHash))
	}
	if err := desired.ValidatePod(s.Pod); err != nil {
		return fmt.Errorf("%w: replica %s: %v", ErrInvalidSpec, s.ID, err)
	}
	for _, v := range s.Pod.Volumes {
		if v.Claim != nil && desired.NamespaceOf(v.Claim.Claim) != desired.WorkloadNamespace(s.Workload) {
			return fmt.Errorf("%w: replica %s: claim %s is not of the namespace of %s", ErrInvalidSpec, s.ID, v.Claim.Claim, s.Workload)
		}
	}
	return nil
}

func cutString(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// podRecord is what the agent writes of a pod before it makes anything of
// it (pods/<replica>/pod.json): an agent killed in the middle of the start
// finds, at its next start, the namespace and address to give back and
// the containers the pod should have.
type podRecord struct {
	Workload   string                 `json:"workload"`
	SpecHash   string                 `json:"specHash"`
	Containers []string               `json:"containers"`
	NetNS      string                 `json:"netns,omitempty"`
	Ports      []protocol.PortBinding `json:"ports,omitempty"`
	Host       bool                   `json:"hostNetwork,omitempty"`
}

func (r *Containerd) recordPath(id string) string { return filepath.Join(r.podDir(id), "pod.json") }

func (r *Containerd) writeRecord(spec protocol.ReplicaSpec, net podNet) error {
	rec := podRecord{Workload: spec.Workload, SpecHash: spec.SpecHash, NetNS: net.nsPath, Ports: net.ports, Host: net.host}
	for _, c := range spec.Pod.AllContainers() {
		rec.Containers = append(rec.Containers, c.Name)
	}
	b, _ := json.Marshal(rec)
	if err := os.MkdirAll(r.podDir(spec.ID), 0o700); err != nil {
		return fmt.Errorf("pod record: %w", err)
	}
	tmp := r.recordPath(spec.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("pod record: %w", err)
	}
	if err := os.Rename(tmp, r.recordPath(spec.ID)); err != nil {
		return fmt.Errorf("pod record: %w", err)
	}
	return nil
}

// readNetRecord returns the pod's network from its record, if there is one.
func (r *Containerd) readNetRecord(id string) (podNet, bool) {
	rec, ok := r.readRecord(id)
	if !ok {
		return podNet{}, false
	}
	return podNet{nsPath: rec.NetNS, ports: rec.Ports, host: rec.Host}, true
}

func (r *Containerd) readRecord(id string) (podRecord, bool) {
	var rec podRecord
	b, err := os.ReadFile(r.recordPath(id))
	if err != nil || json.Unmarshal(b, &rec) != nil {
		return podRecord{}, false
	}
	// The record is the agent's own file, but never trusted to name a path
	// outside the agent's network namespaces.
	if rec.NetNS != "" && filepath.Dir(rec.NetNS) != filepath.Join(r.dataDir, "netns") {
		rec.NetNS = ""
	}
	return rec, true
}

// Has implements Runtime: containers of the replica, or its pod directory.
func (r *Containerd) Has(ctx context.Context, id string) (bool, error) {
	cs, err := r.containersOf(r.ctx(ctx), id)
	if err != nil {
		return false, err
	}
	if len(cs) > 0 {
		return true, nil
	}
	_, err = os.Stat(r.podDir(id))
	return err == nil, nil
}

// Recover implements Recoverer. A pod is half made when one of its
// containers has no task, when it has fewer containers than its record
// names, or when only its record is left (the agent died before any
// container, or in the middle of a stop). Each is removed as a stop would
// remove it: the network given back (CNI DEL, the namespace unmounted),
// containers, volumes and record deleted. Network namespaces that nothing
// records are unmounted too.
func (r *Containerd) Recover(ctx context.Context) ([]protocol.Replica, error) {
	r.recovering.Lock()
	defer r.recovering.Unlock()
	ctx = r.ctx(ctx)
	log := zerolog.Ctx(ctx)
	cs, err := r.list(ctx, fmt.Sprintf("labels.%q", LabelReplica))
	if err != nil {
		return nil, err
	}
	type pod struct {
		rep     protocol.Replica
		names   []string
		partial bool
	}
	pods := map[string]*pod{}
	usedNS := map[string]bool{}
	for _, c := range cs {
		id := c.labels[LabelReplica]
		p := pods[id]
		if p == nil {
			p = &pod{rep: protocol.Replica{ID: id, Workload: c.labels[LabelWorkload], SpecHash: c.labels[LabelSpecHash]}}
			pods[id] = p
		}
		p.names = append(p.names, c.labels[LabelContainer])
		usedNS[c.labels[LabelNetNS]] = true
		_, isInit := c.labels[LabelInit]
		if _, err := c.c.Task(ctx, nil); errdefs.IsNotFound(err) && !isInit && c.labels[LabelAwaitsInit] != "true" {
			// (A pod with init containers starts its containers in turn:
			// those without a task wait for theirs.)
			p.partial = true
		}
	}
	entries, _ := os.ReadDir(filepath.Join(r.dataDir, "pods"))
	for _, e := range entries {
		id := e.Name()
		if !replicaID.MatchString(id) {
			continue
		}
		rec, ok := r.readRecord(id)
		p := pods[id]
		switch {
		case p == nil && !ok:
			// A pod directory without containers or record: volumes of a
			// stop that did not finish.
			pods[id] = &pod{rep: protocol.Replica{ID: id}, partial: true}
		case p == nil:
			pods[id] = &pod{rep: protocol.Replica{ID: id, Workload: rec.Workload, SpecHash: rec.SpecHash}, partial: true}
		case ok:
			for _, name := range rec.Containers {
				if !slices.Contains(p.names, name) {
					p.partial = true
				}
			}
		}
		if ok {
			usedNS[rec.NetNS] = true
		}
	}
	var removed []protocol.Replica
	var errs []error
	for _, id := range sortedKeys(pods) {
		p := pods[id]
		if !p.partial {
			continue
		}
		log.Warn().Str("replica", id).Msg("half-made pod found (the agent stopped in the middle of a start or stop): removing it")
		if err := r.Stop(ctx, id, 0); err != nil {
			errs = append(errs, err)
			continue
		}
		if p.rep.Workload != "" {
			removed = append(removed, p.rep)
		}
	}
	// Namespaces nothing records: made just before the record was written.
	nsDir := filepath.Join(r.dataDir, "netns")
	files, _ := os.ReadDir(nsDir)
	for _, f := range files {
		p := filepath.Join(nsDir, f.Name())
		if !usedNS[p] {
			if err := netns.LoadNetNS(p).Remove(); err != nil {
				errs = append(errs, fmt.Errorf("remove network namespace %s: %w", p, err))
			}
		}
	}
	return removed, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Images implements ImageWatcher: containerd's image events in the
// runtime's namespace (an import, a pull), and the images pushed to the
// cluster's image store when it can be watched.
func (r *Containerd) Images(ctx context.Context) <-chan string {
	r.watch(ctx)
	return r.imageArr
}

// storeWatcher is an ImageStore that announces the images added to it.
type storeWatcher interface {
	Watch(ctx context.Context) <-chan string
}

// watch starts, once, the goroutines that follow containerd's events (and
// the image store's).
func (r *Containerd) watch(ctx context.Context) {
	r.events.Do(func() {
		go r.followEvents(ctx)
		if w, ok := r.images.(storeWatcher); ok {
			go func() {
				for name := range w.Watch(ctx) {
					r.imageArrived(name)
				}
			}()
		}
	})
}

func (r *Containerd) imageArrived(name string) {
	if named, err := reference.ParseDockerRef(name); err == nil {
		name = named.String() // as a start names a missing image
	}
	select {
	case r.imageArr <- name:
	default: // the agent is behind: it retries on its back-off anyway
	}
}

// followEvents turns containerd's task exits into Changes and its image
// creations and updates into Images, resubscribing when the stream ends.
func (r *Containerd) followEvents(ctx context.Context) {
	tasks := fmt.Sprintf(`topic=="/tasks/exit",namespace==%q`, r.namespace)
	images := fmt.Sprintf(`topic~="^/images/(create|update)$",namespace==%q`, r.namespace)
	for ctx.Err() == nil {
		evs, errs := r.client.Subscribe(ctx, tasks, images)
	loop:
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-evs:
				if !ok {
					break loop
				}
				if !strings.HasPrefix(ev.Topic, "/images/") {
					r.notifyChange()
					continue
				}
				v, err := typeurl.UnmarshalAny(ev.Event)
				if err != nil {
					continue
				}
				switch e := v.(type) {
				case *apievents.ImageCreate:
					r.imageArrived(e.Name)
				case *apievents.ImageUpdate:
					r.imageArrived(e.Name)
				}
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					zerolog.Ctx(ctx).Warn().Err(err).Msg("containerd events ended; resubscribing")
				}
				break loop
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
