// Package examples holds Baton's example config repositories. The hello
// example is embedded in the binary: `baton up` seeds its local config
// repository from it.
package examples

import "embed"

// Hello is the examples/hello config repository.
//
//go:embed hello
var Hello embed.FS
