package main

// The generated *_templ.go files are committed; `make test` fails when they
// are stale. The generator is pinned by the go.mod tool directive, so it
// always matches the templ runtime.
//go:generate go tool templ generate
