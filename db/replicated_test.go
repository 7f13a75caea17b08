package db

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/patroni"
	"github.com/hitcounter/hitcounter/internal/testdb"
)

// "Counted" means replicated. A COMMIT that waits for the synchronous
// standby and is cut short (here its backend is terminated, as an
// operator or a crashing connection would) has committed on the primary
// alone: visible there, lost at a failover. A lookup that only asks the
// primary finds it committed and tells the user "counted"; the primary
// then dies and the hit is gone. The store's lookup must wait until the
// standby has it, and here, where the standby never gets it, the hit is
// found not committed on the new primary and counted there once.
func TestCommittedMeansReplicated(t *testing.T) {
	patroni.SkipUnlessEnabled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := patroni.ForTest(t, ctx)
	created, err := c.CreateDatabase(ctx, "hc_replicated")
	if err != nil {
		t.Fatal(err)
	}
	dbURL := testdb.Migrate(t, created)
	s, logs := newStore(t, dbURL, fastPolicy())
	if n, err := s.Increment(ctx, "main"); err != nil || n != 1 {
		t.Fatalf("first Increment: %d, %v", n, err)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sync, err := c.SyncStandby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	onLeader, err := pgx.Connect(ctx, c.NodeURL(leader, "hc_replicated"))
	if err != nil {
		t.Fatal(err)
	}
	defer onLeader.Close(context.Background())
	type answer struct {
		n   int64
		err error
	}
	done := make(chan answer, 1)
	// waitingForStandby returns the pid of a backend other than except
	// whose COMMIT waits for the standby; the increment must not be
	// answered meanwhile.
	waitingForStandby := func(except int32) int32 {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			select {
			case a := <-done:
				t.Fatalf("the increment was answered (%d, %v) while its commit was on the leader alone", a.n, a.err)
			default:
			}
			var pid int32
			err := onLeader.QueryRow(ctx, `select pid from pg_stat_activity
				where datname = current_database() and wait_event = 'SyncRep' and pid <> $1`, except).Scan(&pid)
			if err == nil {
				return pid
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("no COMMIT waited for the standby within 20s")
			}
		}
	}

	// The standby hears nothing from now on: the next COMMIT waits.
	if _, err := c.StopWalsender(sync); err != nil {
		t.Fatal(err)
	}
	go func() {
		n, err := s.Increment(ctx, "main")
		done <- answer{n, err}
	}()
	pid := waitingForStandby(0)
	// Cut its wait short: committed on the leader alone.
	if _, err := onLeader.Exec(ctx, "select pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if got := testdb.Hits(t, c.NodeURL(leader, "hc_replicated"), "main"); got != 2 {
		t.Fatalf("the leader holds %d hits after the cut wait, want 2 (committed there alone)", got)
	}
	// The lookup finds the marker, and its own COMMIT waits for the
	// standby too.
	waitingForStandby(pid)

	// The leader's machine dies; the standby, which never had that hit,
	// takes over.
	if err := c.KillNode(leader); err != nil {
		t.Fatal(err)
	}
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		t.Fatal("the increment never ended")
	}
	hits := testdb.Hits(t, dbURL, "main")
	switch {
	case a.err == nil && (a.n != 2 || hits != 2):
		t.Errorf("Increment answered %d, the new primary holds %d: want both 2", a.n, hits)
	case a.err != nil && hits != 1:
		t.Errorf("Increment failed (%v), the new primary holds %d: want 1", a.err, hits)
	case a.err != nil && !errors.Is(a.err, ErrUnavailable) && !errors.Is(a.err, ErrOutcomeUnknown):
		t.Errorf("Increment: %v, want unavailable or outcome unknown", a.err)
	}
	t.Logf("Increment: %d, %v; resolutions: %v", a.n, a.err, logs.with("db commit resolved"))
	if len(logs.with("db commit resolved")) == 0 {
		t.Error("the COMMIT in doubt was never looked up")
	}
}
