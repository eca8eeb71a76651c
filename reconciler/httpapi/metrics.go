package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/batonhq/baton/nodeagent/protocol"
	"github.com/batonhq/baton/reconciler"
)

// metrics writes the Prometheus text exposition format (0.0.4).
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	rec := s.Leader()
	leader := 0
	if rec != nil {
		leader = 1
	}
	metric(w, "baton_leader", "gauge", "1 when this server leads", fmt.Sprintf("baton_leader{server=%q} %d", s.id, leader))
	if rec == nil {
		return
	}
	st := rec.StatusWith(reconciler.StatusRequest{Replicas: reconciler.ReplicasNone})
	stats := rec.Stats()
	metric(w, "baton_reconcile_passes_total", "counter", "Reconcile passes run", fmt.Sprintf("baton_reconcile_passes_total %d", stats.Passes))
	metric(w, "baton_reconcile_duration_seconds_sum", "counter", "Seconds spent in reconcile passes", fmt.Sprintf("baton_reconcile_duration_seconds_sum %g", stats.TotalSeconds))
	metric(w, "baton_reconcile_last_duration_seconds", "gauge", "Duration of the last pass", fmt.Sprintf("baton_reconcile_last_duration_seconds %g", stats.LastDuration.Seconds()))
	metric(w, "baton_heap_bytes", "gauge", "The leader's Go heap in use (live objects and not yet collected) after the last pass", fmt.Sprintf("baton_heap_bytes %d", stats.HeapBytes))
	metric(w, "baton_action_errors_total", "counter", "Start and stop commands that failed", fmt.Sprintf("baton_action_errors_total %d", stats.ActionErrors))
	metric(w, "baton_event_errors_total", "counter", "Events the JetStream stream refused", fmt.Sprintf("baton_event_errors_total %d", stats.EventErrors))
	metric(w, "baton_messages_rejected_total", "counter", "Node messages refused (malformed, oversized, another version, another node's name)", fmt.Sprintf("baton_messages_rejected_total %d", stats.Rejected))
	lag := 0.0
	if !st.Synced.Time.IsZero() && !st.SyncedAt.IsZero() {
		lag = st.SyncedAt.Sub(st.Synced.Time).Seconds()
	}
	metric(w, "baton_sync_lag_seconds", "gauge", "Time from the synced commit to its application", fmt.Sprintf("baton_sync_lag_seconds %g", lag))
	pinned := 0
	if st.Pin != nil {
		pinned = 1
	}
	metric(w, "baton_pinned", "gauge", "1 while the cluster is pinned to a revision (baton pin)", fmt.Sprintf("baton_pinned %d", pinned))
	refused := 0
	if st.Refused != nil {
		refused = 1
	}
	metric(w, "baton_revision_refused", "gauge", "1 while the branch points at a revision whose rollout failed before (not applied again)", fmt.Sprintf("baton_revision_refused %d", refused))
	revErr := 0
	if st.Error != nil {
		revErr = 1
	}
	metric(w, "baton_revision_error", "gauge", "1 while the newest revision does not load", fmt.Sprintf("baton_revision_error %d", revErr))
	var desired, running, ready []string
	rollouts := map[string]int{}
	for _, wl := range st.Workloads {
		desired = append(desired, fmt.Sprintf("baton_replicas_desired{workload=%q} %d", wl.Name, wl.Desired))
		running = append(running, fmt.Sprintf("baton_replicas_running{workload=%q} %d", wl.Name, wl.Running))
		ready = append(ready, fmt.Sprintf("baton_replicas_ready{workload=%q} %d", wl.Name, wl.Ready))
		if wl.Rollout != nil {
			rollouts[wl.Rollout.State]++
		}
	}
	metric(w, "baton_replicas_desired", "gauge", "Replicas asked for, per workload", desired...)
	metric(w, "baton_replicas_running", "gauge", "Replicas running, per workload", running...)
	metric(w, "baton_replicas_ready", "gauge", "Replicas ready, per workload", ready...)
	var ro []string
	for _, state := range []string{reconciler.RolloutProgressing, reconciler.RolloutComplete, reconciler.RolloutFailed, reconciler.RolloutRolledBack} {
		ro = append(ro, fmt.Sprintf("baton_rollouts{state=%q} %d", state, rollouts[state]))
	}
	metric(w, "baton_rollouts", "gauge", "Workloads by the state of their latest rollout", ro...)
	readyNodes, nodes := 0, len(st.Nodes)
	for _, n := range st.Nodes {
		if n.Ready {
			readyNodes++
		}
	}
	metric(w, "baton_nodes", "gauge", "Nodes known, by readiness",
		fmt.Sprintf("baton_nodes{ready=\"true\"} %d", readyNodes), fmt.Sprintf("baton_nodes{ready=\"false\"} %d", nodes-readyNodes))
	var states []string
	count := map[protocol.ReplicaState]int{}
	for _, wl := range st.Workloads {
		for state, n := range wl.States {
			count[state] += n
		}
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		states = append(states, fmt.Sprintf("baton_replicas{state=%q} %d", k, count[protocol.ReplicaState(k)]))
	}
	metric(w, "baton_replicas", "gauge", "Replicas of all workloads, by state", states...)
}

func metric(w io.Writer, name, typ, help string, samples ...string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	if len(samples) > 0 {
		fmt.Fprintln(w, strings.Join(samples, "\n"))
	}
}
