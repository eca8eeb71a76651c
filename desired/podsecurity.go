package desired

import (
	"fmt"
	"slices"
	"strings"
)

// PodSecurity is a level of Kubernetes' Pod Security Standards: what a pod
// may ask of the node it runs on. A node enforces one level (the agent's
// --pod-security, baseline by default) and refuses, as not_allowed, a pod
// that asks for more.
type PodSecurity string

// Levels, from the most open.
const (
	// PodSecurityPrivileged allows everything the schema allows.
	PodSecurityPrivileged PodSecurity = "privileged"
	// PodSecurityBaseline refuses the known privilege escalations:
	// privileged containers, the host's network, capabilities beyond the
	// container runtime's default set. hostPath volumes are left to the
	// node's --host-path-allow list.
	PodSecurityBaseline PodSecurity = "baseline"
	// PodSecurityRestricted is baseline plus hardening: containers run as
	// non-root, drop ALL capabilities (adding back NET_BIND_SERVICE at
	// most), no privilege escalation, volumes of the safe kinds only.
	PodSecurityRestricted PodSecurity = "restricted"
)

// ParsePodSecurity reads a level name.
func ParsePodSecurity(s string) (PodSecurity, error) {
	switch l := PodSecurity(s); l {
	case PodSecurityPrivileged, PodSecurityBaseline, PodSecurityRestricted:
		return l, nil
	}
	return "", fmt.Errorf("pod security level %q: want privileged, baseline or restricted", s)
}

// baselineCapabilities are the capabilities baseline lets a container add:
// the container runtime's default set (Kubernetes' list).
var baselineCapabilities = []string{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}

// safeSysctls are the sysctls the baseline level allows (Kubernetes'
// safe set: namespaced, and isolated from other pods).
var safeSysctls = []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}

// Violation is one field of a pod that a level refuses.
type Violation struct {
	// Field is the path in the pod spec, e.g.
	// containers[app].securityContext.capabilities.add.
	Field string
	Msg   string
}

func (v Violation) String() string { return v.Field + ": " + v.Msg }

// CheckPodSecurity returns what of pod the level refuses (nothing for
// privileged).
func CheckPodSecurity(level PodSecurity, pod PodSpec) []Violation {
	if level == PodSecurityPrivileged || level == "" {
		return nil
	}
	var out []Violation
	add := func(field, format string, args ...any) {
		out = append(out, Violation{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if pod.HostNetwork {
		add("hostNetwork", "the host's network is not allowed at %s", level)
	}
	if pod.HostPID {
		add("hostPID", "the host's processes are not allowed at %s", level)
	}
	if pod.HostIPC {
		add("hostIPC", "the host's IPC is not allowed at %s", level)
	}
	for _, sy := range pod.Sysctls {
		if !slices.Contains(safeSysctls, sy.Name) {
			add("securityContext.sysctls", "%s is not allowed at %s (allowed: %s)", sy.Name, level, strings.Join(safeSysctls, ", "))
		}
	}
	for _, c := range pod.AllContainers() {
		at := "containers[" + c.Name + "].securityContext"
		sc := c.SecurityContext
		if sc == nil {
			sc = &SecurityContext{}
		}
		if sc.Privileged {
			add(at+".privileged", "privileged containers are not allowed at %s", level)
		}
		if sc.Seccomp == "Unconfined" {
			add(at+".seccompProfile", "Unconfined is not allowed at %s", level)
		}
		allowed := baselineCapabilities
		if level == PodSecurityRestricted {
			allowed = []string{"NET_BIND_SERVICE"}
		}
		var extra []string
		for _, capa := range sc.CapAdd {
			if !slices.Contains(allowed, strings.TrimPrefix(capa, "CAP_")) {
				extra = append(extra, capa)
			}
		}
		if len(extra) > 0 {
			add(at+".capabilities.add", "%s not allowed at %s (allowed: %s)", strings.Join(extra, ", "), level, strings.Join(allowed, ", "))
		}
		if level != PodSecurityRestricted {
			continue
		}
		if !sc.RunAsNonRoot {
			add(at+".runAsNonRoot", "must be true at restricted")
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			add(at+".runAsUser", "0 (root) is not allowed at restricted")
		}
		if sc.AllowPrivilegeEscalation {
			add(at+".allowPrivilegeEscalation", "must be false at restricted")
		}
		if !slices.Contains(sc.CapDrop, "ALL") {
			add(at+".capabilities.drop", "must include ALL at restricted")
		}
	}
	if level == PodSecurityRestricted {
		for _, v := range pod.Volumes {
			if v.HostPath != "" {
				add("volumes["+v.Name+"].hostPath", "hostPath volumes are not allowed at restricted")
			}
		}
	}
	return out
}
