package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/pgproxy"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// clock is a settable Config.Now for tests of days.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(at string) *clock {
	c := &clock{}
	c.set(at)
	return c
}

func (c *clock) set(at string) {
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		panic(err)
	}
	c.t.Store(&t)
}

func (c *clock) now() time.Time { return *c.t.Load() }

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

// dayRow reads one day row straight from the database.
func dayRow(t *testing.T, dbURL, counter, day string) Day {
	t.Helper()
	var d Day
	err := connect(t, dbURL).QueryRow(testCtx(t), `select day, views, visitors, bots, filtered from counter_days
		where counter = $1 and day = $2`, counter, day).Scan(&d.Day, &d.Views, &d.Visitors, &d.Bots, &d.Filtered)
	if err != nil {
		t.Fatalf("day row %s %s: %v", counter, day, err)
	}
	return d
}

func countRows(t *testing.T, dbURL, query string, args ...any) int {
	t.Helper()
	var n int
	if err := connect(t, dbURL).QueryRow(testCtx(t), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Views, visitors, bots and filtered views from many goroutines at once
// are each counted exactly, coalesced or not, and the total moves with
// the views alone. Every view gets its own total.
func TestRecordIsExactUnderConcurrency(t *testing.T) {
	for _, onePerHit := range []bool{false, true} {
		t.Run(fmt.Sprintf("onePerHit=%v", onePerHit), func(t *testing.T) {
			t.Parallel()
			const workers, each, distinct = 20, 50, 7
			dbURL := testdb.NewMigrated(t)
			cfg := DefaultConfig()
			cfg.Retry = fastPolicy()
			cfg.OnePerHit = onePerHit
			s, _ := newStoreWith(t, dbURL, cfg)
			ctx := testCtx(t)

			var mu sync.Mutex
			totals := map[int64]bool{}
			var wg sync.WaitGroup
			var views, bots, filtered atomic.Int64
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						h := Hit{Kind: View, Visitor: fmt.Sprintf("192.0.2.%d\x00Firefox", (w*each+i)%distinct)}
						switch i % 5 {
						case 3:
							h = Hit{Kind: Bot}
						case 4:
							h = Hit{Kind: Filtered}
						}
						c, err := s.Record(ctx, "main", h)
						if err != nil {
							t.Error(err)
							return
						}
						switch h.Kind {
						case View:
							views.Add(1)
							mu.Lock()
							if totals[c.Total] {
								t.Errorf("total %d answered twice", c.Total)
							}
							totals[c.Total] = true
							mu.Unlock()
						case Bot:
							bots.Add(1)
						case Filtered:
							filtered.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if got, want := testdb.Hits(t, dbURL, "main"), views.Load(); got != want {
				t.Errorf("total: got %d, want %d (views only)", got, want)
			}
			want := Day{Day: s.Today(), Views: views.Load(), Visitors: distinct, Bots: bots.Load(), Filtered: filtered.Load()}
			if views.Load() == 0 || bots.Load() == 0 || filtered.Load() == 0 {
				t.Fatalf("the test made no hit of some kind: %+v", want)
			}
			if got := dayRow(t, dbURL, "main", s.Today().Format(time.DateOnly)); got != want {
				t.Errorf("day row: got %+v, want %+v", got, want)
			}
			if n := countRows(t, dbURL, `select count(*) from visitors`); n != distinct {
				t.Errorf("%d visitor hashes stored, want %d", n, distinct)
			}
			c, err := s.Counts(ctx, "main")
			if err != nil {
				t.Fatal(err)
			}
			if c.Total != want.Views || c.Views != want.Views || c.Visitors != distinct || c.Bots != want.Bots || c.Filtered != want.Filtered {
				t.Errorf("Counts: got %+v, want the day row %+v", c, want)
			}
		})
	}
}

// "Today" is the day in the configured timezone: 03:00 UTC is still the
// evening before in New York, 05:30 UTC is its next day.
func TestDayBoundaryInTimezone(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock("2026-03-02T03:00:00Z") // 22:00 on March 1st in New York
	cfg := DefaultConfig()
	cfg.Retry, cfg.Location, cfg.Now = fastPolicy(), ny, clk.now
	s, _ := newStoreWith(t, dbURL, cfg)
	ctx := testCtx(t)

	record := func(n int) {
		for range n {
			if _, err := s.Record(ctx, "main", Hit{Visitor: "198.51.100.1\x00UA"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	record(2)
	clk.set("2026-03-02T04:59:59Z") // 23:59:59
	record(1)
	clk.set("2026-03-02T05:30:00Z") // 00:30 on March 2nd
	record(4)

	if got, want := dayRow(t, dbURL, "main", "2026-03-01"), (Day{Day: date("2026-03-01"), Views: 3, Visitors: 1}); got != want {
		t.Errorf("March 1st: got %+v, want %+v", got, want)
	}
	if got, want := dayRow(t, dbURL, "main", "2026-03-02"), (Day{Day: date("2026-03-02"), Views: 4, Visitors: 1}); got != want {
		t.Errorf("March 2nd: got %+v, want %+v", got, want)
	}
	c, err := s.Counts(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Day.Equal(date("2026-03-02")) || c.Views != 4 || c.Total != 7 {
		t.Errorf("Counts on March 2nd: got %+v, want day 2026-03-02, 4 views, 7 in all", c)
	}
	days, err := s.Days(ctx, "main", date("2026-02-28"), date("2026-03-02"))
	if err != nil {
		t.Fatal(err)
	}
	filled := FillDays(days, date("2026-02-28"), date("2026-03-02"))
	if len(days) != 2 || len(filled) != 3 || filled[0].Views != 0 || filled[1].Views != 3 || filled[2].Views != 4 {
		t.Errorf("Days: got %+v, filled %+v", days, filled)
	}
}

// Today's figures read as zero once the day is over, before any hit of the
// new day.
func TestCountsOfANewDayStartAtZero(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	clk := newClock("2026-05-01T12:00:00Z")
	cfg := DefaultConfig()
	cfg.Retry, cfg.Now = fastPolicy(), clk.now
	s, _ := newStoreWith(t, dbURL, cfg)
	ctx := testCtx(t)
	if _, err := s.Record(ctx, "main", Hit{Visitor: "v"}); err != nil {
		t.Fatal(err)
	}
	clk.set("2026-05-02T00:00:01Z")
	c, err := s.Counts(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 1 || c.Views != 0 || c.Visitors != 0 || !c.Day.Equal(date("2026-05-02")) {
		t.Errorf("got %+v, want total 1 and nothing yet on May 2nd", c)
	}
}

// A visitor counts once a day; a new day has a new salt, and yesterday's
// hashes are deleted (its salt, only ever in memory, is forgotten), so
// they can't be recomputed or linked.
func TestVisitorSaltRotatesDaily(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	clk := newClock("2026-06-10T08:00:00Z")
	cfg := DefaultConfig()
	cfg.Retry, cfg.Now = fastPolicy(), clk.now
	s, _ := newStoreWith(t, dbURL, cfg)
	ctx := testCtx(t)
	visit := func(who string) Counts {
		t.Helper()
		c, err := s.Record(ctx, "main", Hit{Visitor: who})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	visit("203.0.113.5\x00Firefox")
	visit("203.0.113.5\x00Firefox")
	if c := visit("203.0.113.6\x00Firefox"); c.Visitors != 2 || c.Views != 3 {
		t.Fatalf("day 1: got %+v, want 3 views by 2 visitors", c)
	}
	salt1 := currentSalt(t, s)

	clk.set("2026-06-11T08:00:00Z")
	if c := visit("203.0.113.5\x00Firefox"); c.Visitors != 1 || c.Views != 1 {
		t.Fatalf("day 2: got %+v, want the same visitor counted anew", c)
	}
	if n := countRows(t, dbURL, `select count(*) from visitors where day < '2026-06-11'`); n != 0 {
		t.Errorf("%d hashes of yesterday kept, want none", n)
	}
	salt2 := currentSalt(t, s)
	if string(salt1) == string(salt2) {
		t.Error("the new day has the old day's salt")
	}
	if got := dayRow(t, dbURL, "main", "2026-06-10"); got.Visitors != 2 {
		t.Errorf("yesterday's row lost its visitors: %+v", got)
	}
}

// Making a new day's salt on a frozen database does not hold up the
// writes queued behind it past their own deadlines: each gives up with
// ErrUnavailable while the first is still stuck.
func TestNewSaltDoesNotHoldOthersPastTheirDeadline(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	proxy, proxied := pgproxy.ForTest(t, dbURL)
	s, _ := newStore(t, proxied, fastPolicy())
	day := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC) // a salt nobody made yet
	proxy.Freeze(true)
	defer proxy.Freeze(false)

	stuckCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stuck := make(chan error, 1)
	go func() {
		_, err := s.salt(stuckCtx, day)
		stuck <- err
	}()
	// The first caller holds the right to make the salt once it has it.
	testkit.Eventually(t, 10*time.Second, "the first caller making the salt", func() (bool, string) {
		return len(s.salts.making) == 1, fmt.Sprintf("%d making", len(s.salts.making))
	})

	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if _, err := s.salt(short, day); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a write queued behind it: %v, want ErrUnavailable at its deadline", err)
	}
	select {
	case err := <-stuck:
		t.Fatalf("the first caller is no longer stuck (%v): the test proves nothing", err)
	default:
	}
	proxy.Freeze(false)
	if err := <-stuck; err != nil && !errors.Is(err, ErrUnavailable) {
		t.Errorf("the first caller: %v", err)
	}
}

// With auto-creation on, a hit creates its counter, up to the limit; the
// creation is audited. Off, an unknown counter is not found.
func TestAutoCreateIsBounded(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	ctx := testCtx(t)
	off, _ := newStore(t, dbURL, fastPolicy())
	if _, err := off.Record(ctx, "blog", Hit{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("auto-creation off: got %v, want ErrNotFound", err)
	}
	cfg := DefaultConfig()
	cfg.Retry, cfg.AutoCreate, cfg.MaxCounters = fastPolicy(), true, 3 // main, a, b
	s, _ := newStoreWith(t, dbURL, cfg)
	if _, err := s.Record(ctx, "Not A Name", Hit{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a bad name: got %v, want ErrInvalid", err)
	}
	for _, name := range []string{"a", "b", "a"} {
		if _, err := s.Record(ctx, name, Hit{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := s.Record(ctx, "c", Hit{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("over the limit: got %v, want ErrNotFound", err)
	}
	if got := testdb.Hits(t, dbURL, "a"); got != 2 {
		t.Errorf("a: %d hits, want 2", got)
	}
	if n := countRows(t, dbURL, `select count(*) from counters`); n != 3 {
		t.Errorf("%d counters, want 3", n)
	}
	if n := countRows(t, dbURL, `select count(*) from counter_audit where action = 'create'`); n != 2 {
		t.Errorf("%d creations audited, want 2", n)
	}
	// The owner is not bound by it: counters create still makes one,
	// and its views count.
	if _, err := s.Create(ctx, "owner", "c", 0); err != nil {
		t.Fatalf("the owner's create past MaxCounters: %v", err)
	}
	if c, err := s.Record(ctx, "c", Hit{}); err != nil || c.Total != 1 {
		t.Errorf("a view of the owner's counter past MaxCounters: %+v, %v", c, err)
	}
}

// The Go rule for names and the schema's check constraint agree.
func TestNameRuleMatchesTheSchema(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	conn := connect(t, dbURL)
	ctx := testCtx(t)
	valid := 0
	for _, name := range []string{"a", "blog", "my-page_2", "0", strings.Repeat("x", 63),
		"", "-a", "_a", "A", "a b", "a/b", "é", "a.b", "a\x00", strings.Repeat("y", 64), "../x"} {
		_, err := conn.Exec(ctx, `insert into counters (name) values ($1)`, name)
		if ValidName(name) != (err == nil) {
			t.Errorf("%q: ValidName %v, the schema says %v", name, ValidName(name), err)
		}
		if err == nil {
			valid++
		}
	}
	if valid == 0 {
		t.Fatal("no name was valid: the test checked nothing")
	}
}

// Today's figures reach other instances' memory with the total: a read
// there needs no query. A renamed counter leaves their memory.
func TestTodayReachesOtherInstances(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	a, _ := newStore(t, dbURL, fastPolicy())
	b, _ := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)
	waitListening(t, b)
	before := b.Stats()
	for _, h := range []Hit{{Visitor: "x"}, {Visitor: "x"}, {Visitor: "y"}, {Kind: Bot}, {Kind: Filtered}} {
		if _, err := a.Record(ctx, "main", h); err != nil {
			t.Fatal(err)
		}
	}
	want := Counts{Name: "main", Total: 3, Day: b.Today(), Views: 3, Visitors: 2, Bots: 1, Filtered: 1}
	testkit.Eventually(t, 10*time.Second, "today's figures in the other instance", func() (bool, string) {
		c, err := b.Counts(ctx, "main")
		c.Updated = time.Time{}
		return err == nil && c == want, fmt.Sprintf("%+v %v", c, err)
	})
	if st := b.Stats(); st.DatabaseReads != before.DatabaseReads {
		t.Errorf("%d reads went to the database, want none", st.DatabaseReads-before.DatabaseReads)
	}
	if _, err := a.Rename(ctx, "test", "main", "home"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the old name gone from memory", func() (bool, string) {
		_, ok := b.cache.get("main")
		e, okNew := b.cache.get("home")
		return !ok && okNew && e.hits == 3 && e.views == 3, fmt.Sprint(ok, okNew, e)
	})
}
