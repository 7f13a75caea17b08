package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/pgcluster"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// The restore drill, without Docker: PostgreSQL archiving its WAL with
// deploy/postgresql-archive.conf to pgBackRest configured by
// deploy/pgbackrest.conf (only paths and the port changed), a full backup
// taken while clicks are counted, more clicks with their acknowledged
// values, the data folder destroyed, a restore to the latest state (the
// count equals the last acknowledged value), then a point-in-time restore
// to a moment between two clicks (the count acknowledged then).
func TestBackupRestoreDrill(t *testing.T) {
	bin, err := exec.LookPath("pgbackrest")
	if err != nil {
		t.Fatal("pgbackrest not found: install it (Debian: apt-get install pgbackrest); `make test` does so when run as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	work := worldReadableDir(t)
	for _, d := range []string{"repo", "log", "lock", "sock"} {
		ownedByPostgres(t, filepath.Join(work, d))
	}
	conf, err := filepath.Abs("deploy/pgbackrest.conf")
	if err != nil {
		t.Fatal(err)
	}
	// No fsync: a test's server is killed, not its machine, and the drill
	// must not stall the other packages' tests that share the disk.
	var opts string
	for _, s := range archiveSettings(t) {
		// pg_ctl passes the options through a shell.
		opts += " -c " + shellQuote(s)
	}
	opts += " -c unix_socket_directories=" + filepath.Join(work, "sock") + " -c fsync=off"
	pg, err := pgcluster.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	// The server's archive_command and every pgbackrest command read
	// deploy/pgbackrest.conf, with the test's own paths and port.
	pg.Env = []string{
		"PGBACKREST_CONFIG=" + conf,
		"PGBACKREST_REPO1_PATH=" + filepath.Join(work, "repo"),
		"PGBACKREST_LOG_PATH=" + filepath.Join(work, "log"),
		"PGBACKREST_LOCK_PATH=" + filepath.Join(work, "lock"),
		"PGBACKREST_PG1_PATH=" + pg.DataDir(),
		"PGBACKREST_PG1_PORT=" + strconv.Itoa(pg.Port),
		"PGBACKREST_PG1_SOCKET_PATH=" + filepath.Join(work, "sock"),
		"PGBACKREST_PG1_USER=hitcounter",
		"PGPASSWORD=" + passwordOf(t, pg.URL("postgres")),
	}
	if err := pg.Ctl("restart", "-m", "fast", "-w"); err != nil {
		t.Fatal(err)
	}
	pgbackrest := func(args ...string) string {
		t.Helper()
		full := append([]string{bin, "--stanza=hitcounter"}, args...)
		if os.Getuid() == 0 {
			full = append([]string{"runuser", "-u", "postgres", "--"}, full...)
		}
		cmd := exec.CommandContext(ctx, full[0], full[1:]...)
		cmd.Env = append(os.Environ(), pg.Env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbackrest %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	pgbackrest("stanza-create")
	pgbackrest("check")

	// Counters worth restoring: many, with a year of day rows each.
	const counters, days = 1000, 365
	dbURL, err := pg.CreateDatabase(ctx, "hitcounter")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Migrate(t, dbURL)
	conn := testdb.Connect(t, dbURL)
	if _, err := conn.Exec(ctx, `insert into counters (name, hits) select 'c' || i, 1000 from generate_series(1, $1::int) i`, counters); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `insert into counter_days (counter, day, views)
		select 'c' || i, current_date - d, 3 from generate_series(1, $1::int) i, generate_series(1, $2::int) d`, counters, days); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	store, err := db.Open(dbURL, db.DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	// Archiving may have failed before the stanza existed: what counts is
	// from here on.
	archivedBefore, err := store.Archiver(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Clicks go on during the full backup.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last int64
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := store.Record(ctx, "main", db.Hit{})
				if err != nil {
					t.Errorf("a click during the backup: %v", err)
					return
				}
				mu.Lock()
				last = max(last, c.Total)
				mu.Unlock()
			}
		})
	}
	began := time.Now()
	pgbackrest("--type=full", "backup")
	backupTook := time.Since(began)
	close(stop)
	wg.Wait()
	// pgBackRest keeps the backup's stop time in whole seconds, and a
	// point in time must come after it: the clicks below start once the
	// clock has left that second (CI once chose a moment 0.1 s before it).
	var info []struct {
		Backup []struct {
			Timestamp struct{ Stop int64 } `json:"timestamp"`
		} `json:"backup"`
	}
	out := pgbackrest("--output=json", "info")
	if i, j := strings.Index(out, "["), strings.LastIndex(out, "]"); i >= 0 && j > i {
		out = out[i : j+1] // without the console's log lines, if any
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) == 0 || len(info[0].Backup) == 0 {
		t.Fatalf("pgbackrest info: %v %+v", err, info)
	}
	backupStop := info[0].Backup[len(info[0].Backup)-1].Timestamp.Stop
	testkit.Eventually(t, 5*time.Second, "the clock past the backup's stop second", func() (bool, string) {
		return time.Now().Unix() > backupStop, fmt.Sprintf("now %d, stop %d", time.Now().Unix(), backupStop)
	})
	if last == 0 {
		t.Fatal("no click was counted during the backup")
	}

	// More clicks, one at a time, each acknowledged value with its moment;
	// the point in time is between the third and the fourth.
	type ack struct {
		n  int64
		at time.Time
	}
	var acks []ack
	var target time.Time
	for i := range 6 {
		c, err := store.Record(ctx, "main", db.Hit{})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack{c.Total, time.Now()})
		if i == 2 {
			time.Sleep(250 * time.Millisecond)
			target = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	before := acks[len(acks)-1].n
	atTarget := acks[2].n
	if got := testdb.Hits(t, dbURL, "main"); got != before {
		t.Fatalf("the database holds %d before the loss, the last click was acknowledged %d", got, before)
	}
	// The README's check: it switches to a new WAL segment and waits until
	// the one with the last clicks is archived.
	pgbackrest("check")
	// What the metrics report (hitcounter_db_wal_*): more segments
	// archived, the last one just now, no new failure.
	a, err := store.Archiver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Archived <= archivedBefore.Archived || time.Since(a.LastArchived) > time.Minute || a.Failed != archivedBefore.Failed {
		t.Errorf("pg_stat_archiver: %+v before the backup, %+v after the check; want more archived, the last within a minute, no new failure", archivedBefore, a)
	}
	store.Close()
	fmt.Fprintf(os.Stderr, "restore drill: full backup of %d counters, %d day rows taken in %s while clicks were counted; %d clicks after it, the last acknowledged %d\n",
		counters+1, counters*days, backupTook.Round(time.Millisecond), len(acks), before)

	lose := func() {
		t.Helper()
		if err := pg.Ctl("stop", "-m", "immediate", "-w"); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(pg.DataDir()); err != nil {
			t.Fatal(err)
		}
		ownedByPostgres(t, pg.DataDir())
		if err := os.Chmod(pg.DataDir(), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(args ...string) time.Duration {
		t.Helper()
		began := time.Now()
		pgbackrest(append(args, "restore")...)
		if err := pg.Start(); err != nil {
			t.Fatal(err)
		}
		waitPromoted(t, ctx, dbURL)
		return time.Since(began)
	}

	// The disk is gone; everything comes back from the repository.
	lose()
	took := restore()
	after := testdb.Hits(t, dbURL, "main")
	fmt.Fprintf(os.Stderr, "restore drill: data folder destroyed; restored to the latest state in %s: count before %d, after %d\n", took.Round(time.Millisecond), before, after)
	if after != before {
		t.Errorf("restored to the latest state: %d hits, the last acknowledged click was %d", after, before)
	}
	var n int
	conn = testdb.Connect(t, dbURL)
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, "select count(*) from counter_days").Scan(&n); err != nil || n < counters*days {
		t.Errorf("day rows after the restore: %d, %v; want at least %d", n, err, counters*days)
	}

	// A wrong command at a known moment: back to just before it.
	if err := pg.Ctl("stop", "-m", "fast", "-w"); err != nil {
		t.Fatal(err)
	}
	took = restore("--delta", "--type=time", "--target="+target.UTC().Format("2006-01-02 15:04:05.000000+00"), "--target-action=promote")
	after = testdb.Hits(t, dbURL, "main")
	fmt.Fprintf(os.Stderr, "restore drill: restored to %s (between the clicks acknowledged %d and %d) in %s: count %d\n",
		target.UTC().Format("15:04:05.000"), acks[2].n, acks[3].n, took.Round(time.Millisecond), after)
	if after != atTarget {
		t.Errorf("restored to %s: %d hits, the count acknowledged then was %d", target.UTC().Format(time.RFC3339Nano), after, atTarget)
	}
}

// archiveSettings are deploy/postgresql-archive.conf's settings, as
// name=value with the value unquoted: what `postgres -c` takes.
func archiveSettings(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("deploy/postgresql-archive.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var settings []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("deploy/postgresql-archive.conf: %q is not name = value", line)
		}
		v = strings.TrimSpace(v)
		if uq, ok := strings.CutPrefix(v, "'"); ok {
			v = strings.ReplaceAll(strings.TrimSuffix(uq, "'"), "''", "'")
		}
		settings = append(settings, strings.TrimSpace(k)+"="+v)
	}
	if len(settings) == 0 {
		t.Fatal("deploy/postgresql-archive.conf has no settings")
	}
	return settings
}

// ownedByPostgres makes folder dir, owned by the user the server runs as.
func ownedByPostgres(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 {
		return
	}
	out, err := exec.Command("chown", "postgres:", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("chown postgres %s: %v\n%s", dir, err, out)
	}
}

func passwordOf(t *testing.T, dbURL string) string {
	t.Helper()
	pw, _ := mustParseURL(t, dbURL).User.Password()
	return pw
}

// waitPromoted waits until the restored server accepts writes: recovery
// replayed the archive and it promoted itself.
func waitPromoted(t *testing.T, ctx context.Context, dbURL string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		conn, err := pgx.Connect(ctx, dbURL)
		if err == nil {
			var inRecovery bool
			err = conn.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&inRecovery)
			conn.Close(ctx)
			if err == nil && !inRecovery {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restored server did not finish recovery within 2 minutes: %v", err)
		}
	}
}

// The backup's systemd units are ones systemd accepts: the service for
// each instance the timers start, and the timers.
func TestBackupUnitsVerify(t *testing.T) {
	service := unitRunning(t, "deploy/hitcounter-backup@.service", "/usr/bin/pgbackrest")
	units := map[string]string{}
	for _, kind := range []string{"full", "diff"} {
		timer, err := os.ReadFile("deploy/hitcounter-backup-" + kind + ".timer")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(timer), "Unit=hitcounter-backup@"+kind+".service") {
			t.Errorf("hitcounter-backup-%s.timer does not start hitcounter-backup@%s.service", kind, kind)
		}
		units["hitcounter-backup@"+kind+".service"] = service
		units["hitcounter-backup-"+kind+".timer"] = string(timer)
	}
	systemdVerify(t, units)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
