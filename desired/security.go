package desired

import (
	"fmt"
	"strings"
)

// securityContext is a container's securityContext over its pod's (the
// container's own settings win, as in Kubernetes).
func (n *norm) securityContext(f string, c k8sContainer, pod *podSecurityContext) *SecurityContext {
	sc := c.SecurityContext
	if sc == nil && pod == nil {
		return nil
	}
	out := &SecurityContext{}
	var nonRoot *bool
	if pod != nil {
		out.RunAsUser, out.RunAsGroup, nonRoot = pod.RunAsUser, pod.RunAsGroup, pod.RunAsNonRoot
		out.Seccomp = seccompOf(pod.SeccompProfile) // checked by podSecurity
	}
	if sc != nil {
		if sc.RunAsUser != nil {
			out.RunAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			out.RunAsGroup = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
		if sc.SeccompProfile != nil {
			n.checkSeccomp(f+".seccompProfile", sc.SeccompProfile)
			out.Seccomp = seccompOf(sc.SeccompProfile)
		}
		out.ReadOnlyRootFilesystem, out.Privileged = sc.ReadOnlyRootFilesystem, sc.Privileged
		out.AllowPrivilegeEscalation = sc.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation
		if sc.Capabilities != nil {
			// Names in any case (drop: [all]), as the runtimes take them.
			out.CapAdd, out.CapDrop = upper(sc.Capabilities.Add), upper(sc.Capabilities.Drop)
		}
		if sc.Privileged && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			n.fail(f+".allowPrivilegeEscalation", "cannot be false for a privileged container")
		}
	}
	out.RunAsNonRoot = nonRoot != nil && *nonRoot
	// runAsNonRoot with no user is checked by the node against the
	// image's user when it starts the container.
	if out.RunAsNonRoot && out.RunAsUser != nil && *out.RunAsUser == 0 {
		n.fail(f+".runAsNonRoot", "runAsUser is 0 (root)")
	}
	return out
}

// seccompOf renders a seccompProfile as SecurityContext.Seccomp.
func seccompOf(p *seccompProfile) string {
	switch {
	case p == nil || p.Type == "RuntimeDefault":
		return ""
	case p.Type == "Localhost":
		return "Localhost/" + p.LocalhostProfile
	}
	return p.Type
}

func (n *norm) checkSeccomp(f string, p *seccompProfile) {
	if p.Type == "Localhost" && p.LocalhostProfile == "" {
		n.fail(f+".localhostProfile", "required with type Localhost")
	}
}

// namespacedSysctl tells whether a kernel parameter belongs to a pod's
// namespaces (IPC or network), so setting it changes nothing else.
func namespacedSysctl(name string) bool {
	for _, p := range []string{"kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.", "net."} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// podSecurity reads what only a pod's securityContext has: fsGroup,
// supplementalGroups and sysctls.
func (n *norm) podSecurity(f string, s k8sPodSpec, p *PodSpec) {
	sc := s.SecurityContext
	if sc == nil {
		return
	}
	p.FSGroup, p.SupplementalGroups = sc.FSGroup, sc.SupplementalGroups
	if sc.SeccompProfile != nil {
		n.checkSeccomp(f+".seccompProfile", sc.SeccompProfile)
	}
	seen := map[string]bool{}
	for i, sy := range sc.Sysctls {
		sf := fmt.Sprintf("%s.sysctls[%d].name", f, i)
		switch {
		case !namespacedSysctl(sy.Name):
			n.fail(sf, "%s is not namespaced: setting it would change the whole node (namespaced: kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*)", sy.Name)
		case s.HostNetwork && strings.HasPrefix(sy.Name, "net."):
			n.fail(sf, "%s with hostNetwork would change the node's own network", sy.Name)
		case seen[sy.Name]:
			n.fail(sf, "%s twice", sy.Name)
		}
		seen[sy.Name] = true
		p.Sysctls = append(p.Sysctls, sy)
	}
}
