package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/internal/join"
)

// The first server admits servers by name: it learns its own route
// address from the join's local address and the joiner's from its remote
// one, tells each the routes known, keeps them in cluster.json, and
// refuses a name that is a member.
func TestAdmit(t *testing.T) {
	dir := t.TempDir()
	c, err := openCluster(context.Background(), dir, "s1", clusterFlags{servers: 3, listen: "0.0.0.0:8422"})
	if err != nil {
		t.Fatal(err)
	}
	local := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8421}
	info, err := c.admit("s2", local, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 50000}, 9422)
	if err != nil {
		t.Fatal(err)
	}
	if info.Servers != 3 || info.Advertise != "10.0.0.2:9422" || !slices.Equal(info.Routes, []string{"tls://10.0.0.1:8422"}) {
		t.Fatalf("s2 told %+v", info)
	}
	info, err = c.admit("s3", local, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 3), Port: 50000}, 8422)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Routes, []string{"tls://10.0.0.1:8422", "tls://10.0.0.2:9422"}) {
		t.Fatalf("s3 told routes %v", info.Routes)
	}
	for _, name := range []string{"s1", "s2"} {
		if _, err := c.admit(name, local, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 1}, 8422); !errors.Is(err, join.ErrNameTaken) {
			t.Fatalf("admit %s again: %v, want ErrNameTaken", name, err)
		}
	}
	// Read back from cluster.json, as a restart does: every other member
	// is dialed, not itself.
	again, err := openCluster(context.Background(), dir, "ignored", clusterFlags{listen: "0.0.0.0:8422"})
	if err != nil {
		t.Fatal(err)
	}
	if again.st.Name != "s1" || again.replicas() != 3 || !slices.Equal(again.routes(), []string{"tls://10.0.0.2:9422", "tls://10.0.0.3:8422"}) {
		t.Fatalf("after a restart: %+v, routes %v", again.st, again.routes())
	}
	// A server removed (its record deleted) is forgotten, whether known by
	// name or only by the route given at join.
	again.st.Routes = append(again.st.Routes, "tls://10.0.0.3:8422")
	again.noteServer(context.Background(), "s3", "")
	if slices.Contains(again.routes(), "tls://10.0.0.3:8422") {
		t.Fatal("a server forgotten is still dialed")
	}
	// A one-server cluster has no record; --servers on a data dir that
	// holds a one-server store is refused.
	if c, err := openCluster(context.Background(), t.TempDir(), "s1", clusterFlags{servers: 1, listen: ":8422"}); err != nil || c != nil {
		t.Fatalf("one server: %v, %v", c, err)
	}
	old := t.TempDir()
	if err := os.MkdirAll(filepath.Join(old, "nats"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := openCluster(context.Background(), old, "s1", clusterFlags{servers: 3, listen: ":8422"}); err == nil {
		t.Fatal("--servers 3 over a one-server store: want an error")
	}
}

// A server of its own tries again while its JetStream fails on its side
// (as it did once while starting on a loaded machine) and gives up at
// once on an error a second try does not mend.
func TestOpenAlone(t *testing.T) {
	tries := 0
	v, err := openAlone(context.Background(), "state", func(context.Context) (int, error) {
		tries++
		if tries < 3 {
			return 0, &jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream"}
		}
		return 7, nil
	})
	if err != nil || v != 7 || tries != 3 {
		t.Fatalf("after two server-side errors: %v, %d, %d tries", err, v, tries)
	}
	tries = 0
	_, err = openAlone(context.Background(), "state", func(context.Context) (int, error) {
		tries++
		return 0, &jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use"}
	})
	if err == nil || tries != 1 {
		t.Fatalf("a request error: %v after %d tries, want it at once", err, tries)
	}
	tries = 0
	_, err = openAlone(context.Background(), "state", func(context.Context) (int, error) {
		tries++
		return 0, &fatalError{errors.New("no")}
	})
	if err == nil || err.Error() != "no" || tries != 1 {
		t.Fatalf("a fatal error: %v after %d tries", err, tries)
	}
}
