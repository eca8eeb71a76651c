// Package identity owns the cluster's identity: a small certificate
// authority for TLS on the NATS ports, and the NATS decentralized-auth keys
// (an operator, a system account and the baton account with two signing
// keys), made once by the first server and kept 0600 in its data dir. It
// issues the user credentials of each role (server, agent, admin, viewer)
// with the permissions of that role, keeps the revocations, and gives the
// embedded NATS server the options that make it trust only these.
//
// What each role may publish and subscribe to is decided here, in one
// place (roles.go); the NATS server enforces it. Agents' credentials are
// issued by a scoped signing key whose template confines an agent to its
// own node's subjects, so even a wrong claim in an agent's JWT cannot widen
// what it may do.
package identity
