// Package nodeagent is Baton's kubelet: one agent per machine connects to
// NATS, sends heartbeats, reports the replicas it holds, and carries out start
// and stop commands idempotently through a Runtime (containerd in production).
// Containers carry labels (workload, replica, spec hash), so the live state is
// always read back from the runtime: a restarted agent re-adopts its running
// containers instead of starting duplicates.
package nodeagent
