// Package schema embeds Baton's CUE schema (schema.cue): the one definition
// of every object Baton accepts.
package schema

import _ "embed"

// Source is the CUE source of the schema, package "baton.dev/schema".
//
//go:embed schema.cue
var Source string

// ImportPath is the path CUE files use to import the schema.
const ImportPath = "baton.dev/schema"
