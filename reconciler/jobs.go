package reconciler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/schedule"
)

// JobWorkload is the workload name a Job's pods carry in reports
// ("job/<name>"), so that they never mix with a Deployment's; `baton logs
// job/<name>` reads them.
func JobWorkload(name string) string { return "job/" + name }

// Job states.
const (
	JobRunning  = "running"
	JobComplete = "complete"
	JobFailed   = "failed"
)

// JobProgress is where a Job stands, counted from its pods: completed pods
// are kept (not stopped) so their logs can be read, until the Job leaves
// the desired state.
type JobProgress struct {
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	Active    int       `json:"active"`
	Succeeded int       `json:"succeeded"`
	Failed    int       `json:"failed"`
	Started   time.Time `json:"started,omitzero"`
}

// jobProgress counts a Job's pods of its current template: running ones are
// active, exited with 0 succeeded, exited otherwise failed; each in-place
// restart (restartPolicy OnFailure) counts as a failure toward
// backoffLimit, as in Kubernetes.
func jobProgress(name string, spec desired.JobSpec, hash string, pods []replica, now time.Time) JobProgress {
	p := JobProgress{Name: name, Hash: hash, State: JobRunning}
	for _, r := range pods {
		if r.SpecHash != hash || r.State == protocol.StateStopping {
			continue
		}
		if p.Started.IsZero() || r.StartedAt.Before(p.Started) {
			p.Started = r.StartedAt
		}
		p.Failed += r.Restarts
		switch {
		case alive(r.State):
			p.Active++
		case r.State == protocol.StateExited && r.ExitCode == 0:
			p.Succeeded++
		default:
			p.Failed++
		}
	}
	switch {
	case p.Succeeded >= spec.Completions:
		p.State = JobComplete
	case p.Failed > spec.BackoffLimit:
		p.State, p.Reason = JobFailed, fmt.Sprintf("backoffLimit %d exceeded: %d failures", spec.BackoffLimit, p.Failed)
	case spec.ActiveDeadlineSeconds > 0 && !p.Started.IsZero() && now.Sub(p.Started) > time.Duration(spec.ActiveDeadlineSeconds)*time.Second:
		p.State, p.Reason = JobFailed, fmt.Sprintf("activeDeadlineSeconds %d exceeded", spec.ActiveDeadlineSeconds)
	}
	return p
}

// computeJob runs a Job to completion: up to parallelism pods at once until
// completions pods succeeded; a failed Job's active pods are stopped; pods
// of an earlier template of the Job are stopped.
func computeJob(name string, spec desired.JobSpec, hash string, st *desired.State, pods []replica, done map[string]JobRecord, cl *cluster, strategy schedule.Strategy, usedIDs map[string]bool, now time.Time) []Action {
	var actions []Action
	workload := JobWorkload(name)
	var mine []replica
	for _, r := range pods {
		switch {
		case r.SpecHash != hash:
			if r.State != protocol.StateStopping && !r.held && !r.pending {
				actions = append(actions, stop(r, "the Job's template changed"))
			}
		default:
			mine = append(mine, r) // held pods (silent nodes) count too
		}
	}
	p := jobProgress(name, spec, hash, mine, now)
	if rec, ok := done[name]; ok && rec.Hash == hash {
		// Finished for good: a Job never runs again because the node that
		// held its pods was lost.
		p.State, p.Reason = rec.State, rec.Reason
	}
	switch p.State {
	case JobFailed:
		for _, r := range mine {
			if alive(r.State) && !r.pending && !r.held {
				actions = append(actions, stop(r, "Job failed: "+p.Reason))
			}
		}
	case JobRunning:
		want := min(spec.Parallelism, spec.Completions-p.Succeeded) - p.Active
		if want <= 0 {
			break
		}
		w := desired.Workload{Name: workload, Pod: spec.Pod, Hash: hash, PodLabels: spec.PodLabels}
		res := cl.place(w, st, want, strategy, nil)
		if res.Unplaced > 0 {
			actions = append(actions, Action{Type: Pending, Workload: workload, Count: res.Unplaced, Reason: res.Reason})
		}
		pod := st.ResolvePod(spec.Pod)
		for i, node := range res.Nodes {
			id := newReplicaID(desired.Workload{Name: jobIDPrefix(name), Hash: hash}, now, i, usedIDs)
			actions = append(actions, Action{Type: Start, Node: node, Workload: workload, ReplicaID: id,
				Spec:   &protocol.ReplicaSpec{ID: id, Workload: workload, SpecHash: hash, Pod: pod},
				Reason: fmt.Sprintf("Job %s: %d/%d succeeded, %d active", name, p.Succeeded, spec.Completions, p.Active+i)})
		}
	}
	return actions
}

// jobIDPrefix keeps replica IDs of Jobs valid DNS labels (63 characters at
// most, with the hash and suffix).
func jobIDPrefix(name string) string {
	name = strings.ReplaceAll(name, ".", "-")
	if len(name) > 48 {
		name = strings.TrimRight(name[:48], "-")
	}
	return name
}

// JobRecord is the durable end of a Job (KV job.<name>): once complete or
// failed, it stays so even when its pods are gone.
type JobRecord struct {
	Hash   string `json:"hash"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// recordJobs stores the Jobs that finished in this pass and gives Compute
// the finished ones (in.JobsDone); records of Jobs gone from Git are deleted.
func (r *Reconciler) recordJobs(ctx context.Context, in *Input) {
	if in.Desired == nil {
		return
	}
	pods := in.reported()
	r.mu.Lock()
	done := make(map[string]JobRecord, len(r.jobs))
	for k, v := range r.jobs {
		done[k] = v
	}
	r.mu.Unlock()
	want := map[string]bool{}
	for _, j := range in.Desired.Jobs {
		want[j.Name] = true
		if rec, ok := done[j.Name]; ok && rec.Hash == j.Hash {
			continue
		}
		p := jobProgress(j.Name, j.Spec, j.Hash, pods[JobWorkload(j.Name)], in.Now)
		if p.State == JobRunning {
			continue
		}
		rec := JobRecord{Hash: j.Hash, State: p.State, Reason: p.Reason}
		if err := r.stored(r.cfg.Store.put(ctx, jobPrefix+j.Name, rec)); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("job", j.Name).Msg("record job")
			continue
		}
		done[j.Name] = rec
		r.event(fmt.Sprintf("Job %s %s: %d/%d succeeded, %d failed %s", j.Name, p.State, p.Succeeded, j.Spec.Completions, p.Failed, p.Reason))
	}
	for name := range done {
		if !want[name] {
			if err := r.stored(r.cfg.Store.del(ctx, jobPrefix+name)); err == nil {
				delete(done, name)
			}
		}
	}
	r.mu.Lock()
	r.jobs = done
	r.mu.Unlock()
	in.JobsDone = done
}

const jobPrefix = "job."
