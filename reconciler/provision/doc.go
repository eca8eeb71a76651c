// Package provision calls a NodePool's provisioner, whatever makes and
// removes its machines (issue 18): an executable that reads one JSON
// request on stdin and writes one JSON answer on stdout, or an HTTPS
// webhook that gets the request as a POST signed with HMAC-SHA256. It
// owns the protocol and its guards (a deadline per call, bounded and
// checked answers, a provisioner that returns more machines than asked or
// others than named refused); the decisions of when to call it are the
// reconciler's.
package provision
