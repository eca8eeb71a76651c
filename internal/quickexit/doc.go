// Package quickexit keeps the children a test binary starts of itself from
// sleeping as they exit. A binary built with -race sleeps a second before
// a successful exit (the race runtime's atexit_sleep_ms, 1000 by default,
// lets other threads finish reporting); tests that run their own binary as
// a child (a CUE evaluation in isolation, a client in a pod's network
// namespace, a server or an agent on a host) paid it for each child, which
// made the race-enabled suite minutes longer. Races a child finds are still
// reported, when found, and still fail it (exit code 66).
package quickexit
