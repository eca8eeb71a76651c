package nodeagent

import (
	"context"
	"errors"
	"time"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// Runtime runs pods on one node. Implementations must be safe for concurrent
// use on different replicas, and idempotent: starting a replica that runs, or
// stopping one that does not exist, succeeds.
type Runtime interface {
	// Start creates and starts every container of the replica's pod. A
	// failed start leaves nothing behind; its error says why (ErrImageNotFound
	// with a *MissingImageError, ErrHostPortInUse, ErrNotAllowed, ...).
	Start(ctx context.Context, spec protocol.ReplicaSpec) error
	// Stop stops the replica's containers (SIGTERM, then SIGKILL after grace) and removes them.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Has reports whether the runtime holds anything of the replica.
	Has(ctx context.Context, id string) (bool, error)
	// List returns every replica the runtime holds, read back from its labels.
	List(ctx context.Context) ([]protocol.Replica, error)
	// Supervise restarts exited containers per their pod's restart policy,
	// with back-off. It reports whether it restarted any, and how soon a
	// pending restart is due (0 if none).
	Supervise(ctx context.Context, now time.Time) (restarted bool, next time.Duration, err error)
	// Claims lists the PersistentVolumeClaims whose local volumes the node holds.
	Claims() []string
	// LogFiles returns the log file of each container of a replica, by name.
	LogFiles(ctx context.Context, replica string) (map[string]string, error)
	// Changes receives a value when a container exits or a pod's readiness
	// changes, so the agent reports without waiting for its next poll. It is
	// never closed.
	Changes(ctx context.Context) <-chan struct{}
}

// ImageWatcher is a Runtime that announces images arriving on the node (an
// import, a pull, the cluster's image store), by normalized reference, so
// the agent retries at once the starts that waited for them. The channel is
// never closed.
type ImageWatcher interface {
	Images(ctx context.Context) <-chan string
}

// Recoverer is a Runtime that can find what an agent killed in the middle
// of a start left behind (containers without tasks, a network namespace no
// container records) and remove it. The agent calls Recover once, before it
// serves commands; it returns the replicas it removed.
type Recoverer interface {
	Recover(ctx context.Context) ([]protocol.Replica, error)
}

// ErrImageNotFound is returned by Start when an image is neither present nor pullable.
var ErrImageNotFound = errors.New("image not found")

// MissingImageError is the ErrImageNotFound of one image.
type MissingImageError struct {
	Image  string // normalized reference, as containerd names it
	Detail string
}

func (e *MissingImageError) Error() string { return e.Image + " " + e.Detail }

// Unwrap makes errors.Is(err, ErrImageNotFound) hold.
func (e *MissingImageError) Unwrap() error { return ErrImageNotFound }

// ErrHostPortInUse is returned by Start when another pod of the node
// publishes one of the pod's host ports.
var ErrHostPortInUse = errors.New("host port in use")

// ErrNotAllowed is wrapped by the errors of what this node's policy
// refuses (ErrHostPathNotAllowed, ErrPodSecurity).
var ErrNotAllowed = errors.New("not allowed on this node")

// ErrInvalidSpec is wrapped by the errors of a pod spec that breaks the
// rules of desired.ValidatePod.
var ErrInvalidSpec = errors.New("invalid pod spec")

// Classify gives the protocol code of a failed start.
func Classify(err error) protocol.ErrorCode {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrInvalidSpec):
		return protocol.CodeInvalidSpec
	case errors.Is(err, ErrNotAllowed):
		return protocol.CodeNotAllowed
	case errors.Is(err, ErrImageNotFound):
		return protocol.CodeImageNotFound
	case errors.Is(err, ErrHostPortInUse):
		return protocol.CodeHostPortInUse
	}
	return protocol.CodeRuntimeError
}
