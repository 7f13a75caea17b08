//go:build race

package deploy

// Under -race the program is built with it too, so a race in it fails the
// test that made it happen, as it did when the tests ran it in-process.
func init() { buildFlags = append(buildFlags, "-race") }
