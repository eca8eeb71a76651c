package nodeagent

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/rs/zerolog"
)

// Labels that carry a container's restart state, so it survives agent restarts.
const (
	LabelRestartPolicy = "baton.restart-policy"
	LabelRestarts      = "baton.restarts"
	LabelLastExit      = "baton.last-exit"
	// LabelKilledBy says why the agent killed the container's task (a
	// failed liveness or startup probe), until it is restarted; trusted
	// only for an exit by SIGKILL.
	LabelKilledBy = "baton.killed-by"
)

// sigkillExit is the exit status of a task killed by SIGKILL (128+9).
const sigkillExit = 137

// Backoff is the restart back-off of crashing containers, as Kubernetes'
// CrashLoopBackOff: the first restart is immediate, then Base, 2*Base, ...
// up to Max; a container that ran ResetAfter before exiting starts over.
// Failed starts use it too (Config.StartBackoff): their first try again
// waits Base.
type Backoff struct {
	Base, Max, ResetAfter time.Duration
}

// DefaultBackoff is Kubernetes' CrashLoopBackOff.
var DefaultBackoff = Backoff{Base: 10 * time.Second, Max: 5 * time.Minute, ResetAfter: 10 * time.Minute}

// restartDecision says whether an exited container restarts under policy,
// and how long after its exit. restarts counts earlier restarts; ran is how
// long it ran before it exited.
func restartDecision(policy string, exitCode, restarts int, ran time.Duration, b Backoff) (restart bool, after time.Duration, newCount int) {
	switch policy {
	case "Never":
		return false, 0, restarts
	case "OnFailure":
		if exitCode == 0 {
			return false, 0, restarts
		}
	}
	if ran >= b.ResetAfter {
		restarts = 0
	}
	if restarts == 0 {
		return true, 0, 1
	}
	d := b.Base
	for i := 1; i < restarts && d < b.Max; i++ {
		d *= 2
	}
	return true, min(d, b.Max), restarts + 1
}

// Supervise restarts the exited containers whose restart policy says so,
// after their back-off, in place (a new task in the same container). It
// reports whether it restarted anything, and the earliest pending restart.
func (r *Containerd) Supervise(ctx context.Context, now time.Time) (restarted bool, next time.Duration, err error) {
	ctx = r.ctx(ctx)
	if err := r.rotateLogs(r.maxLogBytes); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("rotate logs")
	}
	cs, err := r.list(ctx, fmt.Sprintf("labels.%q", LabelReplica))
	if err != nil {
		return false, 0, err
	}
	waiting := map[string]bool{} // replicas with a container waiting for its turn
	for _, c := range cs {
		policy := c.labels[LabelRestartPolicy]
		if policy == "" || r.isStopping(c.labels[LabelReplica]) {
			continue // a replica being stopped is not restarted
		}
		task, err := c.c.Task(ctx, nil)
		if err != nil {
			// No task: being created or removed by Start/Stop, or a
			// container of a pod with init containers waiting its turn.
			if _, isInit := c.labels[LabelInit]; errdefs.IsNotFound(err) && (isInit || c.labels[LabelAwaitsInit] == "true") {
				waiting[c.labels[LabelReplica]] = true
			}
			continue
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != client.Stopped {
			continue
		}
		restarts, _ := strconv.Atoi(c.labels[LabelRestarts])
		started := c.created
		if s, err := time.Parse(time.RFC3339Nano, c.labels[LabelLastExit+"-started"]); err == nil {
			started = s
		}
		ok, after, count := restartDecision(policy, int(st.ExitStatus), restarts, st.ExitTime.Sub(started), r.backoff)
		if !ok {
			continue
		}
		if wait := st.ExitTime.Add(after).Sub(now); wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		reason := exitReason("exited", int(st.ExitStatus), "")
		switch {
		case oomKilled(ctx, c.c): // the kernel's kill says more than a probe's
			reason = "OOMKilled"
		case c.labels[LabelKilledBy] != "" && st.ExitStatus == sigkillExit:
			reason = "killed: " + c.labels[LabelKilledBy]
		}
		if err := r.restart(ctx, c, task); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("container", c.c.ID()).Msg("restart container")
			continue
		}
		r.metrics.restarted()
		_, _ = c.c.SetLabels(ctx, map[string]string{
			LabelRestarts:              strconv.Itoa(count),
			LabelLastExit:              fmt.Sprintf("%d %s", st.ExitStatus, reason),
			LabelKilledBy:              "",
			LabelLastExit + "-started": now.UTC().Format(time.RFC3339Nano),
		})
		zerolog.Ctx(ctx).Info().Str("container", c.c.ID()).Int("restarts", count).Uint32("exitCode", st.ExitStatus).
			Str("reason", reason).Msg("container restarted")
		restarted = true
	}
	for _, id := range sortedKeys(waiting) {
		if err := r.advanceInit(ctx, id); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("replica", id).Msg("start the next container of a pod with init containers")
		}
	}
	return restarted, next, nil
}

func (r *Containerd) restart(ctx context.Context, c labeled, old client.Task) error {
	if _, err := old.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete exited task: %w", err)
	}
	return r.runTask(ctx, c.c, c.labels, 10)
}

// markStopping records that a replica is being stopped, until done is called.
func (r *Containerd) markStopping(id string) (done func()) {
	r.stopMu.Lock()
	r.stopping[id]++
	r.stopMu.Unlock()
	return func() {
		r.stopMu.Lock()
		if r.stopping[id]--; r.stopping[id] <= 0 {
			delete(r.stopping, id)
		}
		r.stopMu.Unlock()
	}
}

func (r *Containerd) isStopping(id string) bool {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	return r.stopping[id] > 0
}
