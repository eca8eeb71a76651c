package desired

import (
	"errors"
	"strings"
	"testing"
)

// fullPod is a Deployment that uses every pod field the agent turns into a
// path, a mount, a capability or a host resource.
const fullPod = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      hostname: web
      terminationGracePeriodSeconds: 5
      volumes:
        - name: scratch
          emptyDir: {medium: Memory, sizeLimit: 1Mi}
        - name: data
          persistentVolumeClaim: {claimName: data-v1}
        - name: host
          hostPath: {path: /srv/shared}
        - name: conf
          configMap: {name: conf, items: [{key: a, path: dir/a.txt}]}
      containers:
        - name: app
          image: web:1
          args: ["-v"]
          env: [{name: GREETING, value: hi}]
          ports: [{name: http, containerPort: 8080, hostPort: 8080}]
          securityContext: {runAsUser: 1000, runAsNonRoot: true, capabilities: {add: [NET_ADMIN], drop: [ALL]}}
          readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 2}
          livenessProbe: {tcpSocket: {port: 8080}}
          volumeMounts:
            - {name: scratch, mountPath: /tmp}
            - {name: data, mountPath: /data, subPath: web}
            - {name: host, mountPath: /shared, readOnly: true}
            - {name: conf, mountPath: /etc/conf}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: conf
data:
  a: x
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data-v1
spec:
  resources: {requests: {storage: 1Gi}}
`

func loadPod(t *testing.T, manifest string) (PodSpec, error) {
	t.Helper()
	st, err := Load(map[string][]byte{"web.yaml": []byte(manifest)})
	if err != nil {
		return PodSpec{}, err
	}
	return st.ResolvePod(st.Workloads[0].Pod), nil
}

// TestValidatePodAgreesWithLoader: every mutation that the loader refuses
// in a manifest, ValidatePod refuses in the normalized pod (the agent's
// check of a start command), and the loader's pods pass it.
func TestValidatePodAgreesWithLoader(t *testing.T) {
	good, err := loadPod(t, fullPod)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidatePod(good); err != nil {
		t.Fatalf("a pod the loader accepts is refused: %v", err)
	}
	for _, tc := range []struct {
		name     string
		old, new string           // the same mutation in the manifest...
		mutate   func(p *PodSpec) // ...and in the normalized pod
		want     string
	}{
		{"probe period 0", "periodSeconds: 2", "periodSeconds: 0",
			func(p *PodSpec) { p.Containers[0].ReadinessProbe.PeriodSeconds = 0 }, "periodSeconds"},
		{"probe period too long", "periodSeconds: 2", "periodSeconds: 10000000000",
			func(p *PodSpec) { p.Containers[0].ReadinessProbe.PeriodSeconds = 1e10 }, "periodSeconds"},
		{"volume name with ../", "name: scratch\n          emptyDir", "name: ../../etc\n          emptyDir",
			func(p *PodSpec) { p.Volumes[0].Name = "../../etc"; p.Containers[0].VolumeMounts[0].Name = "../../etc" }, "volumes[0].name"},
		{"claim name with ../", "claimName: data-v1", "claimName: ../../etc",
			func(p *PodSpec) { p.Volumes[1].Claim.Claim = "../../etc" }, "claimName"},
		{"relative host path", "path: /srv/shared", "path: srv/shared",
			func(p *PodSpec) { p.Volumes[2].HostPath = "srv/shared" }, "hostPath"},
		{"subPath leaving the volume", "subPath: web", "subPath: ../../..",
			func(p *PodSpec) { p.Containers[0].VolumeMounts[1].SubPath = "../../.." }, "subPath"},
		{"absolute subPath", "subPath: web", "subPath: /etc",
			func(p *PodSpec) { p.Containers[0].VolumeMounts[1].SubPath = "/etc" }, "subPath"},
		{"item path leaving the volume", "path: dir/a.txt", "path: ../a.txt",
			func(p *PodSpec) { p.Volumes[3].ConfigMap.Items["a"] = "../a.txt" }, "items"},
		{"relative mount path", "mountPath: /tmp", "mountPath: tmp",
			func(p *PodSpec) { p.Containers[0].VolumeMounts[0].MountPath = "tmp" }, "mountPath"},
		{"mount of no volume", "{name: scratch, mountPath: /tmp}", "{name: nothere, mountPath: /tmp}",
			func(p *PodSpec) { p.Containers[0].VolumeMounts[0].Name = "nothere" }, "no volume"},
		{"capability with a dash", "add: [NET_ADMIN]", "add: [NET-ADMIN]",
			func(p *PodSpec) { p.Containers[0].SecurityContext.CapAdd = []string{"NET-ADMIN"} }, "capabilities"},
		{"negative user", "runAsUser: 1000", "runAsUser: -1",
			func(p *PodSpec) { u := int64(-1); p.Containers[0].SecurityContext.RunAsUser = &u }, "runAsUser"},
		{"host port 0", "containerPort: 8080, hostPort", "containerPort: 0, hostPort",
			func(p *PodSpec) { p.Containers[0].Ports[0].ContainerPort = 0 }, "containerPort"},
		{"host port out of range", "hostPort: 8080", "hostPort: 70000",
			func(p *PodSpec) { p.Containers[0].Ports[0].HostPort = 70000 }, "hostPort"},
		{"container name", "- name: app", "- name: App_1",
			func(p *PodSpec) { p.Containers[0].Name = "App_1" }, "containers[0].name"},
		{"image with a space", "image: web:1", "image: web 1",
			func(p *PodSpec) { p.Containers[0].Image = "web 1" }, "image"},
		{"env name with =", "name: GREETING", "name: A=B",
			func(p *PodSpec) { p.Containers[0].Env[0].Name = "A=B" }, "env[0].name"},
		{"env value with NUL", "value: hi", `value: "h\0i"`,
			func(p *PodSpec) { p.Containers[0].Env[0].Value = "h\x00i" }, "env[0].value"},
		{"argument with NUL", `args: ["-v"]`, `args: ["-\0v"]`,
			func(p *PodSpec) { p.Containers[0].Args = []string{"-\x00v"} }, "command"},
		{"probe of no named port", "port: http}", "port: nope}",
			func(p *PodSpec) { p.Containers[0].ReadinessProbe.HTTPGet.Port = "nope" }, "port"},
		{"probe path with a newline", "path: /healthz", `path: "/healthz\r\nX: y"`,
			func(p *PodSpec) { p.Containers[0].ReadinessProbe.HTTPGet.Path = "/healthz\r\nX: y" }, "path"},
		{"grace period", "terminationGracePeriodSeconds: 5", "terminationGracePeriodSeconds: -1",
			func(p *PodSpec) { p.TerminationGracePeriodSeconds = -1 }, "terminationGracePeriodSeconds"},
		{"hostname", "hostname: web", "hostname: Web.Example",
			func(p *PodSpec) { p.Hostname = "Web.Example" }, "hostname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(fullPod, tc.old) {
				t.Fatalf("the manifest has no %q", tc.old)
			}
			if _, err := loadPod(t, strings.Replace(fullPod, tc.old, tc.new, 1)); err == nil {
				t.Fatalf("the loader accepts %q", tc.new)
			}
			p, _ := loadPod(t, fullPod)
			tc.mutate(&p)
			err := ValidatePod(p)
			if err == nil || !errors.Is(err, ErrInvalidPod) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidatePod = %v, want an ErrInvalidPod naming %q", err, tc.want)
			}
		})
	}
}

// TestValidatePodBounds: what no manifest can hold is refused too.
func TestValidatePodBounds(t *testing.T) {
	for name, p := range map[string]PodSpec{
		"no containers":       {},
		"duplicate container": {Containers: []Container{{Name: "a", Image: "x"}, {Name: "a", Image: "x"}}},
		"two volume sources": {Containers: []Container{{Name: "a", Image: "x"}},
			Volumes: []Volume{{Name: "v", HostPath: "/x", EmptyDir: &EmptyDir{}}}},
		"projected file leaving the volume": {Containers: []Container{{Name: "a", Image: "x"}},
			Volumes: []Volume{{Name: "v", Secret: &FilesFrom{Name: "s", Files: map[string][]byte{"../../etc/passwd": nil}}}}},
		"huge projected files": {Containers: []Container{{Name: "a", Image: "x"}},
			Volumes: []Volume{{Name: "v", ConfigMap: &FilesFrom{Name: "s", Files: map[string][]byte{"a": make([]byte, MaxProjectedBytes+1)}}}}},
		"probe without a handler": {Containers: []Container{{Name: "a", Image: "x",
			LivenessProbe: &Probe{PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}}}},
		"restart policy": {Containers: []Container{{Name: "a", Image: "x"}}, RestartPolicy: "Sometimes"},
	} {
		if err := ValidatePod(p); !errors.Is(err, ErrInvalidPod) {
			t.Errorf("%s: ValidatePod = %v", name, err)
		}
	}
}
