// Package schedule decides where replicas run (Place: filters, spread,
// bin-packing) and which cron window of a ScalingSchedule is in effect
// (Windows). Its functions are pure: they take values and return values,
// with no I/O, so they are table-tested and benchmarked on their own.
package schedule
