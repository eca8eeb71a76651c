package desired

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

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
	n.replicated(w, 48, "15")
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
	n.replicated(w, 48, "15")
	// Its selector is a plain map: matchLabels.
	w.Selector = n.selector("spec.selector", "spec.selector", &labelSelector{MatchLabels: s.Selector}, w.PodLabels)
	return w
}

// statefulSet reads a StatefulSet: a workload of kind StatefulSet whose
// replicas are ordinals (see Stateful). Each claim template becomes a
// volume of the pod, mounted per ordinal; serviceName is the pods'
// subdomain, so a headless Service of that name gives each its DNS name.
func (n *norm) statefulSet(ss k8sStatefulSet) Workload {
	s := ss.Spec
	spec := s.Template.Spec
	sf := &Stateful{ServiceName: s.ServiceName, Parallel: s.PodManagementPolicy == "Parallel", Start: s.Ordinals.Start}
	for i, ct := range s.VolumeClaimTemplates {
		cl := n.claimSpec(fmt.Sprintf("spec.volumeClaimTemplates[%d].spec", i), ct)
		sf.Claims = append(sf.Claims, ClaimTemplate{Name: ct.Metadata.Name, StorageBytes: cl.StorageBytes, AccessModes: cl.AccessModes})
		// A volume of the template of that name is replaced (in its place,
		// so errors name the right one), as Kubernetes replaces it.
		v := k8sVolume{Name: ct.Metadata.Name, PersistentVolumeClaim: &k8sClaimSource{ClaimName: ct.Metadata.Name + "-" + ss.Metadata.Name}}
		spec.Volumes = slices.Clone(spec.Volumes)
		if j := slices.IndexFunc(spec.Volumes, func(tv k8sVolume) bool { return tv.Name == v.Name }); j >= 0 {
			spec.Volumes[j] = v
		} else {
			spec.Volumes = append(spec.Volumes, v)
		}
	}
	w := Workload{Name: ss.Metadata.Name, Kind: "StatefulSet", Labels: ss.Metadata.Labels, Annotations: ss.Metadata.Annotations,
		Replicas: intOr(s.Replicas, 1), PodLabels: s.Template.Metadata.Labels,
		Pod:      n.pod("spec.template.spec", spec, "Always", s.Template.Metadata),
		Strategy: Strategy{Type: s.UpdateStrategy.Type}, MinReadySeconds: s.MinReadySeconds,
		RevisionHistoryLimit: intOr(s.RevisionHistoryLimit, 10), ProgressDeadlineSeconds: 600, Stateful: sf,
		Source: fmt.Sprintf("%s:%d", n.d.file, n.d.line())}
	if w.Strategy.Type == "" {
		w.Strategy.Type = "RollingUpdate"
	}
	if ru := s.UpdateStrategy.RollingUpdate; ru != nil {
		sf.Partition = ru.Partition
	}
	var del []string
	if s.RetentionPolicy.WhenDeleted == "Delete" {
		del = append(del, "whenDeleted")
	}
	if s.RetentionPolicy.WhenScaled == "Delete" {
		del = append(del, "whenScaled")
	}
	sf.DeleteClaims = strings.Join(del, " and ")
	for i := range w.Pod.Volumes {
		v := &w.Pod.Volumes[i]
		if v.Claim != nil && slices.ContainsFunc(sf.Claims, func(c ClaimTemplate) bool { return c.Name == v.Name }) {
			v.Claim.PerOrdinal = true
		}
	}
	if w.Pod.Subdomain == "" {
		w.Pod.Subdomain = s.ServiceName
	}
	// <name>-<ordinal> is a host name, and a replica ID with the hash and
	// suffix after it.
	n.replicated(w, 40, "the ordinal and 15")
	w.Selector = n.selector("spec.selector", "spec.selector.matchLabels", s.Selector, w.PodLabels)
	return w
}

// replicated checks what every replicated workload needs: a name short
// enough for its replica IDs (at most max characters: they add adds), and
// pods that restart Always.
func (n *norm) replicated(w Workload, max int, adds string) {
	if len(w.Name) > max {
		n.fail("metadata.name", "a %s name may have at most %d characters (replica IDs add %s)", w.Kind, max, adds)
	}
	if w.Pod.RestartPolicy != "Always" {
		n.fail("spec.template.spec.restartPolicy", "a %s's pods must restart Always", w.Kind)
	}
}

// OrdinalName is the name of a StatefulSet's replica of ordinal i:
// <name>-<i>, in its namespace.
func OrdinalName(workload string, i int) string { return workload + "-" + strconv.Itoa(i) }

// PodFor is the pod of a StatefulSet's replica of ordinal i: its
// hostname <name>-<i>, which is also its metadata.name in the downward
// API (as a Kubernetes StatefulSet's pod is named), and its own claim of
// each claim template. The pod is a copy; p is not changed.
func PodFor(p PodSpec, workload string, i int) PodSpec {
	name := ShortName(OrdinalName(workload, i))
	p.Hostname = name
	p.Volumes = slices.Clone(p.Volumes)
	for j, v := range p.Volumes {
		switch {
		case v.Claim != nil && v.Claim.PerOrdinal:
			c := *v.Claim
			c.Claim, c.PerOrdinal = c.Claim+"-"+strconv.Itoa(i), false
			p.Volumes[j].Claim = &c
		case v.Projected != nil && slices.ContainsFunc(v.Projected.Downward, func(f DownwardFile) bool { return f.FieldRef == "metadata.name" }):
			pj := *v.Projected
			pj.Downward = slices.Clone(pj.Downward)
			for k, f := range pj.Downward {
				if f.FieldRef == "metadata.name" {
					pj.Downward[k].FieldRef, pj.Downward[k].Value = "", name
				}
			}
			p.Volumes[j].Projected = &pj
		}
	}
	named := func(cs []Container) []Container {
		cs = slices.Clone(cs)
		for j := range cs {
			if !slices.ContainsFunc(cs[j].Env, func(e EnvVar) bool { return e.FieldRef == "metadata.name" }) {
				continue
			}
			cs[j].Env = slices.Clone(cs[j].Env)
			for k, e := range cs[j].Env {
				if e.FieldRef == "metadata.name" {
					cs[j].Env[k].FieldRef, cs[j].Env[k].Value = "", name
				}
			}
		}
		return cs
	}
	p.InitContainers, p.Containers = named(p.InitContainers), named(p.Containers)
	return p
}

// disruptionBudget reads a PodDisruptionBudget: at most one of
// minAvailable and maxUnavailable, as Kubernetes requires (neither: every
// disruption is allowed); no selector selects nothing, an empty one every
// pod of the namespace (Kubernetes' policy/v1).
func (n *norm) disruptionBudget(b k8sPDB) DisruptionBudget {
	out := DisruptionBudget{Meta: n.meta(b.Metadata), AlwaysAllowUnhealthy: b.Spec.UnhealthyPodEvictionPolicy == "AlwaysAllow"}
	out.Selector = n.labelSelector("spec.selector", b.Spec.Selector)
	if b.Spec.MinAvailable != nil {
		out.MinAvailable = portString(b.Spec.MinAvailable)
	}
	if b.Spec.MaxUnavailable != nil {
		out.MaxUnavailable = portString(b.Spec.MaxUnavailable)
	}
	if out.MinAvailable != "" && out.MaxUnavailable != "" {
		n.fail("spec.maxUnavailable", "minAvailable and maxUnavailable cannot both be set")
	}
	return out
}
