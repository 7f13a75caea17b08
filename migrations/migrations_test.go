package migrations_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/migrations"
)

// The README's way to migrate by hand works: tern, pinned in go.mod, run in
// this folder with only DATABASE_URL set.
func TestTernCLIMigrates(t *testing.T) {
	dbURL := testdb.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "tool", "tern", "migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go tool tern migrate: %v\n%s", err, out)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var version int32
	if err := conn.QueryRow(ctx, "select version from "+migrations.VersionTable).Scan(&version); err != nil {
		t.Fatal(err)
	}
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	if version != latest {
		t.Fatalf("tern left the schema at version %d, want %d", version, latest)
	}
	if got := testdb.Hits(t, dbURL, "main"); got != 0 {
		t.Fatalf("the main counter starts at %d, want 0", got)
	}
}

// Every migration can be rolled back, so a bad release can go back a step.
func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	m, err := migrations.NewMigrator(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 0); err != nil {
		t.Fatalf("migrate down to 0: %v", err)
	}
	if err := m.Migrate(ctx); err != nil {
		t.Fatalf("migrate up again: %v", err)
	}
}
