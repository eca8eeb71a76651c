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
	// Start creates and starts every container of the replica's pod.
	Start(ctx context.Context, spec protocol.ReplicaSpec) error
	// Stop stops the replica's containers (SIGTERM, then SIGKILL after grace) and removes them.
	Stop(ctx context.Context, id string, grace time.Duration) error
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
	// Changes receives a value when a container exits, so the agent reports
	// without waiting for its next poll. It is closed when ctx ends.
	Changes(ctx context.Context) <-chan struct{}
}

// ErrImageNotFound is returned by Start when an image is neither present nor pullable.
var ErrImageNotFound = errors.New("image not found")

// ErrHostPortInUse is returned by Start when another pod of the node
// publishes one of the pod's host ports.
var ErrHostPortInUse = errors.New("host port in use")
