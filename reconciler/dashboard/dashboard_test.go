package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/internal/testenv"
	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/dashboard"
	"github.com/batonhq/baton/reconciler/store"
)

// fakeSource is a configurable Source: a status the test changes, a
// history, and log chunks.
type fakeSource struct {
	mu      sync.Mutex
	st      reconciler.Status
	standby bool
	history []store.HistoryEntry
	logs    []string
}

func (f *fakeSource) set(change func(*reconciler.Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Copies: a status given out before is never changed (as the
	// reconciler's snapshots).
	f.st.Workloads = slices.Clone(f.st.Workloads)
	for i := range f.st.Workloads {
		f.st.Workloads[i].Replicas = slices.Clone(f.st.Workloads[i].Replicas)
	}
	change(&f.st)
}

func (f *fakeSource) Status(q reconciler.StatusRequest) (reconciler.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.standby {
		return reconciler.Status{}, dashboard.ErrStandby
	}
	st := f.st
	if q.Workload != "" {
		st.Workloads = nil
		for _, w := range f.st.Workloads {
			if w.Name == q.Workload {
				st.Workloads = append(st.Workloads, w)
			}
		}
	}
	return st, nil
}

func (f *fakeSource) History(context.Context) ([]store.HistoryEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.HistoryEntry(nil), f.history...), nil
}

func (f *fakeSource) Logs(ctx context.Context, node string, req protocol.LogsRequest, out func(protocol.LogChunk)) error {
	for _, l := range f.logs {
		out(protocol.LogChunk{Container: "web", Data: []byte(l)})
	}
	<-ctx.Done()
	return nil
}

func status() reconciler.Status {
	now := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	return reconciler.Status{
		Synced: reconciler.Revision{ID: "0123456789abcdef0123", Message: "scale web\n\nbody", Author: "Ada"},
		Tip:    reconciler.Revision{ID: "fedcba9876543210fedc", Message: "broken"},
		Error:  &reconciler.RevisionError{Revision: "fedcba9876543210fedc", Errors: []string{"web.yaml:3:1: spec.replicaz: field not allowed"}},
		Leader: "s1",
		Nodes: []reconciler.NodeStatus{{Name: "n1", Ready: true, Replicas: 1, Address: "10.0.0.1",
			Capacity: protocol.Resources{CPUMilli: 2000, MemoryBytes: 4 << 30}}},
		Workloads: []reconciler.WorkloadStatus{
			{Name: "web", Desired: 2, Current: 1, Running: 1, Ready: 1, Pending: 1, PendingReason: "0/1 nodes fit: 1 insufficient memory",
				Replicas: []reconciler.ReplicaStatus{{ID: "web-0123abcd-abc12", Node: "n1", State: protocol.StateRunning, Ready: true, PodIP: "10.77.0.2",
					Usage: &protocol.Usage{CPUMilli: 250, MemoryBytes: 64 << 20, SampledAt: now}}}},
			{Name: "shop/cart", Desired: 1},
		},
		Pools: []reconciler.PoolStatus{{Name: "workers", Min: 1, Max: 3, Nodes: []string{"n1"}, Joining: []string{"workers-ab12c"}, Failures: 1,
			Last: "asked for 1 machines (replicas fit nowhere): 1 → 2"}},
		PoolUnserved: []string{"1 replica of huge: NodePool workers: a new machine would not fit it"},
		Events:       []string{"start replica web-0123abcd-abc12 on n1: new replica", "start web-frontend/web-frontend-0123abcd-zzzzz on n1", "start replica cart-0123abcd-xx1yz on n1: new replica", "<script>alert(1)</script>"},
	}
}

func serve(t *testing.T, src *fakeSource, check func(string) bool) *httptest.Server {
	t.Helper()
	d := dashboard.New(src, dashboard.Options{Check: check, Interval: 20 * time.Millisecond, Log: zerolog.Nop()})
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// Every page renders what the status holds, escaped, with its stream.
func TestPages(t *testing.T) {
	src := &fakeSource{st: status(), history: []store.HistoryEntry{
		{Seq: 1, Revision: "aaaaaaaaaaaaaaaa", Message: "first", Outcome: store.OutcomeConverged,
			Applied: time.Unix(100, 0), Converged: time.Unix(103, 0)},
		{Seq: 2, Revision: "0123456789abcdef0123", Message: "scale web", Outcome: store.OutcomeProgressing, Applied: time.Unix(200, 0),
			Changes: []desired.Change{{Kind: "Deployment", Name: "web", Op: "changed", Fields: []desired.FieldChange{{Path: "spec.replicas", Old: "1", New: "2"}}}}},
	}}
	srv := serve(t, src, nil)
	tests := []struct {
		path string
		code int
		want []string
	}{
		{"/", 200, []string{`<a href="/ui/workloads/web">web</a>`, `<a href="/ui/workloads/shop/cart">shop/cart</a>`, "0/1 nodes fit: 1 insufficient memory",
			`<a href="/ui/nodes/n1">n1</a>`, "250m / 2.0", "64Mi / 4.0Gi", "<code title=\"0123456789abcdef0123\">0123456789ab</code> scale web",
			"Branch tip", "fedcba987654", "spec.replicaz: field not allowed", "&lt;script&gt;alert(1)&lt;/script&gt;",
			`sse-connect="/ui/stream?page=%2F"`, `sse-swap="ov-workloads"`, "<td>workers</td><td>1</td><td>1</td><td>3</td>", "workers-ab12c",
			"asked for 1 machines (replicas fit nowhere): 1 → 2", "1 failures", "No node pool can take 1 replica of huge"}},
		{"/ui/workloads/web", 200, []string{"<h1>web</h1>", "web-0123abcd-abc12", "10.77.0.2", "1 pending: 0/1 nodes fit", "spec.replicas",
			`<td class="old">1</td><td class="new">2</td>`, "start replica web-0123abcd-abc12 on n1", `href="/ui/workloads/web?logs=web-0123abcd-abc12#logs"`}},
		{"/ui/workloads/web?logs=web-0123abcd-abc12", 200, []string{`sse-connect="/ui/logs?workload=web&amp;replica=web-0123abcd-abc12"`,
			`sse-swap="reset" hx-target="#logtail"`}},
		{"/ui/workloads/shop/cart", 200, []string{"<h1>shop/cart</h1>", "No replica runs.", "start replica cart-0123abcd-xx1yz on n1"}},
		{"/ui/nodes/n1", 200, []string{"<h1>Node n1</h1>", "web-0123abcd-abc12", "ready"}},
		{"/ui/history", 200, []string{"converged in 3s", "first", "progressing", "spec.replicas"}},
		{"/ui/workloads/nope", 404, []string{"Not found"}},
		{"/ui/nodes/nope", 404, []string{"Not found"}},
		{"/ui/static/htmx.min.js", 200, []string{"htmx"}},
		{"/ui/static/sse.min.js", 200, []string{`defineExtension("sse"`}},
	}
	for _, tt := range tests {
		code, body, h := get(t, srv.Client(), srv.URL+tt.path)
		if code != tt.code {
			t.Errorf("GET %s: %d, want %d\n%s", tt.path, code, tt.code, body)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %q in\n%s", tt.path, w, body)
			}
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", tt.path, h.Get("Content-Security-Policy"))
		}
	}
	// A workload's events are its own, not those of a workload whose name
	// starts with its name.
	if _, body, _ := get(t, srv.Client(), srv.URL+"/ui/workloads/web"); strings.Contains(body, "web-frontend") {
		t.Errorf("web's page shows web-frontend's events:\n%s", body)
	}
	// A standby says so rather than show an empty cluster.
	src.mu.Lock()
	src.standby = true
	src.mu.Unlock()
	if code, body, _ := get(t, srv.Client(), srv.URL+"/"); code != 200 || !strings.Contains(body, "standing by") {
		t.Errorf("standby: %d\n%s", code, body)
	}
}

// With tokens, a page without one goes to the login form; a known token
// signs in with an HttpOnly, SameSite=Strict cookie; a bearer token works
// as in the API; a wrong one is refused; redirects stay on this server.
func TestLogin(t *testing.T) {
	srv := serve(t, &fakeSource{st: status()}, func(tok string) bool { return tok == "viewer-token-0123456789" })
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	code, _, h := get(t, c, srv.URL+"/ui/workloads/web")
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/login?next=%2Fui%2Fworkloads%2Fweb" {
		t.Fatalf("no token: %d to %q", code, h.Get("Location"))
	}
	if code, _, _ := get(t, c, srv.URL+"/ui/stream?page=/"); code != http.StatusUnauthorized {
		t.Fatalf("stream without a token: %d", code)
	}
	if code, body, _ := get(t, c, srv.URL+"/ui/login"); code != 200 || !strings.Contains(body, `type="password"`) {
		t.Fatalf("login form: %d\n%s", code, body)
	}
	post := func(token, next string) *http.Response {
		resp, err := c.PostForm(srv.URL+"/ui/login", url.Values{"token": {token}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("wrong-token-0123456789", "/"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	for _, next := range []string{"//evil.example/x", "/\t/evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)", "/\n/evil", "evil"} {
		resp := post("viewer-token-0123456789", next)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Fatalf("sign-in with next %q: %d to %q (want / : no redirect off this server)", next, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp := post("viewer-token-0123456789", "/ui/workloads/web?logs=x"); resp.Header.Get("Location") != "/ui/workloads/web?logs=x" {
		t.Fatalf("sign-in back to the page asked for: %q", resp.Header.Get("Location"))
	}
	resp := post("viewer-token-0123456789", "/")
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != dashboard.TokenCookie || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie: %+v", cookies)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/workloads/web", nil)
	req.AddCookie(cookies[0])
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the cookie: %v %v", err, resp)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("Authorization", "Bearer viewer-token-0123456789")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with a bearer token: %v %v", err, resp)
	}
}

// sseReader reads events of a stream.
type sseReader struct{ sc *bufio.Scanner }

// next returns the next event's name and data.
func (r sseReader) next() (string, string, error) {
	var name string
	var data []string
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "" && name != "":
			return name, strings.Join(data, "\n"), nil
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
	return "", "", fmt.Errorf("stream ended: %v", r.sc.Err())
}

func openStream(t *testing.T, srv *httptest.Server, path string) sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	return sseReader{sc}
}

// The stream sends every section first, then only a section that changed.
func TestStream(t *testing.T) {
	src := &fakeSource{st: status()}
	srv := serve(t, src, nil)
	r := openStream(t, srv, "/ui/stream?page="+url.QueryEscape("/ui/workloads/web"))
	first := map[string]string{}
	for len(first) < 5 {
		name, data, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		first[name] = data
	}
	for _, s := range []string{"banner", "wl-summary", "wl-replicas", "wl-events", "wl-change"} {
		if _, ok := first[s]; !ok {
			t.Fatalf("first events: %v, no %s", first, s)
		}
	}
	src.set(func(st *reconciler.Status) {
		st.Workloads[0].Replicas = append(st.Workloads[0].Replicas, reconciler.ReplicaStatus{ID: "web-def34", Node: "n1", State: protocol.StateRunning})
		st.Workloads[0].Running = 2
	})
	seen := map[string]string{}
	testenv.WaitFor(t, 10*time.Second, "the new replica in the stream", func() (bool, string) {
		name, data, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		seen[name] = data
		return strings.Contains(seen["wl-replicas"], "web-def34") && strings.Contains(seen["wl-summary"], "2"), fmt.Sprint(seen)
	})
	if _, again := seen["wl-events"]; again {
		t.Errorf("an unchanged section was sent again: %q", seen["wl-events"])
	}
}

// A replica's log tail: its output, escaped, as "log" events.
func TestLogStream(t *testing.T) {
	src := &fakeSource{st: status(), logs: []string{"hello <b>world</b>\n", "second line\n"}}
	srv := serve(t, src, nil)
	if code, _, _ := get(t, srv.Client(), srv.URL+"/ui/logs?workload=web&replica=nope"); code != http.StatusNotFound {
		t.Fatalf("an unknown replica: %d", code)
	}
	r := openStream(t, srv, "/ui/logs?workload=web&replica=web-0123abcd-abc12")
	// Each connection clears what an earlier one showed, then tails.
	if name, data, err := r.next(); err != nil || name != "reset" || data != "" {
		t.Fatalf("first event: %q %q %v, want an empty reset", name, data, err)
	}
	var got []string
	for len(got) < 2 {
		name, data, err := r.next()
		if err != nil || name != "log" {
			t.Fatalf("%s %s %v", name, data, err)
		}
		got = append(got, data)
	}
	if got[0] != "<span>hello &lt;b&gt;world&lt;/b&gt;\n</span>" || got[1] != "<span>second line\n</span>" {
		t.Fatalf("log events: %q", got)
	}
}

// A stream outlives the server's read timeout (which is for requests):
// its context is not ended by it.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	src := &fakeSource{st: status()}
	d := dashboard.New(src, dashboard.Options{Interval: 20 * time.Millisecond, Log: zerolog.Nop()})
	srv := httptest.NewUnstartedServer(d.Handler())
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	r := openStream(t, srv, "/ui/stream?page=/")
	for range 4 { // banner, nodes, workloads, events
		if _, _, err := r.next(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // past the read timeout
	src.set(func(st *reconciler.Status) { st.Workloads[1].Desired = 7 })
	name, data, err := r.next()
	if err != nil || name != "ov-workloads" || !strings.Contains(data, "<td>7</td>") {
		t.Fatalf("after the read timeout: %q %v\n%s", name, err, data)
	}
}
