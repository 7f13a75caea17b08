// Package assets holds the static files. nginx serves this folder as
// /static/ in production; the binary embeds the same files as a fallback.
//
// Vendored: htmx-4.0.1.min.js is dist/htmx.min.js of the npm package
// htmx.org@4.0.1 (BSD-0-Clause); SHA256SUMS records its checksum and
// scripts/vendor-htmx fetches and verifies it again.
package assets

import (
	"embed"
	"regexp"
)

// HTMX is the vendored htmx file; its version is part of the name, so a new
// version is a new URL and caches never serve a stale copy.
const HTMX = "htmx-4.0.1.min.js"

// FS is the static files, served under /static/.
//
//go:embed *.js *.css *.svg
var FS embed.FS

var versioned = regexp.MustCompile(`-\d+\.\d+\.\d+[.-]`)

// Versioned reports whether a file name carries a version, and so never
// changes: such files may be cached for a year.
func Versioned(name string) bool { return versioned.MatchString(name) }
