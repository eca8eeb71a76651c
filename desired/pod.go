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

// daemonSet reads a DaemonSet: a workload of kind DaemonSet whose count is
// the number of nodes its pod may go to (the reconciler decides it);
// updateStrategy RollingUpdate (maxUnavailable 1, maxSurge 0 by default)
// or OnDelete (old pods stay until they go).
func (n *norm) daemonSet(d k8sDaemonSet) Workload {
	s := d.Spec
	w := Workload{Name: d.Metadata.Name, Kind: "DaemonSet", Labels: d.Metadata.Labels, Annotations: d.Metadata.Annotations,
		PodLabels: s.Template.Metadata.Labels, Pod: n.pod("spec.template.spec", s.Template.Spec, "Always", s.Template.Metadata),
		Strategy: Strategy{Type: s.UpdateStrategy.Type, MaxUnavailable: "1", MaxSurge: "0"}, MinReadySeconds: s.MinReadySeconds,
		RevisionHistoryLimit: intOr(s.RevisionHistoryLimit, 10), ProgressDeadlineSeconds: 600,
		Source: fmt.Sprintf("%s:%d", n.d.file, n.d.line())}
	if w.Strategy.Type == "" {
		w.Strategy.Type = "RollingUpdate"
	}
	n.rollingUpdate("spec.updateStrategy.rollingUpdate", s.UpdateStrategy.RollingUpdate, &w.Strategy)
	if len(w.Name) > 48 {
		n.fail("metadata.name", "a DaemonSet name may have at most 48 characters (replica IDs add 15)")
	}
	if w.Pod.RestartPolicy != "Always" {
		n.fail("spec.template.spec.restartPolicy", "a DaemonSet's pods must restart Always")
	}
	w.Selector = n.selector("spec.selector", "spec.selector.matchLabels", s.Selector, w.PodLabels)
	return w
}

// replicationController reads a ReplicationController: a workload of kind
// ReplicationController and strategy OnDelete (a new template is taken by
// the pods started from then on; running ones are left as they are).
// Its selector is a plain map, the template's labels by default.
func (n *norm) replicationController(rc k8sReplicationController) Workload {
	s := rc.Spec
	w := Workload{Name: rc.Metadata.Name, Kind: "ReplicationController", Labels: rc.Metadata.Labels, Annotations: rc.Metadata.Annotations,
		Replicas: intOr(s.Replicas, 1), PodLabels: s.Template.Metadata.Labels,
		Pod:      n.pod("spec.template.spec", s.Template.Spec, "Always", s.Template.Metadata),
		Strategy: Strategy{Type: "OnDelete"}, MinReadySeconds: s.MinReadySeconds, RevisionHistoryLimit: 10, ProgressDeadlineSeconds: 600,
		Source: fmt.Sprintf("%s:%d", n.d.file, n.d.line())}
	if len(w.Name) > 48 {
		n.fail("metadata.name", "a ReplicationController name may have at most 48 characters (replica IDs add 15)")
	}
	if w.Pod.RestartPolicy != "Always" {
		n.fail("spec.template.spec.restartPolicy", "a ReplicationController's pods must restart Always")
	}
	// Its selector is a plain map: matchLabels.
	w.Selector = n.selector("spec.selector", "spec.selector", &labelSelector{MatchLabels: s.Selector}, w.PodLabels)
	return w
}
