// Package migrations holds the tern SQL migrations, embedded so the binary
// can apply them itself (-migrate) with the same files `tern migrate` reads.
package migrations

import "embed"

// FS holds the NNN_name.sql files in version order.
//
//go:embed *.sql
var FS embed.FS
