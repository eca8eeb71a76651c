package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/reconciler"
)

// statefulSetFiles is a StatefulSet db of n replicas answering message,
// each ready 2 s after it starts, with a claim template data, and its
// headless Service.
func statefulSetFiles(n int, message string) map[string]string {
	return map[string]string{"db.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: %d
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: db
          image: %s
          args: ["-message", %q]
          volumeMounts: [{name: data, mountPath: /data}]
          readinessProbe: {httpGet: {path: /ready, port: 8080}, initialDelaySeconds: 2, periodSeconds: 1}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 8080}]}
`, n, testImage, message)}
}

// TestStatefulSetOrdinals: a StatefulSet on real containerd. Ordinals
// start in order, each once the one before is ready; each replica's host
// name is db-<ordinal> and it mounts its own claim, data-db-<ordinal>; a
// new template replaces the highest ordinal first, and the replacement
// finds the data its ordinal left; a scale-down stops the highest ordinal
// and keeps its claim.
func TestStatefulSetOrdinals(t *testing.T) {
	c := newCluster(t, 5*time.Second)
	c.startAgent("n1")
	c.commit("db", statefulSetFiles(2, "v1"))
	byOrdinal := func(message string) map[string]reconciler.ReplicaStatus {
		out := map[string]reconciler.ReplicaStatus{}
		nc := c.connect("status")
		defer nc.Close()
		st, err := fetchStatus(c.ctx, nc) // the server may not answer yet
		if err != nil {
			return out
		}
		for _, w := range st.Workloads {
			for _, r := range w.Replicas {
				if w.Name != "db" || !r.Ready || r.PodIP == "" {
					continue
				}
				// A replica being replaced may stop answering.
				if body, err := testenv.TryGetIn(c.hostNS["n1"], r.PodIP+":8080", "/"); err == nil && strings.Contains(body, message+" (pod ") {
					out[r.ID[:4]] = r
				}
			}
		}
		return out
	}
	var v1 map[string]reconciler.ReplicaStatus
	testenv.WaitFor(t, 60*time.Second, "db-0 and db-1 ready", func() (bool, string) {
		v1 = byOrdinal("v1")
		return len(v1) == 2 && v1["db-0"].ID != "" && v1["db-1"].ID != "", fmt.Sprint(v1)
	})
	if gap := v1["db-1"].StartedAt.Sub(v1["db-0"].StartedAt); gap < 2*time.Second {
		t.Errorf("db-1 started %s after db-0, before db-0 was ready (2 s)", gap)
	}
	claims := filepath.Join(c.dir, "agent-n1", "claims")
	for _, k := range []string{"0", "1"} {
		r := v1["db-"+k]
		if body := testenv.GetIn(t, c.hostNS["n1"], r.PodIP+":8080"); !strings.Contains(body, "(pod db-"+k+",") {
			t.Errorf("ordinal %s answers %q, want host name db-%s", k, body, k)
		}
		// The ordinal's data, written beside the pod (as it would write it).
		if err := os.WriteFile(filepath.Join(claims, "data-db-"+k, "mark"), []byte("ordinal "+k), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	c.commit("db v2", statefulSetFiles(2, "v2"))
	var v2 map[string]reconciler.ReplicaStatus
	testenv.WaitFor(t, 90*time.Second, "db-0 and db-1 of the new template ready", func() (bool, string) {
		v2 = byOrdinal("v2")
		return len(v2) == 2, fmt.Sprint(v2)
	})
	if !v2["db-1"].StartedAt.Before(v2["db-0"].StartedAt) {
		t.Errorf("db-0 replaced (%s) before db-1 (%s): want the highest ordinal first", v2["db-0"].StartedAt, v2["db-1"].StartedAt)
	}
	for _, k := range []string{"0", "1"} {
		id := v2["db-"+k].ID
		var pid uint32
		for _, tk := range c.tasks("n1") {
			if tk.replica == id {
				pid = tk.pid
			}
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/data/mark", pid))
		if err != nil || string(b) != "ordinal "+k {
			t.Errorf("the new db-%s (%s) reads %q from its claim (%v), want its ordinal's", k, id, b, err)
		}
	}

	c.commit("db scaled down", statefulSetFiles(1, "v2"))
	testenv.WaitFor(t, 30*time.Second, "db-1 gone, db-0 kept", func() (bool, string) {
		st := c.status()
		var ids []string
		for _, w := range st.Workloads {
			for _, r := range w.Replicas {
				if w.Name == "db" {
					ids = append(ids, r.ID)
				}
			}
		}
		return len(ids) == 1 && ids[0] == v2["db-0"].ID, fmt.Sprint(ids)
	})
	if _, err := os.Stat(filepath.Join(claims, "data-db-1", "mark")); err != nil {
		t.Errorf("db-1's claim after the scale-down: %v, want it kept", err)
	}
}
