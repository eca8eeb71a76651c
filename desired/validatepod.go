package desired

import (
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidPod is wrapped by every error of ValidatePod.
var ErrInvalidPod = errors.New("invalid pod spec")

// Bounds of a pod spec that did not come through the loader (a start
// command): the loader's own limits make a manifest's pods smaller.
const (
	MaxContainers     = 32
	MaxVolumes        = 64
	MaxProjectedBytes = 4 << 20 // files of one configMap or secret volume
	maxListLen        = 1024    // args, env, ports, mounts, files of one container or volume
	maxStringLen      = 64 << 10
	// MaxGraceSeconds and MaxProbeSeconds bound terminationGracePeriodSeconds
	// and a probe's seconds and thresholds (the schema has the same bounds).
	MaxGraceSeconds     = 24 * 3600
	MaxProbeSeconds     = 24 * 3600
	maxHostID           = math.MaxUint32 - 1
	maxTopologyTerms    = 16
	maxProbeHeaderCount = 64
)

var (
	labelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	subdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	capRE       = regexp.MustCompile(`^[A-Z_]+$`)
)

// IsName reports whether s is a DNS-1123 label (the schema's #Name).
func IsName(s string) bool { return len(s) <= 63 && labelRE.MatchString(s) }

// IsSubdomain reports whether s is a DNS-1123 subdomain (the schema's #Subdomain).
func IsSubdomain(s string) bool { return len(s) <= 253 && subdomainRE.MatchString(s) }

// podCheck collects the problems of one pod spec.
type podCheck struct{ errs []string }

func (c *podCheck) fail(field, format string, args ...any) {
	if len(c.errs) < 20 {
		c.errs = append(c.errs, field+": "+fmt.Sprintf(format, args...))
	}
}

// ValidatePod checks a normalized pod spec with the rules the loader applies
// to a manifest (the schema's patterns and bounds and the normalizer's
// checks), and bounds every list and string. The node agent checks every
// start command with it before it turns a field into a path, a mount, a
// capability or a host resource: a pod that the loader would refuse is
// refused here too, whoever sent it.
func ValidatePod(p PodSpec) error {
	c := &podCheck{}
	c.pod(p)
	if len(c.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidPod, strings.Join(c.errs, "; "))
}

func (c *podCheck) pod(p PodSpec) {
	if len(p.Containers) == 0 || len(p.Containers) > MaxContainers {
		c.fail("containers", "a pod needs 1 to %d containers (has %d)", MaxContainers, len(p.Containers))
	}
	switch p.RestartPolicy {
	case "", "Always", "OnFailure", "Never":
	default:
		c.fail("restartPolicy", "%q: want Always, OnFailure or Never", cut(p.RestartPolicy))
	}
	if p.TerminationGracePeriodSeconds < 0 || p.TerminationGracePeriodSeconds > MaxGraceSeconds {
		c.fail("terminationGracePeriodSeconds", "%d: want 0 to %d", p.TerminationGracePeriodSeconds, MaxGraceSeconds)
	}
	for f, v := range map[string]string{"serviceAccountName": p.ServiceAccountName, "priorityClassName": p.PriorityClassName} {
		if v != "" && !IsSubdomain(v) {
			c.fail(f, "%q is not a DNS subdomain", cut(v))
		}
	}
	if p.Hostname != "" && !IsName(p.Hostname) {
		c.fail("hostname", "%q is not a DNS label", cut(p.Hostname))
	}
	c.strings("nodeSelector", p.NodeSelector)
	if p.FSGroup != nil && (*p.FSGroup < 0 || *p.FSGroup > maxHostID) {
		c.fail("fsGroup", "want 0 to %d", int64(maxHostID))
	}
	if len(p.SupplementalGroups) > 32 || slices.ContainsFunc(p.SupplementalGroups, func(g int64) bool { return g < 0 || g > maxHostID }) {
		c.fail("supplementalGroups", "at most 32, each 0 to %d", int64(maxHostID))
	}
	if len(p.Sysctls) > 32 {
		c.fail("sysctls", "at most 32")
	}
	for i, sy := range p.Sysctls {
		if !namespacedSysctl(sy.Name) || len(sy.Name) > 256 || len(sy.Value) > 4096 || strings.ContainsAny(sy.Value, "\n\x00") ||
			(p.HostNetwork && strings.HasPrefix(sy.Name, "net.")) {
			c.fail(fmt.Sprintf("sysctls[%d]", i), "%q: want a namespaced kernel parameter (not net.* with hostNetwork) and a one-line value", cut(sy.Name))
		}
	}
	if len(p.RegistryAuth) > 32 || len(p.ImagePullSecrets) > 32 {
		c.fail("registryAuth", "at most 32 registries and 32 image pull secrets")
	}
	for i, a := range p.RegistryAuth {
		if a.Host == "" || len(a.Host) > 253 || strings.ContainsAny(a.Host, "/ \r\n") || len(a.Username) > 4096 || len(a.Password) > 4096 {
			c.fail(fmt.Sprintf("registryAuth[%d]", i), "a host name and credentials of at most 4096 bytes")
		}
	}
	if len(p.Tolerations) > 64 {
		c.fail("tolerations", "at most 64")
	}
	if a := p.NodeAffinity; a != nil && len(a.Required)+len(a.Preferred) > maxTopologyTerms {
		c.fail("nodeAffinity", "at most %d terms", maxTopologyTerms)
	}
	if len(p.TopologySpread)+len(p.AntiAffinity)+len(p.Affinity) > maxTopologyTerms {
		c.fail("topologySpread", "at most %d topology terms", maxTopologyTerms)
	}
	for i, t := range p.TopologySpread {
		if t.MaxSkew < 1 || t.TopologyKey == "" {
			c.fail(fmt.Sprintf("topologySpread[%d]", i), "needs maxSkew ≥ 1 and a topologyKey")
		}
	}
	for i, t := range p.AntiAffinity {
		if t.Weight < 0 || t.Weight > 100 || t.TopologyKey == "" {
			c.fail(fmt.Sprintf("antiAffinity[%d]", i), "needs a weight of 0 to 100 and a topologyKey")
		}
	}
	if len(p.Volumes) > MaxVolumes {
		c.fail("volumes", "at most %d volumes", MaxVolumes)
	}
	volumes := map[string]bool{}
	for i, v := range p.Volumes {
		f := fmt.Sprintf("volumes[%d]", i)
		if !IsName(v.Name) {
			c.fail(f+".name", "%q is not a DNS label", cut(v.Name))
		}
		if volumes[v.Name] {
			c.fail(f+".name", "duplicate volume name %q", cut(v.Name))
		}
		volumes[v.Name] = true
		c.volume(f, v)
	}
	names := map[string]bool{}
	hostPorts := map[string]bool{}
	if len(p.InitContainers) > MaxContainers {
		c.fail("initContainers", "at most %d", MaxContainers)
	}
	for i, ct := range p.AllContainers() {
		f := fmt.Sprintf("containers[%d]", i-len(p.InitContainers))
		if i < len(p.InitContainers) {
			f = fmt.Sprintf("initContainers[%d]", i)
		} else if ct.Sidecar {
			c.fail(f+".sidecar", "only an init container can be a sidecar")
		}
		if !IsName(ct.Name) {
			c.fail(f+".name", "%q is not a DNS label", cut(ct.Name))
		}
		if names[ct.Name] {
			c.fail(f+".name", "duplicate container name %q", cut(ct.Name))
		}
		names[ct.Name] = true
		c.container(f, ct, volumes)
		for j, pt := range ct.Ports {
			if p.HostNetwork && pt.HostPort != 0 && pt.HostPort != pt.ContainerPort {
				c.fail(fmt.Sprintf("%s.ports[%d].hostPort", f, j), "with hostNetwork, hostPort must equal containerPort")
			}
			if pt.HostPort == 0 {
				continue
			}
			key := pt.Protocol + "/" + strconv.Itoa(pt.HostPort)
			if hostPorts[key] {
				c.fail(fmt.Sprintf("%s.ports[%d].hostPort", f, j), "host port %s is used twice in the pod", key)
			}
			hostPorts[key] = true
		}
	}
}

func (c *podCheck) volume(f string, v Volume) {
	sources := 0
	if v.EmptyDir != nil {
		sources++
		if v.EmptyDir.SizeLimitBytes < 0 {
			c.fail(f+".emptyDir.sizeLimit", "negative")
		}
	}
	if v.HostPath != "" {
		sources++
		if !filepath.IsAbs(v.HostPath) || strings.ContainsRune(v.HostPath, 0) || len(v.HostPath) > 4096 {
			c.fail(f+".hostPath", "%q: want an absolute path", cut(v.HostPath))
		}
	}
	switch v.HostPathType {
	case "", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket", "CharDevice", "BlockDevice":
	default:
		c.fail(f+".hostPathType", "%q: want Directory, DirectoryOrCreate, File, FileOrCreate, Socket, CharDevice or BlockDevice", cut(v.HostPathType))
	}
	for _, ff := range []struct {
		field string
		src   *FilesFrom
	}{{".configMap", v.ConfigMap}, {".secret", v.Secret}} {
		if ff.src == nil {
			continue
		}
		sources++
		c.files(f+ff.field, ff.src)
	}
	if v.Claim != nil {
		sources++
		if !IsQualified(v.Claim.Claim) {
			c.fail(f+".persistentVolumeClaim.claimName", "%q: want a DNS subdomain, after NAMESPACE/ outside the default namespace", cut(v.Claim.Claim))
		}
	}
	if pj := v.Projected; pj != nil {
		sources++
		if len(pj.ConfigMaps)+len(pj.Secrets)+len(pj.Downward) > maxListLen {
			c.fail(f+".projected", "at most %d sources and files", maxListLen)
		}
		for _, ff := range append(slices.Clone(pj.ConfigMaps), pj.Secrets...) {
			c.files(f+".projected", ff)
		}
		if pj.DefaultMode < 0 || pj.DefaultMode > 0o777 {
			c.fail(f+".projected.defaultMode", "%#o: want 0 to 0777", pj.DefaultMode)
		}
		for i, d := range pj.Downward {
			df := fmt.Sprintf("%s.projected.downward[%d]", f, i)
			if !filepath.IsLocal(d.Path) || len(d.Path) > 1024 || len(d.Value) > MaxSecretBytes || d.Mode < 0 || d.Mode > 0o777 ||
				(d.FieldRef != "" && !isNodeField(d.FieldRef)) {
				c.fail(df, "a path inside the volume, a mode of 0 to 0777 and a field the node knows")
			}
		}
	}
	if sources != 1 {
		c.fail(f, "a volume needs exactly one of emptyDir, ephemeral, hostPath, configMap, secret, persistentVolumeClaim, downwardAPI, projected (has %d)", sources)
	}
}

func (c *podCheck) files(f string, ff *FilesFrom) {
	if !IsQualified(ff.Name) {
		c.fail(f+".name", "%q: want a DNS subdomain, after NAMESPACE/ outside the default namespace", cut(ff.Name))
	}
	if ff.DefaultMode < 0 || ff.DefaultMode > 0o777 {
		c.fail(f+".defaultMode", "%#o: want 0 to 0777", ff.DefaultMode)
	}
	if len(ff.Items) > maxListLen || len(ff.Files) > maxListLen {
		c.fail(f, "at most %d items and files", maxListLen)
	}
	for k, p := range ff.Items {
		if !localPath(p) {
			c.fail(f+".items."+cut(k), "path %q must be relative and stay in the volume", cut(p))
		}
	}
	total := 0
	for p, b := range ff.Files {
		total += len(b)
		if !localPath(p) {
			c.fail(f+".files", "path %q must be relative and stay in the volume", cut(p))
		}
	}
	if total > MaxProjectedBytes {
		c.fail(f+".files", "%d bytes, more than %d", total, MaxProjectedBytes)
	}
}

// localPath: relative, without "..", no NUL: a file that stays in its volume.
func localPath(p string) bool {
	return p != "" && filepath.IsLocal(p) && !strings.Contains(p, "..") && !strings.ContainsRune(p, 0) && len(p) <= 4096
}

func (c *podCheck) container(f string, ct Container, volumes map[string]bool) {
	if ct.Image == "" || strings.ContainsAny(ct.Image, " \t\r\n\x00") || len(ct.Image) > 4096 {
		c.fail(f+".image", "%q: want an image reference without spaces", cut(ct.Image))
	}
	switch ct.ImagePullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		c.fail(f+".imagePullPolicy", "%q: want Always, IfNotPresent or Never", cut(ct.ImagePullPolicy))
	}
	if len(ct.Command)+len(ct.Args) > maxListLen {
		c.fail(f+".args", "at most %d command and args", maxListLen)
	}
	for _, s := range append(append([]string{ct.WorkingDir}, ct.Command...), ct.Args...) {
		if strings.ContainsRune(s, 0) || len(s) > maxStringLen {
			c.fail(f+".command", "an argument has a NUL byte or more than %d bytes", maxStringLen)
			break
		}
	}
	if len(ct.Env) > maxListLen || len(ct.EnvFrom) > maxListLen {
		c.fail(f+".env", "at most %d variables", maxListLen)
	}
	envNames := map[string]bool{}
	for i, e := range ct.Env {
		if e.Name == "" || strings.ContainsAny(e.Name, "=\x00") || len(e.Name) > 1024 {
			c.fail(fmt.Sprintf("%s.env[%d].name", f, i), "%q: a name without '=' or NUL", cut(e.Name))
		}
		if strings.ContainsRune(e.Value, 0) || len(e.Value) > MaxSecretBytes {
			c.fail(fmt.Sprintf("%s.env[%d].value", f, i), "has a NUL byte or more than %d bytes", MaxSecretBytes)
		}
		if envNames[e.Name] {
			c.fail(fmt.Sprintf("%s.env[%d].name", f, i), "duplicate environment variable %q", cut(e.Name))
		}
		if e.FieldRef != "" && !isNodeField(e.FieldRef) {
			c.fail(fmt.Sprintf("%s.env[%d].fieldRef", f, i), "%q: want one of %s", cut(e.FieldRef), strings.Join(NodeFields, ", "))
		}
		if r := e.ResourceFieldRef; r != nil && (!slices.Contains([]string{"limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage"}, r.Resource) || r.Divisor < 0) {
			c.fail(fmt.Sprintf("%s.env[%d].resourceFieldRef", f, i), "%q: want limits or requests of cpu, memory or ephemeral-storage", cut(r.Resource))
		}
		envNames[e.Name] = true
	}
	if len(ct.Ports) > maxListLen {
		c.fail(f+".ports", "at most %d ports", maxListLen)
	}
	portNames := map[string]bool{}
	for i, p := range ct.Ports {
		pf := fmt.Sprintf("%s.ports[%d]", f, i)
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			c.fail(pf+".containerPort", "%d: want 1 to 65535", p.ContainerPort)
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			c.fail(pf+".hostPort", "%d: want 1 to 65535", p.HostPort)
		}
		if p.Protocol != "TCP" && p.Protocol != "UDP" {
			c.fail(pf+".protocol", "%q: want TCP or UDP", cut(p.Protocol))
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
			c.fail(pf+".hostIP", "%q is not an IP address", cut(p.HostIP))
		}
		if p.Name != "" {
			if len(p.Name) > 15 || !labelRE.MatchString(p.Name) {
				c.fail(pf+".name", "%q: a DNS label of 15 characters at most", cut(p.Name))
			}
			if portNames[p.Name] {
				c.fail(pf+".name", "duplicate port name %q", cut(p.Name))
			}
			portNames[p.Name] = true
		}
	}
	r := ct.Resources
	if r.Requests.CPUMilli < 0 || r.Requests.MemoryBytes < 0 || r.Limits.CPUMilli < 0 || r.Limits.MemoryBytes < 0 {
		c.fail(f+".resources", "negative")
	}
	if (r.Limits.CPUMilli > 0 && r.Requests.CPUMilli > r.Limits.CPUMilli) || (r.Limits.MemoryBytes > 0 && r.Requests.MemoryBytes > r.Limits.MemoryBytes) {
		c.fail(f+".resources.requests", "a request is above its limit")
	}
	if sc := ct.SecurityContext; sc != nil {
		for _, id := range []*int64{sc.RunAsUser, sc.RunAsGroup} {
			if id != nil && (*id < 0 || *id > maxHostID) {
				c.fail(f+".securityContext", "runAsUser and runAsGroup: want 0 to %d", int64(maxHostID))
			}
		}
		if sc.RunAsNonRoot && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			c.fail(f+".securityContext.runAsNonRoot", "runAsUser is 0 (root)")
		}
		if s := sc.Seccomp; s != "" && s != "Unconfined" && !(strings.HasPrefix(s, "Localhost/") && filepath.IsLocal(strings.TrimPrefix(s, "Localhost/"))) {
			c.fail(f+".securityContext.seccomp", "want Unconfined or Localhost/<a path under the node's seccomp directory>")
		}
		if len(sc.CapAdd)+len(sc.CapDrop) > 128 {
			c.fail(f+".securityContext.capabilities", "at most 128")
		}
		for _, cp := range append(append([]string{}, sc.CapAdd...), sc.CapDrop...) {
			if !capRE.MatchString(cp) || len(cp) > 64 {
				c.fail(f+".securityContext.capabilities", "%q: want upper-case letters and '_'", cut(cp))
			}
		}
	}
	c.probe(f+".livenessProbe", ct.LivenessProbe, portNames, true)
	c.probe(f+".readinessProbe", ct.ReadinessProbe, portNames, false)
	c.probe(f+".startupProbe", ct.StartupProbe, portNames, true)
	if lc := ct.Lifecycle; lc != nil {
		for name, h := range map[string]*Handler{"postStart": lc.PostStart, "preStop": lc.PreStop} {
			if h == nil {
				continue
			}
			hf := f + ".lifecycle." + name
			if h.SleepSeconds < 0 || h.SleepSeconds > 3600 {
				c.fail(hf+".sleep", "want 0 to 3600 seconds")
			}
			if h.SleepSeconds > 0 && (len(h.Exec) > 0 || h.HTTPGet != nil) {
				c.fail(hf, "a hook needs exactly one of exec, httpGet, sleep")
			}
			if len(h.Exec) > 0 || h.HTTPGet != nil {
				c.probe(hf, h.Probe(1), portNames, false)
			}
		}
	}
	if len(ct.VolumeMounts) > maxListLen {
		c.fail(f+".volumeMounts", "at most %d mounts", maxListLen)
	}
	for i, m := range ct.VolumeMounts {
		mf := fmt.Sprintf("%s.volumeMounts[%d]", f, i)
		if !volumes[m.Name] {
			c.fail(mf+".name", "no volume named %q in the pod", cut(m.Name))
		}
		if !strings.HasPrefix(m.MountPath, "/") || strings.ContainsRune(m.MountPath, 0) || len(m.MountPath) > 4096 {
			c.fail(mf+".mountPath", "%q: want an absolute path", cut(m.MountPath))
		}
		if m.SubPath != "" && !localPath(m.SubPath) {
			c.fail(mf+".subPath", "%q must be relative and stay in the volume", cut(m.SubPath))
		}
	}
}

// ValidateProbe checks one probe; liveOrStartup probes need a success
// threshold of 1. portNames are the container's named ports (nil: any name).
func ValidateProbe(p *Probe, portNames map[string]bool, liveOrStartup bool) error {
	c := &podCheck{}
	c.probe("probe", p, portNames, liveOrStartup)
	if len(c.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidPod, strings.Join(c.errs, "; "))
}

func (c *podCheck) probe(f string, p *Probe, portNames map[string]bool, liveOrStartup bool) {
	if p == nil {
		return
	}
	handlers := 0
	port := func(field, s string) {
		if n, err := strconv.Atoi(s); err == nil {
			if n < 1 || n > 65535 {
				c.fail(field, "%d: want 1 to 65535", n)
			}
			return
		}
		if !IsName(s) || (portNames != nil && !portNames[s]) {
			c.fail(field, "no container port named %q", cut(s))
		}
	}
	if h := p.HTTPGet; h != nil {
		handlers++
		port(f+".httpGet.port", h.Port)
		if !strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \t\r\n\x00") || len(h.Path) > 4096 {
			c.fail(f+".httpGet.path", "%q: want an absolute path without spaces", cut(h.Path))
		}
		if len(h.Headers) > maxProbeHeaderCount {
			c.fail(f+".httpGet.httpHeaders", "at most %d", maxProbeHeaderCount)
		}
		for k, v := range h.Headers {
			if k == "" || strings.ContainsAny(k, " :\r\n\x00") || strings.ContainsAny(v, "\r\n\x00") {
				c.fail(f+".httpGet.httpHeaders", "%q is not a valid header", cut(k))
			}
		}
	}
	if p.TCPSocket != nil {
		handlers++
		port(f+".tcpSocket.port", p.TCPSocket.Port)
	}
	if g := p.GRPC; g != nil {
		handlers++
		port(f+".grpc.port", strconv.Itoa(g.Port))
		if len(g.Service) > 253 {
			c.fail(f+".grpc.service", "at most 253 bytes")
		}
	}
	if len(p.Exec) > 0 {
		handlers++
		if len(p.Exec) > maxListLen {
			c.fail(f+".exec.command", "at most %d arguments", maxListLen)
		}
	}
	if handlers != 1 {
		c.fail(f, "a probe needs exactly one of httpGet, tcpSocket, grpc, exec (has %d)", handlers)
	}
	for _, b := range []struct {
		name  string
		v, lo int
	}{
		{"initialDelaySeconds", p.InitialDelaySeconds, 0},
		{"periodSeconds", p.PeriodSeconds, 1},
		{"timeoutSeconds", p.TimeoutSeconds, 1},
		{"successThreshold", p.SuccessThreshold, 1},
		{"failureThreshold", p.FailureThreshold, 1},
	} {
		if b.v < b.lo || b.v > MaxProbeSeconds {
			c.fail(f+"."+b.name, "%d: want %d to %d", b.v, b.lo, MaxProbeSeconds)
		}
	}
	if liveOrStartup && p.SuccessThreshold != 1 {
		c.fail(f+".successThreshold", "must be 1 for liveness and startup probes")
	}
}

func (c *podCheck) strings(f string, m map[string]string) {
	if len(m) > maxListLen {
		c.fail(f, "at most %d entries", maxListLen)
	}
}

// cut shortens a value quoted in an error.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
