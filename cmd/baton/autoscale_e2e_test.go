package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/reconciler"
)

// TestAutoscaleOnCPU: pods that use all of their CPU limit (and so twice
// their request) are scaled up by a HorizontalPodAutoscaler from the usage
// their agent reports, to maxReplicas, and the status says the autoscaler
// owns the count.
func TestAutoscaleOnCPU(t *testing.T) {
	c := newCluster(t, 8*time.Second)
	c.startAgent("n1")
	files := map[string]string{"hello.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: web
          image: %s
          args: ["-burn"]
          resources:
            requests: {cpu: 50m}
            limits: {cpu: 100m}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: hello
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: hello}
  minReplicas: 1
  maxReplicas: 3
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleUp:
      policies: [{type: Percent, value: 300, periodSeconds: 1}]
`, testImage)}
	hash := hashOf(t, files)
	c.commit("hello with an autoscaler", files)
	start := time.Now()
	c.converged(t, 3, hash, "n1")
	t.Logf("scaled from 1 to 3 replicas on CPU in %s", time.Since(start).Round(100*time.Millisecond))
	st := c.status()
	sc := st.Workloads[0].Scale
	if sc.Owner != reconciler.OwnerAutoscaler || sc.Name != "hello" || !strings.Contains(sc.Reason, "target 50%") {
		t.Fatalf("scale %+v", sc)
	}
	// The count stays at maxReplicas: the autoscaler, not spec.replicas, owns it.
	c.waitPasses(t, 3)
	c.converged(t, 3, hash, "n1")
	// baton top shows the burning replicas' usage, per workload and node.
	testenv.WaitFor(t, 20*time.Second, "baton top with the 3 replicas' usage", func() (bool, string) {
		out, err := c.baton("top")
		return err == nil && strings.Contains(out, "hello     3/3 reporting"), out
	})
	if out, err := c.baton("top", "nodes"); err != nil || !strings.Contains(out, "n1    yes") || !strings.Contains(out, "%") {
		t.Fatalf("baton top nodes: %v\n%s", err, out)
	}
}
