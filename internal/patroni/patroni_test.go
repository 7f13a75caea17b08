package patroni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestFaults runs a real 3-node cluster through each fault and checks that
// the app's multi-host URL finds the new primary, how long writes were
// impossible, and that no acknowledged row is lost.
func TestFaults(t *testing.T) {
	SkipUnlessEnabled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()

	began := time.Now()
	// HITCOUNTER_HA_DIR keeps the cluster's folder (logs, data) for a look
	// afterwards; by default it is a temporary folder that Stop removes.
	keep := os.Getenv("HITCOUNTER_HA_DIR")
	c, err := Start(ctx, Options{Dir: keep, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if left := clusterProcesses(c); len(left) > 0 {
			t.Errorf("processes left after Stop: %v", left)
		}
		if _, err := os.Stat(c.Dir); keep == "" && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stop left %s behind (%v)", c.Dir, err)
		}
	})
	t.Logf("bootstrap: healthy after %.1fs", time.Since(began).Seconds())
	t.Logf("idle cluster: %s", clusterMemory(c))

	mustExec(t, ctx, c.URL("postgres"), "create table hits (id bigint primary key, at timestamptz not null default now())")
	w := &writer{c: c, url: c.URL("postgres")}
	for range 20 {
		if _, err := w.write(ctx); err != nil {
			t.Fatalf("write on a healthy cluster: %v", err)
		}
	}

	healthy := func(what string) {
		t.Helper()
		began := time.Now()
		hctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		if err := c.WaitHealthy(hctx); err != nil {
			t.Fatalf("after %s: %v\n%s", what, err, c.logTails(20))
		}
		t.Logf("after %s: healthy again in %.1fs", what, time.Since(began).Seconds())
	}
	leader := func() string {
		t.Helper()
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	var figures []string
	measure := func(what, old string, t0 time.Time) {
		t.Helper()
		d, node, err := w.firstWriteAway(ctx, t0, old)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, c.logTails(20))
		}
		t.Logf("%s (leader %s): first write via URL() committed on %s %.1fs after the fault", what, old, node, d.Seconds())
		figures = append(figures, fmt.Sprintf("%s %.1fs", what, d.Seconds()))
	}

	// 1. The leader's machine vanishes: its key expires after TTL and the
	// synchronous standby takes over.
	old := leader()
	t0 := time.Now()
	if err := c.KillNode(old); err != nil {
		t.Fatal(err)
	}
	measure("leader node killed", old, t0)
	if err := c.StartNode(ctx, old); err != nil {
		t.Fatal(err)
	}
	healthy("restarting " + old)

	// 2. The leader's postmaster crashes under a live Patroni:
	// primary_start_timeout 0 fails over instead of restarting it.
	old = leader()
	t0 = time.Now()
	if err := c.CrashPostgres(old); err != nil {
		t.Fatal(err)
	}
	measure("leader postgres crashed", old, t0)
	healthy("postgres crash on " + old)

	// 3. A planned switchover.
	old = leader()
	t0 = time.Now()
	switched := make(chan error, 1)
	go func() { switched <- c.Switchover(ctx, "") }()
	measure("switchover", old, t0)
	if err := <-switched; err != nil {
		t.Fatal(err)
	}
	healthy("switchover from " + old)

	// 4. The synchronous standby's walsender stalls: a COMMIT must wait
	// for it rather than be acknowledged on the primary alone.
	sync, err := c.SyncStandby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resume, err := c.StopWalsender(sync)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err := w.write(wctx)
		done <- err
	}()
	select {
	case err := <-done:
		_ = resume()
		t.Fatalf("a write finished (err %v) while the walsender to synchronous standby %s was stopped", err, sync)
	case <-time.After(2 * time.Second):
		t.Logf("walsender to %s stopped: a write is still waiting after 2s, as it must", sync)
	}
	resumed := time.Now()
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the waiting write failed after SIGCONT: %v", err)
		}
		t.Logf("after SIGCONT the waiting write committed in %.2fs", time.Since(resumed).Seconds())
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting write did not finish 30s after SIGCONT")
	}
	healthy("walsender stall")

	// No acknowledged row may be missing.
	present := map[int64]bool{}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(ctx, "select id from hits")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		present[id] = true
	}
	acked := w.ackedIDs()
	var lost []int64
	for _, id := range acked {
		if !present[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged rows lost: %v", len(lost), lost)
	}
	t.Logf("%d writes acknowledged, %d rows present (%d committed without reaching their client), %d lost",
		len(acked), len(ids), len(ids)-len(acked)+len(lost), len(lost))
	t.Logf("seconds to the first write on a new leader: %s", strings.Join(figures, ", "))
}

// TestPortTaken takes ports from under etcd, a PostgreSQL and a Patroni
// REST API as Start hands them out, and checks that Start starts those
// processes again on new ports.
func TestPortTaken(t *testing.T) {
	SkipUnlessEnabled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Picks: 1 etcd's client port; after its retry (3, 4), 5 node1's
	// PostgreSQL; after all nodes restart (11, 12, …), 12 node1's REST API.
	var held []net.Listener
	picks := 0
	portPicked = func(port int) {
		picks++
		if picks == 1 || picks == 5 || picks == 12 {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Errorf("take port %d: %v", port, err)
				return
			}
			held = append(held, ln)
		}
	}
	defer func() {
		portPicked = nil
		for _, ln := range held {
			ln.Close()
		}
	}()
	log := &recordLog{t: t}
	c, err := Start(ctx, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	out := log.String()
	if n := strings.Count(out, "etcd: port"); n != 1 {
		t.Errorf("etcd started again %d times, want 1", n)
	}
	if n := strings.Count(out, "starting all nodes again on new ports"); n != 2 {
		t.Errorf("nodes started again %d times, want 2", n)
	}
	if !strings.Contains(out, "node1: port taken") {
		t.Errorf("no port taken from node1 noticed")
	}
}

// recordLog is testLog that also keeps the lines.
type recordLog struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *recordLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return l.b.Write(p)
}

func (l *recordLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// writer inserts rows through the app's URL and remembers which were
// acknowledged.
type writer struct {
	c    *Cluster
	url  string
	next atomic.Int64

	mu    sync.Mutex
	acked []int64
}

// write inserts one row on a new connection (as an app reconnecting after a
// failover would) and returns the node that committed it.
func (w *writer) write(ctx context.Context) (string, error) {
	id := w.next.Add(1)
	conn, err := pgx.Connect(ctx, w.url)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var port int32
	if err := conn.QueryRow(ctx, "insert into hits (id) values ($1) returning inet_server_port()", id).Scan(&port); err != nil {
		return "", err
	}
	w.mu.Lock()
	w.acked = append(w.acked, id)
	w.mu.Unlock()
	for _, n := range w.c.nodes {
		if n.pgPort == int(port) {
			return n.name, nil
		}
	}
	return "", fmt.Errorf("committed on unknown port %d", port)
}

func (w *writer) ackedIDs() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...)
}

// firstWriteAway starts a write every 200ms (each may wait up to 10s, as one
// may hang on a primary that has no synchronous standby yet) until one
// commits on a node other than old, and returns how long after t0 it did.
func (w *writer) firstWriteAway(ctx context.Context, t0 time.Time, old string) (time.Duration, string, error) {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below: the attempts still running give up
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	type win struct {
		node string
		at   time.Time
	}
	won := make(chan win, 1)
	slots := make(chan struct{}, 40) // bounds the connections in flight
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastErr atomic.Value
	for {
		select {
		case r := <-won:
			return r.at.Sub(t0), r.node, nil
		case <-ctx.Done():
			return 0, "", fmt.Errorf("no write committed on a node other than %s within 2m (last error: %v)", old, lastErr.Load())
		case <-tick.C:
			select {
			case slots <- struct{}{}:
			default:
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				actx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				node, err := w.write(actx)
				if err != nil {
					lastErr.Store(err.Error())
					return
				}
				if node != old {
					select {
					case won <- win{node, time.Now()}:
					default:
					}
				}
			}()
		}
	}
}

func mustExec(t *testing.T, ctx context.Context, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// clusterProcesses lists the live processes that belong to c, as Stop finds them.
func clusterProcesses(c *Cluster) []string {
	var left []string
	for pid, pi := range processes() {
		if strings.Contains(pi.cmdline, c.Dir+"/") || strings.HasPrefix(pi.cmdline, "postgres: "+c.Scope+": ") {
			left = append(left, fmt.Sprintf("%d %s", pid, pi.cmdline))
		}
	}
	return left
}

// clusterMemory sums Rss and Pss (KiB) over c's processes, by executable:
// RSS counts the shared buffers once per PostgreSQL process, PSS shares
// them out.
func clusterMemory(c *Cluster) string {
	type sum struct{ n, rss, pss int64 }
	by := map[string]*sum{}
	var total sum
	for pid, pi := range processes() {
		if !strings.Contains(pi.cmdline, c.Dir+"/") && !strings.HasPrefix(pi.cmdline, "postgres: "+c.Scope+": ") {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		s := by[pi.comm]
		if s == nil {
			s = &sum{}
			by[pi.comm] = s
		}
		s.n++
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "Rss:":
				s.rss += v
			case "Pss:":
				s.pss += v
			}
		}
	}
	var parts []string
	for comm, s := range by {
		total.n, total.rss, total.pss = total.n+s.n, total.rss+s.rss, total.pss+s.pss
		parts = append(parts, fmt.Sprintf("%s ×%d RSS %d MiB PSS %d MiB", comm, s.n, s.rss>>10, s.pss>>10))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%d processes, RSS %d MiB, PSS %d MiB (%s)", total.n, total.rss>>10, total.pss>>10, strings.Join(parts, "; "))
}

// testLog sends the cluster's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
