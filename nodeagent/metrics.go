package nodeagent

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batonhq/baton/nodeagent/protocol"
)

// Metrics are an agent's Prometheus metrics (baton agent
// --metrics-listen): its pods by state, container restarts, probe
// failures, image imports and pulls, and how long starts take. A nil
// *Metrics counts nothing.
type Metrics struct {
	reg      *prometheus.Registry
	pods     *prometheus.GaugeVec
	restarts prometheus.Counter
	probes   *prometheus.CounterVec
	images   *prometheus.CounterVec
	starts   *prometheus.HistogramVec
}

// NewMetrics makes an agent's metrics in a registry of their own, with
// the Go runtime's and the process's.
func NewMetrics(node string) *Metrics {
	labels := prometheus.Labels{"node": node}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		pods: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "baton_agent_pods", ConstLabels: labels,
			Help: "Pods (replicas) on this node, by state, as last reported"}, []string{"state"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_agent_container_restarts_total", ConstLabels: labels,
			Help: "Containers restarted in place (restartPolicy)"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_agent_probe_failures_total", ConstLabels: labels,
			Help: "Probe attempts that failed, by probe (startup, liveness, readiness)"}, []string{"probe"}),
		images: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_agent_image_pulls_total", ConstLabels: labels,
			Help: "Images brought to the node, by source (store: the cluster's image store; registry) and result (ok, error)"},
			[]string{"source", "result"}),
		starts: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_agent_start_duration_seconds", ConstLabels: labels,
			Help:    "From a start command taken to the pod started (image, network, volumes, containers), by result (ok, error)",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"result"}),
	}
	// Every series known from the start, at 0 (rates need a first sample).
	for _, p := range []string{"startup", "liveness", "readiness"} {
		m.probes.WithLabelValues(p)
	}
	for _, r := range []string{"ok", "error"} {
		m.starts.WithLabelValues(r)
		for _, src := range []string{"store", "registry"} {
			m.images.WithLabelValues(src, r)
		}
	}
	m.reg.MustRegister(m.pods, m.restarts, m.probes, m.images, m.starts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4})
}

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// podStates are the states a report's replicas are in.
var podStates = []protocol.ReplicaState{protocol.StateCreating, protocol.StateRunning, protocol.StateWaiting,
	protocol.StateExited, protocol.StateFailed, protocol.StateStopping}

func (m *Metrics) setPods(reps []protocol.Replica) {
	if m == nil {
		return
	}
	count := map[protocol.ReplicaState]int{}
	for _, r := range reps {
		count[r.State]++
	}
	// Every state each time, none reset: a scrape never sees one missing.
	for _, s := range podStates {
		m.pods.WithLabelValues(string(s)).Set(float64(count[s]))
	}
}

func (m *Metrics) restarted() {
	if m != nil {
		m.restarts.Inc()
	}
}

func (m *Metrics) probeFailed(probe string) {
	if m != nil {
		m.probes.WithLabelValues(probe).Inc()
	}
}

func (m *Metrics) imageFetched(source string, err error) {
	if m != nil {
		m.images.WithLabelValues(source, outcome(err)).Inc()
	}
}

func (m *Metrics) started(d time.Duration, err error) {
	if m != nil {
		m.starts.WithLabelValues(outcome(err)).Observe(d.Seconds())
	}
}
