package desired

import "fmt"

// bareIsJob tells whether a bare Pod with this restartPolicy runs to
// completion (OnFailure, Never) rather than for ever (Always, the default).
func bareIsJob(restartPolicy string) bool {
	return restartPolicy == "OnFailure" || restartPolicy == "Never"
}

// bare reads a bare Pod: with restartPolicy Always, a workload of one
// replica (kind Pod) replaced whole when its spec changes (Recreate); with
// OnFailure or Never, a Job of one completion that is not retried
// (backoffLimit 0), as a pod that ends stays ended. Unlike Kubernetes, a
// bare Pod whose node is lost is started again elsewhere.
func (n *norm) bare(st *State, p k8sPod) {
	tm := templateMeta{Labels: p.Metadata.Labels, Annotations: p.Metadata.Annotations}
	pod := n.pod("spec", p.Spec, "Always", tm)
	if bareIsJob(p.Spec.RestartPolicy) {
		st.Jobs = append(st.Jobs, Job{Meta: n.meta(p.Metadata), Kind: "Pod",
			Spec: JobSpec{Pod: pod, PodLabels: p.Metadata.Labels, Completions: 1, Parallelism: 1}})
		return
	}
	w := Workload{Name: p.Metadata.Name, Kind: "Pod", Labels: p.Metadata.Labels, Annotations: p.Metadata.Annotations,
		Replicas: 1, PodLabels: p.Metadata.Labels, Selector: p.Metadata.Labels, Pod: pod,
		Strategy: Strategy{Type: "Recreate"}, RevisionHistoryLimit: 10, ProgressDeadlineSeconds: 600,
		Source: fmt.Sprintf("%s:%d", n.d.file, n.d.line())}
	if len(w.Name) > 48 {
		n.fail("metadata.name", "a Pod name may have at most 48 characters (replica IDs add 15)")
	}
	st.Workloads = append(st.Workloads, w)
}
