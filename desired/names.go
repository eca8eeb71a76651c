package desired

import (
	"maps"
	"strings"
)

// DefaultNamespace is the namespace of objects that name none. Their
// names stay bare ("web"); an object of any other namespace is named
// "NAMESPACE/NAME" ("shop/web") everywhere inside Baton: in the state,
// the store, the agents' reports, status and the CLI. Names are unique
// per namespace and kind, and references (ConfigMaps, Secrets, claims,
// autoscaler targets, a Service's selector) resolve within the namespace.
const DefaultNamespace = "default"

// ReservedNamespace is refused as a namespace: "job/NAME" already names
// the pods of a Job in reports.
const ReservedNamespace = "job"

// Qualify is the name of object name in namespace ns.
func Qualify(ns, name string) string {
	if ns == "" || ns == DefaultNamespace {
		return name
	}
	return ns + "/" + name
}

// SplitName is a qualified name's namespace and name.
func SplitName(q string) (ns, name string) {
	if ns, name, ok := strings.Cut(q, "/"); ok {
		return ns, name
	}
	return DefaultNamespace, q
}

// NamespaceOf is the namespace of a qualified name.
func NamespaceOf(q string) string {
	ns, _ := SplitName(q)
	return ns
}

// ShortName is a qualified name without its namespace.
func ShortName(q string) string {
	_, name := SplitName(q)
	return name
}

// IsQualified reports whether q is a DNS subdomain, or one after a
// namespace: "shop/data".
func IsQualified(q string) bool {
	name, ok := CutNamespace(q)
	return ok && IsSubdomain(name)
}

// CutNamespace is a qualified name without its namespace, and whether the
// namespace is one a qualified name may have (none, or a DNS label other
// than default and job).
func CutNamespace(q string) (string, bool) {
	ns, name, ok := strings.Cut(q, "/")
	if !ok {
		return q, true
	}
	return name, IsName(ns) && ns != DefaultNamespace && ns != ReservedNamespace
}

// SelectsPods tells whether a selector of the object named owner selects
// the pods of workload w: w is in owner's namespace, and its pods' labels
// match.
func SelectsPods(owner string, matchLabels map[string]string, exprs []Requirement, w Workload) bool {
	return NamespaceOf(owner) == NamespaceOf(w.Name) && SelectorMatches(matchLabels, exprs, w.PodLabels)
}

// namespace is the namespace of a document's object: default when it
// names none, and for the kinds that belong to no namespace.
func (d document) namespace() string {
	ns := d.str("metadata.namespace")
	if ns == "" || clusterScoped[d.str("kind")] {
		return DefaultNamespace
	}
	return ns
}

// clusterScoped are the kinds that belong to no namespace: a
// metadata.namespace on them is ignored, as the API server ignores it.
var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "PriorityClass": true,
	"StorageClass": true, "PersistentVolume": true, "NodePool": true,
}

// Namespace is a namespace declared in the revision. A namespace that
// objects name and no Namespace declares exists too (as Argo CD's
// CreateNamespace); a declared one gives its labels to namespaceSelector
// terms.
type Namespace struct {
	Meta
}

// namespaceLabels are the labels of every namespace the state knows:
// declared ones with their labels, and each has
// kubernetes.io/metadata.name, as Kubernetes sets it.
func (s *State) namespaceLabels() map[string]map[string]string {
	out := map[string]map[string]string{}
	add := func(ns string, labels map[string]string) {
		m := maps.Clone(labels)
		if m == nil {
			m = map[string]string{}
		}
		m["kubernetes.io/metadata.name"] = ns
		out[ns] = m
	}
	add(DefaultNamespace, nil)
	for _, ns := range s.Namespaces {
		add(ns.Name, ns.Labels)
	}
	return out
}

// NamespacesMatching are the namespaces whose labels satisfy a selector,
// among those the state declares or whose objects it has (names: the
// qualified names of its objects).
func (s *State) NamespacesMatching(matchLabels map[string]string, exprs []Requirement) map[string]bool {
	labels := s.namespaceLabels()
	for _, w := range s.Workloads {
		if ns := NamespaceOf(w.Name); labels[ns] == nil {
			labels[ns] = map[string]string{"kubernetes.io/metadata.name": ns}
		}
	}
	out := map[string]bool{}
	for ns, l := range labels {
		if SelectorMatches(matchLabels, exprs, l) {
			out[ns] = true
		}
	}
	return out
}

// qualify names the objects of s, and their references to other
// objects, in namespace ns (nothing changes in the default one).
func qualify(s *State, ns string) {
	if ns == DefaultNamespace {
		return
	}
	q := func(name *string) {
		if *name != "" {
			*name = Qualify(ns, *name)
		}
	}
	for i := range s.Workloads {
		q(&s.Workloads[i].Name)
		s.Workloads[i].Pod.qualify(q)
		if sf := s.Workloads[i].Stateful; sf != nil {
			q(&sf.ServiceName)
		}
	}
	for i := range s.Jobs {
		q(&s.Jobs[i].Name)
		s.Jobs[i].Spec.Pod.qualify(q)
	}
	for i := range s.CronJobs {
		q(&s.CronJobs[i].Name)
		s.CronJobs[i].Job.Pod.qualify(q)
	}
	for _, m := range s.metas() {
		q(&m.Name)
	}
	for i := range s.Autoscalers {
		q(&s.Autoscalers[i].Target)
	}
	for i := range s.Schedules {
		q(&s.Schedules[i].Target)
	}
	for i := range s.Ignored {
		if !clusterScoped[s.Ignored[i].Kind] {
			q(&s.Ignored[i].Name)
		}
	}
}

// metas are the Meta of the objects of s other than workloads, Jobs and
// CronJobs (whose names qualify walks with their pods).
func (s *State) metas() []*Meta {
	var out []*Meta
	for i := range s.ConfigMaps {
		out = append(out, &s.ConfigMaps[i].Meta)
	}
	for i := range s.Secrets {
		out = append(out, &s.Secrets[i].Meta)
	}
	for i := range s.Claims {
		out = append(out, &s.Claims[i].Meta)
	}
	for i := range s.Services {
		out = append(out, &s.Services[i].Meta)
	}
	for i := range s.Autoscalers {
		out = append(out, &s.Autoscalers[i].Meta)
	}
	for i := range s.Schedules {
		out = append(out, &s.Schedules[i].Meta)
	}
	for i := range s.Budgets {
		out = append(out, &s.Budgets[i].Meta)
	}
	for i := range s.Endpoints {
		out = append(out, &s.Endpoints[i].Meta)
	}
	return out
}

// qualify names the objects a pod refers to by q.
func (p *PodSpec) qualify(q func(*string)) {
	files := func(ff *FilesFrom) {
		if ff != nil {
			q(&ff.Name)
		}
	}
	for i := range p.Volumes {
		v := &p.Volumes[i]
		files(v.ConfigMap)
		files(v.Secret)
		if v.Claim != nil {
			q(&v.Claim.Claim)
		}
		if v.Projected != nil {
			for _, ff := range v.Projected.ConfigMaps {
				files(ff)
			}
			for _, ff := range v.Projected.Secrets {
				files(ff)
			}
		}
	}
	for _, cs := range [][]Container{p.InitContainers, p.Containers} {
		for i := range cs {
			c := &cs[i]
			for j := range c.Env {
				if r := c.Env[j].ConfigMapKeyRef; r != nil {
					q(&r.Name)
				}
				if r := c.Env[j].SecretKeyRef; r != nil {
					q(&r.Name)
				}
			}
			for j := range c.EnvFrom {
				q(&c.EnvFrom[j].ConfigMap)
				q(&c.EnvFrom[j].Secret)
			}
		}
	}
	for i := range p.ImagePullSecrets {
		q(&p.ImagePullSecrets[i])
	}
	q(&p.Subdomain)
}

// WorkloadNamespace is the namespace of a workload as reports name it:
// NAME, NAMESPACE/NAME, or either after "job/" for a Job's pods.
func WorkloadNamespace(workload string) string {
	return NamespaceOf(strings.TrimPrefix(workload, ReservedNamespace+"/"))
}
