package main

import (
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
	out, err := c.baton("image", "push", archive)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pushed baton.local/pushed:v1") {
		t.Fatalf("push said %q", out)
	}
	files := deployment(2, "pushed")
	files["hello.yaml"] = strings.Replace(files["hello.yaml"], testImage, "baton.local/pushed:v1", 1)
	c.commit("pushed image", files)
	testenv.WaitFor(t, 60*time.Second, "2 replicas of the pushed image", func() (bool, string) {
		n := c.running("n1", "")
		return n == 2, ""
	})
}
