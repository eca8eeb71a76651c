// Package desired owns Baton's workload model: it loads the Kubernetes-shaped
// YAML documents of one revision of a config repository, validates them with
// errors that name the file, line, column and field, applies defaults, and
// computes a canonical hash per pod template. It never talks to NATS or
// containerd.
package desired
