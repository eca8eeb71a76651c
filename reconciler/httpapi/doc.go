// Package httpapi serves Baton's control-plane HTTP API: health and
// readiness, the status, events and history as versioned JSON, and
// Prometheus metrics, behind bearer tokens read from a file (read-only
// tokens for viewers). It serves on every server: a standby answers what
// it can (history, events, health) and says who leads for the rest.
package httpapi
