// Package simruntime is an in-memory nodeagent.Runtime for scale
// simulations (thousands of real agents speaking the real protocol over
// real NATS, with pods that start at once) and the agent's unit tests
// (starts that block or fail, pods that exit). It is never used instead of
// containerd on the end-to-end path.
package simruntime

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// Runtime holds simulated pods.
type Runtime struct {
	mu        sync.Mutex
	pods      map[string]protocol.Replica
	changes   chan struct{}
	images    chan string
	starts    int
	stops     int
	startHook func(protocol.ReplicaSpec) error
	listHook  func([]protocol.Replica) []protocol.Replica
	// StartDelay is how long a start takes (default 0).
	StartDelay time.Duration
}

// New returns an empty simulated runtime.
func New() *Runtime {
	return &Runtime{pods: map[string]protocol.Replica{}, changes: make(chan struct{}, 1), images: make(chan string, 16)}
}

// SetStartHook runs hook before every start; an error from it fails the
// start (nil removes it).
func (r *Runtime) SetStartHook(hook func(protocol.ReplicaSpec) error) {
	r.mu.Lock()
	r.startHook = hook
	r.mu.Unlock()
}

// SetListHook passes every list through hook, which may block or change
// what the list shows (nil removes it).
func (r *Runtime) SetListHook(hook func([]protocol.Replica) []protocol.Replica) {
	r.mu.Lock()
	r.listHook = hook
	r.mu.Unlock()
}

// Start implements nodeagent.Runtime: the pod runs and is ready at once.
func (r *Runtime) Start(ctx context.Context, s protocol.ReplicaSpec) error {
	r.mu.Lock()
	r.starts++
	hook := r.startHook
	r.mu.Unlock()
	if hook != nil {
		if err := hook(s); err != nil {
			return err
		}
	}
	if r.StartDelay > 0 {
		select {
		case <-time.After(r.StartDelay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pods[s.ID]; !ok {
		r.pods[s.ID] = protocol.Replica{ID: s.ID, Workload: s.Workload, SpecHash: s.SpecHash,
			State: protocol.StateRunning, Ready: true, StartedAt: time.Now().UTC()}
	}
	return nil
}

// Stop implements nodeagent.Runtime.
func (r *Runtime) Stop(_ context.Context, id string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stops++
	delete(r.pods, id)
	return nil
}

// List implements nodeagent.Runtime.
func (r *Runtime) List(context.Context) ([]protocol.Replica, error) {
	r.mu.Lock()
	out := make([]protocol.Replica, 0, len(r.pods))
	for _, p := range r.pods {
		out = append(out, p)
	}
	hook := r.listHook
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if hook != nil {
		out = hook(out)
	}
	return out, nil
}

// Supervise implements nodeagent.Runtime: simulated pods never exit.
func (r *Runtime) Supervise(context.Context, time.Time) (bool, time.Duration, error) {
	return false, 0, nil
}

// Claims implements nodeagent.Runtime: no volumes.
func (r *Runtime) Claims() []string { return nil }

// LogFiles implements nodeagent.Runtime: no logs.
func (r *Runtime) LogFiles(context.Context, string) (map[string]string, error) { return nil, nil }

// Changes implements nodeagent.Runtime; the channel is never closed.
func (r *Runtime) Changes(context.Context) <-chan struct{} { return r.changes }

// Images implements nodeagent.ImageWatcher: the names given to ImageArrived.
func (r *Runtime) Images(context.Context) <-chan string { return r.images }

// ImageArrived announces an image, as containerd's events would.
func (r *Runtime) ImageArrived(name string) { r.images <- name }

// Exit makes a pod exit with code, as its process would.
func (r *Runtime) Exit(id string, code int) {
	r.mu.Lock()
	p := r.pods[id]
	p.State, p.ExitCode, p.Ready = protocol.StateExited, code, false
	r.pods[id] = p
	r.mu.Unlock()
	select {
	case r.changes <- struct{}{}:
	default:
	}
}

// Stops counts the stops the runtime ran.
func (r *Runtime) Stops() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stops
}

// Starts counts the starts asked for, failed ones included.
func (r *Runtime) Starts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts
}

// Has implements nodeagent.Runtime: whether the pod is held.
func (r *Runtime) Has(_ context.Context, id string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.pods[id]
	return ok, nil
}

// Len is the number of pods held.
func (r *Runtime) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pods)
}
