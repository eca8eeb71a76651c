package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/gitsource"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/httpapi"
	"github.com/batonhq/baton/reconciler/store"
)

const (
	viewer = "viewer-token-0123456789"
	admin  = "admin-token-0123456789ab"
)

func newAPI(t *testing.T) (*httpapi.Server, *httptest.Server) {
	nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := store.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenEventLog(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# viewers\n"+viewer+" viewer\n"+admin+" admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := httpapi.ReadTokens(file)
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{JS: js, ID: "s1", Tokens: tokens, Log: zerolog.Nop()})
	api.SetLeader(reconciler.New(reconciler.Config{NATS: nc, Store: kv, ID: "s1", Term: 4}))
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return api, srv
}

func get(t *testing.T, srv *httptest.Server, path, token string) (int, string) {
	t.Helper()
	return do(t, srv, http.MethodGet, path, token, "")
}

func do(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPI over real HTTP, with and without tokens.
func TestAPI(t *testing.T) {
	api, srv := newAPI(t)
	tests := []struct {
		path, token string
		code        int
		body        string
	}{
		{"/healthz", "", 200, "ok"},
		{"/readyz", "", 200, `"role": "leader"`},
		{"/api/v1/status", "", 401, `"error": "a bearer token is required`},
		{"/api/v1/status", "not-a-token-at-all", 401, `"error": "unknown token"`},
		{"/api/v1/status", viewer, 200, `"leader": "s1"`},
		{"/api/v1/status", admin, 200, `"term": 4`},
		{"/api/v1/history", viewer, 200, `"history"`},
		{"/api/v1/events?tail=5", viewer, 200, `"events"`},
		{"/api/v1/events?tail=x", viewer, 400, `"error": "tail: want a number`},
		{"/metrics", viewer, 200, `baton_leader{server="s1"} 1`},
		{"/metrics", viewer, 200, "baton_revision_refused 0"},
		{"/metrics", "", 401, "bearer token"},
		{"/api/v1/nothing", viewer, 404, `"error": "no such endpoint`},
		{"/api/v1/workloads", viewer, 200, `"workloads": []`},
		{"/api/v1/nodes", viewer, 200, `"nodes": []`},
		{"/api/v1/pools", viewer, 200, `"pools": []`},
		{"/api/v1/replicas", viewer, 200, `"replicas": []`},
		{"/api/v1/pin", viewer, 200, `"pin": null`},
		{"/api/v1/replicas", "", 401, "bearer token"},
	}
	for _, tt := range tests {
		code, body := get(t, srv, tt.path, tt.token)
		if code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s (token %q): %d %s; want %d containing %q", tt.path, tt.token, code, body, tt.code, tt.body)
		}
	}
	// Writes need an admin token; bodies are checked.
	writes := []struct {
		method, path, token, body string
		code                      int
		want                      string
	}{
		{"PUT", "/api/v1/pin", viewer, `{"revision": "abc"}`, 403, "read-only"},
		{"PUT", "/api/v1/pin", "", `{"revision": "abc"}`, 401, "bearer token"},
		{"PUT", "/api/v1/pin", admin, `{"revision": "abc"}`, 400, "7 hex digits"},
		{"PUT", "/api/v1/pin", admin, `{"revision": "abcdef0"}`, 404, "never applied"},
		{"GET", "/api/v1/plan", viewer, "", 405, "allowed: POST"},
		{"POST", "/api/v1/pin", admin, "", 405, "allowed: GET, PUT, DELETE"},
		{"PUT", "/api/v1/pin", admin, `{"revision": `, 400, "want {"},
		{"DELETE", "/api/v1/pin", viewer, "", 403, "read-only"},
		{"DELETE", "/api/v1/pin", admin, "", 200, `"pin": null`},
		{"POST", "/api/v1/hooks/git", "", "{}", 404, "no webhook configured"},
		{"POST", "/api/v1/plan", viewer, `{"files": {"a.yaml": "` + strings.Repeat("x", httpapi.MaxPlanBytes) + `"}}`, 413, "at most 100663296 bytes"},
		{"POST", "/api/v1/plan", viewer, bigRevision(desired.MaxTotalBytes + 1), 413, "revision too large"},
		{"PUT", "/api/v1/pin", admin, `{"revision": "` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`, 413, "at most 1048576 bytes"},
	}
	for _, w := range writes {
		if code, body := do(t, srv, w.method, w.path, w.token, w.body); code != w.code || !strings.Contains(body, w.want) {
			t.Errorf("%s %s (token %q): %d %s; want %d containing %q", w.method, w.path, w.token, code, body, w.code, w.want)
		}
	}
	// The push webhook, served with the API, checks its own signature.
	triggered := make(chan struct{}, 1)
	hook, err := gitsource.NewWebhook([]byte("webhook-secret-0123456789"), func() { triggered <- struct{}{} }, 10, 10, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	api.SetWebhook(hook)
	if code, body := do(t, srv, "POST", "/api/v1/hooks/git", "", "{}"); code != http.StatusUnauthorized {
		t.Fatalf("unsigned webhook: %d %s", code, body)
	}
	body := `{"ref": "refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte("webhook-secret-0123456789"))
	mac.Write([]byte(body))
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/hooks/git", strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 || len(triggered) != 1 {
		t.Fatalf("signed webhook: %d, triggered %d", resp.StatusCode, len(triggered))
	}

	// A standby says so, and who to ask.
	api.SetLeader(nil)
	if code, body := get(t, srv, "/api/v1/status", viewer); code != 503 || !strings.Contains(body, "standing by") {
		t.Fatalf("standby status: %d %s", code, body)
	}
	code, body := get(t, srv, "/readyz", "")
	var ready map[string]string
	if code != 200 || json.Unmarshal([]byte(body), &ready) != nil || ready["role"] != "standby" {
		t.Fatalf("standby readyz: %d %s", code, body)
	}
}

func TestReadTokensRefusesBadFiles(t *testing.T) {
	for _, content := range []string{"", "short read\n", "0123456789abcdefgh owner\n", "0123456789abcdefgh\n"} {
		file := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := httpapi.ReadTokens(file); err == nil {
			t.Errorf("tokens file %q accepted", content)
		}
	}
}

// bigRevision is a plan request of n bytes of manifests, under the body
// limit but over the loader's.
func bigRevision(n int) string {
	var b strings.Builder
	b.WriteString(`{"files": {`)
	for i := 0; n > 0; i++ {
		chunk := min(n, desired.MaxFileBytes/2)
		fmt.Fprintf(&b, `"f%d.yaml": "#%s",`, i, strings.Repeat("x", chunk-1))
		n -= chunk
	}
	return strings.TrimSuffix(b.String(), ",") + `}}`
}

// TestPlanSlots: at most a few plans run at once; one more waits, then is
// told to come back (429 with Retry-After).
func TestPlanSlots(t *testing.T) {
	api, srv := newAPI(t)
	defer func(d time.Duration) { httpapi.PlanQueueWait = d }(httpapi.PlanQueueWait)
	httpapi.PlanQueueWait = 200 * time.Millisecond
	release := httpapi.HoldPlanSlots(api)
	code, body := do(t, srv, "POST", "/api/v1/plan", viewer, `{"files": {}}`)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "plans are being computed") {
		t.Fatalf("with every slot taken: %d %s", code, body)
	}
	release()
	if code, body := do(t, srv, "POST", "/api/v1/plan", viewer, `{"files": {}}`); code != http.StatusOK {
		t.Fatalf("with a slot free: %d %s", code, body)
	}
}

// Joining over HTTP says what the bus's roles say: a viewer reads the
// credentials; only an admin makes tokens and removes nodes; a server
// without the cluster identity says it does not serve joining.
func TestJoiningEndpoints(t *testing.T) {
	api, srv := newAPI(t)
	if code, body := do(t, srv, http.MethodPost, "/api/v1/tokens", admin, `{"role":"agent","ttl":"1h"}`); code != http.StatusNotImplemented || !strings.Contains(body, "cluster identity") {
		t.Fatalf("tokens without the identity: %d %s", code, body)
	}
	var gotBody string
	api.SetJoining(map[string]httpapi.Handler{
		protocol.TokenSubject: func(_ context.Context, b []byte) (any, error) {
			gotBody = string(b)
			return map[string]string{"token": "t"}, nil
		},
		protocol.CredentialsSubject: func(context.Context, []byte) (any, error) {
			return []string{"n1"}, nil
		},
		protocol.NodeRemoveSubject: func(_ context.Context, b []byte) (any, error) {
			if !strings.Contains(string(b), `"n1"`) {
				return nil, &httpapi.AnswerError{Code: http.StatusNotFound, Msg: "no such node"}
			}
			return map[string]string{"node": "n1"}, nil
		},
	})
	cases := []struct {
		method, path, token, body string
		code                      int
		want                      string
	}{
		{http.MethodPost, "/api/v1/tokens", viewer, `{}`, http.StatusForbidden, "read-only"},
		{http.MethodPost, "/api/v1/tokens", "", `{}`, http.StatusUnauthorized, "bearer"},
		{http.MethodPost, "/api/v1/tokens", admin, `{"role":"agent","ttl":"1h"}`, http.StatusOK, `"token"`},
		{http.MethodGet, "/api/v1/credentials", viewer, "", http.StatusOK, "n1"},
		{http.MethodDelete, "/api/v1/nodes/n1", viewer, "", http.StatusForbidden, "read-only"},
		{http.MethodDelete, "/api/v1/nodes/n1", admin, "", http.StatusOK, `"node"`},
		{http.MethodDelete, "/api/v1/nodes/n9", admin, "", http.StatusNotFound, "no such node"},
	}
	for _, c := range cases {
		code, body := do(t, srv, c.method, c.path, c.token, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s as %q: %d %s; want %d %q", c.method, c.path, c.token, code, body, c.code, c.want)
		}
	}
	if gotBody != `{"role":"agent","ttl":"1h"}` {
		t.Errorf("the token handler got %q", gotBody)
	}
}

// An open API (no tokens file) never makes join tokens or removes nodes:
// anyone on the machine could make themselves an admin.
func TestJoiningNeedsTokens(t *testing.T) {
	js, err := jetstream.New(testenv.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Config{JS: js, ID: "s1", Tokens: nil, Log: zerolog.Nop()})
	api.SetJoining(map[string]httpapi.Handler{protocol.TokenSubject: func(context.Context, []byte) (any, error) { return "t", nil }})
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	for _, c := range []struct{ method, path string }{{http.MethodPost, "/api/v1/tokens"}, {http.MethodDelete, "/api/v1/nodes/n1"}, {http.MethodGet, "/api/v1/credentials"}} {
		if code, body := do(t, srv, c.method, c.path, "", `{"role":"admin","ttl":"1h"}`); code != http.StatusForbidden || !strings.Contains(body, "--api-tokens") {
			t.Errorf("%s %s on an open API: %d %s", c.method, c.path, code, body)
		}
	}
}
