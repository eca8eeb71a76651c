package reconciler

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
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
		if r.SpecHash != hash || r.gone() {
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

// job runs a Job to completion: up to parallelism pods at once until
// completions pods succeeded; a failed Job's active pods are stopped; pods
// of an earlier template of the Job are stopped.
func (c *pass) job(j desired.Job) {
	workload := JobWorkload(j.Name)
	var mine []replica
	for _, r := range c.live.Of(workload) {
		switch {
		case r.SpecHash != j.Hash:
			if !r.gone() && !r.held && !r.pending {
				c.res.Stops = append(c.res.Stops, stop(r, "the Job's template changed"))
			}
		default:
			mine = append(mine, r) // held pods (silent nodes) count too
		}
	}
	p := jobProgress(j.Name, j.Spec, j.Hash, mine, c.in.Now)
	if rec, ok := c.in.JobsDone[j.Name]; ok && rec.Hash == j.Hash {
		// Finished for good: a Job never runs again because the node that
		// held its pods was lost.
		p.State, p.Reason = rec.State, rec.Reason
	}
	switch p.State {
	case JobFailed:
		for _, r := range mine {
			if alive(r.State) && !r.gone() && !r.pending && !r.held {
				c.res.Stops = append(c.res.Stops, stop(r, "Job failed: "+p.Reason))
			}
		}
	case JobRunning:
		want := min(j.Spec.Parallelism, j.Spec.Completions-p.Succeeded) - p.Active
		if want <= 0 {
			break
		}
		if len(j.Spec.Pod.Waiting) > 0 {
			c.res.Pending = append(c.res.Pending, Pending{Workload: workload, Count: want, Reason: waitingReason(j.Spec.Pod)})
			break
		}
		w := desired.Workload{Name: workload, Pod: j.Spec.Pod, Hash: j.Hash, PodLabels: j.Spec.PodLabels}
		res := c.cluster().place(w, c.in.Desired, want, nil)
		if res.Unplaced > 0 {
			c.res.Pending = append(c.res.Pending, Pending{Workload: workload, Count: res.Unplaced, Reason: res.Reason})
		}
		if len(res.Nodes) == 0 {
			break
		}
		pod := c.in.Desired.ResolvePod(j.Spec.Pod)
		for i, node := range res.Nodes {
			id := c.ids.newReplicaID(desired.Workload{Name: jobIDPrefix(j.Name), Hash: j.Hash}, c.in.Now, i)
			c.res.Starts = append(c.res.Starts, Start{Node: node, Workload: workload, ReplicaID: id,
				Spec:   &protocol.ReplicaSpec{ID: id, Workload: workload, SpecHash: j.Hash, Pod: pod},
				Reason: fmt.Sprintf("Job %s: %d/%d succeeded, %d active", j.Name, p.Succeeded, j.Spec.Completions, p.Active+i)})
		}
	}
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

// jobsStep records the Jobs that finished (their records are durable, so a
// Job never runs again because the node that held its pods was lost) and
// drops the records of Jobs gone from the desired state. Pure: it returns
// the new records, the KV writes and the events.
func jobsStep(prev map[string]JobRecord, jobs []desired.Job, live *Live, now time.Time) (map[string]JobRecord, []kvWrite, []string) {
	next := maps.Clone(prev)
	if next == nil {
		next = map[string]JobRecord{}
	}
	var writes []kvWrite
	var events []string
	want := map[string]bool{}
	for _, j := range jobs {
		want[j.Name] = true
		if rec, ok := next[j.Name]; ok && rec.Hash == j.Hash {
			continue
		}
		p := jobProgress(j.Name, j.Spec, j.Hash, live.reported(JobWorkload(j.Name)), now)
		if p.State == JobRunning {
			continue
		}
		rec := JobRecord{Hash: j.Hash, State: p.State, Reason: p.Reason}
		next[j.Name] = rec
		writes = append(writes, kvWrite{key: jobPrefix + j.Name, value: rec})
		events = append(events, fmt.Sprintf("Job %s %s: %d/%d succeeded, %d failed %s", j.Name, p.State, p.Succeeded, j.Spec.Completions, p.Failed, p.Reason))
	}
	for _, name := range sortedKeys(next) {
		if !want[name] {
			delete(next, name)
			writes = append(writes, kvWrite{key: jobPrefix + name})
		}
	}
	return next, writes, events
}

const jobPrefix = "job."
