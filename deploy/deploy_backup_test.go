package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The backup commands the restore drill runs, as the docs' "Backup and
// restore" section lists them (TestREADMEListsTheBackupCommands).
const (
	cmdBackupNow   = "docker compose exec backup pgbackrest --stanza=hitcounter --type=full backup"
	cmdBackupInfo  = "docker compose exec backup pgbackrest --stanza=hitcounter info"
	cmdBackupCheck = "docker compose exec backup pgbackrest --stanza=hitcounter check"
	cmdDownVolumes = "docker compose down -v"
	cmdRestore     = "docker compose run --rm --no-deps backup pgbackrest --stanza=hitcounter --delta restore"
	cmdRestoreTime = "docker compose run --rm --no-deps backup pgbackrest --stanza=hitcounter --delta --type=time --target-action=promote restore"
)

var backupCommands = []string{cmdBackupNow, cmdBackupInfo, cmdBackupCheck, cmdDown, cmdDownVolumes, cmdRestore, cmdRestoreTime, cmdUp}

// The restore drill on the real engine: clicks counted while a full backup
// is taken, more clicks with their acknowledged values, `down -v` (the
// database's volume is gone), a restore, `up`: the count is the last
// acknowledged one; then a restore to a moment between two clicks gives
// the count acknowledged then.
func TestBackupRestoreWithCompose(t *testing.T) {
	d := startDeployment(t)
	d.op(cmdBuild)
	d.op(cmdUp)
	https := d.url("https", "443")

	// Counters worth restoring: many, with a year of day rows each.
	const counters, days = 1000, 365
	if out, err := d.psqlAs("hitcounter", testOwnerPassword, fmt.Sprintf(`
		insert into counters (name, hits) select 'c' || i, 1000 from generate_series(1, %d) i;
		insert into counter_days (counter, day, views) select 'c' || i, current_date - d, 3
			from generate_series(1, %d) i, generate_series(1, %d) d`, counters, counters, days)); err != nil {
		t.Fatalf("seed the counters: %v\n%s", err, out)
	}

	// click is one click through nginx: the acknowledged count, or 0 when
	// nginx's per-address limit refused it (429).
	click := func() (int64, error) {
		status, body, err := fetch("POST", https+"/hit")
		switch {
		case err != nil:
			return 0, err
		case status == 429:
			return 0, nil
		case status != 200:
			return 0, fmt.Errorf("status %d", status)
		}
		m := countRE.FindStringSubmatch(body)
		if m == nil {
			return 0, fmt.Errorf("no count in %q", body)
		}
		return strconv.ParseInt(m[1], 10, 64)
	}

	// 1. A full backup while clicks are counted.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var during int
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			n, err := click()
			if err != nil {
				t.Errorf("a click during the backup: %v", err)
				return
			}
			if n > 0 {
				during++
			}
		}
	})
	began := time.Now()
	d.op(cmdBackupNow)
	backupTook := time.Since(began)
	close(stop)
	wg.Wait()
	if during == 0 {
		t.Fatal("no click was counted during the backup")
	}
	if out := d.op(cmdBackupInfo); !strings.Contains(out, "full backup:") || !strings.Contains(out, "status: ok") {
		t.Fatalf("%s:\n%s", cmdBackupInfo, out)
	}
	d.op(cmdBackupCheck)
	fmt.Fprintf(os.Stderr, "compose restore drill: backup taken: full, of %d counters and %d day rows, in %s while %d clicks were counted\n",
		counters+1, counters*days, backupTook.Round(time.Millisecond), during)

	// 2. More clicks, one at a time, each acknowledged value with its
	// moment; the point in time is between the third and the fourth.
	type ack struct {
		n  int64
		at time.Time
	}
	var acks []ack
	var target time.Time
	for len(acks) < 6 {
		time.Sleep(300 * time.Millisecond) // a person's pace: nginx limits one address
		n, err := click()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			continue
		}
		acks = append(acks, ack{n, time.Now()})
		if len(acks) == 3 {
			time.Sleep(300 * time.Millisecond)
			target = time.Now()
		}
	}
	before, atTarget := acks[len(acks)-1].n, acks[2].n

	// 3. The volume is destroyed. backup, stopped after web, archived the
	// WAL of the last clicks on its way out.
	d.op(cmdDownVolumes)
	if out := d.docker("volume", "ls", "-q", "--filter", "label=com.docker.compose.project=hitcounter"); strings.Contains(out, "pgdata") {
		t.Fatalf("the database's volume is still there after down -v: %s", out)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "backups", "backup", "hitcounter", "backup.info")); err != nil {
		t.Fatalf("the repository after down -v: %v", err)
	}
	fmt.Fprintf(os.Stderr, "compose restore drill: volume destroyed (docker compose down -v) after %d more clicks, the last acknowledged %d\n", len(acks), before)

	// 4. Restore the latest state into the stopped stack, then up.
	restore := func(cmd string, extra ...string) (restoreTook, upTook time.Duration) {
		t.Helper()
		began := time.Now()
		d.op(cmd, extra...)
		restoreTook = time.Since(began)
		began = time.Now()
		d.op(cmdUp)
		return restoreTook, time.Since(began)
	}
	count := func() int64 {
		t.Helper()
		status, body, err := fetch("GET", https+"/")
		if err != nil || status != 200 {
			t.Fatalf("GET / after the restore: %d %v\n%s", status, err, body)
		}
		return countOf(t, body)
	}
	restoreTook, upTook := restore(cmdRestore)
	https = d.url("https", "443") // a new nginx container, a new host port
	after := count()
	fmt.Fprintf(os.Stderr, "compose restore drill: restored to the latest state: restore %s, up (WAL replayed, promoted, healthy) %s; count before %d, after %d\n",
		restoreTook.Round(time.Millisecond), upTook.Round(time.Millisecond), before, after)
	if after != before {
		t.Errorf("restored to the latest state: count %d, the last acknowledged click was %d", after, before)
	}
	out, err := d.psqlAs("hitcounter", testOwnerPassword, "select count(*) from counter_days")
	if n, _ := strconv.Atoi(strings.TrimSpace(out)); err != nil || n < counters*days {
		t.Errorf("day rows after the restore: %s %v, want at least %d", out, err, counters*days)
	}

	// 5. A wrong command at a known moment: back to just before it.
	d.op(cmdDown)
	restoreTook, upTook = restore(cmdRestoreTime, "--target="+target.UTC().Format("2006-01-02 15:04:05.000000+00"))
	https = d.url("https", "443")
	after = count()
	fmt.Fprintf(os.Stderr, "compose restore drill: restored to %s, between the clicks acknowledged %d and %d: restore %s, up %s; count %d\n",
		target.UTC().Format("15:04:05.000"), acks[2].n, acks[3].n, restoreTook.Round(time.Millisecond), upTook.Round(time.Millisecond), after)
	if after != atTarget {
		t.Errorf("restored to %s: count %d, the count acknowledged then was %d", target.UTC().Format(time.RFC3339Nano), after, atTarget)
	}
	// Clicks count again after the restore, and the backups go on.
	if n, err := click(); err != nil || (n != 0 && n != atTarget+1) {
		t.Errorf("a click after the restore: %d %v, want %d", n, err, atTarget+1)
	}
	d.op(cmdBackupCheck)
}

// The docs' "Backup and restore" section lists every command the drill
// runs.
func TestREADMEListsTheBackupCommands(t *testing.T) {
	docSectionLists(t, "Backup and restore", backupCommands)
}
