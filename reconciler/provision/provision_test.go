package provision_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/reconciler/provision"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "provisioner")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var asked = []provision.NewMachine{{Name: "workers-a1", JoinToken: "baton1.x.y.z"}, {Name: "workers-b2", JoinToken: "baton1.x.y.w"}}

// An executable provisioner: the request on stdin, the answer on stdout;
// each way it can go wrong is an error that says which, and none hangs.
func TestCommand(t *testing.T) {
	ctx := context.Background()
	tmpl := provision.Template{CPUMilli: 2000, MemoryBytes: 4 << 30}
	// A provisioner that records its request and makes what it is asked.
	seen := filepath.Join(t.TempDir(), "request.json")
	good := script(t, `cat > `+seen+`
echo '{"machines": [{"name": "workers-a1", "id": "vm-1"}, {"name": "workers-b2", "id": "vm-2"}]}'
`)
	ms, err := provision.Create(ctx, provision.Command{Argv: []string{good}, Timeout: 10 * time.Second}, "workers", "server:8421", tmpl, asked)
	if err != nil || len(ms) != 2 || ms[1].ID != "vm-2" {
		t.Fatalf("create: %v %+v", err, ms)
	}
	var req provision.Request
	b, _ := os.ReadFile(seen)
	if err := json.Unmarshal(b, &req); err != nil || req.Version != 1 || req.Op != "create" || req.Pool != "workers" || req.Join != "server:8421" ||
		len(req.Create) != 2 || req.Create[0].JoinToken != "baton1.x.y.z" || req.Template.CPUMilli != 2000 {
		t.Fatalf("the request it read: %v %s", err, b)
	}

	for _, tc := range []struct {
		what, body string
		timeout    time.Duration
		want       error
		says       string
	}{
		{"it fails", "echo 'quota exceeded in zone a' >&2; exit 3", time.Minute, provision.ErrFailed, "quota exceeded in zone a"},
		{"it hangs", "sleep 60", 300 * time.Millisecond, provision.ErrTimeout, "ran past 300ms"},
		{"its child hangs with the pipe", "sleep 60 & echo '{\"machines\": []}'; wait", 300 * time.Millisecond, provision.ErrTimeout, "ran past"},
		{"it prints garbage", "echo 'created 2 machines!'", time.Minute, provision.ErrBadAnswer, "created 2 machines!"},
		{"it answers an error", `echo '{"machines": [], "error": "no capacity"}'`, time.Minute, provision.ErrFailed, "no capacity"},
		{"more machines than asked", `echo '{"machines": [{"name": "workers-a1"}, {"name": "workers-b2"}, {"name": "workers-c3"}]}'`, time.Minute, provision.ErrBadAnswer, "3 machines answered for 2 asked"},
		{"a machine not asked for", `echo '{"machines": [{"name": "other-1"}]}'`, time.Minute, provision.ErrBadAnswer, `"other-1" was not asked for`},
		{"the same machine twice", `echo '{"machines": [{"name": "workers-a1"}, {"name": "workers-a1"}]}'`, time.Minute, provision.ErrBadAnswer, `"workers-a1" was not asked for`},
		{"a name that is no node's", `echo '{"machines": [{"name": "a b"}]}'`, time.Minute, provision.ErrBadAnswer, `machine name "a b"`},
		{"a field of another protocol", `echo '{"machines": [], "instances": 2}'`, time.Minute, provision.ErrBadAnswer, "unknown field"},
		{"an answer past the limit", "head -c 2000000 /dev/zero | tr '\\0' x", time.Minute, provision.ErrBadAnswer, "more than 1048576 bytes"},
		{"it echoes a join token", "cat >&2; exit 1", time.Minute, provision.ErrFailed, `"joinToken":"baton1.[redacted]"`},
	} {
		p := provision.Command{Argv: []string{script(t, tc.body)}, Timeout: tc.timeout}
		began := time.Now()
		_, err := provision.Create(ctx, p, "workers", "server:8421", tmpl, asked)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "x.y.z") {
			t.Errorf("%s: %v, want %v saying %q", tc.what, err, tc.want, tc.says)
		}
		if took := time.Since(began); took > tc.timeout+5*time.Second {
			t.Errorf("%s: took %s", tc.what, took)
		}
	}

	// One of two made: the machine made comes back with the error.
	half := script(t, `echo '{"machines": [{"name": "workers-a1", "id": "vm-1"}], "error": "quota exceeded after 1"}'`)
	if ms, err := provision.Create(ctx, provision.Command{Argv: []string{half}, Timeout: 10 * time.Second}, "workers", "s:8421", tmpl, asked); !errors.Is(err, provision.ErrFailed) ||
		len(ms) != 1 || ms[0].ID != "vm-1" {
		t.Fatalf("a partial failure: %+v, %v", ms, err)
	}

	list := script(t, `read req; case "$req" in *'"op":"list"'*) echo '{"machines": [{"name": "workers-a1", "id": "vm-1"}]}';; *) exit 1;; esac`)
	if ms, err := provision.List(ctx, provision.Command{Argv: []string{list}, Timeout: 10 * time.Second}, "workers"); err != nil || len(ms) != 1 {
		t.Fatalf("list: %v %+v", err, ms)
	}
	del := script(t, `read req; case "$req" in *'"op":"delete"'*'"id":"vm-1"'*) echo '{"machines": []}';; *) echo "$req" >&2; exit 1;; esac`)
	if err := provision.Delete(ctx, provision.Command{Argv: []string{del}, Timeout: 10 * time.Second}, "workers", provision.Machine{Name: "workers-a1", ID: "vm-1"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// A webhook provisioner: a POST over HTTPS signed with the pool's key (the
// server checks it), and the same guards.
func TestWebhook(t *testing.T) {
	key := []byte("0123456789abcdef-hook-key")
	now := time.Unix(1_764_600_000, 0)
	var hang chan struct{}
	answer := `{"machines": [{"name": "workers-a1", "id": "vm-1"}]}`
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get("X-Baton-Timestamp"), 10, 64)
		if r.Method != http.MethodPost || ts != now.Unix() || r.Header.Get("X-Baton-Signature") != provision.Sign(key, ts, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if hang != nil {
			<-hang
		}
		fmt.Fprintln(w, answer)
	}))
	defer srv.Close()
	hook := provision.Webhook{URL: srv.URL, Key: key, Timeout: 5 * time.Second, Client: srv.Client(), Clock: func() time.Time { return now }}
	ctx := context.Background()
	ms, err := provision.Create(ctx, hook, "workers", "s:8421", provision.Template{CPUMilli: 1000, MemoryBytes: 1 << 30}, asked[:1])
	if err != nil || len(ms) != 1 || ms[0].ID != "vm-1" {
		t.Fatalf("create: %v %+v", err, ms)
	}
	wrong := hook
	wrong.Key = []byte("another key")
	if _, err := provision.List(ctx, wrong, "workers"); !errors.Is(err, provision.ErrFailed) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong key: %v", err)
	}
	answer = "<html>oops</html>"
	if _, err := provision.List(ctx, hook, "workers"); !errors.Is(err, provision.ErrBadAnswer) || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("garbage: %v", err)
	}
	hang = make(chan struct{})
	defer close(hang)
	slow := hook
	slow.Timeout = 300 * time.Millisecond
	if _, err := provision.List(ctx, slow, "workers"); !errors.Is(err, provision.ErrTimeout) {
		t.Fatalf("a webhook that hangs: %v", err)
	}
	// A redirect is not followed: the signed body goes to its URL only.
	moved := httptest.NewTLSServer(http.RedirectHandler(srv.URL, http.StatusPermanentRedirect))
	defer moved.Close()
	redirected := hook
	redirected.URL, redirected.Client = moved.URL, moved.Client()
	if _, err := provision.List(ctx, redirected, "workers"); !errors.Is(err, provision.ErrFailed) || !strings.Contains(err.Error(), "redirects are refused") {
		t.Fatalf("a redirect: %v", err)
	}
	plain := hook
	plain.URL = strings.Replace(srv.URL, "https://", "http://", 1)
	if _, err := provision.List(ctx, plain, "workers"); err == nil || !strings.Contains(err.Error(), "want https://") {
		t.Fatalf("plain HTTP: %v", err)
	}
}
