// Package backup owns the cluster's state backups: a snapshot of the KV
// buckets that hold what cannot be rebuilt from the config repository
// (revision history, pins, bad revisions, node controls, join tokens and
// the record of credentials) and the cluster identity, written as one
// gzipped JSON file, and applied to the empty buckets of a new cluster.
// The leader lease, the event log and pushed images are not kept: the
// first is made again, the second is a log, the third can be pushed again.
package backup
