package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/batonhq/baton/internal/identity"
	"github.com/batonhq/baton/internal/join"
	"github.com/batonhq/baton/internal/testenv"
)

// freePort is a loopback port the kernel had free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// TestBackupAndRestore: baton backup of a running cluster, baton restore
// into a fresh data dir, and baton server there: the history, the pin and
// the joined credentials are back, a credential of the old cluster works
// against the new one, and a second restore over that state is refused.
func TestBackupAndRestore(t *testing.T) {
	c := newCluster(t, 10*time.Second)
	c.startAgent("n1")
	c.waitReady(t, 1)
	rev := c.commit("hello", deployment(1, "backup"))
	c.waitPasses(t, 2)
	if out, err := c.baton("pin", rev, "--reason", "before the backup"); err != nil {
		t.Fatalf("pin: %v\n%s", err, out)
	}
	tok, err := c.baton("token", "create", "--role", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	bak := filepath.Join(t.TempDir(), "state.bak")
	_, out, err := run(t, "backup", "--data-dir", c.dir, "--nats", c.ns.ClientURL(), "-o", bak)
	if err != nil || !strings.Contains(out, "backed up") {
		t.Fatalf("backup: %v\n%s", err, out)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	if out, _, err := run(t, "restore", bak, "--data-dir", dir); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if _, _, err := run(t, "restore", bak, "--data-dir", dir); err == nil {
		t.Fatal("a restore into a data dir that holds an identity: want an error")
	}
	natsURL := "tls://127.0.0.1:" + freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, errOut, err := runCtx(ctx, "server", "--data-dir", dir, "--repo", filepath.Join(c.dir, "repo"), "--branch", "main",
			"--nats-listen", strings.TrimPrefix(natsURL, "tls://"), "--join-listen", "", "--api-listen", "", "--id", "restored")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, errOut)
		}
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("restored server: %v", err)
		}
	})
	// The restored server's root (the identity is the same: its CA too).
	old := func(args ...string) (string, error) {
		out, errOut, err := run(t, append(args, "--nats", natsURL, "--creds", adminCredsPath(dir))...)
		return out + errOut, err
	}
	testenv.WaitFor(t, 30*time.Second, "the restored server's history", func() (bool, string) {
		out, err := old("history")
		return err == nil && strings.Contains(out, rev[:12]), out
	})
	testenv.WaitFor(t, 30*time.Second, "the pin restored", func() (bool, string) {
		out, err := old("status")
		return err == nil && strings.Contains(out, "PINNED to "+rev[:12]) && strings.Contains(out, "before the backup"), out
	})
	// The old cluster's root credential came back with the state and was
	// revoked when the restored server's root took its name: the name is
	// listed once, with the new key, and the old key is refused.
	oldRoot, err := identity.ReadCreds(adminCredsPath(c.dir))
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := identity.ReadCreds(adminCredsPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := old("user", "ls"); err != nil || !strings.Contains(out, newRoot.PublicKey) || strings.Contains(out, oldRoot.PublicKey) {
		t.Fatalf("credentials after the restore: %v\n%s (want %s and not %s)", err, out, newRoot.PublicKey, oldRoot.PublicKey)
	}
	if out, errOut, err := run(t, "status", "--nats", natsURL, "--creds", adminCredsPath(c.dir)); err == nil {
		t.Fatalf("the replaced root credential still works:\n%s%s", out, errOut)
	}
	// So did the token made before the backup: it is known (and unused).
	tk, err := join.ParseToken(strings.SplitN(tok, "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.Open(identityDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL, append(must(id.Local(identity.RoleServer, "probe")).Options(), nats.Secure(id.ClientTLS()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), join.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), "token."+tk.ID); err != nil {
		t.Fatalf("the token made before the backup: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
