package nodeagent_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/ociarchive"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

func TestImageStore(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := nodeagent.OpenImageStore(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "shared.tar")
	if err := ociarchive.WriteFile(archive, ociarchive.Image{Ref: "baton.local/shared:v1", Entrypoint: []string{"/hello"},
		Files: []ociarchive.File{{Path: "/hello", Mode: 0o755, Data: testenv.HelloBinary(t)}}}); err != nil {
		t.Fatal(err)
	}
	refs, err := store.Push(ctx, archive)
	if err != nil || len(refs) != 1 || refs[0] != "baton.local/shared:v1" {
		t.Fatalf("push: %v %v", refs, err)
	}
	// Without the store the image cannot be had (pulling from baton.local is
	// not tried: Never).
	spec := podSpec("hello-store-1", desired.Container{Name: "a", Image: "baton.local/shared:v1", ImagePullPolicy: "Never"})
	if err := rt.Start(ctx, spec); err == nil {
		t.Fatal("started without the image")
	}
	rt.SetImageStore(store)
	if err := rt.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, spec.ID, protocol.StateRunning)
}
