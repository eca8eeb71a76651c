// Package store owns Baton's state in NATS JetStream: the KV bucket "baton"
// and its keys, compare-and-set writes (a reconciler that finds a key
// changed by another stops acting), the events stream, and the records that
// the CLI and the API read without a reconciler: the history of revisions,
// the pin, bad revisions and events.
package store
