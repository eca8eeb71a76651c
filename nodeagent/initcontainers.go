package nodeagent

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// Labels of the containers of a pod with init containers.
const (
	// LabelInit is an init container's place in the order ("0", "1", ...).
	LabelInit = "baton.init"
	// LabelSidecar marks an init container that keeps running (a native
	// sidecar, restartPolicy Always).
	LabelSidecar = "baton.sidecar"
	// LabelAwaitsInit marks a container that starts once every init
	// container has succeeded.
	LabelAwaitsInit = "baton.awaits-init"
)

// initRestartPolicy is an init container's restart policy: a sidecar
// always restarts; another is run again when it fails, unless the pod
// never restarts (then the pod fails), as in Kubernetes.
func initRestartPolicy(pod string, sidecar bool) string {
	switch {
	case sidecar:
		return "Always"
	case pod == "Never":
		return "Never"
	}
	return "OnFailure"
}

// initOrder is a pod's init containers in their order, and its other
// containers.
func initOrder(cs []labeled) (inits, others []labeled) {
	for _, c := range cs {
		if _, ok := c.labels[LabelInit]; ok {
			inits = append(inits, c)
		} else {
			others = append(others, c)
		}
	}
	slices.SortFunc(inits, func(a, b labeled) int {
		i, _ := strconv.Atoi(a.labels[LabelInit])
		j, _ := strconv.Atoi(b.labels[LabelInit])
		return i - j
	})
	return inits, others
}

// initDone tells whether an init container in state st lets the next
// one start: a sidecar once it runs (or ran: Supervise restarts it),
// another once it exited with 0.
func initDone(c labeled, st cstate) bool {
	if st.task == nil {
		return false
	}
	if c.labels[LabelSidecar] == "true" {
		return st.state != protocol.StateCreating
	}
	return st.state == protocol.StateExited && st.code == 0
}

// advanceInit starts what comes next in a pod with init containers: the
// first init container not done yet (when it was never started), or,
// once they are all done, the other containers. A failed init container
// is restarted by Supervise as its restart policy says.
func (r *Containerd) advanceInit(ctx context.Context, replica string) error {
	cs, err := r.containersOf(ctx, replica)
	if err != nil {
		return err
	}
	inits, others := initOrder(cs)
	for _, c := range inits {
		var st cstate
		st.state, st.code, st.msg, st.task = containerState(ctx, c.c)
		if initDone(c, st) {
			continue
		}
		if st.task == nil {
			if err := r.startTask(ctx, c); err != nil {
				return fmt.Errorf("init container %s: %w", c.labels[LabelContainer], err)
			}
			if c.labels[LabelSidecar] == "true" {
				continue // the next one starts beside it
			}
		}
		return nil
	}
	for _, c := range others {
		if _, err := c.c.Task(ctx, nil); errdefs.IsNotFound(err) {
			if err := r.startTask(ctx, c); err != nil {
				return fmt.Errorf("container %s: %w", c.labels[LabelContainer], err)
			}
		}
	}
	return nil
}

// startTask makes and starts the first task of a container made earlier.
func (r *Containerd) startTask(ctx context.Context, c labeled) error {
	if err := r.runTask(ctx, c.c, c.labels, 0); err != nil {
		return err
	}
	_, _ = c.c.SetLabels(ctx, map[string]string{LabelLastExit + "-started": time.Now().UTC().Format(time.RFC3339Nano)})
	return nil
}

// cstate is a container's state as List reads it.
type cstate struct {
	state protocol.ReplicaState
	code  int
	msg   string
	task  client.Task
}

// podInit is where a pod with init containers stands, for List.
type podInit struct {
	pending    string // the first init container not done ("": all done)
	pendingAt  int
	appsExited bool // every container but the init ones has exited
	initCount  int  // its init containers (0: it has none)
}

// initStatus reads, per replica, its first init container not done and
// whether its other containers have all exited.
func initStatus(cs []labeled, states []cstate) map[string]*podInit {
	out := map[string]*podInit{}
	for i, c := range cs {
		id := c.labels[LabelReplica]
		p := out[id]
		if p == nil {
			p = &podInit{pendingAt: -1, appsExited: true}
			out[id] = p
		}
		idx, isInit := c.labels[LabelInit]
		if !isInit {
			if states[i].state != protocol.StateExited || states[i].task == nil {
				p.appsExited = false
			}
			continue
		}
		p.initCount++
		at, _ := strconv.Atoi(idx)
		if !initDone(c, states[i]) && (p.pendingAt < 0 || at < p.pendingAt) {
			p.pending, p.pendingAt = c.labels[LabelContainer], at
		}
	}
	return out
}

// view is how a container of a pod counts in its replica's state: an
// init container that succeeded, and the containers waiting for the init
// ones, do not count (skip); an init container at work makes the pod
// "creating"; a sidecar stops counting once the other containers have
// all exited (a Job's pod is done).
func (p *podInit) view(c labeled, state protocol.ReplicaState, code int, msg string, task client.Task) (protocol.ReplicaState, string, bool) {
	if p == nil || p.initCount == 0 {
		return state, msg, false
	}
	name := c.labels[LabelContainer]
	idx, isInit := c.labels[LabelInit]
	at, _ := strconv.Atoi(idx)
	sidecar := c.labels[LabelSidecar] == "true"
	where := fmt.Sprintf("init container %s (%d of %d)", name, at+1, p.initCount)
	switch {
	case isInit && task == nil && name == p.pending:
		return protocol.StateCreating, where + ": starting", false
	case isInit && task == nil:
		return state, msg, true // its turn has not come
	case isInit && !sidecar && state == protocol.StateExited && code == 0:
		return state, msg, true // done
	case isInit && !sidecar && (state == protocol.StateRunning || state == protocol.StateCreating):
		return protocol.StateCreating, where + ": " + msg, false
	case sidecar && p.appsExited && p.pending == "":
		return state, msg, true // the pod's work is done
	case !isInit && task == nil && p.pending != "":
		return state, msg, true // waits for the init containers
	case !isInit && task == nil:
		return protocol.StateCreating, "starting after its init containers", false
	}
	return state, msg, false
}
