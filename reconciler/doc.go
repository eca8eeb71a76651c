// Package reconciler keeps the cluster equal to the desired state. Compute is
// the pure core: from (desired, live, assignments, now) it returns the start,
// stop and forget actions to take. Reconciler is the loop around it: it
// follows node heartbeats and reports over NATS, publishes commands to the
// agents, and keeps its own state (replica assignments, the last synced
// revision) in a NATS JetStream key-value bucket.
package reconciler
