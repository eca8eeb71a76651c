// Package lease elects one leader among the Baton servers that share a NATS
// cluster, with a key in a JetStream KV bucket whose entries the NATS server
// expires: a leader that stops renewing loses the lease after its TTL. The
// term of a leadership is the KV revision at which it was taken; agents
// refuse the commands of a term older than one they have seen.
package lease
