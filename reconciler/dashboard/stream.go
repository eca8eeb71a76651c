package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
)

// keepAlive is how often an idle event stream sends a comment, so proxies
// and browsers keep it open.
const keepAlive = 15 * time.Second

// rendered is a page's live sections as made at one moment, shared by every
// stream of that page until the next interval.
type rendered struct {
	at       time.Time
	sections map[string][]byte
}

// sections renders the live sections of the page at path, once per
// interval whoever watches it.
func (d *Dashboard) sections(ctx context.Context, path string, query func(string) string) (map[string][]byte, error) {
	key := path + "?logs=" + query("logs")
	d.mu.Lock()
	if c, ok := d.cache[key]; ok && time.Since(c.at) < d.opts.Interval {
		d.mu.Unlock()
		return c.sections, nil
	}
	d.mu.Unlock()
	// One render a page at a time: its viewers who find it stale together
	// share one; a viewer who leaves stops waiting.
	ch := d.renders.DoChan(key, func() (any, error) {
		return d.render1(context.WithoutCancel(ctx), key, path, query)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(map[string][]byte), nil
	}
}

// render1 makes a page's sections and keeps them for the interval.
func (d *Dashboard) render1(ctx context.Context, key, path string, query func(string) string) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p, err := d.build(ctx, path, query)
	if errors.Is(err, errNotFound) {
		// Gone from the revision in force (or not there yet): say so and
		// keep watching.
		p = page{sections: []string{"banner"}, view: view{Page: path, Standby: "Not in the revision in force: this page shows it again when a revision has it."}}
	} else if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(p.sections))
	for _, name := range p.sections {
		b, err := d.section(p, name)
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", name, err)
		}
		out[name] = b
	}
	d.mu.Lock()
	for k, c := range d.cache { // pages no one watched for a while
		if time.Since(c.at) > time.Minute {
			delete(d.cache, k)
		}
	}
	d.cache[key] = &rendered{at: time.Now(), sections: out}
	d.mu.Unlock()
	return out, nil
}

// eventWriter writes Server-Sent Events, one writer at a time.
type eventWriter struct {
	mu sync.Mutex
	w  io.Writer
	rc *http.ResponseController
}

// openEvents starts an event stream, or answers 503 when MaxStreams are
// open already; done releases the slot.
func (d *Dashboard) openEvents(w http.ResponseWriter) (ew *eventWriter, done func(), ok bool) {
	select {
	case d.streams <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many live pages open: try again shortly", http.StatusServiceUnavailable)
		return nil, nil, false
	}
	rc := http.NewResponseController(w)
	// The server's timeouts are for requests, not streams: its read
	// timeout would end a stream (its context) after 30 s.
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &eventWriter{w: w, rc: rc}, func() { <-d.streams }, true
}

// send writes one event whose data is html (its lines each a data line).
func (e *eventWriter) send(event string, html []byte) error {
	var b bytes.Buffer
	b.WriteString("event: " + event + "\n")
	for _, line := range bytes.Split(bytes.ReplaceAll(html, []byte("\r"), nil), []byte("\n")) {
		b.WriteString("data: ")
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return e.write(b.Bytes())
}

func (e *eventWriter) write(b []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.w.Write(b); err != nil {
		return err
	}
	return e.rc.Flush()
}

// stream answers GET /ui/stream?page=PATH: the page's live sections, each
// sent again (an event named after it) when it changes.
func (d *Dashboard) stream(w http.ResponseWriter, r *http.Request) {
	u, err := url.Parse(localPath(r.URL.Query().Get("page")))
	if err != nil {
		http.Error(w, "page: a path of this dashboard", http.StatusBadRequest)
		return
	}
	if u.Path != "/" && !strings.HasPrefix(u.Path, "/ui/") {
		http.Error(w, "no such page", http.StatusNotFound)
		return
	}
	// Made once before the stream opens (and shared with its other viewers):
	// a source that fails is an error, not an empty stream.
	if _, err := d.sections(r.Context(), u.Path, u.Query().Get); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	ew, done, ok := d.openEvents(w)
	if !ok {
		return
	}
	defer done()
	sent := map[string]uint64{}
	tick := time.NewTicker(d.opts.Interval)
	defer tick.Stop()
	quiet := time.Now()
	for {
		secs, err := d.sections(r.Context(), u.Path, u.Query().Get)
		if err != nil {
			d.opts.Log.Warn().Err(err).Str("page", u.Path).Msg("dashboard stream")
		}
		for name, html := range secs {
			h := fnv.New64a()
			_, _ = h.Write(html)
			if sum := h.Sum64(); sent[name] != sum {
				if err := ew.send(name, html); err != nil {
					return
				}
				sent[name], quiet = sum, time.Now()
			}
		}
		if time.Since(quiet) > keepAlive {
			if err := ew.write([]byte(": alive\n\n")); err != nil {
				return
			}
			quiet = time.Now()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// logs answers GET /ui/logs?workload=NAME&replica=ID: the replica's last
// lines and what it prints next, as "log" events of escaped text.
func (d *Dashboard) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	st, err := d.src.Status(reconciler.StatusRequest{Replicas: reconciler.ReplicasAll, Workload: q.Get("workload")})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	node := ""
	for _, g := range st.ReplicaGroups() {
		for _, x := range g.Replicas {
			if x.ID == q.Get("replica") {
				node = x.Node
			}
		}
	}
	if node == "" {
		http.Error(w, "no such replica of that workload", http.StatusNotFound)
		return
	}
	ew, done, ok := d.openEvents(w)
	if !ok {
		return
	}
	defer done()
	// A reconnection starts the tail again: what was shown goes first.
	if ew.send("reset", nil) != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait() // nothing writes once the handler returned
	wg.Add(1)
	go func() { // comments keep the stream open while the replica is quiet
		defer wg.Done()
		t := time.NewTicker(keepAlive)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if ew.write([]byte(": alive\n\n")) != nil {
					cancel()
				}
			}
		}
	}()
	req := protocol.LogsRequest{Replica: q.Get("replica"), Container: q.Get("container"), Tail: 200, Follow: true}
	err = d.src.Logs(ctx, node, req, func(c protocol.LogChunk) {
		text := string(c.Data)
		if c.Error != "" {
			text = "(" + c.Error + ")\n"
		}
		if text == "" {
			return
		}
		if ew.send("log", []byte("<span>"+template.HTMLEscapeString(text)+"</span>")) != nil {
			cancel()
		}
	})
	if err != nil && ctx.Err() == nil {
		_ = ew.send("log", []byte("<span>(the log stream ended: "+template.HTMLEscapeString(err.Error())+")\n</span>"))
	}
}
