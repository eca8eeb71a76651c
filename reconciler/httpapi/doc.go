// Package httpapi serves Baton's control-plane HTTP API: health and
// readiness; the status, workloads, nodes, replicas (in pages), events,
// history, pin and plans as JSON; the git push webhook; and Prometheus
// metrics, behind bearer tokens read from a file (read-only tokens for
// viewers, admin tokens to pin). It serves on every server: a standby answers
// what it reads from JetStream (history, events, the pin) and its health, and
// 503 for what only the leader knows.
package httpapi
