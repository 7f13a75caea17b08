package pgproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/hitcounter/hitcounter/internal/testdb"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, ctx context.Context, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect through proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// increment adds a hit to "main" in a transaction through conn.
func increment(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	if _, err := tx.Exec(ctx, "update counters set hits = hits + 1 where name = $1", "main"); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func TestRelaysNormalTraffic(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	_, proxied := ForTest(t, dbURL)
	ctx := testCtx(t)
	conn := connect(t, ctx, proxied)

	// Simple and extended protocol, a big message both ways, a transaction.
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("select 1: got %d, %v; want 1, nil", one, err)
	}
	big := make([]byte, 200_000)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	var echoed string
	if err := conn.QueryRow(ctx, "select $1::text", string(big)).Scan(&echoed); err != nil || echoed != string(big) {
		t.Fatalf("echo of a %d-byte text: got %d bytes, %v", len(big), len(echoed), err)
	}
	before := testdb.Hits(t, dbURL, "main")
	for range 3 {
		if err := increment(ctx, conn); err != nil {
			t.Fatalf("increment: %v", err)
		}
	}
	if got, want := testdb.Hits(t, dbURL, "main"), before+3; got != want {
		t.Fatalf("hits after 3 increments: got %d, want %d", got, want)
	}
}

func TestSetDownCutsAndRefusesThenRecovers(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	p, proxied := ForTest(t, dbURL)
	ctx := testCtx(t)
	conn := connect(t, ctx, proxied)
	if _, err := conn.Exec(ctx, "select 1"); err != nil {
		t.Fatalf("select 1 before SetDown: %v", err)
	}

	p.SetDown(true)
	if _, err := conn.Exec(ctx, "select 1"); err == nil {
		t.Fatal("select 1 on a connection open across SetDown(true): got nil error, want the connection cut")
	}
	start := time.Now()
	if c, err := pgx.Connect(ctx, proxied); err == nil {
		c.Close(ctx)
		t.Fatal("connect while down: got nil error")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("connect while down took %s, want a fast failure", elapsed)
	}

	p.SetDown(false)
	conn2 := connect(t, ctx, proxied)
	if err := increment(ctx, conn2); err != nil {
		t.Fatalf("increment after SetDown(false): %v", err)
	}
}

func TestCutBeforeCommitRollsBack(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	p, proxied := ForTest(t, dbURL)
	ctx := testCtx(t)
	conn := connect(t, ctx, proxied)
	before := testdb.Hits(t, dbURL, "main")

	p.Arm(CutBeforeCommit, 1)
	if err := increment(ctx, conn); err == nil {
		t.Fatal("increment with CutBeforeCommit armed: got nil error")
	}
	if !conn.IsClosed() {
		t.Error("connection still open after CutBeforeCommit")
	}
	if got := p.Armed(CutBeforeCommit); got != 0 {
		t.Errorf("Armed(CutBeforeCommit) after one commit: got %d, want 0", got)
	}
	if got := testdb.Hits(t, dbURL, "main"); got != before {
		t.Fatalf("hits after a COMMIT that never reached the server: got %d, want %d (unchanged)", got, before)
	}

	// The fault is used up: the next commit goes through.
	conn2 := connect(t, ctx, proxied)
	if err := increment(ctx, conn2); err != nil {
		t.Fatalf("increment after the fault: %v", err)
	}
	if got, want := testdb.Hits(t, dbURL, "main"), before+1; got != want {
		t.Fatalf("hits: got %d, want %d", got, want)
	}
}

// CrashAtCommit: the client loses its connection with the COMMIT unsent,
// the proxy refuses connections, and the transaction stays open on the
// server, neither committed nor rolled back, until SetDown(false).
func TestCrashAtCommitLeavesTheTransactionOpen(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	p, proxied := ForTest(t, dbURL)
	ctx := testCtx(t)
	conn := connect(t, ctx, proxied)
	other := connect(t, ctx, proxied)
	before := testdb.Hits(t, dbURL, "main")
	var pid int32
	if err := conn.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		t.Helper()
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var s string
		err = c.QueryRow(ctx, "select coalesce((select state from pg_stat_activity where pid = $1), 'gone')", pid).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	p.Arm(CrashAtCommit, 1)
	if err := increment(ctx, conn); err == nil {
		t.Fatal("increment with CrashAtCommit armed: got nil error")
	}
	if p.Armed(CrashAtCommit) != 0 {
		t.Fatal("the fault did not fire")
	}
	if _, err := other.Exec(ctx, "select 1"); err == nil {
		t.Error("another connection survived the crash")
	}
	if c, err := pgx.Connect(ctx, proxied); err == nil {
		c.Close(ctx)
		t.Error("a new connection was accepted after the crash")
	}
	if got := state(); got != "idle in transaction" {
		t.Errorf("the faulted transaction on the server: %s, want idle in transaction", got)
	}
	if got := testdb.Hits(t, dbURL, "main"); got != before {
		t.Errorf("hits while the COMMIT is held: %d, want %d", got, before)
	}

	p.SetDown(false)
	deadline := time.Now().Add(10 * time.Second)
	for state() != "gone" {
		if time.Now().After(deadline) {
			t.Fatal("the held server connection was not closed by SetDown(false)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testdb.Hits(t, dbURL, "main"); got != before {
		t.Errorf("hits after the held transaction ended: %d, want %d (rolled back)", got, before)
	}
	conn2 := connect(t, ctx, proxied)
	if err := increment(ctx, conn2); err != nil {
		t.Fatalf("increment after SetDown(false): %v", err)
	}
}

func TestCutAfterCommitCommits(t *testing.T) {
	t.Parallel()
	for _, sslmode := range []string{"disable", "prefer"} { // prefer sends an SSLRequest first
		t.Run("sslmode="+sslmode, func(t *testing.T) {
			dbURL := testdb.NewMigrated(t)
			p, proxied := ForTest(t, dbURL)
			proxied = testdb.WithQuery(t, proxied, "sslmode", sslmode)
			ctx := testCtx(t)
			before := testdb.Hits(t, dbURL, "main")

			const n = 2
			p.Arm(CutAfterCommit, n)
			for i := range n {
				conn := connect(t, ctx, proxied)
				err := increment(ctx, conn)
				if err == nil {
					t.Fatalf("increment %d with CutAfterCommit armed: got nil error", i+1)
				}
				if !conn.IsClosed() {
					t.Errorf("connection still open after CutAfterCommit")
				}
				// The server committed before the client saw the error.
				if got, want := testdb.Hits(t, dbURL, "main"), before+int64(i)+1; got != want {
					t.Fatalf("hits after lost COMMIT acknowledgement %d: got %d, want %d", i+1, got, want)
				}
			}
			if got := p.Armed(CutAfterCommit); got != 0 {
				t.Errorf("Armed(CutAfterCommit) after %d commits: got %d, want 0", n, got)
			}
			conn := connect(t, ctx, proxied)
			if err := increment(ctx, conn); err != nil {
				t.Fatalf("increment after the faults: %v", err)
			}
			if got, want := testdb.Hits(t, dbURL, "main"), before+n+1; got != want {
				t.Fatalf("hits: got %d, want %d", got, want)
			}
		})
	}
}

func TestFaultsIgnoreOtherQueries(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	p, proxied := ForTest(t, dbURL)
	ctx := testCtx(t)
	conn := connect(t, ctx, proxied)
	p.Arm(CutBeforeCommit, 1)
	// Not COMMITs: a query mentioning commit, and a rollback.
	if _, err := conn.Exec(ctx, "select 'commit'"); err != nil {
		t.Fatalf("select 'commit': %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if got := p.Armed(CutBeforeCommit); got != 1 {
		t.Fatalf("Armed(CutBeforeCommit) after non-COMMIT queries: got %d, want 1", got)
	}
	p.Arm(CutBeforeCommit, 0)
	if err := increment(ctx, conn); err != nil {
		t.Fatalf("increment after disarming: %v", err)
	}
}

func TestCloseCutsConnectionsAndStopsListening(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	ctx := testCtx(t)
	conn := connect(t, ctx, u.String()) // stays open and idle

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s with an idle client connection open")
	}
	if _, err := conn.Exec(ctx, "select 1"); err == nil {
		t.Error("select 1 after Close: got nil error")
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("dial after Close: got nil error, want refused")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestFraming runs against a fake server to check the cases PostgreSQL
// cannot be made to produce on demand: GSSENCRequest and SSLRequest both
// answered 'N', and a NoticeResponse (type 'N') right after startup.
func TestFraming(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := Start(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	committed := make(chan error, 1) // the fake server's view of the COMMIT
	go func() {
		committed <- fakeServer(ln)
	}()

	client, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	for _, code := range []uint32{gssEncRequestCode, sslRequestCode} {
		req := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), code)
		if _, err := client.Write(req); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(client, b[:]); err != nil || b[0] != 'N' {
			t.Fatalf("answer to request %d: got %q, %v; want 'N'", code, b[0], err)
		}
	}
	fe := pgproto3.NewFrontend(client, client)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	expect := func(want pgproto3.BackendMessage) {
		t.Helper()
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if got, want := typeName(msg), typeName(want); got != want {
			t.Fatalf("received %s, want %s", got, want)
		}
	}
	expect(&pgproto3.NoticeResponse{})
	expect(&pgproto3.AuthenticationOk{})
	expect(&pgproto3.ReadyForQuery{})

	p.Arm(CutAfterCommit, 1)
	fe.Send(&pgproto3.Query{String: " COMMIT ;"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if msg, err := fe.Receive(); err == nil {
		t.Fatalf("after a COMMIT under CutAfterCommit: received %s, want the connection cut", typeName(msg))
	}
	select {
	case err := <-committed:
		if err != nil {
			t.Fatalf("fake server: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fake server did not finish")
	}
}

// fakeServer accepts one connection, refuses encryption twice, greets with a
// notice and answers one COMMIT fully; it then expects the proxy to hang up.
func fakeServer(ln net.Listener) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	be := pgproto3.NewBackend(c, c)
	for range 2 {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return err
		}
		switch msg.(type) {
		case *pgproto3.GSSEncRequest, *pgproto3.SSLRequest:
		default:
			return errors.New("want an encryption request, got " + typeName(msg))
		}
		if _, err := c.Write([]byte{'N'}); err != nil {
			return err
		}
	}
	if msg, err := be.ReceiveStartupMessage(); err != nil {
		return err
	} else if _, ok := msg.(*pgproto3.StartupMessage); !ok {
		return errors.New("want StartupMessage, got " + typeName(msg))
	}
	be.Send(&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "hello"})
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	msg, err := be.Receive()
	if err != nil {
		return err
	}
	if q, ok := msg.(*pgproto3.Query); !ok || q.String != " COMMIT ;" {
		return errors.New("want Query \" COMMIT ;\", got " + typeName(msg))
	}
	be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COMMIT")})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	if msg, err := be.Receive(); err == nil {
		return errors.New("after the COMMIT reply: got " + typeName(msg) + ", want the proxy to hang up")
	}
	return nil
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func TestIsCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want bool
	}{
		{"commit\x00", true},
		{"COMMIT\x00", true},
		{"  Commit ; \x00", true},
		{"commit;", true},
		{"commit;;\x00", false},
		{"rollback\x00", false},
		{"select 'commit'\x00", false},
		{"commit prepared 'x'\x00", false},
		{"\x00", false},
	}
	for _, tt := range tests {
		if got := isCommit([]byte(tt.body)); got != tt.want {
			t.Errorf("isCommit(%q): got %v, want %v", tt.body, got, tt.want)
		}
	}
}

// A write is what a Sync commits in an implicit transaction.
func TestIsWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  bool
	}{
		{"update counters set hits = hits + $2 where name = $1\x00", true},
		{"  INSERT INTO t values (1)\x00", true},
		{"delete\nfrom t\x00", true},
		{"select hits from counters\x00", false},
		{"updated\x00", false},
		{"update\x00", false},
		{"with x as (update t set a = 1) select 1\x00", true},
		{"WITH x AS (\n\tINSERT INTO t VALUES (1) RETURNING 1) SELECT 1\x00", true},
		{"with x as (select updated_at from t) select 1\x00", false},
		{"\x00", false},
	}
	for _, tt := range tests {
		if got := isWrite([]byte(tt.query)); got != tt.want {
			t.Errorf("isWrite(%q): got %v, want %v", tt.query, got, tt.want)
		}
	}
}

func TestIsBegin(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]bool{
		"begin\x00": true, " BEGIN;\x00": true, "start transaction\x00": true,
		"begin isolation level serializable\x00": true, "beginning\x00": false, "commit\x00": false,
	} {
		if got := isBegin([]byte(q)); got != want {
			t.Errorf("isBegin(%q): got %v, want %v", q, got, want)
		}
	}
}
