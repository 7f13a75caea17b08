package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// Slow clients (slowloris) cannot starve the others: with 200 connections
// sending their headers a byte at a time, other clients' pages, polls and
// clicks are answered, clicks counted exactly, and the app closes every
// slow connection at its header timeout. Through nginx: package deploy.
func TestSlowClientsDoNotStarveOthers(t *testing.T) {
	dbURL := testdb.NewMigrated(t)
	app := startRun(t, map[string]string{"DATABASE_URL": dbURL})
	addr := strings.TrimPrefix(app.base, "http://")
	testkit.Slowloris(t, func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) },
		&http.Client{Timeout: 10 * time.Second}, app.base, func() int64 { return testdb.Hits(t, dbURL, "main") })
}
