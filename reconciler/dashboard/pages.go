package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/desired"
	"github.com/batonhq/baton/reconciler"
	"github.com/batonhq/baton/reconciler/store"
)

// view is what every page's template gets; a page fills in its part.
type view struct {
	Title string
	// Page is the page's own path, which its event stream renders again.
	Page string
	// Standby says why there is nothing to show (this server does not lead).
	Standby string
	St      reconciler.Status
	Nodes   []nodeRow
	Node    *nodeRow
	// Workload is the workload page's; Job set when it is a Job's pods.
	Workload *reconciler.WorkloadStatus
	Job      *reconciler.JobStatus
	Events   []string
	// Change is the last revision that changed the workload, and how.
	Change  *store.HistoryEntry
	History []store.HistoryEntry
	// LogReplica is the replica whose output the workload page tails.
	LogReplica string
}

// nodeRow is a node with the usage of the replicas on it.
type nodeRow struct {
	reconciler.NodeStatus
	CPU, Memory int64
	Pods        []podRow
}

// podRow is a replica with its workload.
type podRow struct {
	Workload string
	reconciler.ReplicaStatus
}

// loginPage is the login form's.
type loginPage struct {
	Title, Next, Error string
	Open               bool
}

// page is one page as its template sees it: its name and live sections.
type page struct {
	tmpl     string   // the whole page
	sections []string // the parts its stream sends again when they change
	view     view
}

// errNotFound is a page of nothing the leader knows.
var errNotFound = errors.New("not found")

// build makes the page at path (a path of the dashboard's, with its query).
func (d *Dashboard) build(ctx context.Context, path string, query func(string) string) (page, error) {
	v := view{Page: path}
	req := reconciler.StatusRequest{Replicas: reconciler.ReplicasAll}
	var p page
	switch {
	case path == "/":
		v.Title = "Overview"
		p = page{tmpl: "overview", sections: []string{"banner", "ov-nodes", "ov-workloads", "ov-events"}}
	case path == "/ui/history":
		v.Title = "History"
		p = page{tmpl: "history", sections: []string{"banner", "hist-table"}}
		req.Replicas = reconciler.ReplicasNone
	case strings.HasPrefix(path, "/ui/workloads/"):
		name := strings.TrimPrefix(path, "/ui/workloads/")
		v.Title, req.Workload = name, name
		v.LogReplica = query("logs")
		p = page{tmpl: "workload", sections: []string{"banner", "wl-summary", "wl-replicas", "wl-events", "wl-change"}}
	case strings.HasPrefix(path, "/ui/nodes/"):
		v.Title = strings.TrimPrefix(path, "/ui/nodes/")
		p = page{tmpl: "node", sections: []string{"banner", "node-summary", "node-pods"}}
	default:
		return page{}, errNotFound
	}
	st, err := d.src.Status(req)
	if errors.Is(err, ErrStandby) {
		v.Standby = "This server is standing by: the leader serves the cluster's state. Open the dashboard on the leader's API address."
		p.view = v
		return p, nil
	}
	if err != nil {
		return page{}, err
	}
	v.St = st
	switch p.tmpl {
	case "overview":
		v.Nodes = nodeRows(st)
		v.Events = newestFirst(st.Events, 20)
	case "history":
		h, err := d.history(ctx)
		if err != nil {
			return page{}, err
		}
		v.History = h
	case "workload":
		for i := range st.Workloads {
			if st.Workloads[i].Name == v.Title {
				v.Workload = &st.Workloads[i]
			}
		}
		for i := range st.Jobs {
			if reconciler.JobWorkload(st.Jobs[i].Name) == v.Title {
				v.Job = &st.Jobs[i]
				v.Workload = &reconciler.WorkloadStatus{Name: v.Title, Desired: st.Jobs[i].Completions, Replicas: st.Jobs[i].Replicas,
					Pending: st.Jobs[i].Pending, PendingReason: st.Jobs[i].PendingReason}
			}
		}
		if v.Workload == nil {
			return page{}, errNotFound
		}
		v.Events = eventsOf(st.Events, v.Title, 30)
		if h, err := d.history(ctx); err == nil {
			v.Change = lastChange(h, v.Title)
		}
	case "node":
		for _, n := range nodeRows(st) {
			if n.Name == v.Title {
				v.Node = &n
			}
		}
		if v.Node == nil {
			return page{}, errNotFound
		}
	}
	p.view = v
	return p, nil
}

// nodeRows are the status's nodes, each with its replicas and their usage.
func nodeRows(st reconciler.Status) []nodeRow {
	rows := make([]nodeRow, len(st.Nodes))
	at := map[string]int{}
	for i, n := range st.Nodes {
		rows[i].NodeStatus = n
		at[n.Name] = i
	}
	for _, g := range st.ReplicaGroups() {
		for _, r := range g.Replicas {
			i, ok := at[r.Node]
			if !ok {
				continue
			}
			rows[i].Pods = append(rows[i].Pods, podRow{Workload: g.Workload, ReplicaStatus: r})
			if r.Usage != nil {
				rows[i].CPU += r.Usage.CPUMilli
				rows[i].Memory += r.Usage.MemoryBytes
			}
		}
	}
	return rows
}

// newestFirst returns the last n lines, newest first.
func newestFirst(lines []string, n int) []string {
	out := slices.Clone(lines[max(0, len(lines)-n):])
	slices.Reverse(out)
	return out
}

// eventsOf are the newest n events that name the workload or one of its
// replicas (SHORT-HASH8-XXXXX, or SHORT-N for an ordinal), newest first.
func eventsOf(lines []string, workload string, n int) []string {
	short := workload[strings.LastIndex(workload, "/")+1:]
	re := regexp.MustCompile(`(^|[\s(/])(` + regexp.QuoteMeta(workload) + `|` + regexp.QuoteMeta(short) + `-([0-9a-f]{8}-[0-9a-z]{5}|[0-9]+))([\s:,)/]|$)`)
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if re.MatchString(lines[i]) {
			out = append(out, lines[i])
		}
	}
	return out
}

// lastChange is the newest history entry whose changes name the workload.
func lastChange(h []store.HistoryEntry, workload string) *store.HistoryEntry {
	for i := len(h) - 1; i >= 0; i-- {
		for _, c := range h[i].Changes {
			if (c.Kind == "Deployment" && c.Name == workload) || (c.Kind == "Job" && reconciler.JobWorkload(c.Name) == workload) {
				e := h[i]
				e.Changes = []desired.Change{c}
				return &e
			}
		}
	}
	return nil
}

// historyCache keeps the revision history a few seconds: every live page
// of every viewer would otherwise read the store each second.
type historyCache struct {
	at      time.Time
	entries []store.HistoryEntry
}

// historyTTL is how long a read of the history serves.
const historyTTL = 3 * time.Second

// history is the kept history, newest first.
func (d *Dashboard) history(ctx context.Context) ([]store.HistoryEntry, error) {
	d.mu.Lock()
	if time.Since(d.hist.at) < historyTTL {
		h := d.hist.entries
		d.mu.Unlock()
		return h, nil
	}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h, err := d.src.History(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the revision history: %w", err)
	}
	slices.Reverse(h)
	d.mu.Lock()
	d.hist = historyCache{at: time.Now(), entries: h}
	d.mu.Unlock()
	return h, nil
}

// page answers a page in whole.
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	p, err := d.build(r.Context(), r.URL.Path, r.URL.Query().Get)
	switch {
	case errors.Is(err, errNotFound):
		d.render(w, http.StatusNotFound, "notfound", view{Title: "Not found", Page: r.URL.Path})
		return
	case err != nil:
		d.opts.Log.Warn().Err(err).Str("page", r.URL.Path).Msg("dashboard page")
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	d.render(w, http.StatusOK, p.tmpl, p.view)
}

// render writes template name with data, buffered: a template that fails
// answers 500, not half a page.
func (d *Dashboard) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		d.opts.Log.Error().Err(err).Str("template", name).Msg("dashboard template")
		http.Error(w, "the page could not be made", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// section renders one live section of p.
func (d *Dashboard) section(p page, name string) ([]byte, error) {
	var b bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&b, name, p.view); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"took": func(from, to time.Time) string {
		if from.IsZero() || to.IsZero() {
			return ""
		}
		return to.Sub(from).Round(10 * time.Millisecond).String()
	},
	"cpu": func(m int64) string {
		if m < 1000 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%.1f", float64(m)/1000)
	},
	"bytes": func(b int64) string {
		switch {
		case b >= 1<<30:
			return fmt.Sprintf("%.1fGi", float64(b)/(1<<30))
		case b >= 1<<20:
			return fmt.Sprintf("%dMi", b>>20)
		default:
			return fmt.Sprintf("%dKi", b>>10)
		}
	},
	"pct": func(used, of int64) int {
		if of <= 0 {
			return 0
		}
		return int(min(100, used*100/of))
	},
	"first": func(s string) string {
		s, _, _ = strings.Cut(s, "\n")
		return s
	},
}
