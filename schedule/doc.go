// Package schedule decides where replicas run. Its functions are pure: they
// take values and return values, with no I/O, so they are table-tested and
// benchmarked on their own.
package schedule
