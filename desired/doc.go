// Package desired owns Baton's workload model: it loads the Kubernetes-shaped
// YAML and CUE documents of one revision of a config repository, validates
// them against an embedded CUE schema with errors that name the file, line,
// column and field, decrypts SealedSecrets, applies defaults, and computes a
// canonical hash per pod template. It also compares revisions (Diff), warns
// of risky settings (Lint), and checks a pod spec that did not come through
// the loader (ValidatePod, the agent's check of a start command). It never
// talks to NATS or containerd.
package desired
