package desired

import (
	"fmt"
	"strings"
	"testing"
)

func TestCheckPodSecurity(t *testing.T) {
	root := int64(0)
	hardened := &SecurityContext{RunAsNonRoot: true, CapDrop: []string{"ALL"}}
	pod := func(sc *SecurityContext, mod ...func(*PodSpec)) PodSpec {
		p := PodSpec{Containers: []Container{{Name: "app", Image: "app:1", SecurityContext: sc}}}
		for _, m := range mod {
			m(&p)
		}
		return p
	}
	hostNet := func(p *PodSpec) { p.HostNetwork = true }
	hostPath := func(p *PodSpec) { p.Volumes = []Volume{{Name: "data", HostPath: "/srv/data"}} }
	for _, c := range []struct {
		name  string
		pod   PodSpec
		level PodSecurity
		want  []string // "field: part of the message"
	}{
		{"plain pod at baseline", pod(nil), PodSecurityBaseline, nil},
		{"privileged at baseline", pod(&SecurityContext{Privileged: true}), PodSecurityBaseline,
			[]string{"containers[app].securityContext.privileged: privileged containers are not allowed at baseline"}},
		{"privileged at privileged", pod(&SecurityContext{Privileged: true, CapAdd: []string{"SYS_ADMIN"}}, hostNet), PodSecurityPrivileged, nil},
		{"hostNetwork and SYS_ADMIN at baseline (the issue's example)", pod(&SecurityContext{CapAdd: []string{"SYS_ADMIN", "NET_BIND_SERVICE"}}, hostNet), PodSecurityBaseline,
			[]string{"hostNetwork: the host's network is not allowed at baseline",
				"containers[app].securityContext.capabilities.add: SYS_ADMIN not allowed at baseline"}},
		{"NET_ADMIN with a CAP_ prefix at baseline", pod(&SecurityContext{CapAdd: []string{"CAP_NET_ADMIN"}}), PodSecurityBaseline,
			[]string{"containers[app].securityContext.capabilities.add: CAP_NET_ADMIN not allowed at baseline"}},
		{"default capabilities at baseline", pod(&SecurityContext{CapAdd: []string{"CHOWN", "CAP_KILL"}}), PodSecurityBaseline, nil},
		{"hostPath at baseline: the node's allow-list decides", pod(nil, hostPath), PodSecurityBaseline, nil},
		{"plain pod at restricted", pod(nil), PodSecurityRestricted,
			[]string{"containers[app].securityContext.runAsNonRoot: must be true", "containers[app].securityContext.capabilities.drop: must include ALL"}},
		{"hardened pod at restricted", pod(hardened), PodSecurityRestricted, nil},
		{"hardened, NET_BIND_SERVICE back, at restricted", pod(&SecurityContext{RunAsNonRoot: true, CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE"}}), PodSecurityRestricted, nil},
		{"root, escalation, CHOWN, hostPath at restricted", pod(&SecurityContext{RunAsNonRoot: true, RunAsUser: &root, AllowPrivilegeEscalation: true,
			CapDrop: []string{"ALL"}, CapAdd: []string{"CHOWN"}}, hostPath), PodSecurityRestricted,
			[]string{"containers[app].securityContext.capabilities.add: CHOWN not allowed at restricted (allowed: NET_BIND_SERVICE)",
				"containers[app].securityContext.runAsUser: 0 (root)", "containers[app].securityContext.allowPrivilegeEscalation: must be false",
				"volumes[data].hostPath: hostPath volumes are not allowed at restricted"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := CheckPodSecurity(c.level, c.pod)
			if len(got) != len(c.want) {
				t.Fatalf("%d violations %v, want %d %v", len(got), got, len(c.want), c.want)
			}
			for i, v := range got {
				if !strings.HasPrefix(v.String(), c.want[i]) {
					t.Fatalf("violation %d: %q, want it to start with %q", i, v, c.want[i])
				}
			}
		})
	}
}

func ExampleCheckPodSecurity() {
	pod := PodSpec{HostNetwork: true, Containers: []Container{{Name: "probe", Image: "probe:1",
		SecurityContext: &SecurityContext{CapAdd: []string{"SYS_ADMIN"}}}}}
	for _, v := range CheckPodSecurity(PodSecurityBaseline, pod) {
		fmt.Println(v.Field)
	}
	// Output:
	// hostNetwork
	// containers[probe].securityContext.capabilities.add
}
