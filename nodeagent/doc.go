// Package nodeagent is Baton's kubelet: one agent per machine connects to
// NATS, sends heartbeats, reports the replicas it holds, and carries out start
// and stop commands idempotently through a Runtime (containerd in production).
// Containers carry labels (workload, replica, spec hash), so the live state is
// always read back from the runtime: a restarted agent re-adopts its running
// containers instead of starting duplicates, and removes what a start it was
// killed in the middle of left behind. A start that fails is answered with a
// reason code and tried again on the node with a back-off per replica (at
// once when a missing image arrives), unless the failure is terminal; every
// start command is checked with desired.ValidatePod first.
package nodeagent
