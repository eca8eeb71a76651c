package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
)

// LabelLifecycle holds a container's lifecycle hooks, as JSON, so a
// restarted agent runs the preStop hook of what it re-adopts.
const LabelLifecycle = "baton.lifecycle"

// PostStartTimeout bounds a postStart hook (Kubernetes sets none; a hook
// that never ends must not hold a start for ever).
const PostStartTimeout = 2 * time.Minute

// hooks is what LabelLifecycle holds.
type hooks struct {
	PostStart *desired.Handler `json:"postStart,omitempty"`
	PreStop   *desired.Handler `json:"preStop,omitempty"`
	Ports     map[string]int   `json:"ports,omitempty"` // named ports
}

func lifecycleLabel(c desired.Container) string {
	if c.Lifecycle == nil || (c.Lifecycle.PostStart == nil && c.Lifecycle.PreStop == nil) {
		return ""
	}
	h := hooks{PostStart: c.Lifecycle.PostStart, PreStop: c.Lifecycle.PreStop, Ports: map[string]int{}}
	for _, p := range c.Ports {
		if p.Name != "" {
			h.Ports[p.Name] = p.ContainerPort
		}
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// readHooks reads a container's hooks back, checked as a start's are.
func readHooks(label string) (hooks, error) {
	var h hooks
	if label == "" {
		return h, nil
	}
	if err := json.Unmarshal([]byte(label), &h); err != nil {
		return hooks{}, fmt.Errorf("stored hooks unreadable: %w", err)
	}
	names := map[string]bool{}
	for n := range h.Ports {
		names[n] = true
	}
	for _, x := range []*desired.Handler{h.PostStart, h.PreStop} {
		if x == nil {
			continue
		}
		if x.SleepSeconds < 0 || x.SleepSeconds > 3600 {
			return hooks{}, fmt.Errorf("stored hooks refused: sleep of %d s", x.SleepSeconds)
		}
		if p := x.Probe(1); p != nil {
			if err := desired.ValidateProbe(p, names, false); err != nil {
				return hooks{}, fmt.Errorf("stored hooks refused: %w", err)
			}
		}
	}
	return h, nil
}

// runHook runs a hook until it ends or ctx does: a sleep, or its command
// or HTTP GET as a probe whose timeout is what ctx leaves.
func runHook(ctx context.Context, h *desired.Handler, ports map[string]int, nsPath string, task client.Task) error {
	if p := h.Probe(1); p != nil {
		if dl, ok := ctx.Deadline(); ok {
			p.TimeoutSeconds = max(1, int(math.Ceil(time.Until(dl).Seconds())))
		}
		return probeOnce(ctx, p, ports, nsPath, task)
	}
	select {
	case <-time.After(time.Duration(h.SleepSeconds) * time.Second):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// postStart runs a container's postStart hook once its task started, in
// the background (a slow hook holds neither a start nor the supervision
// of the other pods); a hook that fails kills the container, whose restart
// policy then decides (Kubernetes' FailedPostStartHook).
func (r *Containerd) postStart(ctx context.Context, c client.Container, labels map[string]string, task client.Task) {
	h, err := readHooks(labels[LabelLifecycle])
	if err != nil || h.PostStart == nil {
		return
	}
	go func() {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), PostStartTimeout)
		defer cancel()
		if err := runHook(hctx, h.PostStart, h.Ports, labels[LabelNetNS], task); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("container", c.ID()).Msg("postStart hook failed: the container is killed")
			_ = task.Kill(hctx, syscall.SIGKILL, client.WithKillAll)
		}
	}()
}

// preStop runs a container's preStop hook before it is sent SIGTERM,
// within grace; it returns what is left of grace.
func (r *Containerd) preStop(ctx context.Context, c labeled, task client.Task, grace time.Duration) time.Duration {
	if grace <= 0 {
		return grace
	}
	h, err := readHooks(c.labels[LabelLifecycle])
	if err != nil || h.PreStop == nil {
		return grace
	}
	began := time.Now()
	hctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := runHook(hctx, h.PreStop, h.Ports, c.labels[LabelNetNS], task); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("container", c.c.ID()).Msg("preStop hook failed")
	}
	return max(grace-time.Since(began), 0)
}
