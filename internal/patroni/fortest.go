package patroni

import (
	"context"
	"os"
	"testing"
)

// TestEnv turns the tests that run a cluster on: they need patroni and etcd
// (scripts/deps patroni) and a minute or more each, so `go test ./...` skips
// them and `make test-ha` sets TestEnv=1.
const TestEnv = "HITCOUNTER_HA_TEST"

// SkipUnlessEnabled skips t unless TestEnv is 1.
func SkipUnlessEnabled(t testing.TB) {
	t.Helper()
	if os.Getenv(TestEnv) != "1" {
		t.Skipf("needs patroni, etcd and PostgreSQL server binaries, and a minute or more: set %s=1 (make test-ha does, after scripts/deps patroni)", TestEnv)
	}
}

// ForTest starts a cluster with the default options for t, stopped when t
// ends, or skips t unless SkipUnlessEnabled lets it run.
func ForTest(t testing.TB, ctx context.Context) *Cluster {
	t.Helper()
	SkipUnlessEnabled(t)
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}
