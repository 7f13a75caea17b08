// Package migrations holds the tern SQL migrations, embedded so the binary
// can apply them itself (-migrate) with the same files `tern migrate` reads.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

// FS holds the NNN_name.sql files in version order.
//
//go:embed *.sql
var FS embed.FS

// VersionTable is where tern records the schema version: the tern CLI's
// default name, so `tern migrate` (tern.conf names none) and -migrate agree.
const VersionTable = "schema_version"

// NewMigrator is tern's migrator on conn with the embedded migrations
// loaded: the one setup the app, the tests and the tools share.
func NewMigrator(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("migrator: %w", err)
	}
	if err := m.LoadMigrations(FS); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return m, nil
}

// Latest is the version of the newest embedded migration.
func Latest() (int32, error) {
	names, err := migrate.FindMigrations(FS)
	if err != nil {
		return 0, fmt.Errorf("find migrations: %w", err)
	}
	return int32(len(names)), nil
}
