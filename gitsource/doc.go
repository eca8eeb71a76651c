// Package gitsource follows a git repository with go-git: it clones it once
// into a cache directory, fetches on an interval, and hands out the revision
// at the head of a branch with the files under a path. It never parses
// workloads.
package gitsource
