// Package testdb gives each test its own freshly migrated PostgreSQL
// database on the server named by TEST_DATABASE_URL (or DATABASE_URL), so
// tests never share state. `make test` starts a throwaway server and sets it.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/migrations"
)

// ServerURL is the URL of the PostgreSQL server tests may create databases on.
func ServerURL(t testing.TB) string {
	t.Helper()
	for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	t.Fatal("no PostgreSQL server for tests: run `make test`, which starts one, or set TEST_DATABASE_URL to a server where this user may CREATE DATABASE")
	return ""
}

// New creates an empty database for t and returns its URL; it is dropped
// when t ends.
func New(t testing.TB) string {
	t.Helper()
	server := ServerURL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "hc_test_" + hex.EncodeToString(b)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "create database "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(ctx, "drop database if exists "+name+" with (force)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("parse test server URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// NewMigrated is New with the project's migrations applied, as tern would.
func NewMigrated(t testing.TB) string {
	t.Helper()
	return Migrate(t, New(t))
}

// Migrate applies the project's migrations to the database of dbURL, as
// tern would, and returns dbURL.
func Migrate(t testing.TB, dbURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	defer conn.Close(context.Background())
	m, err := migrations.NewMigrator(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Migrate(ctx); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return dbURL
}

// Connect connects straight to the database, bypassing the code under
// test; the connection closes when the test ends, or earlier by the caller.
func Connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn := connect(t, dbURL)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// connect is Connect for a caller that closes the connection itself at
// once: Hits and Exec, which tests call in polling loops, where a
// cleanup per call would pile up until the test ends.
func connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return conn
}

// Hits reads a counter straight from the database, bypassing the code under test.
func Hits(t testing.TB, dbURL, name string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := connect(t, dbURL)
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, "select hits from counters where name = $1", name).Scan(&n); err != nil {
		t.Fatalf("read counter %q: %v", name, err)
	}
	return n
}

// WithQuery returns dbURL with the query parameter k set to v, e.g.
// pool_max_conns or sslmode.
func WithQuery(t testing.TB, dbURL, k, v string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("parse database URL: %v", err)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// Exec runs one statement straight on the database, bypassing the code
// under test (e.g. to create a counter a test uses).
func Exec(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := connect(t, dbURL)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
