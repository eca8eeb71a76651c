package reconciler

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// JobWorkload is the workload name a Job's pods carry in reports
// ("job/<name>"), so that they never mix with a Deployment's; `baton logs
// job/<name>` reads them.
func JobWorkload(name string) string { return desired.ReservedNamespace + "/" + name }

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
	done := map[int]bool{} // Indexed: the indexes that succeeded
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
			if i, ok := completionIndex(name, r.ID); spec.Indexed && ok {
				if done[i] {
					continue // an index succeeds once
				}
				done[i] = true
			}
			p.Succeeded++
		default:
			p.Failed++
		}
	}
	switch {
	case p.Succeeded >= spec.Completions:
		p.State = JobComplete
	case spec.Suspend:
		p.Reason = "suspended: its pods are stopped and none start until suspend is false"
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
	if j.Spec.Suspend && p.State == JobRunning {
		for _, r := range mine {
			if alive(r.State) && !r.gone() && !r.pending && !r.held {
				c.res.Stops = append(c.res.Stops, stop(r, "Job suspended"))
			}
		}
		return
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
			c.res.Pending = append(c.res.Pending, Pending{Workload: workload, Count: res.Unplaced, Reason: res.Reason, Unplaced: true})
		}
		if len(res.Nodes) == 0 {
			break
		}
		pod := c.in.Desired.ResolvePod(j.Spec.Pod)
		var indexes []int
		if j.Spec.Indexed {
			indexes = freeIndexes(j.Name, j.Spec.Completions, mine, len(res.Nodes))
		}
		for i, node := range res.Nodes {
			prefix, podOf := jobIDPrefix(j.Name), pod
			if j.Spec.Indexed {
				if i >= len(indexes) {
					break
				}
				prefix, podOf = indexedPrefix(j.Name, indexes[i]), withIndex(pod, indexes[i])
			}
			id := c.ids.newReplicaID(desired.Workload{Name: prefix, Hash: j.Hash}, c.in.Now, i)
			c.res.Starts = append(c.res.Starts, Start{Node: node, Workload: workload, ReplicaID: id,
				Spec:   &protocol.ReplicaSpec{ID: id, Workload: workload, SpecHash: j.Hash, Pod: podOf},
				Reason: fmt.Sprintf("Job %s: %d/%d succeeded, %d active", j.Name, p.Succeeded, j.Spec.Completions, p.Active+i)})
		}
	}
}

// jobIDPrefix keeps replica IDs of Jobs valid DNS labels (63 characters at
// most, with the hash and suffix).
func jobIDPrefix(name string) string {
	name = strings.ReplaceAll(desired.ShortName(name), ".", "-")
	if len(name) > 48 {
		name = strings.TrimRight(name[:48], "-")
	}
	return name
}

// indexedBase is the part of an Indexed Job's replica IDs before the
// index: short enough for the index, the hash and the suffix.
func indexedBase(name string) string {
	p := jobIDPrefix(name)
	if len(p) > 42 {
		p = strings.TrimRight(p[:42], "-")
	}
	return p
}

// indexedPrefix is the replica ID prefix of an Indexed Job's pod of index i.
func indexedPrefix(name string, i int) string { return indexedBase(name) + "-" + strconv.Itoa(i) }

// completionIndex is the index an Indexed Job's pod carries in its ID.
func completionIndex(name, id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, indexedBase(name)+"-")
	if !ok {
		return 0, false
	}
	idx, _, _ := strings.Cut(rest, "-")
	i, err := strconv.Atoi(idx)
	return i, err == nil
}

// freeIndexes are up to n of an Indexed Job's indexes, lowest first, that
// no pod of it has succeeded at or works on.
func freeIndexes(name string, completions int, pods []replica, n int) []int {
	taken := map[int]bool{}
	for _, r := range pods {
		i, ok := completionIndex(name, r.ID)
		if ok && !r.gone() && (alive(r.State) || (r.State == protocol.StateExited && r.ExitCode == 0)) {
			taken[i] = true
		}
	}
	var out []int
	for i := 0; i < completions && len(out) < n; i++ {
		if !taken[i] {
			out = append(out, i)
		}
	}
	return out
}

// withIndex is pod with JOB_COMPLETION_INDEX in every container's
// environment (a copy: pod is shared by the Job's starts).
func withIndex(pod desired.PodSpec, i int) desired.PodSpec {
	out := pod
	out.Containers = make([]desired.Container, len(pod.Containers))
	for k, c := range pod.Containers {
		c.Env = append(slices.Clone(c.Env), desired.EnvVar{Name: "JOB_COMPLETION_INDEX", Value: strconv.Itoa(i)})
		out.Containers[k] = c
	}
	return out
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
