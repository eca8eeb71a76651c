package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testenv"
)

// TestPodSecurityBaseline: a commit asking for the host's network and
// SYS_ADMIN (which ran with no opt-in before) is refused by a node at the
// default level, baseline: the replica is pending with the fields named,
// and nothing of it runs there. A node started with --pod-security
// privileged runs it.
func TestPodSecurityBaseline(t *testing.T) {
	c := newCluster(t, 8*time.Second)
	c.startAgent("n1")
	files := map[string]string{"hello.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 1
  template:
    spec:
      hostNetwork: true
      containers:
        - name: web
          image: %s
          imagePullPolicy: Never
          args: ["-listen", "127.0.0.1:18097"]
          securityContext: {capabilities: {add: [SYS_ADMIN]}}
`, testImage)}
	hash := hashOf(t, files)
	c.commit("hello on the host's network, with SYS_ADMIN", files)
	testenv.WaitFor(t, 30*time.Second, "the replica pending, refused by n1's policy", func() (bool, string) {
		nc := c.connect("status")
		defer nc.Close()
		st, err := fetchStatus(c.ctx, nc)
		if err != nil {
			return false, err.Error() // the server is not answering yet
		}
		for _, w := range st.Workloads {
			if w.Name == "hello" && w.Pending == 1 && strings.Contains(w.PendingReason, "not_allowed") &&
				strings.Contains(w.PendingReason, "hostNetwork") && strings.Contains(w.PendingReason, "capabilities.add: SYS_ADMIN") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", st.Workloads)
	})
	if n := len(c.tasks("n1")); n != 0 {
		t.Fatalf("%d tasks on the baseline node", n)
	}
	out, errOut, err := run(t, "validate", c.dir+"/repo")
	if err != nil || !strings.Contains(out+errOut, "hostNetwork: the host's network is not allowed at baseline") {
		t.Fatalf("baton validate does not warn (%v):\n%s%s", err, out, errOut)
	}

	c.startAgent("n2", func(o *agentOptions) { o.podSecurity = "privileged" })
	c.converged(t, 1, hash, "n1", "n2")
	if c.running("n2", hash) != 1 {
		t.Fatal("the replica does not run on the privileged node")
	}
}
