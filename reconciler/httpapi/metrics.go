package httpapi

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
)

// Metrics are a server's Prometheus metrics: the histograms its loop and
// its git source feed (it is their reconciler.Observer and their fetch
// hook), the leader's state read at each scrape, and the Go runtime's and
// the process's own.
type Metrics struct {
	reg      *prometheus.Registry
	pass     prometheus.Histogram
	command  *prometheus.HistogramVec
	fetch    *prometheus.HistogramVec
	converge *prometheus.HistogramVec
}

// NewMetrics makes a server's metrics in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		pass: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_reconcile_pass_duration_seconds",
			Help: "Duration of the leader's reconcile passes", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		command: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_command_duration_seconds",
			Help: "Round trip of a command to a node agent, by result (ok, error)", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
			[]string{"result"}),
		fetch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_git_fetch_duration_seconds",
			Help: "Fetching the config repository's new objects, by result (ok, error)", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)},
			[]string{"result"}),
		converge: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_revision_converge_seconds",
			Help:    "Time for a revision to converge, from its commit (from=commit) or from being put in force (from=applied)",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"from"}),
	}
	// Every series known from the start, at 0 (rates need a first sample).
	for _, r := range []string{"ok", "error"} {
		m.command.WithLabelValues(r)
		m.fetch.WithLabelValues(r)
	}
	for _, from := range []string{"commit", "applied"} {
		m.converge.WithLabelValues(from)
	}
	m.reg.MustRegister(m.pass, m.command, m.fetch, m.converge,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// PassDone implements reconciler.Observer.
func (m *Metrics) PassDone(d time.Duration) { m.pass.Observe(d.Seconds()) }

// CommandDone implements reconciler.Observer.
func (m *Metrics) CommandDone(d time.Duration, err error) {
	m.command.WithLabelValues(result(err)).Observe(d.Seconds())
}

// Converged implements reconciler.Observer.
func (m *Metrics) Converged(fromCommit, fromApplied time.Duration) {
	if fromCommit > 0 {
		m.converge.WithLabelValues("commit").Observe(fromCommit.Seconds())
	}
	m.converge.WithLabelValues("applied").Observe(fromApplied.Seconds())
}

// FetchDone is the git source's fetch hook (gitsource.Config.OnFetch).
func (m *Metrics) FetchDone(d time.Duration, err error) {
	m.fetch.WithLabelValues(result(err)).Observe(d.Seconds())
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

var _ reconciler.Observer = (*Metrics)(nil)

// metricsHandler serves the exposition, the leader's state read at scrape.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4})
}

// stateCollector reads the leader's status at each scrape (unchecked: its
// series depend on the cluster).
type stateCollector struct{ s *Server }

func (stateCollector) Describe(chan<- *prometheus.Desc) {}

func gauge(ch chan<- prometheus.Metric, name, help string, v float64, labels ...string) {
	var keys, values []string
	for i := 0; i+1 < len(labels); i += 2 {
		keys, values = append(keys, labels[i]), append(values, labels[i+1])
	}
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, keys, nil), prometheus.GaugeValue, v, values...)
}

func counter(ch chan<- prometheus.Metric, name, help string, v float64) {
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, v)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	rec := c.s.Leader()
	gauge(ch, "baton_leader", "1 when this server leads", b2f(rec != nil), "server", c.s.id)
	if rec == nil {
		return
	}
	st := rec.StatusWith(reconciler.StatusRequest{Replicas: reconciler.ReplicasNone})
	stats := rec.Stats()
	counter(ch, "baton_reconcile_passes_total", "Reconcile passes run", float64(stats.Passes))
	counter(ch, "baton_reconcile_duration_seconds_sum", "Seconds spent in reconcile passes", stats.TotalSeconds)
	gauge(ch, "baton_reconcile_last_duration_seconds", "Duration of the last pass", stats.LastDuration.Seconds())
	gauge(ch, "baton_heap_bytes", "The leader's Go heap in use (live objects and not yet collected) after the last pass", float64(stats.HeapBytes))
	counter(ch, "baton_action_errors_total", "Start and stop commands that failed", float64(stats.ActionErrors))
	counter(ch, "baton_event_errors_total", "Events the JetStream stream refused", float64(stats.EventErrors))
	counter(ch, "baton_messages_rejected_total", "Node messages refused (malformed, oversized, another version, another node's name)", float64(stats.Rejected))
	lag := 0.0
	if !st.Synced.Time.IsZero() && !st.SyncedAt.IsZero() {
		lag = st.SyncedAt.Sub(st.Synced.Time).Seconds()
	}
	gauge(ch, "baton_sync_lag_seconds", "Time from the synced commit to its application", lag)
	gauge(ch, "baton_pinned", "1 while the cluster is pinned to a revision (baton pin)", b2f(st.Pin != nil))
	gauge(ch, "baton_revision_refused", "1 while the branch points at a revision whose rollout failed before (not applied again)", b2f(st.Refused != nil))
	gauge(ch, "baton_revision_error", "1 while the newest revision does not load", b2f(st.Error != nil))
	rollouts := map[string]int{}
	states := map[protocol.ReplicaState]int{}
	for _, wl := range st.Workloads {
		gauge(ch, "baton_replicas_desired", "Replicas asked for, per workload", float64(wl.Desired), "workload", wl.Name)
		gauge(ch, "baton_replicas_running", "Replicas running, per workload", float64(wl.Running), "workload", wl.Name)
		gauge(ch, "baton_replicas_ready", "Replicas ready, per workload", float64(wl.Ready), "workload", wl.Name)
		if wl.Rollout != nil {
			rollouts[wl.Rollout.State]++
		}
		for state, n := range wl.States {
			states[state] += n
		}
	}
	for _, state := range []string{reconciler.RolloutProgressing, reconciler.RolloutComplete, reconciler.RolloutFailed, reconciler.RolloutRolledBack} {
		gauge(ch, "baton_rollouts", "Workloads by the state of their latest rollout", float64(rollouts[state]), "state", state)
	}
	ready := 0
	for _, n := range st.Nodes {
		if n.Ready {
			ready++
		}
	}
	gauge(ch, "baton_nodes", "Nodes known, by readiness", float64(ready), "ready", "true")
	gauge(ch, "baton_nodes", "Nodes known, by readiness", float64(len(st.Nodes)-ready), "ready", "false")
	for state, n := range states {
		gauge(ch, "baton_replicas", "Replicas of all workloads, by state", float64(n), "state", string(state))
	}
}
