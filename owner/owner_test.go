package owner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// The tests of `hitcounter counters …` run the program in-process, each
// against its own migrated database, and check the database directly.

const testActor = "alice@test-host"

// countersRun runs `hitcounter counters ARGS…` with stdin, as main would.
func countersRun(t *testing.T, dbURL, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{"DATABASE_URL": dbURL, "USER": "alice"}
	var out, errOut bytes.Buffer
	err = Run(ctx, append([]string{"counters"}, args...), func(k string) string { return env[k] },
		strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustCounters is countersRun that must succeed; it returns stdout.
func mustCounters(t *testing.T, dbURL string, args ...string) string {
	t.Helper()
	return mustCountersIn(t, dbURL, "", args...)
}

// mustCountersIn is mustCounters with stdin.
func mustCountersIn(t *testing.T, dbURL, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := countersRun(t, dbURL, stdin, args...)
	if err != nil {
		t.Fatalf("counters %q: %v\nstderr: %s", args, err, errOut)
	}
	return out
}

// wantRefused runs a command that must fail with an error mentioning
// every one of want.
func wantRefused(t *testing.T, dbURL, stdin string, args []string, want ...string) error {
	t.Helper()
	_, errOut, err := countersRun(t, dbURL, stdin, args...)
	if err == nil {
		t.Fatalf("counters %q succeeded, want an error mentioning %q", args, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("counters %q: error %q, want one mentioning %q\nstderr: %s", args, err, w, errOut)
		}
	}
	return err
}

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

// seedCounter makes a counter straight in the database, bypassing the
// code under test.
func seedCounter(t *testing.T, dbURL, name string, total int64, days ...db.Day) {
	t.Helper()
	testdb.Exec(t, dbURL, `insert into counters (name, hits) values ($1, $2)`, name, total)
	for _, d := range days {
		testdb.Exec(t, dbURL, `insert into counter_days (counter, day, views, visitors, bots, filtered) values ($1, $2, $3, $4, $5, $6)`,
			name, d.Day, d.Views, d.Visitors, d.Bots, d.Filtered)
	}
}

// dbDays reads a counter's day rows straight from the database.
func dbDays(t *testing.T, dbURL, name string) []db.Day {
	t.Helper()
	conn := testdb.Connect(t, dbURL)
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(),
		`select day, views, visitors, bots, filtered from counter_days where counter = $1 order by day`, name)
	days, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (db.Day, error) {
		var d db.Day
		err := r.Scan(&d.Day, &d.Views, &d.Visitors, &d.Bots, &d.Filtered)
		return d, err
	})
	if err != nil {
		t.Fatalf("read day rows of %s: %v", name, err)
	}
	return days
}

func dbExists(t *testing.T, dbURL, name string) bool {
	t.Helper()
	conn := testdb.Connect(t, dbURL)
	defer conn.Close(context.Background())
	var ok bool
	err := conn.QueryRow(context.Background(), `select exists (select from counters where name = $1)`, name).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// auditRecord is a row of counter_audit, old and new as compact JSON.
type auditRecord struct {
	Actor, Action, Counter, Old, New string
}

func dbAudit(t *testing.T, dbURL string) []auditRecord {
	t.Helper()
	conn := testdb.Connect(t, dbURL)
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(),
		`select actor, action, counter, coalesce(old::text, ''), coalesce(new::text, '') from counter_audit order by id`)
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditRecord, error) {
		var a auditRecord
		err := r.Scan(&a.Actor, &a.Action, &a.Counter, &a.Old, &a.New)
		return a, err
	})
	if err != nil {
		t.Fatalf("read audit: %v", err)
	}
	for i := range recs {
		recs[i].Old, recs[i].New = compactJSON(t, recs[i].Old), compactJSON(t, recs[i].New)
	}
	return recs
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	if s == "" {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// state is everything a change could touch, to check that a refused or
// failed one touched nothing.
type state struct {
	Counters map[string]int64
	Days     map[string][]db.Day
	Audit    []auditRecord
	Visitors int64
}

func dbState(t *testing.T, dbURL string) state {
	t.Helper()
	conn := testdb.Connect(t, dbURL)
	defer conn.Close(context.Background())
	s := state{Counters: map[string]int64{}, Days: map[string][]db.Day{}, Audit: dbAudit(t, dbURL)}
	rows, _ := conn.Query(context.Background(), `select name, hits from counters`)
	var name string
	var hits int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &hits}, func() error {
		s.Counters[name] = hits
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name := range s.Counters {
		s.Days[name] = dbDays(t, dbURL, name)
	}
	if err := conn.QueryRow(context.Background(), `select count(*) from visitors`).Scan(&s.Visitors); err != nil {
		t.Fatal(err)
	}
	return s
}

func wantUnchanged(t *testing.T, dbURL string, before state) {
	t.Helper()
	if after := dbState(t, dbURL); !reflect.DeepEqual(after, before) {
		t.Fatalf("the database changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

var seedDays = []db.Day{
	{Day: date("2024-03-01"), Views: 10, Visitors: 4, Bots: 2, Filtered: 0},
	{Day: date("2024-03-02"), Views: 25, Visitors: 9, Bots: 0, Filtered: 3},
	{Day: date("2024-03-05"), Views: 7, Visitors: 7, Bots: 1, Filtered: 1},
}

const seedCSV = `# total,42
day,views,visitors,bots,filtered
2024-03-01,10,4,2,0
2024-03-02,25,9,0,3
2024-03-05,7,7,1,1
`

func TestCountersCreate(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	tests := []struct {
		args      []string
		name      string
		wantOut   string
		wantTotal int64
	}{
		{[]string{"create", "blog"}, "blog", "created blog: total 0\n", 0},
		{[]string{"create", "docs", "-total", "1200"}, "docs", "created docs: total 1200\n", 1200},
		{[]string{"create", "-total=7", "a_b-9"}, "a_b-9", "created a_b-9: total 7\n", 7},
	}
	for _, tt := range tests {
		if got := mustCounters(t, dbURL, tt.args...); got != tt.wantOut {
			t.Errorf("counters %q printed %q, want %q", tt.args, got, tt.wantOut)
		}
		if got := testdb.Hits(t, dbURL, tt.name); got != tt.wantTotal {
			t.Errorf("counters %q: total %d, want %d", tt.args, got, tt.wantTotal)
		}
	}

	// The error is returned (main prints it), not also logged.
	if _, errOut, err := countersRun(t, dbURL, "", "create", "docs"); err == nil || errOut != "" {
		t.Errorf("create of an existing name: error %v, stderr %q; want an error and nothing on stderr", err, errOut)
	}

	before := dbState(t, dbURL)
	refused := []struct {
		name string
		args []string
		want []string
	}{
		{"existing name", []string{"create", "docs", "-total", "5"}, []string{`"docs"`, "already exists"}},
		{"upper case", []string{"create", "Blog"}, []string{`counter name "Blog"`, "invalid input", "lower-case"}},
		{"punctuation", []string{"create", "blog!"}, []string{`counter name "blog!"`, "invalid input"}},
		{"space", []string{"create", "my blog"}, []string{`counter name "my blog"`}},
		{"too long", []string{"create", strings.Repeat("a", 64)}, []string{"counter name", "1 to 63 characters"}},
		{"empty", []string{"create", ""}, []string{`counter name ""`}},
		{"leading dash after --", []string{"create", "--", "-blog"}, []string{`counter name "-blog"`}},
		{"negative total", []string{"create", "neg", "-total", "-5"}, []string{"total -5", "between 0 and 9007199254740991"}},
		{"no name", []string{"create"}, []string{"usage: hitcounter counters create NAME"}},
		{"two names", []string{"create", "x", "y"}, []string{"usage"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := wantRefused(t, dbURL, "", tt.args, tt.want...)
			if tt.name == "existing name" && !errors.Is(err, db.ErrExists) {
				t.Errorf("error %v does not wrap db.ErrExists", err)
			}
			if strings.HasPrefix(tt.name, "upper") && !errors.Is(err, db.ErrInvalid) {
				t.Errorf("error %v does not wrap db.ErrInvalid", err)
			}
			wantUnchanged(t, dbURL, before)
		})
	}
}

// Destructive changes without -yes say what they would do and change
// nothing; with -yes they do it.
func TestCountersRefuseWithoutYes(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200, seedDays...)
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  []string
	}{
		{"set", []string{"set", "blog", "5000"}, "", []string{"set blog would replace its total 1200 with 5000"}},
		{"reset", []string{"reset", "blog"}, "", []string{"reset blog would set its total 1200 to 0", "3 day rows"}},
		{"delete", []string{"delete", "blog"}, "", []string{"delete blog would delete the counter (total 1200)", "3 day rows"}},
		{"import into existing", []string{"import", "blog", "-"}, "day,views,visitors,bots,filtered\n2024-03-02,30,9,0,3\n2024-03-06,1,1,0,0\n",
			[]string{"import into blog, which exists", "2 day rows (replacing 1 of its 3 day rows)", "from 1200 to 1206"}},
		{"-yes=false", []string{"delete", "blog", "-yes=false"}, "", []string{"would delete"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dbState(t, dbURL)
			want := append(tt.want, "nothing changed", "add -yes")
			wantRefused(t, dbURL, tt.stdin, tt.args, want...)
			wantUnchanged(t, dbURL, before)
		})
	}
}

func TestCountersSet(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200, seedDays...)
	if got, want := mustCounters(t, dbURL, "set", "blog", "5000", "-yes"), "set blog: 1200 → 5000\n"; got != want {
		t.Errorf("set printed %q, want %q", got, want)
	}
	if got := testdb.Hits(t, dbURL, "blog"); got != 5000 {
		t.Errorf("total %d after set, want 5000", got)
	}
	if got := dbDays(t, dbURL, "blog"); !reflect.DeepEqual(got, seedDays) {
		t.Errorf("day rows after set: %v, want them kept: %v", got, seedDays)
	}
	// Flags before the arguments work too.
	mustCounters(t, dbURL, "set", "-yes", "blog", "0")
	if got := testdb.Hits(t, dbURL, "blog"); got != 0 {
		t.Errorf("total %d after set to 0, want 0", got)
	}

	before := dbState(t, dbURL)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"negative", []string{"set", "blog", "-5", "-yes"}, []string{"total -5", "must be between 0 and 9007199254740991"}},
		{"negative after --", []string{"set", "-yes", "--", "blog", "-5"}, []string{"total -5"}},
		{"not a number", []string{"set", "blog", "lots", "-yes"}, []string{`total "lots"`, "whole number"}},
		{"a plus sign", []string{"set", "blog", "+5", "-yes"}, []string{`total "+5"`, "digits only"}},
		{"minus zero", []string{"set", "blog", "-0", "-yes"}, []string{"total -0", "must be between 0"}},
		{"hexadecimal", []string{"set", "blog", "0x10", "-yes"}, []string{`total "0x10"`, "digits only"}},
		{"past int64", []string{"set", "blog", "99999999999999999999", "-yes"}, []string{"total 99999999999999999999", "must be between 0"}},
		{"create with a plus sign", []string{"create", "new", "-total", "+5"}, []string{`total "+5"`, "digits only"}},
		{"create with underscores", []string{"create", "new", "-total", "1_000"}, []string{`total "1_000"`, "digits only"}},
		{"create with hexadecimal", []string{"create", "new", "-total", "0x10"}, []string{`total "0x10"`, "digits only"}},
		{"no total", []string{"set", "blog", "-yes"}, []string{"usage: hitcounter counters set NAME TOTAL"}},
		{"unknown counter", []string{"set", "nope", "5", "-yes"}, []string{`"nope"`, "not found"}},
		{"unknown counter without -yes", []string{"set", "nope", "5"}, []string{`"nope"`, "not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantRefused(t, dbURL, "", tt.args, tt.want...)
			wantUnchanged(t, dbURL, before)
		})
	}
}

func TestCountersReset(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200, seedDays...)
	seedCounter(t, dbURL, "other", 3, seedDays[:1]...)
	testdb.Exec(t, dbURL, `insert into visitors (counter, day, hash) values ('blog', current_date, '\x01'), ('other', current_date, '\x02')`)

	if got, want := mustCounters(t, dbURL, "reset", "blog", "-yes"), "reset blog: 1200 → 0, 3 day rows deleted\n"; got != want {
		t.Errorf("reset printed %q, want %q", got, want)
	}
	s := dbState(t, dbURL)
	if s.Counters["blog"] != 0 || len(s.Days["blog"]) != 0 {
		t.Errorf("after reset: total %d and %d day rows, want 0 and 0", s.Counters["blog"], len(s.Days["blog"]))
	}
	if s.Counters["other"] != 3 || len(s.Days["other"]) != 1 || s.Visitors != 1 {
		t.Errorf("reset touched another counter: %+v", s)
	}
	wantRefused(t, dbURL, "", []string{"reset", "nope", "-yes"}, "not found")
}

func TestCountersRename(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200, seedDays...)
	seedCounter(t, dbURL, "taken", 1)

	got := mustCounters(t, dbURL, "rename", "blog", "journal")
	if want := "renamed blog → journal: total 1200, 3 day rows"; !strings.HasPrefix(got, want) {
		t.Errorf("rename printed %q, want it to start %q", got, want)
	}
	if dbExists(t, dbURL, "blog") {
		t.Errorf("blog still exists after its rename")
	}
	if got := testdb.Hits(t, dbURL, "journal"); got != 1200 {
		t.Errorf("journal total %d, want 1200", got)
	}
	if got := dbDays(t, dbURL, "journal"); !reflect.DeepEqual(got, seedDays) {
		t.Errorf("journal day rows %v, want blog's %v", got, seedDays)
	}

	before := dbState(t, dbURL)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"onto an existing name", []string{"rename", "journal", "taken"}, []string{`"taken"`, "already exists"}},
		{"bad new name", []string{"rename", "journal", "Journal"}, []string{`counter name "Journal"`, "invalid input"}},
		{"unknown counter", []string{"rename", "blog", "fresh"}, []string{`"blog"`, "not found"}},
		{"same name", []string{"rename", "journal", "journal"}, []string{"same"}},
		{"one name", []string{"rename", "journal"}, []string{"usage: hitcounter counters rename NAME NEWNAME"}},
		{"main without -force", []string{"rename", "main", "front"}, []string{"rename main would take the front page (/) down", "add -force"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wantRefused(t, dbURL, "", tt.args, tt.want...)
			if tt.name == "onto an existing name" && !errors.Is(err, db.ErrExists) {
				t.Errorf("error %v does not wrap db.ErrExists", err)
			}
			wantUnchanged(t, dbURL, before)
		})
	}
	if got := mustCounters(t, dbURL, "rename", "main", "front", "-force"); !strings.HasPrefix(got, "renamed main → front") {
		t.Errorf("rename main -force printed %q", got)
	}
}

func TestCountersDelete(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200, seedDays...)
	if got, want := mustCounters(t, dbURL, "delete", "-yes", "blog"), "deleted blog: total 1200, 3 day rows (the audit keeps this record)\n"; got != want {
		t.Errorf("delete printed %q, want %q", got, want)
	}
	if dbExists(t, dbURL, "blog") || len(dbDays(t, dbURL, "blog")) != 0 {
		t.Errorf("blog or its day rows remain after delete")
	}
	err := wantRefused(t, dbURL, "", []string{"delete", "blog", "-yes"}, `"blog"`, "not found")
	if !errors.Is(err, db.ErrNotFound) {
		t.Errorf("error %v does not wrap db.ErrNotFound", err)
	}

	// main is the front page's counter: -yes is not enough.
	before := dbState(t, dbURL)
	const wantMain = "delete main would delete the counter (total 0) and its 0 day rows; pages counting it get 404, " +
		"the front page (/) too: main is its counter; nothing changed: add -yes -force to do it"
	for _, args := range [][]string{{"delete", "main"}, {"delete", "main", "-yes"}, {"delete", "main", "-force"}} {
		if err := wantRefused(t, dbURL, "", args); err.Error() != wantMain {
			t.Errorf("%q: error %q, want %q", args, err, wantMain)
		}
		wantUnchanged(t, dbURL, before)
	}
	if got, want := mustCounters(t, dbURL, "delete", "main", "-yes", "-force"), "deleted main: total 0, 0 day rows (the audit keeps this record)\n"; got != want {
		t.Errorf("delete main -yes -force printed %q, want %q", got, want)
	}
	if dbExists(t, dbURL, "main") {
		t.Errorf("main remains after delete -yes -force")
	}
}

// switch shows and sets a counter's switches, each flag on its own; the
// audit records a change, not a repeat; a bad value or an unknown counter
// changes nothing.
func TestCountersSwitch(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"switch", "blog"}, "blog: +1 on, page on\n"},
		{[]string{"switch", "blog", "-plus-one", "off"}, "switched blog: +1 off, page on\n"},
		{[]string{"switch", "-page=off", "blog"}, "switched blog: +1 off, page off\n"},
		{[]string{"switch", "blog", "-page", "off"}, "blog already: +1 off, page off\n"},
		{[]string{"switch", "blog", "-plus-one=on", "-page=on"}, "switched blog: +1 on, page on\n"},
	}
	for _, st := range steps {
		if got := mustCounters(t, dbURL, st.args...); got != st.want {
			t.Errorf("%q printed %q, want %q", st.args, got, st.want)
		}
	}
	audit := mustCounters(t, dbURL, "audit", "blog")
	if n := strings.Count(audit, " switch "); n != 3 || !strings.Contains(audit, "+1=on page=on") || !strings.Contains(audit, "+1=off page=off") {
		t.Errorf("audit: %d switch rows, want 3 with their states:\n%s", n, audit)
	}
	before := dbState(t, dbURL)
	wantRefused(t, dbURL, "", []string{"switch", "blog", "-page", "no"}, `invalid value "no" for flag -page: want on or off`)
	wantRefused(t, dbURL, "", []string{"switch", "nope", "-page", "off"}, `"nope"`, "not found")
	wantUnchanged(t, dbURL, before)
}

func TestCountersList(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	seedCounter(t, dbURL, "blog", 1234, db.Day{Day: today, Views: 17, Visitors: 5, Bots: 3})
	seedCounter(t, dbURL, "docs", 99, seedDays...) // nothing today

	out := mustCounters(t, dbURL, "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 { // header, blog, docs, main (the migration's)
		t.Fatalf("list printed %d lines, want 4:\n%s", len(lines), out)
	}
	wantFields := [][]string{
		{"NAME", "TOTAL", "TODAY", "VISITORS", "BOTS", "UPDATED"},
		{"blog", "1234", "17", "5", "3"},
		{"docs", "99", "0", "0", "0"},
		{"main", "0", "0", "0", "0"},
	}
	for i, want := range wantFields {
		if got := strings.Fields(lines[i]); len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
			t.Errorf("list line %d: %q, want it to start with %q", i+1, lines[i], want)
		}
	}

	// The API's names (views_today, …): one vocabulary on the wire.
	out = mustCounters(t, dbURL, "list", "-json")
	var got []db.CountsJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("list -json: %v", err)
	}
	if len(got) != 3 || got[0].Name != "blog" || got[0].Total != 1234 || got[0].ViewsToday != 17 || got[0].VisitorsToday != 5 ||
		got[0].Day != today.Format(time.DateOnly) || got[1].Name != "docs" || got[1].ViewsToday != 0 || !strings.Contains(out, `"views_today": 17`) {
		t.Errorf("list -json: %+v\n%s", got, out)
	}
}

// Export writes the day rows as CSV or JSON; importing that into a new
// counter gives the same day rows and total.
func TestCountersExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 42, seedDays...) // 42 = the sum of the views

	csvOut := mustCounters(t, dbURL, "export", "blog")
	if csvOut != seedCSV {
		t.Fatalf("export CSV:\n%s\nwant:\n%s", csvOut, seedCSV)
	}

	t.Run("csv from stdin", func(t *testing.T) {
		out, errOut, err := countersRun(t, dbURL, csvOut, "import", "copy", "-")
		if err != nil {
			t.Fatalf("import: %v\n%s", err, errOut)
		}
		if want := "imported 3 day rows into new counter copy: total 42\n"; out != want {
			t.Errorf("import printed %q, want %q", out, want)
		}
		if got := dbDays(t, dbURL, "copy"); !reflect.DeepEqual(got, seedDays) {
			t.Errorf("imported day rows %v, want %v", got, seedDays)
		}
		if got := testdb.Hits(t, dbURL, "copy"); got != 42 {
			t.Errorf("imported total %d, want the sum of the views, 42", got)
		}
	})

	t.Run("csv through a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "blog.csv")
		out := mustCounters(t, dbURL, "export", "blog", "-o", file)
		if want := "exported blog to " + file + ": 3 day rows, total 42\n"; out != want {
			t.Errorf("export -o printed %q, want %q", out, want)
		}
		data, err := os.ReadFile(file)
		if err != nil || string(data) != seedCSV {
			t.Fatalf("exported file: %q, %v; want %q", data, err, seedCSV)
		}
		mustCounters(t, dbURL, "import", "fromfile", file)
		if got := dbDays(t, dbURL, "fromfile"); !reflect.DeepEqual(got, seedDays) {
			t.Errorf("imported day rows %v, want %v", got, seedDays)
		}
	})

	// JSON carries the total: after a set it no longer is the sum of the
	// views, and the import still gives it.
	t.Run("json after a set", func(t *testing.T) {
		mustCounters(t, dbURL, "set", "blog", "9999", "-yes")
		jsonOut := mustCounters(t, dbURL, "export", "blog", "-format", "json")
		var exp struct {
			Name  string       `json:"name"`
			Total int64        `json:"total"`
			Days  []db.DayJSON `json:"days"`
		}
		if err := json.Unmarshal([]byte(jsonOut), &exp); err != nil {
			t.Fatalf("export JSON: %v\n%s", err, jsonOut)
		}
		wantDays := []db.DayJSON{
			{Day: "2024-03-01", Views: 10, Visitors: 4, Bots: 2},
			{Day: "2024-03-02", Views: 25, Visitors: 9, Filtered: 3},
			{Day: "2024-03-05", Views: 7, Visitors: 7, Bots: 1, Filtered: 1},
		}
		if exp.Name != "blog" || exp.Total != 9999 || !reflect.DeepEqual(exp.Days, wantDays) {
			t.Fatalf("export JSON: %+v", exp)
		}
		file := filepath.Join(t.TempDir(), "blog.json")
		mustCounters(t, dbURL, "export", "blog", "-o", file) // JSON from the extension
		data, err := os.ReadFile(file)
		if err != nil || string(data) != jsonOut {
			t.Fatalf("export -o blog.json: %q, %v; want %q", data, err, jsonOut)
		}

		for _, args := range [][]string{{"import", "jcopy", "-", "-format", "json"}, {"import", "jfile", file}} {
			if _, errOut, err := countersRun(t, dbURL, jsonOut, args...); err != nil {
				t.Fatalf("%q: %v\n%s", args, err, errOut)
			}
			name := args[1]
			if got := testdb.Hits(t, dbURL, name); got != 9999 {
				t.Errorf("%q: total %d, want the exported 9999", args, got)
			}
			if got := dbDays(t, dbURL, name); !reflect.DeepEqual(got, seedDays) {
				t.Errorf("%q: day rows %v, want %v", args, got, seedDays)
			}
		}
	})

	t.Run("empty counter", func(t *testing.T) {
		seedCounter(t, dbURL, "empty", 5)
		if got, want := mustCounters(t, dbURL, "export", "empty"), "# total,5\nday,views,visitors,bots,filtered\n"; got != want {
			t.Errorf("export of no days: %q, want %q", got, want)
		}
		if got, want := mustCounters(t, dbURL, "export", "empty", "-format=json"), "{\n  \"name\": \"empty\",\n  \"total\": 5,\n  \"days\": []\n}\n"; got != want {
			t.Errorf("export JSON of no days: %q, want %q", got, want)
		}
	})

	wantRefused(t, dbURL, "", []string{"export", "nope"}, `"nope"`, "not found")
	wantRefused(t, dbURL, "", []string{"export", "blog", "-format", "xml"}, `format "xml"`)
	wantRefused(t, dbURL, "", []string{"export", "blog", "-o", "/no/such/dir/x.csv"}, "no such directory")
}

// A CSV carries the total as JSON does: a counter carried over from a
// hosted service, whose total is far more than its days' views, keeps it
// through export and import (issue 17: 20000 came back as 42).
func TestCountersCSVCarriesTheTotal(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "badge", 20000, seedDays...)
	want := "# total,20000\n" + strings.TrimPrefix(seedCSV, "# total,42\n")
	if got := mustCounters(t, dbURL, "export", "badge"); got != want {
		t.Fatalf("export CSV:\n%s\nwant:\n%s", got, want)
	}
	file := filepath.Join(t.TempDir(), "badge.csv")
	mustCounters(t, dbURL, "export", "badge", "-o", file)

	for _, tt := range []struct{ name, stdin, file string }{
		{"copy", want, "-"},
		{"fromfile", "", file},
	} {
		out, errOut, err := countersRun(t, dbURL, tt.stdin, "import", tt.name, tt.file)
		if err != nil {
			t.Fatalf("import %s: %v\n%s", tt.file, err, errOut)
		}
		if w := "imported 3 day rows into new counter " + tt.name + ": total 20000\n"; out != w {
			t.Errorf("import %s printed %q, want %q", tt.file, out, w)
		}
		if got := testdb.Hits(t, dbURL, tt.name); got != 20000 {
			t.Errorf("import %s: total %d, want 20000", tt.file, got)
		}
		if got := dbDays(t, dbURL, tt.name); !reflect.DeepEqual(got, seedDays) {
			t.Errorf("import %s: day rows %v, want %v", tt.file, got, seedDays)
		}
	}

	// Into an existing counter the file's total is the new total, as with
	// JSON, and the preview says so.
	seedCounter(t, dbURL, "old", 7)
	wantRefused(t, dbURL, want, []string{"import", "old", "-"}, "take its total from 7 to 20000")
	mustCountersIn(t, dbURL, want, "import", "old", "-", "-yes")
	if got := testdb.Hits(t, dbURL, "old"); got != 20000 {
		t.Errorf("import into old: total %d, want 20000", got)
	}
}

// A CSV from elsewhere may have only day and views, in any order and case,
// with the total on a "# total" line or not.
func TestCountersImportPartialCSV(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	days := []db.Day{{Day: date("2024-03-01"), Views: 10}, {Day: date("2024-03-02"), Views: 25}}
	tests := []struct {
		name, in  string
		wantTotal int64
		wantDays  []db.Day
	}{
		{"dayviews", "day,views\n2024-03-01,10\n2024-03-02,25\n", 35, days},
		{"reordered", "\uFEFFViews, Day\r\n10,2024-03-01\r\n25,2024-03-02\r\n", 35, days},
		{"hosted", "# exported from a badge service\n# total,20000,,\nday,views\n2024-03-01,10\n2024-03-02,25\n", 20000, days},
		{"somefigures", "day,bots,views\n2024-03-01,2,10\n", 10, []db.Day{{Day: date("2024-03-01"), Views: 10, Bots: 2}}},
	}
	for _, tt := range tests {
		out := mustCountersIn(t, dbURL, tt.in, "import", tt.name, "-")
		if want := fmt.Sprintf("imported %s into new counter %s: total %d\n", plural(int64(len(tt.wantDays)), "day row"), tt.name, tt.wantTotal); out != want {
			t.Errorf("%s: printed %q, want %q", tt.name, out, want)
		}
		if got := dbDays(t, dbURL, tt.name); !reflect.DeepEqual(got, tt.wantDays) {
			t.Errorf("%s: day rows %v, want %v", tt.name, got, tt.wantDays)
		}
	}
}

// A JSON file may leave out any key, as CSV may leave out columns: no
// name, no total (the days' views are added), no days, figures left out
// (0). What issue 19 refuses (null, keys in another case) is no reason to
// refuse these.
func TestCountersImportJSONMayLeaveOut(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	tests := []struct {
		name, in  string
		wantTotal int64
		wantDays  []db.Day
	}{
		{"nototal", `{"name":"x","days":[{"day":"2024-03-01","views":10,"visitors":10},{"day":"2024-03-02","views":0}]}`, 110,
			[]db.Day{{Day: date("2024-03-01"), Views: 10, Visitors: 10}, {Day: date("2024-03-02")}}},
		{"spaced", "{ \"days\" : [ { \"views\" : 5 ,\n \"day\" : \"2024-03-01\" , \"bots\": 0 } ] ,\"total\" : 7 }", 7,
			[]db.Day{{Day: date("2024-03-01"), Views: 5}}},
		{"nodays", `{"total":3}`, 3, []db.Day{}},
		{"nothing", `{}`, 100, []db.Day{}},
	}
	for _, tt := range tests {
		seedCounter(t, dbURL, tt.name, 100)
		mustCountersIn(t, dbURL, tt.in, "import", tt.name, "-", "-format", "json", "-yes")
		if got := testdb.Hits(t, dbURL, tt.name); got != tt.wantTotal {
			t.Errorf("%s: total %d, want %d", tt.name, got, tt.wantTotal)
		}
		if got := dbDays(t, dbURL, tt.name); !reflect.DeepEqual(got, tt.wantDays) {
			t.Errorf("%s: day rows %v, want %v", tt.name, got, tt.wantDays)
		}
	}
}

// Without -format or a known extension, the content says: { or [ first
// is JSON, anything else CSV.
func TestCountersImportGuessesTheFormat(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	const js = "\n  {\"total\": 500, \"days\": [{\"day\": \"2024-03-01\", \"views\": 10}]}"
	const cs = "day,views\n2024-03-01,10\n"
	dir := t.TempDir()
	for _, tt := range []struct {
		name, file, in string
		wantTotal      int64
	}{
		{"json-stdin", "-", js, 500},
		{"csv-stdin", "-", cs, 10},
		{"json-txt", filepath.Join(dir, "counts.txt"), js, 500},
		{"csv-noext", filepath.Join(dir, "counts"), cs, 10},
	} {
		stdin := tt.in
		if tt.file != "-" {
			if err := os.WriteFile(tt.file, []byte(tt.in), 0o644); err != nil {
				t.Fatal(err)
			}
			stdin = ""
		}
		mustCountersIn(t, dbURL, stdin, "import", tt.name, tt.file)
		if got := testdb.Hits(t, dbURL, tt.name); got != tt.wantTotal {
			t.Errorf("%s: total %d, want %d", tt.name, got, tt.wantTotal)
		}
	}
	// An extension or -format wins over the content.
	wantRefused(t, dbURL, js, []string{"import", "x", "-", "-format", "csv"}, "line 2")
}

// export -o does not overwrite a file without -force.
func TestCountersExportRefusesToOverwrite(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 42, seedDays...)
	file := filepath.Join(t.TempDir(), "blog.csv")
	if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := wantRefused(t, dbURL, "", []string{"export", "blog", "-o", file})
	if want := "-o " + file + ": the file exists; add -force to overwrite it"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if data, _ := os.ReadFile(file); string(data) != "precious" {
		t.Errorf("the file was changed to %q", data)
	}
	mustCounters(t, dbURL, "export", "blog", "-o", file, "-force")
	if data, _ := os.ReadFile(file); string(data) != seedCSV {
		t.Errorf("export -force wrote %q, want %q", data, seedCSV)
	}
}

// Import into an existing counter, with -yes, replaces the days it names
// and keeps the others; the total grows by the views it added.
func TestCountersImportIntoExisting(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200, seedDays...)
	in := "day,views,visitors,bots,filtered\n2024-03-02,30,9,0,3\n2024-03-06,1,1,0,0\n"
	out, errOut, err := countersRun(t, dbURL, in, "import", "blog", "-", "-yes")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, errOut)
	}
	if want := "imported 2 day rows into blog: 1200 → 1206, day rows 3 → 4\n"; out != want {
		t.Errorf("import printed %q, want %q", out, want)
	}
	want := []db.Day{seedDays[0], {Day: date("2024-03-02"), Views: 30, Visitors: 9, Filtered: 3}, seedDays[2], {Day: date("2024-03-06"), Views: 1, Visitors: 1}}
	if got := dbDays(t, dbURL, "blog"); !reflect.DeepEqual(got, want) {
		t.Errorf("day rows %v, want %v", got, want)
	}
	if got := testdb.Hits(t, dbURL, "blog"); got != 1206 {
		t.Errorf("total %d, want 1200 + 5 + 1 = 1206", got)
	}

	// JSON sets the total.
	_, errOut, err = countersRun(t, dbURL, `{"name":"elsewhere","total":7,"days":[]}`, "import", "blog", "-", "-format", "json", "-yes")
	if err != nil {
		t.Fatalf("import JSON: %v\n%s", err, errOut)
	}
	if got := testdb.Hits(t, dbURL, "blog"); got != 7 {
		t.Errorf("total %d after a JSON import, want its 7", got)
	}
}

// A bad file is refused as a whole, naming where it is wrong, before any
// change.
// An import that would take an existing counter's total past db.MaxTotal
// is refused, with or without -yes, and changes nothing: it used to wrap.
func TestCountersImportCannotWrap(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200)
	before := dbState(t, dbURL)
	in := "day,views\n2024-03-01,9007199254740000\n"
	for _, args := range [][]string{{"import", "blog", "-"}, {"import", "blog", "-", "-yes"}} {
		wantRefused(t, dbURL, in, args, "9007199254741200", "9007199254740991")
		wantUnchanged(t, dbURL, before)
	}
	for _, args := range [][]string{{"set", "blog", "9007199254740992", "-yes"}, {"create", "big", "-total", "9223372036854775807"}} {
		wantRefused(t, dbURL, "", args, "between 0 and 9007199254740991")
		wantUnchanged(t, dbURL, before)
	}
}

func TestCountersImportBadFile(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	seedCounter(t, dbURL, "blog", 1200, seedDays...)
	const h = "day,views,visitors,bots,filtered\n"
	future := time.Now().AddDate(0, 0, 3).Format(time.DateOnly)
	tests := []struct {
		name   string
		format string
		in     string
		want   []string
	}{
		{"bad date", "csv", h + "2024-03-01,1,1,0,0\n2024-02-30,1,1,0,0\n", []string{"line 3", `day "2024-02-30"`, "YYYY-MM-DD"}},
		{"negative views", "csv", h + "2024-03-01,-1,1,0,0\n", []string{"line 2", `views "-1"`, "from 0 to 9007199254740991"}},
		{"views past the bound", "csv", h + "2024-03-01,9223372036854775807,0,0,0\n", []string{"line 2", `views "9223372036854775807"`, "from 0 to 9007199254740991"}},
		{"days adding up past the bound", "csv", h + "2024-03-01,5000000000000000,0,0,0\n2024-03-02,5000000000000000,0,0,0\n", []string{"the days' views add up to more than 9007199254740991"}},
		{"total past the bound", "csv", "# total,9223372036854775807\n" + h, []string{"line 1", "between 0 and 9007199254740991"}},
		{"not a number", "csv", h + "2024-03-01,1,1,0,0\n2024-03-02,1,1,x,0\n", []string{"line 3", `bots "x"`}},
		{"fraction", "csv", h + "2024-03-01,1.5,1,0,0\n", []string{"line 2", `views "1.5"`}},
		{"duplicate day", "csv", h + "2024-03-01,1,1,0,0\n2024-03-02,1,1,0,0\n2024-03-01,2,2,0,0\n", []string{"line 4", "2024-03-01", "given twice, first at line 2"}},
		{"too few fields", "csv", h + "2024-03-01,1,1,0\n", []string{"line 2", "4 fields, want 5"}},
		{"future day", "csv", h + future + ",1,1,0,0\n", []string{"line 2", "after today"}},
		{"no header", "csv", "2024-03-01,1,1,0,0\n", []string{"line 1", "header", "want " + csvHeader}},
		{"empty", "csv", "", []string{"no header", csvHeader}},
		{"only a total", "csv", "# total,5\n", []string{"no header"}},
		{"unknown column", "csv", "day,views,clicks\n2024-03-01,1,1\n", []string{"line 1", `column "clicks"`, "want " + csvHeader}},
		{"no views column", "csv", "day,visitors\n2024-03-01,1\n", []string{"line 1", "want at least day,views"}},
		{"column twice", "csv", "day,views,Views\n2024-03-01,1,1\n", []string{"line 1", "column views twice"}},
		{"row wider than the header", "csv", "day,views\n2024-03-01,1,1,0,0\n", []string{"line 2", "5 fields, want 2 (day,views)"}},
		{"total without comma", "csv", "# total 20000\n" + h, []string{"line 1", `"# total 20000"`, "want # total,N"}},
		{"total not a number", "csv", h + "# total,lots\n", []string{"line 2", `"# total,lots"`}},
		{"negative total", "csv", "# total,-5\n" + h, []string{"line 1", "between 0 and 9007199254740991"}},
		{"two totals", "csv", "# total,5\n# total,6\n" + h, []string{"line 2", "a second total, after line 1's"}},
		{"bad day after a total", "csv", "# total,5\n" + h + "2024-03-01,1,1,0,0\nnope,1,1,0,0\n", []string{"line 4", `day "nope"`}},
		{"bad quoting", "csv", h + "2024-03-01,\"1,1,0,0\n", []string{"line 2"}},
		{"json negative", "json", `{"total":5,"days":[{"day":"2024-03-01","views":-2}]}`, []string{"days[0]", "views", "from 0 to 9007199254740991"}},
		{"json duplicate", "json", `{"days":[{"day":"2024-03-01"},{"day":"2024-03-01"}]}`, []string{"days[1]", "given twice, first at days[0]"}},
		{"json total a string", "json", `{"total":"20000","days":[]}`, []string{`import stdin: "total" must be a whole number, not a string`}},
		{"json fraction", "json", `{"days":[{"day":"2024-03-01","views":1.5}]}`, []string{`import stdin: "days[0].views" must be a whole number, not 1.5`}},
		{"json day a number", "json", `{"days":[{"day":20240301}]}`, []string{`"days[0].day" must be a string, not a number`}},
		{"json days an object", "json", `{"days":{}}`, []string{`"days" must be a list [ … ], not an object`}},
		{"json a list", "json", `[]`, []string{"the file must be an object { … }, not a list"}},
		{"json day not an object", "json", `{"days":[7]}`, []string{`"days[0]" must be an object { … }, not a number`}},
		{"json unknown day field", "json", `{"days":[{"day":"2024-03-01","veiws":1}]}`, []string{`import stdin: days[0]: invalid input: unknown field "veiws"`}},
		{"json syntax", "json", "{\n  \"days\": [}\n}", []string{"line 2", "invalid character"}},
		{"json cut short", "json", `{"days": [`, []string{"ends early"}},
		{"json negative total", "json", `{"total":-1,"days":[]}`, []string{"total -1"}},
		{"json unknown field", "json", `{"total":1,"dayz":[]}`, []string{"dayz"}},
		{"json bad date", "json", `{"days":[{"day":"1.3.2024"}]}`, []string{"days[0]", `"1.3.2024"`}},
		{"json trailing", "json", `{"days":[]} {}`, []string{"more than one"}},
		// Issue 19: a figure is digits only, a day's visitors are among its
		// views, keys are as export writes them, and null is no value.
		{"plus sign", "csv", h + "2024-03-01,+5,1,0,0\n", []string{"line 2", `views "+5"`, "from 0 to 9007199254740991"}},
		{"plus sign in a later figure", "csv", h + "2024-03-01,5,1,0,0\n2024-03-02,5,1,+0,0\n", []string{"line 3", `bots "+0"`}},
		{"total with a plus sign", "csv", "# total,+5\n" + h, []string{"line 1", `"# total,+5"`, "want # total,N"}},
		{"visitors past views", "csv", h + "2024-03-01,3,3,0,0\n2024-03-02,3,4,0,0\n", []string{"line 3", "day 2024-03-02", "4 visitors, more than its 3 views"}},
		{"visitors without views", "csv", "day,visitors,views\n2024-03-01,1,0\n", []string{"line 2", "1 visitors, more than its 0 views"}},
		{"json minus zero", "json", `{"days":[{"day":"2024-03-01","views":-0}]}`, []string{"days[0]", `views "-0"`, "from 0 to 9007199254740991"}},
		{"json total minus zero", "json", `{"total":-0,"days":[]}`, []string{"total -0", "from 0 to 9007199254740991"}},
		{"json visitors past views", "json", `{"days":[{"day":"2024-03-01","views":2,"visitors":2},{"day":"2024-03-02","views":1,"visitors":2}]}`, []string{"days[1]", "day 2024-03-02", "2 visitors, more than its 1 views"}},
		{"json visitors left out views", "json", `{"days":[{"day":"2024-03-01","visitors":1}]}`, []string{"days[0]", "1 visitors, more than its 0 views"}},
		{"json day key in another case", "json", `{"days":[{"DAY":"2024-03-01","views":1}]}`, []string{`days[0]: invalid input: field "DAY": want "day"`}},
		{"json figure key in another case", "json", `{"days":[{"day":"2024-03-01","Views":1}]}`, []string{`days[0]: invalid input: field "Views": want "views"`}},
		{"json file key in another case", "json", `{"Total":5,"days":[]}`, []string{`invalid input: field "Total": want "total"`}},
		{"json days key in another case", "json", `{"Days":[{"day":"2024-03-01","views":1}]}`, []string{`field "Days": want "days"`}},
		{"json day key twice", "json", `{"days":[{"day":"2024-03-01","views":1,"views":2}]}`, []string{`days[0]: invalid input: field "views" given twice`}},
		{"json file key twice", "json", `{"total":1,"days":[],"total":2}`, []string{`invalid input: field "total" given twice`}},
		{"json null file", "json", `null`, []string{"the file must be an object { … }, not null"}},
		{"json null days", "json", `{"total":5,"days":null}`, []string{`"days" must be a list [ … ], not null`}},
		{"json null day", "json", `{"days":[{"day":"2024-03-01","views":1},null]}`, []string{`"days[1]" must be an object { … }, not null`}},
		{"json null figure", "json", `{"days":[{"day":"2024-03-01","views":null}]}`, []string{`"days[0].views" must be a whole number, not null`}},
		{"json null date", "json", `{"days":[{"day":null,"views":1}]}`, []string{`"days[0].day" must be a string, not null`}},
		{"json null total", "json", `{"total":null,"days":[]}`, []string{`"total" must be a whole number, not null`, `leave "total" out`}},
		{"json null name", "json", `{"name":null,"days":[]}`, []string{`"name" must be a string, not null`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dbState(t, dbURL)
			for _, name := range []string{"fresh", "blog"} {
				err := wantRefused(t, dbURL, tt.in, []string{"import", name, "-", "-yes", "-format", tt.format}, tt.want...)
				if !strings.Contains(err.Error(), "import stdin") {
					t.Errorf("error %q does not name the input", err)
				}
				wantUnchanged(t, dbURL, before)
			}
		})
	}

	// A file is named in the error, and one that cannot be read is refused.
	file := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(file, []byte(h+"2024-03-01,1,1,0,0\nnope,1,1,0,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, dbURL, "", []string{"import", "fresh", file}, "import "+file, "line 3")
	wantRefused(t, dbURL, "", []string{"import", "fresh", file + ".missing"}, "no such file")
	if dbExists(t, dbURL, "fresh") {
		t.Errorf("a failed import created its counter")
	}
}

// Every change writes an audit row with who did it and the counter before
// and after; `audit` shows them.
func TestCountersAudit(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	host, _ := os.Hostname()
	alice := "alice@" + host // $USER@hostname
	steps := [][]string{
		{"create", "blog", "-total", "100"},
		{"set", "blog", "500", "-yes"},
		{"import", "blog", "-", "-yes", "-actor", testActor},
		{"rename", "blog", "journal"},
		{"reset", "journal", "-yes"},
		{"delete", "journal", "-yes"},
		{"import", "news", "-"},
	}
	for _, args := range steps {
		if _, errOut, err := countersRun(t, dbURL, "day,views,visitors,bots,filtered\n2024-03-01,10,4,2,0\n", args...); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, errOut)
		}
	}
	// Refused and failed changes record nothing.
	wantRefused(t, dbURL, "", []string{"set", "news", "1"}, "-yes")
	wantRefused(t, dbURL, "", []string{"create", "news"}, "already exists")

	want := []auditRecord{
		{alice, "create", "blog", "", `{"name":"blog","total":100}`},
		{alice, "set", "blog", `{"name":"blog","total":100}`, `{"name":"blog","total":500}`},
		{testActor, "import", "blog", `{"name":"blog","total":500}`, `{"days":1,"name":"blog","total":510}`},
		{alice, "rename", "blog", `{"days":1,"name":"blog","total":510}`, `{"days":1,"name":"journal","total":510}`},
		{alice, "reset", "journal", `{"days":1,"name":"journal","total":510}`, `{"name":"journal","total":0}`},
		{alice, "delete", "journal", `{"name":"journal","total":0}`, ""},
		{alice, "import", "news", "", `{"days":1,"name":"news","total":10}`},
	}
	if got := dbAudit(t, dbURL); !reflect.DeepEqual(got, want) {
		t.Errorf("audit rows:\n%v\nwant:\n%v", got, want)
	}

	out := mustCounters(t, dbURL, "audit")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want)+1 || !reflect.DeepEqual(strings.Fields(lines[0]), []string{"AT", "ACTOR", "ACTION", "COUNTER", "OLD", "NEW"}) {
		t.Fatalf("audit printed:\n%s", out)
	}
	wantRows := []string{
		alice + " create blog - total=100 days=0",
		alice + " set blog total=100 days=0 total=500 days=0",
		testActor + " import blog total=500 days=0 total=510 days=1",
		alice + " rename blog total=510 days=1 name=journal total=510 days=1",
		alice + " reset journal total=510 days=1 total=0 days=0",
		alice + " delete journal total=0 days=0 -",
		alice + " import news - total=10 days=1",
	}
	for i, w := range wantRows {
		f := strings.Fields(lines[i+1])
		if _, err := time.Parse(time.RFC3339, f[0]); err != nil {
			t.Errorf("audit line %d: time %q: %v", i+2, f[0], err)
		}
		if got := strings.Join(f[1:], " "); got != w {
			t.Errorf("audit line %d: %q, want %q", i+2, got, w)
		}
	}

	// A rename is listed under both names.
	if got := strings.Count(mustCounters(t, dbURL, "audit", "journal"), "\n"); got != 4 {
		t.Errorf("audit journal printed %d lines, want the header and 3 (rename, reset, delete)", got)
	}
	out = mustCounters(t, dbURL, "audit", "news", "-json")
	var entries []db.AuditEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Action != "import" || entries[0].Old != nil || entries[0].New == nil ||
		entries[0].DBRole == "" || !strings.Contains(out, `"old": null`) {
		t.Errorf("audit news -json: %+v\n%s", entries, out)
	}
}

// hangUpServer is a database that reads each startup message and hangs up,
// as a proxy whose backend is down. (Hanging up before reading it would
// reset the connection, or not, by timing.) It returns a URL naming a
// database of its own and counts the connections asking for it: a client
// of another test still dialling a port it once used, now this listener's,
// is not counted.
func hangUpServer(t *testing.T) (addr, dbURL string, attempts *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	name := fmt.Sprintf("hangup_%d_%d", os.Getpid(), time.Now().UnixNano())
	attempts = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close() // after the count, so before the dialer sees EOF
				c.SetDeadline(time.Now().Add(10 * time.Second))
				msg, err := pgproto3.NewBackend(c, c).ReceiveStartupMessage()
				if sm, ok := msg.(*pgproto3.StartupMessage); err == nil && ok && sm.Parameters["database"] == name {
					attempts.Add(1)
				}
			}()
		}
	}()
	addr = ln.Addr().String()
	return addr, "postgres://u:secret@" + addr + "/" + name + "?sslmode=disable", attempts
}

// Everything is checked before the database is reached: against a database
// that counts who connects, every case fails before anything does.
func TestCountersValidatesBeforeConnecting(t *testing.T) {
	t.Parallel()
	_, dead, dialed := hangUpServer(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no subcommand", nil, nil, "missing subcommand"},
		{"unknown subcommand", []string{"frobnicate"}, nil, `unknown subcommand "frobnicate": want audit, create, delete, export, import, list, rename, reset, set or switch`},
		{"typo", []string{"crate", "blog"}, nil, `counters: unknown subcommand "crate": did you mean "create"?`},
		{"export over a file", []string{"export", "blog", "-o", "owner_test.go"}, nil, "add -force"},
		{"flag before the subcommand", []string{"-yes", "delete", "blog"}, nil, "flags go after the subcommand"},
		{"unknown flag", []string{"list", "-verbose"}, nil, "flag provided but not defined: -verbose"},
		{"-yes where it means nothing", []string{"create", "x", "-yes"}, nil, "-yes"},
		{"stray argument", []string{"list", "extra"}, nil, "usage: hitcounter counters list"},
		{"flag without value", []string{"export", "blog", "-o"}, nil, "flag needs an argument"},
		{"bad timezone", []string{"list"}, map[string]string{"TIMEZONE": "Mars/Olympus"}, `timezone "Mars/Olympus"`},
		{"bad log level", []string{"list", "-log-level", "loud"}, nil, "log level"},
		{"no database", []string{"list"}, map[string]string{"DATABASE_URL": ""}, "no database: set DATABASE_URL"},
		{"bad database URL", []string{"list"}, map[string]string{"DATABASE_URL": "postgres://u:secret@[::1"}, "invalid database URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"DATABASE_URL": dead}
			for k, v := range tt.env {
				env[k] = v
			}
			var stderr bytes.Buffer
			err := Run(context.Background(), append([]string{"counters"}, tt.args...), func(k string) string { return env[k] },
				strings.NewReader(""), io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			if n := dialed.Load(); n != 0 || strings.Contains(err.Error(), "cannot reach") || errors.Is(err, db.ErrUnavailable) {
				t.Fatalf("error %v after %d connections: it tried the database", err, n)
			}
			if strings.Contains(err.Error()+stderr.String(), "secret") {
				t.Fatalf("the password leaked: %v\n%s", err, stderr.String())
			}
		})
	}
	// The counting database does see a command that gets as far as it.
	_, _, err := countersRun(t, dead, "", "list")
	if n := dialed.Load(); n != 1 || err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("a valid list against it: %v after %d connections, want one", err, n)
	}
}

func TestCountersHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"help"}, {"set", "-h"}, {"import", "blog", "-", "-help"}} {
		var stderr bytes.Buffer
		err := Run(context.Background(), append([]string{"counters"}, args...),
			func(string) string { return "postgres://u:secret@127.0.0.1:1/x" }, nil, io.Discard, &stderr)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: error %v, want flag.ErrHelp", args, err)
		}
		if !strings.Contains(stderr.String(), "usage: hitcounter counters") {
			t.Errorf("%q printed no usage:\n%s", args, stderr.String())
		}
		if strings.Contains(stderr.String(), "secret") {
			t.Errorf("%q: the usage shows the database URL:\n%s", args, stderr.String())
		}
	}
	var stderr bytes.Buffer
	err := Run(context.Background(), []string{"counters"}, func(string) string { return "" }, nil, io.Discard, &stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		t.Errorf("counters alone: error %v, want a failure", err)
	}
	usage := stderr.String()
	listed := 0
	for _, sub := range subcommands() {
		if !strings.Contains(usage, "\n  "+sub.name+" ") {
			t.Errorf("usage does not list %s:\n%s", sub.name, usage)
		}
		listed++
	}
	if listed < 10 {
		t.Errorf("the table has %d subcommands", listed)
	}
	for _, l := range strings.Split(usage, "\n") {
		if len(l) > 80 {
			t.Errorf("usage line of %d bytes: %q", len(l), l)
		}
	}
	// The closing paragraph is filled: a short line inside it is a stray
	// line break.
	paras := strings.Split(strings.TrimSpace(usage), "\n\n")
	lines := strings.Split(paras[len(paras)-1], "\n")
	for _, l := range lines[:len(lines)-1] {
		if len(l) < 60 {
			t.Errorf("stray line break in the usage: %q", l)
		}
	}

	// A subcommand's -h lists its own flags, -force where it has one.
	for _, sub := range []string{"delete", "export"} {
		var stderr bytes.Buffer
		Run(context.Background(), []string{"counters", sub, "-h"}, func(string) string { return "" }, nil, io.Discard, &stderr)
		if !strings.HasPrefix(stderr.String(), "usage: hitcounter counters "+sub+" NAME [FLAGS]\n") || !strings.Contains(stderr.String(), "-force") {
			t.Errorf("%s -h printed:\n%s", sub, stderr.String())
		}
	}
}

// An error is returned, and main prints it; nothing else prints it too
// (the flag package did, with the usage), nor any log line.
func TestCountersErrorsPrintOnce(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	noDB, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	noDB.Path = "/hc_no_such_db"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"list", "-verbose"}, `counters list: flag provided but not defined: -verbose; "hitcounter counters list -h" lists its flags`},
		{[]string{"export", "blog", "-o"}, `counters export: flag needs an argument: -o; "hitcounter counters export -h" lists its flags`},
		{[]string{"set", "blog", "-yes=maybe"}, `counters set: invalid boolean value "maybe" for -yes: parse error; "hitcounter counters set -h" lists its flags`},
		{[]string{"crate", "blog"}, `counters: unknown subcommand "crate": did you mean "create"?`},
		{[]string{"create", "main"}, `create counter: counter "main": already exists`},
		{[]string{"delete", "nope", "-yes"}, `delete counter: counter "nope": not found`},
		// A server that answers but refuses: said once, as it said it.
		{[]string{"list", "-database-url", noDB.String()},
			"the database at " + noDB.Host + ` refused the connection: FATAL: database "hc_no_such_db" does not exist (SQLSTATE 3D000)`},
	}
	for _, tt := range tests {
		_, stderr, err := countersRun(t, dbURL, "", tt.args...)
		if err == nil {
			t.Fatalf("%q succeeded", tt.args)
		}
		if err.Error() != tt.want || stderr != "" {
			t.Errorf("%q: error %q and stderr %q; want the error %q and nothing on stderr", tt.args, err, stderr, tt.want)
		}
	}
}

// A database that cannot be reached is one line at once, after one attempt,
// not the retries the server would log.
func TestCountersUnreachableDatabase(t *testing.T) {
	t.Parallel()
	closedAddr := testkit.RefusedAddr(t)
	// A refused attempt cannot be counted, but takes the same path.
	hangUpAddr, hangUpURL, attempts := hangUpServer(t)
	tests := []struct {
		url, want string
		attempts  *atomic.Int64 // nil: not countable
	}{
		{"postgres://u:secret@" + closedAddr + "/x?sslmode=disable", "cannot reach the database at " + closedAddr + ": connection refused", nil},
		{hangUpURL, "cannot reach the database at " + hangUpAddr + ": the server closed the connection (unexpected EOF)", attempts},
	}
	for _, tt := range tests {
		for _, args := range [][]string{{"list"}, {"set", "blog", "5", "-yes"}} {
			var before int64
			if tt.attempts != nil {
				before = tt.attempts.Load()
			}
			_, stderr, err := countersRun(t, tt.url, "", args...)
			if err == nil || err.Error() != tt.want || stderr != "" {
				t.Errorf("%q: error %v and stderr %q; want the error %q and nothing on stderr", args, err, stderr, tt.want)
			}
			if tt.attempts != nil {
				if n := tt.attempts.Load() - before; n != 1 {
					t.Errorf("%q: %d connection attempts, want 1 (%s)", args, n, tt.want)
				}
			}
		}
	}
}

func TestCountersSuggest(t *testing.T) {
	t.Parallel()
	for typed, want := range map[string]string{
		"crate": "create", "lst": "list", "exprot": "export", "del": "delete", "imprt": "import",
		"audits": "audit", "re": "", "frobnicate": "", "x": "",
	} {
		if got := suggest(typed); got != want {
			t.Errorf("suggest(%q) = %q, want %q", typed, got, want)
		}
	}
}

func TestCountersParseInterspersed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantPos []string
		yes     bool
		out     string
	}{
		{[]string{"blog", "5000", "-yes"}, []string{"blog", "5000"}, true, ""},
		{[]string{"-yes", "blog", "5000"}, []string{"blog", "5000"}, true, ""},
		{[]string{"blog", "-o", "x.csv", "5000"}, []string{"blog", "5000"}, false, "x.csv"},
		{[]string{"blog", "-o=-", "-"}, []string{"blog", "-"}, false, "-"},
		{[]string{"blog", "-5", "--yes"}, []string{"blog", "-5"}, true, ""},
		{[]string{"-o", "-yes", "blog"}, []string{"blog"}, false, "-yes"},
		{[]string{"-yes", "--", "-blog", "-o"}, []string{"-blog", "-o"}, true, ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		yes := fs.Bool("yes", false, "")
		out := fs.String("o", "", "")
		pos, err := parseInterspersed(fs, tt.args)
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if !reflect.DeepEqual(pos, tt.wantPos) || *yes != tt.yes || *out != tt.out {
			t.Errorf("%q: arguments %q, -yes %v, -o %q; want %q, %v, %q", tt.args, pos, *yes, *out, tt.wantPos, tt.yes, tt.out)
		}
	}
}

func TestCountersDefaultActor(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	if got := defaultActor(func(k string) string { return map[string]string{"USER": "bob"}[k] }); got != "bob@"+host {
		t.Errorf("actor %q, want bob@%s", got, host)
	}
	// Without $USER (a container): the OS account, or the uid.
	if got := defaultActor(func(string) string { return "" }); !strings.HasSuffix(got, "@"+host) || strings.HasPrefix(got, "@") {
		t.Errorf("actor without $USER: %q, want WHO@%s", got, host)
	}
}
