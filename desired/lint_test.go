package desired

import (
	"slices"
	"testing"
)

func TestLint(t *testing.T) {
	const files = `apiVersion: apps/v1
kind: Deployment
metadata: {name: pinned}
spec:
  template:
    spec:
      containers:
      - name: app
        image: registry.local:5000/web:1.4
        resources: {requests: {cpu: 100m}}
        readinessProbe: {tcpSocket: {port: 80}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: loose}
spec:
  template:
    spec:
      containers:
      - {name: a, image: "registry.local:5000/web"}
      - {name: b, image: "redis:latest", resources: {requests: {memory: 64Mi}}}
      - {name: c, image: "redis@sha256:0000000000000000000000000000000000000000000000000000000000000000", resources: {requests: {memory: 64Mi}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: a, image: "job:1", resources: {requests: {cpu: 10m}}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: debug}
spec:
  template:
    spec:
      restartPolicy: Never
      hostNetwork: true
      containers:
      - name: a
        image: "debug:1"
        resources: {requests: {cpu: 10m}}
        securityContext: {capabilities: {add: [SYS_ADMIN, NET_BIND_SERVICE]}}
`
	st, err := Load(map[string][]byte{"app.yaml": []byte(files)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`app.yaml:13: Deployment loose: container a: image "registry.local:5000/web" is not pinned to a version (no tag or latest)`,
		`app.yaml:13: Deployment loose: container a: no resource requests: placement counts it as using nothing`,
		`app.yaml:13: Deployment loose: container b: image "redis:latest" is not pinned to a version (no tag or latest)`,
		`app.yaml:13: Deployment loose: no readiness probe: a rollout counts a replica available as soon as it runs`,
		`app.yaml:33: Job debug: hostNetwork: the host's network is not allowed at baseline (nodes enforce baseline unless started with --pod-security privileged)`,
		`app.yaml:33: Job debug: containers[a].securityContext.capabilities.add: SYS_ADMIN not allowed at baseline (allowed: AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT) (nodes enforce baseline unless started with --pod-security privileged)`,
	}
	if got := Lint(st); !slices.Equal(got, want) {
		t.Fatalf("Lint:\n%q\nwant\n%q", got, want)
	}
}
