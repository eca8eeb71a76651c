package reconciler

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/nodeagent/protocol"
)

// An Indexed Job starts each index once, lowest first, with
// JOB_COMPLETION_INDEX; an index that succeeded is not run again and
// counts once; a suspended Job stops its pods and starts none.
func TestIndexedAndSuspendedJobs(t *testing.T) {
	job := desired.Job{Meta: desired.Meta{Name: "batch"}, Spec: desired.JobSpec{Completions: 4, Parallelism: 2, BackoffLimit: 3, Indexed: true,
		Pod: desired.PodSpec{RestartPolicy: "Never", Containers: []desired.Container{{Name: "c", Image: "batch:1"}}}}}
	job.Hash = job.Spec.Pod.Hash()
	w := desired.Workload{Name: JobWorkload("batch"), Hash: job.Hash}
	pod := func(idx, suffix string, st protocol.ReplicaState, code int) protocol.Replica {
		r := rep("batch-"+idx+"-"+job.Hash[:8]+"-"+suffix, w, st, time.Minute)
		r.ExitCode = code
		return r
	}
	in := Input{Desired: &desired.State{Jobs: []desired.Job{job}}, Now: t0, NodeGrace: grace, PendingTimeout: time.Minute,
		Nodes: nodes(node("n1", pod("0", "aaaaa", protocol.StateExited, 0), pod("0", "bbbbb", protocol.StateExited, 0), pod("1", "ccccc", protocol.StateRunning, 0)))}
	res := compute(in)
	if len(res.Starts) != 1 {
		t.Fatalf("starts %v, want one (parallelism 2, one active)", summary(res))
	}
	s := res.Starts[0]
	if !strings.HasPrefix(s.ReplicaID, "batch-2-") || !slices.Contains(s.Spec.Pod.Containers[0].Env, desired.EnvVar{Name: "JOB_COMPLETION_INDEX", Value: "2"}) {
		t.Fatalf("start %s with env %v, want index 2", s.ReplicaID, s.Spec.Pod.Containers[0].Env)
	}
	if p := jobProgress("batch", job.Spec, job.Hash, NewLive(in).Of(JobWorkload("batch")), t0); p.Succeeded != 1 || p.Active != 1 {
		t.Fatalf("progress %+v: index 0 succeeded twice counts once", p)
	}
	// Suspended: the active pod stops, nothing starts.
	job.Spec.Suspend = true
	in.Desired = &desired.State{Jobs: []desired.Job{job}}
	if got := summary(compute(in)); !slices.Equal(got, []string{"stop batch-1-" + job.Hash[:8] + "-ccccc@n1"}) {
		t.Fatalf("suspended: %q", got)
	}
}
