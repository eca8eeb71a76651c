package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withAPI serves the control-plane API of the cluster's servers on a port
// the kernel picks, with a viewer and an admin token; it returns the URL
// and the token files.
func withAPI(t *testing.T) (opt func(*serverOptions), url, viewerFile, adminFile string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	viewerFile, adminFile = filepath.Join(dir, "viewer"), filepath.Join(dir, "admin")
	for file, body := range map[string]string{
		tokens:     "viewer-token-0123456789 read\nadmin-token-0123456789ab admin\n",
		viewerFile: "viewer-token-0123456789\n",
		adminFile:  "admin-token-0123456789ab\n",
	} {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return func(o *serverOptions) { o.apiListener, o.apiTokens = ln, tokens }, "http://" + ln.Addr().String(), viewerFile, adminFile
}

// TestPin: baton pin applies an earlier revision from the server's cache
// and holds it while new commits land; baton unpin follows the branch
// again. The commands go through the control-plane API (--server, bearer
// tokens): a viewer token may read the status and history, not pin.
func TestPin(t *testing.T) {
	api, url, viewer, admin := withAPI(t)
	c := newCluster(t, 8*time.Second, api)
	c.startAgent("n1")
	as := func(token string, args ...string) (string, error) {
		out, _, err := run(t, append(args, "--server", url, "--token-file", token)...)
		return out, err
	}
	must := func(token string, args ...string) string {
		t.Helper()
		out, err := as(token, args...)
		if err != nil {
			t.Fatalf("baton %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	v1, v2, v3 := deployment(2, "v1"), deployment(2, "v2"), deployment(2, "v3")
	rev1 := c.commit("v1", v1)
	c.converged(t, 2, hashOf(t, v1), "n1")
	c.commit("v2", v2)
	c.converged(t, 2, hashOf(t, v2), "n1")

	if _, err := as(viewer, "pin", rev1[:10]); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("pin with a viewer token: %v", err)
	}
	if _, err := as(admin, "pin", "0badc0ffee"); err == nil || !strings.Contains(err.Error(), "never applied") {
		t.Fatalf("pin of an unknown revision: %v", err)
	}
	must(admin, "pin", rev1[:10], "--reason", "incident 42")
	c.converged(t, 2, hashOf(t, v1), "n1")
	if out := must(viewer, "status"); !strings.Contains(out, "PINNED to "+rev1[:12]) || !strings.Contains(out, "incident 42") {
		t.Fatalf("baton status over the API:\n%s", out)
	}
	c.commit("v3", v3)
	time.Sleep(2 * time.Second) // polls every 100 ms: v3 is seen, and not applied
	c.converged(t, 2, hashOf(t, v1), "n1")

	must(admin, "unpin")
	c.converged(t, 2, hashOf(t, v3), "n1")
	if st := c.status(); st.Pin != nil {
		t.Fatalf("still pinned: %+v", st.Pin)
	}
	if out := must(viewer, "history"); strings.Count(out, "converged") < 3 {
		t.Fatalf("baton history over the API:\n%s", out)
	}
	if out := must(viewer, "events", "--tail", "50"); !strings.Contains(out, "pinned to revision "+rev1[:12]) || !strings.Contains(out, "unpinned") {
		t.Fatalf("baton events over the API:\n%s", out)
	}
	if out := must(viewer, "wait", "--timeout", "20s"); !strings.Contains(out, "converged in") {
		t.Fatalf("baton wait over the API:\n%s", out)
	}
}
