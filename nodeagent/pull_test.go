package nodeagent_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/ociarchive"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent"
	"github.com/batonhq/baton/nodeagent/protocol"
)

func TestPullFromRegistry(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()

	// A real OCI registry on loopback, counting manifest requests.
	var manifests atomic.Int32
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			manifests.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := ociarchive.Build(ociarchive.Image{Ref: "x", Entrypoint: []string{"/hello"},
		Files: []ociarchive.File{{Path: "/hello", Mode: 0o755, Data: testenv.HelloBinary(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/team/hello:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	image := host + "/team/hello:v1"
	start := func(id, policy string) error {
		spec := podSpec(id, desired.Container{Name: "a", Image: image, ImagePullPolicy: policy})
		return rt.Start(ctx, spec)
	}

	// IfNotPresent: pulled the first time only.
	before := manifests.Load()
	if err := start("hello-pull-1", "IfNotPresent"); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, "hello-pull-1", protocol.StateRunning)
	if manifests.Load() == before {
		t.Fatal("the image was not pulled from the registry")
	}
	before = manifests.Load()
	if err := start("hello-pull-2", "IfNotPresent"); err != nil {
		t.Fatal(err)
	}
	if manifests.Load() != before {
		t.Fatal("IfNotPresent pulled an image that was present")
	}
	// Always: pulled again.
	if err := start("hello-pull-3", "Always"); err != nil {
		t.Fatal(err)
	}
	if manifests.Load() == before {
		t.Fatal("Always did not pull")
	}
	// Never: an absent image is an error, and the registry is not asked.
	before = manifests.Load()
	err = rt.Start(ctx, podSpec("hello-pull-4", desired.Container{Name: "a", Image: host + "/team/other:v1", ImagePullPolicy: "Never"}))
	if !errors.Is(err, nodeagent.ErrImageNotFound) || !strings.Contains(err.Error(), "imagePullPolicy is Never") || manifests.Load() != before {
		t.Fatalf("Never with an absent image: %v", err)
	}
	// Always with the registry gone: the present image is used.
	srv.Close()
	if err := start("hello-pull-5", "Always"); err != nil {
		t.Fatalf("Always without a registry: %v", err)
	}
	waitState(t, rt, "hello-pull-5", protocol.StateRunning)
}

// TestHostPortsNotLockedAcrossPull: a start whose image is still being
// pulled holds its host ports (a second start asking for them is refused at
// once) but no lock: a start with other ports goes ahead meanwhile.
func TestHostPortsNotLockedAcrossPull(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	asked, release := make(chan struct{}, 16), make(chan struct{})
	var armed atomic.Bool // once the image is pushed, pulls stall until release
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if armed.Load() && strings.Contains(r.URL.Path, "/manifests/") {
			asked <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before srv.Close: it waits for the blocked requests
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := ociarchive.Build(ociarchive.Image{Ref: "x", Entrypoint: []string{"/hello"},
		Files: []ociarchive.File{{Path: "/hello", Mode: 0o755, Data: testenv.HelloBinary(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/team/slow:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	withPort := func(id, image string, port int) protocol.ReplicaSpec {
		return podSpec(id, desired.Container{Name: "a", Image: image, Args: []string{"-listen", ":8080"},
			Ports: []desired.Port{{ContainerPort: 8080, HostPort: port, Protocol: "TCP"}}})
	}
	slow := make(chan error, 1)
	go func() { slow <- rt.Start(ctx, withPort("hello-slow", host+"/team/slow:v1", 19080)) }()
	select {
	case <-asked: // the pull is under way, and stays so until release
	case <-time.After(20 * time.Second):
		t.Fatal("the registry was never asked for the image")
	}
	if err := rt.Start(ctx, withPort("hello-clash", testenv.HelloImage, 19080)); !errors.Is(err, nodeagent.ErrHostPortInUse) || !strings.Contains(err.Error(), "hello-slow") {
		t.Fatalf("a port reserved by a start under way: %v, want ErrHostPortInUse naming hello-slow", err)
	}
	other := make(chan error, 1)
	go func() { other <- rt.Start(ctx, withPort("hello-other", testenv.HelloImage, 19081)) }()
	select {
	case err := <-other:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a start with other ports waited for another start's pull")
	}
	unblock()
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, "hello-slow", protocol.StateRunning)
	waitState(t, rt, "hello-other", protocol.StateRunning)
}

// A registry that asks for credentials: the pod's image pull secrets
// (RegistryAuth, resolved from a kubernetes.io/dockerconfigjson Secret)
// answer its Basic challenge; without them, or with wrong ones, the image
// cannot be had and the start says why.
func TestPullWithCredentials(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "robot" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := ociarchive.Build(ociarchive.Image{Ref: "x", Entrypoint: []string{"/hello"},
		Files: []ociarchive.File{{Path: "/hello", Mode: 0o755, Data: testenv.HelloBinary(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/private/hello:v1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "robot", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	start := func(id string, auth []desired.RegistryAuth) error {
		spec := podSpec(id, desired.Container{Name: "a", Image: host + "/private/hello:v1", ImagePullPolicy: "Always"})
		spec.Pod.RegistryAuth = auth
		return rt.Start(ctx, spec)
	}
	if err := start("hello-auth-1", nil); !errors.Is(err, nodeagent.ErrImageNotFound) || !strings.Contains(err.Error(), "authorization failed") {
		t.Fatalf("without credentials: %v", err)
	}
	if err := start("hello-auth-2", []desired.RegistryAuth{{Host: host, Username: "robot", Password: "wrong"}}); !errors.Is(err, nodeagent.ErrImageNotFound) {
		t.Fatalf("with wrong credentials: %v", err)
	}
	if err := start("hello-auth-3", []desired.RegistryAuth{{Host: "elsewhere.example", Username: "x", Password: "y"}, {Host: host, Username: "robot", Password: "s3cret"}}); err != nil {
		t.Fatalf("with the pod's credentials: %v", err)
	}
	waitState(t, rt, "hello-auth-3", protocol.StateRunning)
}
