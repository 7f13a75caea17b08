package db

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// fastPolicy retries quickly and without jitter, so waits are exact.
func fastPolicy() RetryPolicy {
	return RetryPolicy{
		MaxRetries:   3,
		InitialDelay: time.Millisecond,
		Factor:       2,
		MaxDelay:     10 * time.Millisecond,
		Jitter:       0,
	}
}

// logSink collects the JSON lines of a slog.JSONHandler and lets a test
// wait for one to appear.
type logSink struct {
	t       testing.TB
	mu      sync.Mutex
	partial bytes.Buffer
	records []map[string]any
	changed chan struct{} // closed and replaced on every new record
}

func newLogSink(t testing.TB) (*slog.Logger, *logSink) {
	t.Helper()
	s := &logSink{t: t, changed: make(chan struct{})}
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug})), s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial.Write(p)
	for {
		line, err := s.partial.ReadBytes('\n')
		if err != nil { // no complete line yet: keep it for the next Write
			rest := append([]byte(nil), line...)
			s.partial.Reset()
			s.partial.Write(rest)
			break
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			s.t.Errorf("log line is not JSON: %q: %v", line, err)
			continue
		}
		s.records = append(s.records, rec)
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return len(p), nil
}

// with returns the records whose msg is msg.
func (s *logSink) with(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, r := range s.records {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// waitFor waits until there are at least n records with msg.
func (s *logSink) waitFor(t testing.TB, msg string, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if len(s.with(msg)) >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %d %q log records within 10s; have %d", n, msg, len(s.with(msg)))
		}
	}
}

// num reads a JSON number field as an int64 (JSON decodes numbers as float64).
func num(t testing.TB, rec map[string]any, key string) int64 {
	t.Helper()
	f, ok := rec[key].(float64)
	if !ok {
		t.Fatalf("log record %v: field %q is %T, want a number", rec, key, rec[key])
	}
	return int64(f)
}

// newStore opens a Store with retry policy p on dbURL whose logs go to the
// returned sink.
func newStore(t testing.TB, dbURL string, p RetryPolicy) (*Store, *logSink) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Retry = p
	return newStoreWith(t, dbURL, cfg)
}

func newStoreWith(t testing.TB, dbURL string, cfg Config) (*Store, *logSink) {
	t.Helper()
	log, sink := newLogSink(t)
	s, err := Open(dbURL, cfg, log)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	// Get today's visitor salt now, so a fault a test arms hits the
	// test's own statement, not the day's salt transaction. Tests of
	// a server that is down or not migrated have no salt to make.
	_, _ = s.salt(testCtx(t), s.Today())
	return s, sink
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// connect opens a connection of the test's own to dbURL, closed when t ends.
func connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Increment adds one view of the named counter, with no visitor, and
// returns the new total: Record for tests that only need the total.
func (s *Store) Increment(ctx context.Context, name string) (int64, error) {
	c, err := s.Record(ctx, name, Hit{})
	return c.Total, err
}
