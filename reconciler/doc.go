// Package reconciler keeps the cluster equal to the desired state.
//
// Compute is the pure core: from an Input (the desired state, the nodes'
// views, the assignments, the scales and rollout decisions of the pass,
// now) and the pass's Live view it returns a Result with each kind in its
// own field: starts, stops, forgets, pending replicas with their reasons,
// and the disruption-mode hold. scaleFor is the one replica-count rule
// (autoscaler, then ScalingSchedule, then Git, with a typed Owner),
// computed once per pass and used by Compute, the status and Plan.
//
// Reconciler is the loop. One goroutine runs the passes and owns the
// loop's state without a lock; node messages, revisions, the pin and git
// write-back results arrive between passes through a mailbox that the pass
// drains. A pass runs pure steps over (state, input, now) for CronJobs,
// Jobs, scales, rollouts, history and bad revisions, each returning its new
// state, KV writes and events; then Compute; then applies the result (one
// batch command per node, its assignments saved first in one KV record);
// and ends by publishing an immutable snapshot that Status, the API and
// the metrics read.
//
// The KV store and the records read without the loop are in
// reconciler/store, the leader lease in reconciler/lease, the HTTP API in
// reconciler/httpapi.
package reconciler
