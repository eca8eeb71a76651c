// Package join owns how a machine or an operator gets a credential of the
// cluster: one-time join tokens (made by an admin, kept hashed in a KV
// bucket that only servers write), the servers' HTTPS join endpoint that
// redeems them, the record of every credential issued that way (so a node
// can be listed and removed, and its credential revoked), and agents'
// renewal of their short-lived credentials over the bus.
//
// A token carries the SHA-256 of the cluster's CA: the joining side trusts
// the join endpoint only if it presents that CA, so a token cannot be
// redeemed by an impostor server, and the CA it pins is the one it checks
// the NATS server with afterwards. The joining side makes its key pair
// itself; only the public key leaves it.
package join
