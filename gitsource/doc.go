// Package gitsource follows a git repository with go-git: it clones it once
// into a cache directory, fetches on an interval or when a push webhook or
// Trigger says so, and hands out the revision a branch, tag, semver range or
// commit names, with the files under a path, as a read-only tree that cannot
// leave its root. It checks commit signatures when asked, reads earlier
// revisions from its cache, and writes back: reverts of failed revisions and
// git notes of their outcomes. It never parses workloads.
package gitsource
