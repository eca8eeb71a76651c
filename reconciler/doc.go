// Package reconciler keeps the cluster equal to the desired state. Compute is
// the pure core: from (desired, live, assignments, now) it returns the start,
// stop and forget actions to take, and the replicas that fit nowhere
// (pending) or are held (disruption mode). Pure steps around it advance
// rollouts, autoscalers, CronJobs, Jobs and the history of revisions.
// Reconciler is the loop: it follows node heartbeats and reports over NATS,
// publishes commands to the agents, answers status requests, and keeps its
// state (assignments, the synced revision, rollouts, autoscalers, CronJobs,
// Jobs, history, bad revisions, the pin) in a NATS JetStream key-value
// bucket; Lease elects one leader among servers; Plan says what a revision
// would do.
package reconciler
