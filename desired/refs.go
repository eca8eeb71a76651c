package desired

import (
	"fmt"
	"maps"
	"slices"
	"sort"
)

// docIndex maps "Kind/name" to the document that defined it, for error positions.
func docIndex(docs []document) map[string]document {
	m := map[string]document{}
	for _, d := range docs {
		m[d.str("kind")+"/"+Qualify(d.namespace(), d.str("metadata.name"))] = d
	}
	return m
}

type refChecker struct {
	st       *State
	docs     map[string]document
	errs     *Errors
	cms      map[string]*ConfigMap
	secrets  map[string]*Secret
	claims   map[string]bool
	workload map[string]bool
	// needPositions: an error was found, and docs (nil) cannot place it.
	needPositions bool
}

func (r *refChecker) fail(kind, name, field, format string, args ...any) {
	if r.docs == nil {
		r.needPositions = true
		return
	}
	d := r.docs[kind+"/"+name]
	line, col := nearest(d.value, field)
	*r.errs = append(*r.errs, &Error{File: d.file, Line: line, Col: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// resolve checks every reference between objects (ConfigMap and Secret keys,
// claims, autoscaler and schedule targets) and computes the hashes, which
// include the data a pod references, so a change of that data rolls it out.
// Without docs (objects from the cache), an error only sets needPositions.
func resolve(st *State, docs map[string]document, errs *Errors) *refChecker {
	r := &refChecker{st: st, docs: docs, errs: errs, cms: map[string]*ConfigMap{}, secrets: map[string]*Secret{}, claims: map[string]bool{}, workload: map[string]bool{}}
	for i := range st.ConfigMaps {
		r.cms[st.ConfigMaps[i].Name] = &st.ConfigMaps[i]
	}
	for i := range st.Secrets {
		r.secrets[st.Secrets[i].Name] = &st.Secrets[i]
	}
	for _, c := range st.Claims {
		r.claims[c.Name] = true
	}
	for i := range st.Workloads {
		w := &st.Workloads[i]
		r.workload[w.Name] = true
		field := "spec.template.spec"
		if w.Kind == "Pod" {
			field = "spec"
		}
		var digests []string
		digests, w.Pod.Waiting = r.pod(w.Kind, w.Name, field, w.Pod)
		w.Hash = hashOf(w.Pod, digests)
	}
	for i := range st.Jobs {
		j := &st.Jobs[i]
		kind, field := "Job", "spec.template.spec"
		if j.Kind == "Pod" {
			kind, field = "Pod", "spec"
		}
		var digests []string
		digests, j.Spec.Pod.Waiting = r.pod(kind, j.Name, field, j.Spec.Pod)
		spec := j.Spec
		spec.Suspend = false // not the template: a Job resumes where it was
		j.Hash = hashOf(spec, digests)
	}
	for i := range st.CronJobs {
		c := &st.CronJobs[i]
		var digests []string
		digests, c.Job.Pod.Waiting = r.pod("CronJob", c.Name, "spec.jobTemplate.spec.template.spec", c.Job.Pod)
		c.Hash = hashOf(c.Job, digests)
	}
	owners := map[string]string{}
	for _, a := range st.Autoscalers {
		if prev, ok := owners[a.Target]; ok {
			r.fail("HorizontalPodAutoscaler", a.Name, "spec.scaleTargetRef.name", "Deployment %q is already scaled by %s", a.Target, prev)
		}
		owners[a.Target] = "HorizontalPodAutoscaler " + a.Name
	}
	scheduled := map[string]string{}
	for _, s := range st.Schedules {
		if !r.workload[s.Target] {
			r.fail("ScalingSchedule", s.Name, "spec.target.name", "no Deployment named %q", s.Target)
		}
		if prev, ok := scheduled[s.Target]; ok {
			r.fail("ScalingSchedule", s.Name, "spec.target.name", "Deployment %q already has the ScalingSchedule %s", s.Target, prev)
		}
		scheduled[s.Target] = s.Name
	}
	for _, p := range st.Pools {
		if p.WebhookURL == "" {
			continue
		}
		sec, ok := r.secrets[p.WebhookSecret]
		if !ok {
			r.fail("NodePool", p.Name, "spec.provisioner.webhook.secretRef.name", "no Secret named %q in the revision (the webhook's key must be in Git, sealed)", p.WebhookSecret)
		} else if i := sort.SearchStrings(sec.Keys, p.WebhookSecretKey); i == len(sec.Keys) || sec.Keys[i] != p.WebhookSecretKey {
			r.fail("NodePool", p.Name, "spec.provisioner.webhook.secretRef.key", "Secret %q has no key %q", p.WebhookSecret, p.WebhookSecretKey)
		}
	}
	return r
}

// pod checks a pod's references and returns the digests of the data it
// uses, and the objects it needs (not optionally) that the revision lacks,
// sorted as "Kind name": those are waited for (PodSpec.Waiting), as
// Kubernetes lets a pod wait for a Secret made outside Git, while a key
// missing from an object the revision has is a mistake.
func (r *refChecker) pod(kind, name, field string, p PodSpec) (digests, waiting []string) {
	used := map[string]string{}
	lacks := map[string]bool{}
	useCM := func(f, cm, key string, optional bool) {
		c, ok := r.cms[cm]
		if !ok {
			if !optional && cm != "" {
				lacks["ConfigMap "+cm] = true
			}
			return
		}
		if key != "" && !optional {
			_, inData := c.Data[key]
			_, inBin := c.BinaryData[key]
			if !inData && !inBin {
				r.fail(kind, name, f, "ConfigMap %q has no key %q", cm, key)
			}
		}
		used["ConfigMap/"+cm] = hashOf(c.Data, c.BinaryData)
	}
	useSecret := func(f, s, key string, optional bool) {
		sec, ok := r.secrets[s]
		if !ok {
			if !optional && s != "" {
				lacks["Secret "+s] = true
			}
			return
		}
		if key != "" && !optional {
			if i := sort.SearchStrings(sec.Keys, key); i == len(sec.Keys) || sec.Keys[i] != key {
				r.fail(kind, name, f, "Secret %q has no key %q", s, key)
			}
		}
		used["Secret/"+s] = sec.digest
	}
	// files uses a volume source: the object, and each key it projects.
	files := func(f string, use func(f, name, key string, optional bool), ff *FilesFrom) {
		use(f, ff.Name, "", ff.Optional)
		for key := range ff.Items {
			use(f, ff.Name, key, ff.Optional)
		}
	}
	for i, c := range p.AllContainers() {
		cf := fmt.Sprintf("%s.containers[%d]", field, i-len(p.InitContainers))
		if i < len(p.InitContainers) {
			cf = fmt.Sprintf("%s.initContainers[%d]", field, i)
		}
		for j, e := range c.Env {
			ef := fmt.Sprintf("%s.env[%d].valueFrom", cf, j)
			if k := e.ConfigMapKeyRef; k != nil {
				useCM(ef+".configMapKeyRef.name", k.Name, k.Key, k.Optional)
			}
			if k := e.SecretKeyRef; k != nil {
				useSecret(ef+".secretKeyRef.name", k.Name, k.Key, k.Optional)
			}
		}
		for j, e := range c.EnvFrom {
			ef := fmt.Sprintf("%s.envFrom[%d]", cf, j)
			useCM(ef+".configMapRef.name", e.ConfigMap, "", e.Optional)
			useSecret(ef+".secretRef.name", e.Secret, "", e.Optional)
		}
	}
	for i, sname := range p.ImagePullSecrets {
		sf := fmt.Sprintf("%s.imagePullSecrets[%d].name", field, i)
		useSecret(sf, sname, "", false)
		if sec, ok := r.secrets[sname]; ok {
			if _, err := dockerConfig(*sec); err != nil {
				r.fail(kind, name, sf, "Secret %q: %v", sname, err)
			}
		}
	}
	for i, v := range p.Volumes {
		vf := fmt.Sprintf("%s.volumes[%d]", field, i)
		if v.ConfigMap != nil {
			files(vf+".configMap.name", useCM, v.ConfigMap)
		}
		if v.Secret != nil {
			files(vf+".secret.secretName", useSecret, v.Secret)
		}
		if v.Claim != nil && !v.Claim.PerOrdinal && !r.claims[v.Claim.Claim] {
			lacks["PersistentVolumeClaim "+v.Claim.Claim] = true
		}
		if pj := v.Projected; pj != nil {
			for _, ff := range pj.ConfigMaps {
				files(vf+".projected.sources", useCM, ff)
			}
			for _, ff := range pj.Secrets {
				files(vf+".projected.sources", useSecret, ff)
			}
		}
	}
	for _, k := range sortedKeys(used) {
		digests = append(digests, k+"="+used[k])
	}
	if len(lacks) > 0 {
		waiting = sortedKeys(lacks)
	}
	return digests, waiting
}

// ResolvePod returns p with every environment variable that references a
// ConfigMap or Secret replaced by its value and envFrom expanded, as a node
// needs it to start the pod. Optional references that do not resolve are
// left out, as in Kubernetes. The result holds secret values: never log it.
func (s *State) ResolvePod(p PodSpec) PodSpec {
	cms := map[string]ConfigMap{}
	for _, c := range s.ConfigMaps {
		cms[c.Name] = c
	}
	secrets := map[string]Secret{}
	for _, sec := range s.Secrets {
		secrets[sec.Name] = sec
	}
	out := p
	out.RegistryAuth = nil
	for _, name := range p.ImagePullSecrets {
		if sec, ok := secrets[name]; ok {
			creds, _ := dockerConfig(sec)
			out.RegistryAuth = append(out.RegistryAuth, creds...)
		}
	}
	out.Containers = s.resolveEnv(p.Containers, cms, secrets)
	if len(p.InitContainers) > 0 {
		out.InitContainers = s.resolveEnv(p.InitContainers, cms, secrets)
	}
	out.Volumes = nil
	if len(p.Volumes) > 0 {
		out.Volumes = make([]Volume, len(p.Volumes))
	}
	s.resolveVolumes(p, out.Volumes, cms, secrets)
	return out
}

// resolveEnv is containers with their environment resolved (ResolvePod).
func (s *State) resolveEnv(containers []Container, cms map[string]ConfigMap, secrets map[string]Secret) []Container {
	out := make([]Container, len(containers))
	for i, c := range containers {
		var env []EnvVar
		for _, e := range c.EnvFrom {
			if cm, ok := cms[e.ConfigMap]; ok && e.ConfigMap != "" {
				for _, k := range sortedKeys(cm.Data) {
					env = append(env, EnvVar{Name: e.Prefix + k, Value: cm.Data[k]})
				}
			}
			if sec, ok := secrets[e.Secret]; ok && e.Secret != "" {
				for _, k := range sec.Keys {
					env = append(env, EnvVar{Name: e.Prefix + k, Value: string(sec.Data[k])})
				}
			}
		}
		for _, e := range c.Env {
			switch {
			case e.ConfigMapKeyRef != nil:
				if v, ok := cms[e.ConfigMapKeyRef.Name].Data[e.ConfigMapKeyRef.Key]; ok {
					env = append(env, EnvVar{Name: e.Name, Value: v})
				}
			case e.SecretKeyRef != nil:
				if v, ok := secrets[e.SecretKeyRef.Name].Data[e.SecretKeyRef.Key]; ok {
					env = append(env, EnvVar{Name: e.Name, Value: string(v)})
				}
			default:
				env = append(env, e)
			}
		}
		c.Env, c.EnvFrom = env, nil
		out[i] = c
	}
	return out
}

// resolveVolumes fills out (one per volume of p) with p's volumes, their
// ConfigMap and Secret files projected (ResolvePod).
func (s *State) resolveVolumes(p PodSpec, out []Volume, cms map[string]ConfigMap, secrets map[string]Secret) {
	for i, v := range p.Volumes {
		project := func(ff *FilesFrom, data map[string][]byte) *FilesFrom {
			cp := *ff
			cp.Files = map[string][]byte{}
			for k, b := range data {
				if len(ff.Items) == 0 {
					cp.Files[k] = b
				} else if path, ok := ff.Items[k]; ok {
					cp.Files[path] = b
				}
			}
			return &cp
		}
		if v.ConfigMap != nil {
			data := map[string][]byte{}
			for k, val := range cms[v.ConfigMap.Name].Data {
				data[k] = []byte(val)
			}
			for k, val := range cms[v.ConfigMap.Name].BinaryData {
				data[k] = val
			}
			v.ConfigMap = project(v.ConfigMap, data)
		}
		if v.Secret != nil {
			v.Secret = project(v.Secret, secrets[v.Secret.Name].Data)
		}
		if pj := v.Projected; pj != nil {
			cp := *pj
			cp.ConfigMaps, cp.Secrets = nil, nil
			for _, ff := range pj.ConfigMaps {
				data := map[string][]byte{}
				for k, val := range cms[ff.Name].Data {
					data[k] = []byte(val)
				}
				for k, val := range cms[ff.Name].BinaryData {
					data[k] = val
				}
				cp.ConfigMaps = append(cp.ConfigMaps, project(ff, data))
			}
			for _, ff := range pj.Secrets {
				cp.Secrets = append(cp.Secrets, project(ff, secrets[ff.Name].Data))
			}
			v.Projected = &cp
		}
		out[i] = v
	}
}

// unenforced lists what the revision asks for that Baton accepts and
// validates but does not act on yet, so nobody believes it is in force.
func unenforced(st *State) []string {
	var w []string
	add := func(format string, args ...any) { w = append(w, fmt.Sprintf(format, args...)) }
	for _, o := range st.Ignored {
		add("%s: %s %s is accepted and not acted on: %s", o.Source, o.Kind, o.Name, o.Why)
	}
	endpoints := st.EndpointsByName()
	for _, s := range st.Services {
		for _, u := range s.Unserved {
			add("Service %s: %s is not acted on", s.Name, u)
		}
		if _, ok := endpoints[s.Name]; len(s.Selector) == 0 && !ok {
			add("Service %s has no selector and the revision no Endpoints of that name: it serves nothing", s.Name)
		}
	}
	for _, e := range st.Endpoints {
		if !slices.ContainsFunc(st.Services, func(s Service) bool { return s.Name == e.Name && len(s.Selector) == 0 }) {
			add("Endpoints %s: no Service without a selector of that name: its addresses are not served", e.Name)
		}
	}
	for _, j := range st.Jobs {
		if j.Spec.TTLSecondsAfterFinished != nil {
			add("Job %s: ttlSecondsAfterFinished is not enforced yet (its pods stay until the Job leaves Git)", j.Name)
		}
	}
	for _, c := range st.Claims {
		if c.Binds != "" {
			add("PersistentVolumeClaim %s: %s is not acted on: a claim is a directory on the node that holds it, there are no PersistentVolumes to bind to", c.Name, c.Binds)
		}
	}
	for _, a := range st.Autoscalers {
		for _, m := range a.Unmeasured {
			add("HorizontalPodAutoscaler %s: its %s metric is not acted on: Baton measures the pods' cpu and memory only (as a Kubernetes cluster without a metrics adapter)", a.Name, m)
		}
		if _, ok := st.Workload(a.Target); !ok {
			add("HorizontalPodAutoscaler %s: no Deployment named %q in the revision: it scales nothing until one is", a.Name, a.Target)
		}
	}
	pod := func(what string, p PodSpec) {
		for _, m := range p.Waiting {
			add("%s: waits for %s, which is not in the revision: its pods start once a revision has it (Kubernetes lets it be made outside Git; in Baton it comes with a commit, a SealedSecret for a secret)", what, m)
		}
		if p.ServiceAccountName != "" || p.AutomountServiceAccountToken != nil {
			add("%s: serviceAccountName and automountServiceAccountToken are accepted and not acted on: Baton gives pods no service accounts or API tokens", what)
		}
		if p.PriorityClassName != "" {
			add("%s: priorityClassName is accepted and not acted on: there is no preemption", what)
		}
		if slices.ContainsFunc(p.Tolerations, func(t Toleration) bool { return t.TolerationSeconds != nil }) {
			add("%s: tolerationSeconds is not counted: a NoExecute taint the pod tolerates never moves its replicas", what)
		}
		for _, v := range p.Volumes {
			if v.Projected != nil && v.Projected.NoToken {
				add("%s: volume %s: its serviceAccountToken source is not written: Baton gives pods no service accounts or API tokens", what, v.Name)
			}
		}
		if p.Subdomain != "" && !slices.ContainsFunc(st.Services, func(s Service) bool { return s.Name == p.Subdomain && s.ClusterIP == "None" }) {
			add("%s: subdomain %s names no headless Service (clusterIP: None) in the revision: the pods get no <hostname>.%s name", what, ShortName(p.Subdomain), ShortName(p.Subdomain))
		}
		said := map[string]bool{}
		for _, c := range p.AllContainers() {
			for _, name := range slices.Sorted(maps.Keys(c.Resources.Requests.Extra)) {
				if said[name] {
					continue
				}
				said[name] = true
				switch {
				case name == ResourceEphemeralStorage:
					add("%s: ephemeral-storage is scheduled against the nodes' disks and not enforced (nothing limits the writable layer, logs or emptyDir)", what)
				case IsHugePages(name):
					add("%s: %s is scheduled against what nodes advertise (baton agent --resource) and no huge pages are mounted into the pod", what, name)
				default:
					add("%s: %s is scheduled against what nodes advertise (baton agent --resource); the device is not given to the container (Baton has no device plugins)", what, name)
				}
			}
		}
	}
	for _, wl := range st.Workloads {
		if wl.Paused {
			add("Deployment %s: paused is not enforced yet", wl.Name)
		}
		if sf := wl.Stateful; sf != nil && sf.DeleteClaims != "" {
			add("StatefulSet %s: persistentVolumeClaimRetentionPolicy %s Delete is not acted on: its claims are kept (Retain)", wl.Name, sf.DeleteClaims)
		}
		pod(wl.Kind+" "+wl.Name, wl.Pod)
	}
	for _, j := range st.Jobs {
		kind := "Job"
		if j.Kind != "" {
			kind = j.Kind
		}
		pod(kind+" "+j.Name, j.Spec.Pod)
	}
	return w
}
