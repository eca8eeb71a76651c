package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/ociarchive"
	"github.com/batonhq/baton/internal/testenv"
)

// TestImagePushEndToEnd: an image no node has is pushed to the cluster's
// image store and runs on a node that imports it on demand.
func TestImagePushEndToEnd(t *testing.T) {
	c := newCluster(t, 10*time.Second)
	c.startAgent("n1")
	archive := filepath.Join(t.TempDir(), "pushed.tar")
	if err := ociarchive.WriteFile(archive, ociarchive.Image{Ref: "baton.local/pushed:v1", Entrypoint: []string{"/hello"},
		Files: []ociarchive.File{{Path: "/hello", Mode: 0o755, Data: testenv.HelloBinary(t)}}}); err != nil {
		t.Fatal(err)
	}
	// Committed before the image exists: the replicas wait on the node.
	files := deployment(2, "pushed")
	files["hello.yaml"] = strings.Replace(files["hello.yaml"], testImage, "baton.local/pushed:v1", 1)
	c.commit("pushed image", files)
	nc := c.connect("status")
	testenv.WaitFor(t, 30*time.Second, "replicas waiting for the image", func() (bool, string) {
		st, err := fetchStatus(c.ctx, nc)
		if err != nil || len(st.Workloads) == 0 {
			return false, fmt.Sprint(err)
		}
		return st.Workloads[0].States["waiting"] == 2, fmt.Sprint(st.Workloads[0].States)
	})
	// Pushed: the servers announce it, the node fetches it (direct gets,
	// no consumer) and starts the replicas at once, not at its next try.
	pushed := time.Now()
	out, err := c.baton("image", "push", archive)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pushed baton.local/pushed:v1") {
		t.Fatalf("push said %q", out)
	}
	testenv.WaitFor(t, 60*time.Second, "2 replicas of the pushed image", func() (bool, string) {
		n := c.running("n1", "")
		return n == 2, ""
	})
	if took := time.Since(pushed); took > 8*time.Second {
		t.Fatalf("the replicas started %s after the push: at their next try, not when the push was announced", took)
	}
}
