package desired

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
)

// norm converts one validated document into the model, collecting errors at
// positions in the document.
type norm struct {
	d    document
	errs *Errors
}

func (n *norm) fail(field, format string, args ...any) {
	line, col := nearest(n.d.value, field)
	*n.errs = append(*n.errs, &Error{File: n.d.file, Line: line, Col: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (n *norm) meta(m objectMeta) Meta {
	return Meta{Name: m.Name, Labels: m.Labels, Annotations: m.Annotations, Source: fmt.Sprintf("%s:%d", n.d.file, n.d.line())}
}

func (n *norm) quantity(field string, q any, scale int64) int64 {
	if q == nil {
		return 0
	}
	v, err := ParseQuantity(q, scale)
	if err != nil {
		n.fail(field, "%v", err)
	}
	return v
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// portString renders an int-or-string field (a port, a surge) as a string.
func portString(p any) string {
	switch v := p.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(p)
}

// pod normalizes a pod template's spec; defRestart is the kind's default
// restart policy.
func (n *norm) pod(field string, s k8sPodSpec, defRestart string, tm templateMeta) PodSpec {
	if s.ServiceAccountName == "" {
		s.ServiceAccountName = s.ServiceAccount // the field's old name
	}
	meta := podMeta{labels: tm.Labels, annotations: tm.Annotations, serviceAccount: s.ServiceAccountName}
	p := PodSpec{
		RestartPolicy:                 s.RestartPolicy,
		NodeSelector:                  s.NodeSelector,
		TerminationGracePeriodSeconds: intOr(s.TerminationGracePeriodSeconds, 30),
		HostNetwork:                   s.HostNetwork,
		DNSPolicy:                     dnsPolicy(s.DNSPolicy),
		Hostname:                      s.Hostname,
		ServiceAccountName:            s.ServiceAccountName,
		HostPID:                       s.HostPID,
		HostIPC:                       s.HostIPC,
		Subdomain:                     s.Subdomain,
		AutomountServiceAccountToken:  s.AutomountServiceAccountToken,
		PriorityClassName:             s.PriorityClassName,
	}
	if p.RestartPolicy == "" {
		p.RestartPolicy = defRestart
	}
	n.podSecurity(field+".securityContext", s, &p)
	for _, r := range s.ImagePullSecrets {
		p.ImagePullSecrets = append(p.ImagePullSecrets, r.Name)
	}
	for i, c := range s.Containers {
		for j, e := range c.Env {
			if r := e.ValueFrom; r != nil && r.ResourceFieldRef != nil && r.ResourceFieldRef.ContainerName != "" &&
				!slices.ContainsFunc(s.Containers, func(o k8sContainer) bool { return o.Name == r.ResourceFieldRef.ContainerName }) {
				n.fail(fmt.Sprintf("%s.containers[%d].env[%d].valueFrom.resourceFieldRef.containerName", field, i, j), "no container named %q in the pod", r.ResourceFieldRef.ContainerName)
			}
		}
	}
	volumes := map[string]bool{}
	for i, v := range s.Volumes {
		f := fmt.Sprintf("%s.volumes[%d]", field, i)
		if volumes[v.Name] {
			n.fail(f+".name", "duplicate volume name %q", v.Name)
		}
		volumes[v.Name] = true
		p.Volumes = append(p.Volumes, n.volume(f, v, meta))
	}
	names := map[string]bool{}
	hostPorts := map[string]bool{}
	for i, c := range s.InitContainers {
		f := fmt.Sprintf("%s.initContainers[%d]", field, i)
		if names[c.Name] {
			n.fail(f+".name", "duplicate container name %q", c.Name)
		}
		names[c.Name] = true
		nc := n.container(f, c, s.SecurityContext, meta)
		nc.Sidecar = c.RestartPolicy == "Always"
		if !nc.Sidecar && (c.LivenessProbe != nil || c.ReadinessProbe != nil || c.StartupProbe != nil) {
			n.fail(f, "an init container runs to completion: probes are for sidecars (restartPolicy: Always) and containers")
		}
		for j, m := range nc.VolumeMounts {
			if !volumes[m.Name] {
				n.fail(fmt.Sprintf("%s.volumeMounts[%d].name", f, j), "no volume named %q in the pod", m.Name)
			}
		}
		if len(nc.Ports) > 0 && !nc.Sidecar {
			n.fail(f+".ports", "an init container that runs to completion publishes no ports")
		}
		for j, pt := range nc.Ports {
			if pt.HostPort != 0 {
				n.fail(fmt.Sprintf("%s.ports[%d].hostPort", f, j), "a sidecar's host port is not published (not built): give it to a container")
			}
		}
		p.InitContainers = append(p.InitContainers, nc)
	}
	for i, c := range s.Containers {
		f := fmt.Sprintf("%s.containers[%d]", field, i)
		if names[c.Name] {
			n.fail(f+".name", "duplicate container name %q", c.Name)
		}
		names[c.Name] = true
		if c.RestartPolicy != "" {
			n.fail(f+".restartPolicy", "only init containers have one (Always: a sidecar)")
		}
		nc := n.container(f, c, s.SecurityContext, meta)
		for j, m := range nc.VolumeMounts {
			if !volumes[m.Name] {
				n.fail(fmt.Sprintf("%s.volumeMounts[%d].name", f, j), "no volume named %q in the pod", m.Name)
			}
		}
		for j, pt := range nc.Ports {
			if s.HostNetwork && pt.HostPort != 0 && pt.HostPort != pt.ContainerPort {
				n.fail(fmt.Sprintf("%s.ports[%d].hostPort", f, j), "with hostNetwork, hostPort must equal containerPort (%d)", pt.ContainerPort)
			}
			if s.HostNetwork {
				// As in Kubernetes: a hostNetwork pod's ports are the host's.
				pt.HostPort = pt.ContainerPort
				nc.Ports[j].HostPort = pt.ContainerPort
			}
			if pt.HostPort == 0 {
				continue
			}
			key := fmt.Sprintf("%s/%d", pt.Protocol, pt.HostPort)
			if hostPorts[key] {
				n.fail(fmt.Sprintf("%s.ports[%d].hostPort", f, j), "host port %s is used twice in the pod", key)
			}
			hostPorts[key] = true
		}
		p.Containers = append(p.Containers, nc)
	}
	for i, t := range s.TopologySpreadConstraints {
		ts := TopologySpread{MaxSkew: t.MaxSkew, TopologyKey: t.TopologyKey, WhenUnsatisfiable: t.WhenUnsatisfiable}
		if ts.WhenUnsatisfiable == "" {
			ts.WhenUnsatisfiable = "DoNotSchedule"
		}
		if t.LabelSelector != nil {
			ts.MatchLabels, ts.MatchExpressions = t.LabelSelector.MatchLabels, t.LabelSelector.MatchExpressions
			n.checkRequirements(fmt.Sprintf("%s.topologySpreadConstraints[%d].labelSelector.matchExpressions", field, i), ts.MatchExpressions, false)
		}
		p.TopologySpread = append(p.TopologySpread, ts)
	}
	if a := s.Affinity; a != nil {
		p.AntiAffinity = n.podAffinity(field+".affinity.podAntiAffinity", a.PodAntiAffinity)
		p.Affinity = n.podAffinity(field+".affinity.podAffinity", a.PodAffinity)
		if na := a.NodeAffinity; na != nil {
			p.NodeAffinity = &NodeAffinity{}
			af := field + ".affinity.nodeAffinity"
			if na.Required != nil {
				if len(na.Required.Terms) == 0 {
					n.fail(af+".requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms", "at least one term")
				}
				for i, t := range na.Required.Terms {
					tf := fmt.Sprintf("%s.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[%d]", af, i)
					p.NodeAffinity.Required = append(p.NodeAffinity.Required, n.nodeTerm(tf, t))
				}
			}
			for i, t := range na.Preferred {
				tf := fmt.Sprintf("%s.preferredDuringSchedulingIgnoredDuringExecution[%d].preference", af, i)
				p.NodeAffinity.Preferred = append(p.NodeAffinity.Preferred, PreferredSchedulingTerm{Weight: t.Weight, Preference: n.nodeTerm(tf, t.Preference)})
			}
		}
	}
	for i, t := range s.Tolerations {
		tf := fmt.Sprintf("%s.tolerations[%d]", field, i)
		switch {
		case t.Operator == "Exists" && t.Value != "":
			n.fail(tf+".value", "must be empty with operator Exists")
		case t.Key == "" && t.Operator != "Exists":
			n.fail(tf+".operator", "an empty key needs operator Exists (it tolerates every taint)")
		case t.TolerationSeconds != nil && t.Effect != "NoExecute":
			n.fail(tf+".tolerationSeconds", "only with effect NoExecute")
		}
		p.Tolerations = append(p.Tolerations, t)
	}
	return p.normalized()
}

// podAffinity reads podAffinity or podAntiAffinity: required terms have
// weight 0.
func (n *norm) podAffinity(f string, a *k8sPodAffinity) []AntiAffinityTerm {
	if a == nil {
		return nil
	}
	var out []AntiAffinityTerm
	term := func(tf string, t podAffinityTerm, weight int) {
		at := AntiAffinityTerm{TopologyKey: t.TopologyKey, Weight: weight}
		if t.LabelSelector != nil {
			at.MatchLabels, at.MatchExpressions = t.LabelSelector.MatchLabels, t.LabelSelector.MatchExpressions
			n.checkRequirements(tf+".labelSelector.matchExpressions", at.MatchExpressions, false)
		}
		at.Namespaces = slices.Clone(t.Namespaces)
		at.NamespaceSelector = n.labelSelector(tf+".namespaceSelector", t.NamespaceSelector)
		out = append(out, at)
	}
	for i, t := range a.Required {
		term(fmt.Sprintf("%s.requiredDuringSchedulingIgnoredDuringExecution[%d]", f, i), t, 0)
	}
	for i, t := range a.Preferred {
		term(fmt.Sprintf("%s.preferredDuringSchedulingIgnoredDuringExecution[%d].podAffinityTerm", f, i), t.PodAffinityTerm, t.Weight)
	}
	return out
}

// labelSelector reads a label selector at field f (nil stays nil).
func (n *norm) labelSelector(f string, sel *labelSelector) *LabelSelector {
	if sel == nil {
		return nil
	}
	n.checkRequirements(f+".matchExpressions", sel.MatchExpressions, false)
	return sel
}

// nodeTerm reads a node selector term; the only field is metadata.name.
func (n *norm) nodeTerm(f string, t nodeSelectorTerm) NodeSelectorTerm {
	n.checkRequirements(f+".matchExpressions", t.MatchExpressions, true)
	n.checkRequirements(f+".matchFields", t.MatchFields, true)
	for i, r := range t.MatchFields {
		if r.Key != "metadata.name" {
			n.fail(fmt.Sprintf("%s.matchFields[%d].key", f, i), "%q: the only field is metadata.name", r.Key)
		}
	}
	return NodeSelectorTerm(t)
}

func (n *norm) volume(f string, v k8sVolume, meta podMeta) Volume {
	out := Volume{Name: v.Name}
	sources := 0
	if v.EmptyDir != nil {
		sources++
		out.EmptyDir = &EmptyDir{Memory: v.EmptyDir.Medium == "Memory", SizeLimitBytes: n.quantity(f+".emptyDir.sizeLimit", v.EmptyDir.SizeLimit, 1)}
	}
	if v.Ephemeral != nil {
		// A generic ephemeral volume: a claim made for the pod and deleted
		// with it. Here, scratch space on the node's disk of the claim's
		// size, as an emptyDir.
		sources++
		out.EmptyDir = &EmptyDir{SizeLimitBytes: n.quantity(f+".ephemeral.volumeClaimTemplate.spec.resources.requests.storage", v.Ephemeral.VolumeClaimTemplate.Spec.Resources.Requests.Storage, 1)}
	}
	if v.HostPath != nil {
		sources++
		out.HostPath, out.HostPathType = v.HostPath.Path, v.HostPath.Type
	}
	files := func(name string, items []keyToPath, mode *int, optional bool) *FilesFrom {
		ff := &FilesFrom{Name: name, DefaultMode: intOr(mode, 0o644), Optional: optional}
		for _, it := range items {
			if ff.Items == nil {
				ff.Items = map[string]string{}
			}
			ff.Items[it.Key] = it.Path
		}
		return ff
	}
	if v.ConfigMap != nil {
		sources++
		out.ConfigMap = files(v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional)
	}
	if v.Secret != nil {
		sources++
		out.Secret = files(v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional)
	}
	if v.PersistentVolumeClaim != nil {
		sources++
		out.Claim = &ClaimMount{Claim: v.PersistentVolumeClaim.ClaimName, ReadOnly: v.PersistentVolumeClaim.ReadOnly}
	}
	if d := v.DownwardAPI; d != nil {
		sources++
		out.Projected = &Projected{DefaultMode: intOr(d.DefaultMode, 0o644), Downward: n.downwardFiles(f+".downwardAPI.items", d.Items, meta)}
	}
	if pj := v.Projected; pj != nil {
		sources++
		out.Projected = &Projected{DefaultMode: intOr(pj.DefaultMode, 0o644)}
		for i, src := range pj.Sources {
			sf := fmt.Sprintf("%s.projected.sources[%d]", f, i)
			switch {
			case src.ConfigMap != nil:
				out.Projected.ConfigMaps = append(out.Projected.ConfigMaps, files(src.ConfigMap.Name, src.ConfigMap.Items, nil, src.ConfigMap.Optional))
			case src.Secret != nil:
				out.Projected.Secrets = append(out.Projected.Secrets, files(src.Secret.Name, src.Secret.Items, nil, src.Secret.Optional))
			case src.DownwardAPI != nil:
				out.Projected.Downward = append(out.Projected.Downward, n.downwardFiles(sf+".downwardAPI.items", src.DownwardAPI.Items, meta)...)
			case src.ServiceAccountToken != nil:
				out.Projected.NoToken = true
			default:
				n.fail(sf, "a source needs one of configMap, secret, downwardAPI, serviceAccountToken")
			}
		}
	}
	switch {
	case sources == 0:
		out.EmptyDir = &EmptyDir{} // as the API server defaults a volume with no source
	case sources > 1:
		n.fail(f, "a volume needs one of emptyDir, ephemeral, hostPath, configMap, secret, persistentVolumeClaim, downwardAPI, projected (has %d)", sources)
	}
	return out
}

func (n *norm) container(f string, c k8sContainer, podSC *podSecurityContext, meta podMeta) Container {
	out := Container{
		Name: c.Name, Image: c.Image, ImagePullPolicy: c.ImagePullPolicy,
		Command: c.Command, Args: c.Args, WorkingDir: c.WorkingDir,
	}
	if out.ImagePullPolicy == "" {
		// Kubernetes' default: Always for :latest or no tag, else IfNotPresent.
		out.ImagePullPolicy = "IfNotPresent"
		if !strings.Contains(c.Image, "@") {
			last := c.Image[strings.LastIndex(c.Image, "/")+1:]
			if !strings.Contains(last, ":") || strings.HasSuffix(last, ":latest") {
				out.ImagePullPolicy = "Always"
			}
		}
	}
	envNames := map[string]int{}
	for i, e := range c.Env {
		ef := fmt.Sprintf("%s.env[%d]", f, i)
		ev := EnvVar{Name: e.Name}
		refs := 0
		if e.Value != nil {
			ev.Value = *e.Value
			refs++
		}
		if e.ValueFrom != nil {
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				ev.ConfigMapKeyRef = &KeyRef{Name: r.Name, Key: r.Key, Optional: r.Optional}
				refs++
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				ev.SecretKeyRef = &KeyRef{Name: r.Name, Key: r.Key, Optional: r.Optional}
				refs++
			}
			if r := e.ValueFrom.FieldRef; r != nil {
				n.fieldRef(ef+".valueFrom.fieldRef.fieldPath", r.FieldPath, &ev, meta)
				refs++
			}
			if r := e.ValueFrom.ResourceFieldRef; r != nil {
				div := n.quantity(ef+".valueFrom.resourceFieldRef.divisor", r.Divisor, resourceScale(r.Resource))
				ev.ResourceFieldRef = &ResourceFieldRef{Container: r.ContainerName, Resource: r.Resource, Divisor: div}
				if ev.ResourceFieldRef.Container == "" {
					ev.ResourceFieldRef.Container = c.Name
				}
				refs++
			}
		}
		if refs > 1 {
			n.fail(ef, "set only one of value, valueFrom.configMapKeyRef, valueFrom.secretKeyRef, valueFrom.fieldRef, valueFrom.resourceFieldRef")
		}
		if _, dup := envNames[e.Name]; dup {
			n.fail(ef+".name", "duplicate environment variable %q", e.Name)
		}
		envNames[e.Name] = i
		out.Env = append(out.Env, ev)
	}
	for i, e := range c.EnvFrom {
		ef := EnvFrom{Prefix: e.Prefix}
		switch {
		case e.ConfigMapRef != nil && e.SecretRef == nil:
			ef.ConfigMap, ef.Optional = e.ConfigMapRef.Name, e.ConfigMapRef.Optional
		case e.SecretRef != nil && e.ConfigMapRef == nil:
			ef.Secret, ef.Optional = e.SecretRef.Name, e.SecretRef.Optional
		default:
			n.fail(fmt.Sprintf("%s.envFrom[%d]", f, i), "set exactly one of configMapRef and secretRef")
		}
		out.EnvFrom = append(out.EnvFrom, ef)
	}
	portNames := map[string]bool{}
	for i, p := range c.Ports {
		pt := Port{Name: p.Name, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP, Protocol: p.Protocol}
		if pt.Protocol == "" {
			pt.Protocol = "TCP"
		}
		if p.Name != "" {
			if portNames[p.Name] {
				n.fail(fmt.Sprintf("%s.ports[%d].name", f, i), "duplicate port name %q", p.Name)
			}
			portNames[p.Name] = true
		}
		out.Ports = append(out.Ports, pt)
	}
	rf := f + ".resources"
	out.Resources = Resources{Requests: n.amount(rf+".requests", c.Resources.Requests), Limits: n.amount(rf+".limits", c.Resources.Limits)}
	n.extraResources(rf, &out.Resources)
	// As in Kubernetes, a limit without a request requests the limit.
	if out.Resources.Requests.CPUMilli == 0 {
		out.Resources.Requests.CPUMilli = out.Resources.Limits.CPUMilli
	}
	if out.Resources.Requests.MemoryBytes == 0 {
		out.Resources.Requests.MemoryBytes = out.Resources.Limits.MemoryBytes
	}
	if l := out.Resources.Limits; (l.CPUMilli > 0 && out.Resources.Requests.CPUMilli > l.CPUMilli) ||
		(l.MemoryBytes > 0 && out.Resources.Requests.MemoryBytes > l.MemoryBytes) {
		n.fail(rf+".requests", "a request is above its limit")
	}
	out.SecurityContext = n.securityContext(f+".securityContext", c, podSC)
	if lc := c.Lifecycle; lc != nil {
		out.Lifecycle = &Lifecycle{PostStart: n.handler(f+".lifecycle.postStart", lc.PostStart, portNames),
			PreStop: n.handler(f+".lifecycle.preStop", lc.PreStop, portNames)}
	}
	out.LivenessProbe = n.probe(f+".livenessProbe", c.LivenessProbe, portNames)
	out.ReadinessProbe = n.probe(f+".readinessProbe", c.ReadinessProbe, portNames)
	out.StartupProbe = n.probe(f+".startupProbe", c.StartupProbe, portNames)
	for _, m := range c.VolumeMounts {
		out.VolumeMounts = append(out.VolumeMounts, VolumeMount(m))
	}
	return out
}

func (n *norm) probe(f string, p *k8sProbe, portNames map[string]bool) *Probe {
	if p == nil {
		return nil
	}
	out := &Probe{
		InitialDelaySeconds: intOr(p.InitialDelaySeconds, 0),
		PeriodSeconds:       intOr(p.PeriodSeconds, 10),
		TimeoutSeconds:      intOr(p.TimeoutSeconds, 1),
		SuccessThreshold:    intOr(p.SuccessThreshold, 1),
		FailureThreshold:    intOr(p.FailureThreshold, 3),
	}
	handlers := 0
	checkPort := func(field, port string) {
		if _, err := strconv.Atoi(port); err != nil && !portNames[port] {
			n.fail(field, "no container port named %q", port)
		}
	}
	if h := p.HTTPGet; h != nil {
		handlers++
		out.HTTPGet = &HTTPGet{Path: h.Path, Port: portString(h.Port), Host: h.Host, Scheme: h.Scheme}
		if out.HTTPGet.Path == "" {
			out.HTTPGet.Path = "/"
		}
		if out.HTTPGet.Scheme == "" {
			out.HTTPGet.Scheme = "HTTP"
		}
		for _, hd := range h.HTTPHeaders {
			if out.HTTPGet.Headers == nil {
				out.HTTPGet.Headers = map[string]string{}
			}
			out.HTTPGet.Headers[hd.Name] = hd.Value
		}
		checkPort(f+".httpGet.port", out.HTTPGet.Port)
	}
	if p.TCPSocket != nil {
		handlers++
		out.TCPSocket = &TCPSocket{Port: portString(p.TCPSocket.Port)}
		checkPort(f+".tcpSocket.port", out.TCPSocket.Port)
	}
	if p.GRPC != nil {
		handlers++
		out.GRPC = &GRPCProbe{Port: p.GRPC.Port}
		if p.GRPC.Service != nil {
			out.GRPC.Service = *p.GRPC.Service
		}
	}
	if p.Exec != nil {
		handlers++
		out.Exec = p.Exec.Command
	}
	if handlers != 1 {
		n.fail(f, "a probe needs exactly one of httpGet, tcpSocket, grpc, exec (has %d)", handlers)
	}
	if strings.HasSuffix(f, "livenessProbe") || strings.HasSuffix(f, "startupProbe") {
		if out.SuccessThreshold != 1 {
			n.fail(f+".successThreshold", "must be 1 for liveness and startup probes")
		}
	}
	return out
}

func (n *norm) deployment(d k8sDeployment) Workload {
	s := d.Spec
	w := Workload{
		Name: d.Metadata.Name, Kind: "Deployment", Labels: d.Metadata.Labels, Annotations: d.Metadata.Annotations,
		Replicas:                intOr(s.Replicas, 1),
		PodLabels:               s.Template.Metadata.Labels,
		Pod:                     n.pod("spec.template.spec", s.Template.Spec, "Always", s.Template.Metadata),
		Strategy:                Strategy{Type: s.Strategy.Type},
		MinReadySeconds:         s.MinReadySeconds,
		RevisionHistoryLimit:    intOr(s.RevisionHistoryLimit, 10),
		ProgressDeadlineSeconds: intOr(s.ProgressDeadlineSeconds, 600),
		Paused:                  s.Paused,
		Source:                  fmt.Sprintf("%s:%d", n.d.file, n.d.line()),
	}
	// Replica IDs add 15 characters to the name; keep them DNS labels.
	if len(w.Name) > 48 {
		n.fail("metadata.name", "a Deployment name may have at most 48 characters (replica IDs add 15)")
	}
	if w.Pod.RestartPolicy != "Always" {
		n.fail("spec.template.spec.restartPolicy", "a Deployment's pods must restart Always")
	}
	w.Selector = n.selector("spec.selector", "spec.selector.matchLabels", s.Selector, w.PodLabels)
	if w.Strategy.Type == "" {
		w.Strategy.Type = "RollingUpdate"
	}
	w.Strategy.MaxSurge, w.Strategy.MaxUnavailable = "25%", "25%"
	n.rollingUpdate("spec.strategy.rollingUpdate", s.Strategy.RollingUpdate, &w.Strategy)
	return w
}

func isZero(s string) bool { return s == "0" || s == "0%" }

// selector checks a workload's selector (matchLabels, matchExpressions)
// against its template's labels, as Kubernetes refuses one that does not
// select them, and returns the labels it selects by (the template's when
// it has no matchLabels).
func (n *norm) selector(field, labelsField string, sel *labelSelector, podLabels map[string]string) map[string]string {
	if sel == nil {
		return podLabels
	}
	n.checkRequirements(field+".matchExpressions", sel.MatchExpressions, false)
	for i, r := range sel.MatchExpressions {
		if !r.Matches(podLabels) {
			n.fail(fmt.Sprintf("%s.matchExpressions[%d]", field, i), "%s %s %v does not match the template's labels", r.Key, r.Operator, r.Values)
		}
	}
	if len(sel.MatchLabels) == 0 {
		return podLabels
	}
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		if v := sel.MatchLabels[k]; podLabels[k] != v {
			n.fail(labelsField+"."+k, "selector %s=%s does not match the template's labels", k, v)
		}
	}
	return sel.MatchLabels
}

// rollingUpdate reads a rolling update's limits over the defaults in st
// (which it clears for another type), refusing them with another type and
// both at 0.
func (n *norm) rollingUpdate(field string, ru *k8sRollingUpdate, st *Strategy) {
	if st.Type != "RollingUpdate" {
		st.MaxSurge, st.MaxUnavailable = "", ""
		if ru != nil {
			n.fail(field, "only allowed with type RollingUpdate")
		}
		return
	}
	if ru != nil {
		if ru.MaxSurge != nil {
			st.MaxSurge = portString(ru.MaxSurge)
		}
		if ru.MaxUnavailable != nil {
			st.MaxUnavailable = portString(ru.MaxUnavailable)
		}
	}
	if isZero(st.MaxSurge) && isZero(st.MaxUnavailable) {
		n.fail(field, "maxSurge and maxUnavailable cannot both be 0")
	}
}

func (n *norm) jobSpec(field string, s k8sJobSpec) JobSpec {
	js := JobSpec{
		Pod:                     n.pod(field+".template.spec", s.Template.Spec, "", s.Template.Metadata),
		PodLabels:               s.Template.Metadata.Labels,
		Completions:             intOr(s.Completions, 1),
		BackoffLimit:            intOr(s.BackoffLimit, 6),
		ActiveDeadlineSeconds:   intOr(s.ActiveDeadlineSeconds, 0),
		TTLSecondsAfterFinished: s.TTLSecondsAfterFinished,
	}
	js.Parallelism = intOr(s.Parallelism, 1)
	js.Indexed, js.Suspend = s.CompletionMode == "Indexed", s.Suspend
	if js.Indexed && s.Completions == nil {
		n.fail(field+".completions", "required with completionMode Indexed")
	}
	return js
}

func (n *norm) configMap(c k8sConfigMap) ConfigMap {
	cm := ConfigMap{Meta: n.meta(c.Metadata), Data: c.Data, Immutable: c.Immutable}
	for k, v := range c.BinaryData {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			n.fail("binaryData."+k, "not valid base64")
			continue
		}
		if cm.BinaryData == nil {
			cm.BinaryData = map[string][]byte{}
		}
		if _, dup := cm.Data[k]; dup {
			n.fail("binaryData."+k, "key %q is also in data", k)
		}
		cm.BinaryData[k] = b
	}
	return cm
}

func (n *norm) secret(s k8sSecret) Secret {
	out := Secret{Meta: n.meta(s.Metadata), Type: s.Type, Data: map[string][]byte{}, Immutable: s.Immutable}
	if out.Type == "" {
		out.Type = "Opaque"
	}
	for k, v := range s.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			n.fail("data."+k, "not valid base64 (put plain text in stringData)")
			continue
		}
		out.Data[k] = b
	}
	for k, v := range s.StringData {
		out.Data[k] = []byte(v) // stringData wins, as in Kubernetes
	}
	out.Keys = sortedKeys(out.Data)
	out.digest = hashOf(out.Data)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (n *norm) claim(c k8sPVC) Claim {
	cl := n.claimSpec("spec", c)
	cl.Meta = n.meta(c.Metadata)
	return cl
}

// claimSpec reads the spec of a claim, or of a StatefulSet's claim
// template, at field f.
func (n *norm) claimSpec(f string, c k8sPVC) Claim {
	cl := Claim{AccessModes: c.Spec.AccessModes, StorageClassName: c.Spec.StorageClassName,
		StorageBytes: n.quantity(f+".resources.requests.storage", c.Spec.Resources.Requests.Storage, 1)}
	if len(cl.AccessModes) == 0 {
		cl.AccessModes = []string{"ReadWriteOnce"}
	}
	switch {
	case c.Spec.VolumeName != "":
		cl.Binds = "volumeName " + c.Spec.VolumeName
	case c.Spec.Selector != nil:
		cl.Binds = "selector"
	}
	for i, m := range cl.AccessModes {
		if m == "ReadWriteMany" || m == "ReadOnlyMany" {
			n.fail(fmt.Sprintf("%s.accessModes[%d]", f, i), "%s needs shared storage; local volumes support ReadWriteOnce and ReadWriteOncePod", m)
		}
	}
	return cl
}

func (n *norm) service(s k8sService) Service {
	out := Service{Meta: n.meta(s.Metadata), Type: s.Spec.Type, Selector: s.Spec.Selector, ClusterIP: s.Spec.ClusterIP}
	if s.Spec.SessionAffinity == "ClientIP" {
		out.AffinitySeconds = intOr(s.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds, DefaultAffinitySeconds)
		if out.AffinitySeconds < 1 || out.AffinitySeconds > 86400 {
			n.fail("spec.sessionAffinityConfig.clientIP.timeoutSeconds", "%d: want 1 to 86400", out.AffinitySeconds)
		}
	}
	out.InternalLocal = s.Spec.InternalTrafficPolicy == "Local"
	if s.Spec.ExternalTrafficPolicy == "Local" {
		if out.Type != "NodePort" && out.Type != "LoadBalancer" {
			n.fail("spec.externalTrafficPolicy", "only allowed with type NodePort or LoadBalancer")
		}
		out.ExternalLocal = true
	}
	switch ips := s.Spec.ClusterIPs; {
	case len(ips) > 1:
		n.fail("spec.clusterIPs", "one address: dual-stack Services are not built")
	case len(ips) == 1 && out.ClusterIP == "":
		out.ClusterIP = ips[0]
	case len(ips) == 1 && ips[0] != out.ClusterIP:
		n.fail("spec.clusterIPs[0]", "%q differs from clusterIP %q", ips[0], out.ClusterIP)
	}
	if ip := net.ParseIP(out.ClusterIP); out.ClusterIP != "" && out.ClusterIP != "None" && (ip == nil || ip.To4() == nil) {
		n.fail("spec.clusterIP", "%q is not an IPv4 address (IPv6 Services are not built)", out.ClusterIP)
	}
	if s.Spec.PublishNotReadyAddresses {
		out.Unserved = append(out.Unserved, "publishNotReadyAddresses (its DNS names and endpoints are its ready pods only)")
	}
	for i, f := range s.Spec.IPFamilies {
		if f != "IPv4" {
			n.fail(fmt.Sprintf("spec.ipFamilies[%d]", i), "%s Services are not built (IPv4 only)", f)
		}
	}
	if s.Spec.IPFamilyPolicy == "RequireDualStack" {
		n.fail("spec.ipFamilyPolicy", "RequireDualStack: IPv6 Services are not built (SingleStack or PreferDualStack get IPv4)")
	}
	switch out.Type {
	case "":
		out.Type = "ClusterIP"
	case "LoadBalancer":
		out.Unserved = append(out.Unserved, "type LoadBalancer's external address (it is served as node ports on every node's addresses; no load balancer is made)")
	case "ExternalName":
		n.fail("spec.type", "%s is not supported; use ClusterIP, NodePort or LoadBalancer", out.Type)
	}
	if len(s.Spec.Ports) == 0 && out.ClusterIP != "None" {
		n.fail("spec.ports", "a Service with a virtual address needs at least one port (only a headless one, clusterIP: None, may have none)")
	}
	names := map[string]bool{}
	for i, p := range s.Spec.Ports {
		sp := ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port, TargetPort: portString(p.TargetPort), NodePort: p.NodePort}
		if sp.Protocol == "" {
			sp.Protocol = "TCP"
		}
		if sp.TargetPort == "" {
			sp.TargetPort = strconv.Itoa(p.Port)
		}
		if len(s.Spec.Ports) > 1 && p.Name == "" {
			n.fail(fmt.Sprintf("spec.ports[%d].name", i), "required when a Service has several ports")
		}
		if names[p.Name] && p.Name != "" {
			n.fail(fmt.Sprintf("spec.ports[%d].name", i), "duplicate port name %q", p.Name)
		}
		names[p.Name] = true
		if p.NodePort != 0 && out.Type != "NodePort" && out.Type != "LoadBalancer" {
			n.fail(fmt.Sprintf("spec.ports[%d].nodePort", i), "only allowed with type NodePort or LoadBalancer")
		}
		out.Ports = append(out.Ports, sp)
	}
	return out
}

func rules(r *hpaRules, window int) ScalingRules {
	out := ScalingRules{StabilizationWindowSeconds: window, SelectPolicy: "Max"}
	if r == nil {
		return out
	}
	out.StabilizationWindowSeconds = intOr(r.StabilizationWindowSeconds, window)
	if r.SelectPolicy != "" {
		out.SelectPolicy = r.SelectPolicy
	}
	for _, p := range r.Policies {
		out.Policies = append(out.Policies, ScalingPolicy(p))
	}
	return out
}

func (n *norm) autoscaler(h k8sHPA) Autoscaler {
	a := Autoscaler{Meta: n.meta(h.Metadata), Target: h.Spec.ScaleTargetRef.Name,
		MinReplicas: intOr(h.Spec.MinReplicas, 1), MaxReplicas: h.Spec.MaxReplicas, TargetCPUPercent: 80,
		ScaleUp: rules(h.Spec.Behavior.ScaleUp, 0), ScaleDown: rules(h.Spec.Behavior.ScaleDown, 300)}
	if len(h.Spec.Metrics) > 0 {
		a.TargetCPUPercent = 0
	}
	for i, m := range h.Spec.Metrics {
		mf := fmt.Sprintf("spec.metrics[%d]", i)
		switch {
		case m.Type != "Resource":
			a.Unmeasured = append(a.Unmeasured, m.Type)
		case m.Resource.Name == "":
			n.fail(mf+".resource", "required with type Resource")
		case m.Resource.Name == "cpu" && a.TargetCPUPercent == 0:
			a.TargetCPUPercent = m.Resource.Target.AverageUtilization
		case m.Resource.Name == "memory" && a.TargetMemoryPercent == 0:
			a.TargetMemoryPercent = m.Resource.Target.AverageUtilization
		default:
			n.fail(mf+".resource.name", "%s twice", m.Resource.Name)
		}
	}
	if t := h.Spec.TargetCPUUtilizationPercentage; t != nil {
		a.TargetCPUPercent = *t
	}
	if a.MinReplicas > a.MaxReplicas {
		n.fail("spec.minReplicas", "minReplicas %d is above maxReplicas %d", a.MinReplicas, a.MaxReplicas)
	}
	return a
}

// decodeWithCUE makes decode always take cue's decoder (a test compares the
// two ways).
var decodeWithCUE = false

// decode decodes a validated value into a Go type. The schema has no
// defaults, so a document that is concrete data on its own (every YAML
// document, most CUE ones) holds exactly the validated value: it is decoded
// from its JSON, three times faster than cue's decoder. Numbers in
// int-or-string fields arrive as json.Number, exact at any size. Anything
// else (a CUE document that needs the schema to be concrete) takes cue's
// decoder.
func decode[T any](v cue.Value, errs *Errors, d document) (T, bool) {
	var out T
	if d.json != nil && !decodeWithCUE {
		dec := json.NewDecoder(bytes.NewReader(d.json))
		dec.UseNumber()
		if err := dec.Decode(&out); err == nil {
			return out, true
		}
		out = *new(T)
	}
	if err := v.Decode(&out); err != nil {
		*errs = append(*errs, &Error{File: d.file, Line: d.line(), Col: 1, Msg: "decode: " + err.Error()})
		return out, false
	}
	return out, true
}

// upper is names in upper case (nil stays nil).
func upper(names []string) []string {
	if names == nil {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToUpper(n)
	}
	return out
}

// dnsPolicy keeps only what changes a pod: Default (the node's resolv.conf).
// ClusterFirst is the default, and ClusterFirstWithHostNet is what a
// hostNetwork pod gets anyway here (the node's resolv.conf).
func dnsPolicy(p string) string {
	if p == "Default" {
		return p
	}
	return ""
}

// handler reads a lifecycle hook: exactly one of exec, httpGet, sleep.
func (n *norm) handler(f string, h *k8sHandler, portNames map[string]bool) *Handler {
	if h == nil {
		return nil
	}
	out := &Handler{}
	count := 0
	if h.Sleep != nil {
		count++
		out.SleepSeconds = h.Sleep.Seconds
	}
	if h.Exec != nil || h.HTTPGet != nil {
		pr := h.k8sProbe
		if p := n.probe(f, &pr, portNames); p != nil {
			out.Exec, out.HTTPGet = p.Exec, p.HTTPGet
		}
		count++
	}
	if count != 1 {
		n.fail(f, "a hook needs exactly one of exec, httpGet, sleep")
	}
	return out
}
