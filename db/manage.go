package db

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The owner's controls: create, set, reset, rename, delete, import and
// export counters. Each change runs through Transact and writes a row of
// counter_audit (who, when, the counter before and after) in the same
// transaction. They lock the counter's row first, as the increment does,
// so a change and concurrent hits are applied one after the other.

// namePattern is the rule of the counters.name check constraint
// (migrations/001_create_counters.sql); TestNameRuleMatchesTheSchema keeps
// the two the same.
const namePattern = `^[a-z0-9][a-z0-9_-]{0,62}$`

var nameRE = regexp.MustCompile(namePattern)

// ValidName reports whether name can name a counter.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// NameRule says the rule in words, for error messages.
const NameRule = "1 to 63 characters: lower-case letters, digits, '-' and '_', starting with a letter or digit"

// CheckName is the rule for a counter's name, which callers check before
// they connect.
func CheckName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("counter name %q: %w: %s", name, ErrInvalid, NameRule)
	}
	return nil
}

// Listing is what List says before the counters: enough to lay out a
// table without holding it.
type Listing struct {
	LongestName int   // in bytes, which names' characters are one column each
	MaxTotal    int64 // the largest total
}

// List gives head the Listing, then each counter to row, by name, as its
// row arrives: a listing of 100 000 counters holds one at a time. Both
// see one snapshot. A failure after some counters were given is retried
// from the counter after the last one (head is not called again), so
// each is given once.
func (s *Store) List(ctx context.Context, head func(Listing) error, row func(Counts) error) error {
	var (
		started bool
		last    string // the last name given to row; names are never empty
	)
	return s.Transact(ctx, "list counters", pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(ctx context.Context, tx pgx.Tx) error {
		if !started {
			var l Listing
			if err := tx.QueryRow(ctx, `select coalesce(max(length(name)), 0), coalesce(max(hits), 0) from counters`).
				Scan(&l.LongestName, &l.MaxTotal); err != nil {
				return err
			}
			if err := head(l); err != nil {
				return err
			}
			started = true
		}
		rows, _ := tx.Query(ctx, selectCounters+` where c.name > $1 order by c.name`, last)
		defer rows.Close()
		for rows.Next() {
			var name string
			var e entry
			if err := scanEntry(rows, &name, &e); err != nil {
				return err
			}
			if err := row(s.today(e.counts(name))); err != nil {
				return err
			}
			last = name
		}
		return rows.Err()
	})
}

// Snapshot is a counter as the audit keeps it, before and after each owner
// change: in the audit table as JSON, and returned by the change itself.
type Snapshot struct {
	Name  string `json:"name"`
	Total int64  `json:"total"`
	Days  int64  `json:"days,omitempty"` // day rows
	// Only the switch action records the switches (Store.Switch).
	NoPlusOne bool `json:"no_plus_one,omitempty"`
	NoPage    bool `json:"no_page,omitempty"`
}

// Change is what an owner change did, as its transaction saw it: the
// counter before (nil when it made the counter) and after (nil when it
// deleted it). A caller prints it rather than reading the audit back,
// where another run of the same actor could have written since.
type Change struct {
	Before, After *Snapshot
}

// MaxTotal is the most a counter's total, or one day's figure, may be:
// 2^53 - 1, the largest integer a JSON reader in a browser (the API's)
// holds exactly, and far enough from int64's end that no sum of two
// wraps. Migration 006 holds the schema to it as well.
const MaxTotal = 1<<53 - 1

// CheckTotal is the rule for a counter's total, which callers check
// before they connect.
func CheckTotal(total int64) error {
	if total < 0 || total > MaxTotal {
		return fmt.Errorf("total %d: %w: must be between 0 and %d", total, ErrInvalid, int64(MaxTotal))
	}
	return nil
}

// CheckDays is the rule for imported days: each day once, every figure
// between 0 and MaxTotal, at most as many visitors as views (they are the
// distinct viewers among the day's views), and their views adding up to at
// most MaxTotal.
func CheckDays(days []Day) error {
	seen := make(map[time.Time]bool, len(days))
	var views int64
	for _, d := range days {
		k := d.Day.Format(time.DateOnly)
		if seen[d.Day] {
			return fmt.Errorf("day %s: %w: given twice", k, ErrInvalid)
		}
		seen[d.Day] = true
		for _, n := range []int64{d.Views, d.Visitors, d.Bots, d.Filtered} {
			if n < 0 || n > MaxTotal {
				return fmt.Errorf("day %s: %w: figures must be between 0 and %d", k, ErrInvalid, int64(MaxTotal))
			}
		}
		if d.Visitors > d.Views {
			return fmt.Errorf("day %s: %w: %d visitors, more than its %d views", k, ErrInvalid, d.Visitors, d.Views)
		}
		if views += d.Views; views > MaxTotal { // each ≤ MaxTotal: the sum cannot wrap first
			return fmt.Errorf("day %s: %w: the days' views add up to more than %d", k, ErrInvalid, int64(MaxTotal))
		}
	}
	return nil
}

// Create makes a counter starting at total.
func (s *Store) Create(ctx context.Context, actor, name string, total int64) (Change, error) {
	if err := CheckName(name); err != nil {
		return Change{}, err
	}
	if err := CheckTotal(total); err != nil {
		return Change{}, err
	}
	return s.change(ctx, "create", actor, name, func(ctx context.Context, tx pgx.Tx, old *Snapshot) (*Snapshot, error) {
		if old != nil {
			return nil, fmt.Errorf("counter %q: %w", name, ErrExists)
		}
		_, err := tx.Exec(ctx, `insert into counters (name, hits) values ($1, $2)`, name, total)
		return &Snapshot{Name: name, Total: total}, err
	})
}

// autoCreate makes a counter on its first hit, while there are fewer than
// MaxCounters. An advisory lock makes the count and the insert one step
// across instances.
func (s *Store) autoCreate(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	_, err := s.change(ctx, "create", "auto-create on first hit", name, func(ctx context.Context, tx pgx.Tx, old *Snapshot) (*Snapshot, error) {
		if old != nil {
			return old, nil // another instance made it meanwhile
		}
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtext('hitcounter auto-create'))`); err != nil {
			return nil, err
		}
		var n int
		if err := tx.QueryRow(ctx, `select count(*) from counters`).Scan(&n); err != nil {
			return nil, err
		}
		if n >= s.cfg.MaxCounters {
			return nil, fmt.Errorf("counter %q: %w: the limit of %d counters is reached", name, ErrNotFound, s.cfg.MaxCounters)
		}
		tag, err := tx.Exec(ctx, `insert into counters (name) values ($1) on conflict do nothing`, name)
		if err == nil && tag.RowsAffected() == 0 {
			// Another instance made it while this one waited for the
			// lock, and audited it: nothing changed here.
			return nil, nil
		}
		return &Snapshot{Name: name}, err
	})
	return err
}

// Set sets the counter's total, e.g. to start from an older counter's
// count. Today's figures and history stay.
func (s *Store) Set(ctx context.Context, actor, name string, total int64) (Change, error) {
	if err := CheckTotal(total); err != nil {
		return Change{}, err
	}
	return s.change(ctx, "set", actor, name, func(ctx context.Context, tx pgx.Tx, old *Snapshot) (*Snapshot, error) {
		if old == nil {
			return nil, fmt.Errorf("counter %q: %w", name, ErrNotFound)
		}
		_, err := tx.Exec(ctx, `update counters set hits = $2, updated_at = now() where name = $1`, name, total)
		return &Snapshot{Name: name, Total: total, Days: old.Days}, err
	})
}

// Reset starts the counter over: total zero, no history, no visitors.
func (s *Store) Reset(ctx context.Context, actor, name string) (Change, error) {
	return s.change(ctx, "reset", actor, name, func(ctx context.Context, tx pgx.Tx, old *Snapshot) (*Snapshot, error) {
		if old == nil {
			return nil, fmt.Errorf("counter %q: %w", name, ErrNotFound)
		}
		// Days first: the notification of the counter's update then carries
		// no day row.
		for _, q := range []string{
			`delete from counter_days where counter = $1`,
			`delete from visitors where counter = $1`,
			`update counters set hits = 0, updated_at = now() where name = $1`,
		} {
			if _, err := tx.Exec(ctx, q, name); err != nil {
				return nil, err
			}
		}
		return &Snapshot{Name: name}, nil
	})
}

// Rename gives a counter a new name; its history and visitors follow.
func (s *Store) Rename(ctx context.Context, actor, name, newName string) (Change, error) {
	if err := CheckName(newName); err != nil {
		return Change{}, err
	}
	if newName == name {
		return Change{}, fmt.Errorf("rename %q: %w: the new name is the same", name, ErrInvalid)
	}
	return s.change(ctx, "rename", actor, name, func(ctx context.Context, tx pgx.Tx, old *Snapshot) (*Snapshot, error) {
		if old == nil {
			return nil, fmt.Errorf("counter %q: %w", name, ErrNotFound)
		}
		_, err := tx.Exec(ctx, `update counters set name = $2, updated_at = now() where name = $1`, name, newName)
		if sqlState(err) == "23505" {
			return nil, fmt.Errorf("counter %q: %w", newName, ErrExists)
		}
		return &Snapshot{Name: newName, Total: old.Total, Days: old.Days}, err
	})
}

// Delete removes a counter with its history. The audit keeps what it was.
func (s *Store) Delete(ctx context.Context, actor, name string) (Change, error) {
	return s.change(ctx, "delete", actor, name, func(ctx context.Context, tx pgx.Tx, old *Snapshot) (*Snapshot, error) {
		if old == nil {
			return nil, fmt.Errorf("counter %q: %w", name, ErrNotFound)
		}
		_, err := tx.Exec(ctx, `delete from counters where name = $1`, name)
		return nil, err
	})
}

// Import writes day rows into a counter, creating it if needed: each
// imported day replaces the counter's row of that day. The total then
// grows by the views the import added (imported minus replaced), or is set
// to total when it is given (an export in JSON carries it).
func (s *Store) Import(ctx context.Context, actor, name string, days []Day, total *int64) (Change, error) {
	if err := CheckName(name); err != nil {
		return Change{}, err
	}
	if err := CheckDays(days); err != nil {
		return Change{}, err
	}
	if total != nil {
		if err := CheckTotal(*total); err != nil {
			return Change{}, err
		}
	}
	today := s.Today()
	var past, rest []Day // rest: today's row, which hits write, and any later
	for _, d := range days {
		if d.Day.Before(today) {
			past = append(past, d)
		} else {
			rest = append(rest, d)
		}
	}
	var imported int64
	for _, d := range days {
		imported += d.Views // at most MaxTotal in all (CheckDays)
	}
	var done Change
	err := s.Transact(ctx, "import counter", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		done = Change{}
		// Imports of one counter take turns. The counter's row is locked
		// only at the end, for today's row and the total: hits, which
		// lock it first, wait for that, not for the whole file.
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1, hashtext($2))`, importLock, name); err != nil {
			return err
		}
		var oldDays int64
		if err := tx.QueryRow(ctx, `select count(*) from counter_days where counter = $1`, name).Scan(&oldDays); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `insert into counters (name) values ($1) on conflict do nothing`, name)
		if err != nil {
			return err
		}
		created := tag.RowsAffected() == 1
		replaced, err := upsertDays(ctx, tx, name, past)
		if err != nil {
			return err
		}
		var oldTotal int64
		err = tx.QueryRow(ctx, `select hits from counters where name = $1 for update`, name).Scan(&oldTotal)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("counter %q: %w: deleted during the import", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		r, err := upsertDays(ctx, tx, name, rest)
		if err != nil {
			return err
		}
		// imported and oldTotal ≤ MaxTotal, replaced and r ≤ 2·MaxTotal
		// each: no sum wraps.
		newTotal := max(oldTotal+imported-replaced-r, 0)
		if total != nil {
			newTotal = *total
		}
		if newTotal > MaxTotal {
			return fmt.Errorf("import into %q: %w: it would take the total from %d to %d, past %d", name, ErrInvalid, oldTotal, newTotal, int64(MaxTotal))
		}
		// Always an update, so the counter's notification carries the days.
		if _, err := tx.Exec(ctx, `update counters set hits = $2, updated_at = now() where name = $1`, name, newTotal); err != nil {
			return err
		}
		if !created {
			done.Before = &Snapshot{Name: name, Total: oldTotal, Days: oldDays}
		}
		if done.After, err = s.auditOf(ctx, tx, name); err != nil {
			return err
		}
		return audit(ctx, tx, "import", actor, name, done)
	})
	if err != nil {
		return Change{}, err
	}
	return done, nil
}

// importLock is the first key of the advisory lock imports of one counter
// take ("hcimport" would not fit an int4: "hcim").
const importLock = int32(0x6863696d)

// upsertDays writes days into the counter's rows in one statement, and
// returns the views of the rows it replaced (capped at 2·MaxTotal: the
// schema bounds each row, not their sum).
func upsertDays(ctx context.Context, tx pgx.Tx, name string, days []Day) (replaced int64, err error) {
	if len(days) == 0 {
		return 0, nil
	}
	dates := make([]time.Time, len(days))
	figs := [4][]int64{}
	for i, d := range days {
		dates[i] = d.Day
		for k, v := range []int64{d.Views, d.Visitors, d.Bots, d.Filtered} {
			figs[k] = append(figs[k], v)
		}
	}
	// The CTEs share one snapshot: replaced reads the rows as they were
	// before the upsert, which runs whether or not it is read.
	err = tx.QueryRow(ctx, `with input (day, views, visitors, bots, filtered) as (
		select * from unnest($2::date[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
	), replaced as (
		select least(coalesce(sum(d.views), 0), $7)::int8 as views
		from counter_days d join input i on d.day = i.day where d.counter = $1
	), up as (
		insert into counter_days (counter, day, views, visitors, bots, filtered)
		select $1, day, views, visitors, bots, filtered from input
		on conflict (counter, day) do update set views = excluded.views,
			visitors = excluded.visitors, bots = excluded.bots, filtered = excluded.filtered
		returning 1
	)
	select views from replaced`,
		name, dates, figs[0], figs[1], figs[2], figs[3], int64(2*MaxTotal)).Scan(&replaced)
	return replaced, err
}

// Export returns the counter and all its day rows, for `counters export`.
func (s *Store) Export(ctx context.Context, name string) (Counts, []Day, error) {
	var c Counts
	var days []Day
	err := s.Transact(ctx, "export", pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(ctx context.Context, tx pgx.Tx) error {
		days = days[:0]
		var e entry
		if err := scanCount(name, tx.QueryRow(ctx, selectCounters+` where c.name = $1`, name), &e); err != nil {
			return err
		}
		c = s.today(e.counts(name))
		rows, _ := tx.Query(ctx, `select day, views, visitors, bots, filtered from counter_days where counter = $1 order by day`, name)
		var d Day
		_, err := pgx.ForEachRow(rows, []any{&d.Day, &d.Views, &d.Visitors, &d.Bots, &d.Filtered}, func() error {
			days = append(days, d)
			return nil
		})
		return err
	})
	return c, days, err
}

// change runs one owner change in a transaction: it locks the counter's
// row (old is nil when there is none), applies fn, and writes the audit row.
func (s *Store) change(ctx context.Context, action, actor, name string, fn func(ctx context.Context, tx pgx.Tx, old *Snapshot) (*Snapshot, error)) (Change, error) {
	var done Change
	err := s.Transact(ctx, action+" counter", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		done = Change{}
		var old *Snapshot
		var locked string
		err := tx.QueryRow(ctx, `select name from counters where name = $1 for update`, name).Scan(&locked)
		switch {
		case err == nil:
			if old, err = s.auditOf(ctx, tx, name); err != nil {
				return err
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		newRow, err := fn(ctx, tx, old)
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" && action == "create" {
				return fmt.Errorf("counter %q: %w", name, ErrExists)
			}
			return err
		}
		done = Change{Before: old, After: newRow}
		if newRow == old {
			return nil // fn found nothing to change (nil: none before or after): nothing to audit
		}
		return audit(ctx, tx, action, actor, name, done)
	})
	if err != nil {
		return Change{}, err
	}
	return done, nil
}

// audit records an owner's change in the counter_audit table.
func audit(ctx context.Context, tx pgx.Tx, action, actor, name string, c Change) error {
	_, err := tx.Exec(ctx, `insert into counter_audit (actor, action, counter, old, new) values ($1, $2, $3, $4, $5)`,
		actor, action, name, c.Before, c.After)
	return err
}

// auditOf reads what the audit keeps of a counter.
func (s *Store) auditOf(ctx context.Context, tx pgx.Tx, name string) (*Snapshot, error) {
	a := &Snapshot{Name: name}
	err := tx.QueryRow(ctx, `select hits, (select count(*) from counter_days where counter = $1) from counters where name = $1`, name).Scan(&a.Total, &a.Days)
	return a, err
}

// AuditEntry is one recorded owner change.
type AuditEntry struct {
	At      string    `json:"at"`
	Actor   string    `json:"actor"`
	DBRole  string    `json:"db_role"`
	Action  string    `json:"action"`
	Counter string    `json:"counter"`
	Old     *Snapshot `json:"old"` // the counter before; nil on create
	New     *Snapshot `json:"new"` // and after; nil on delete
}

// Audit returns the recorded changes of a counter (every counter when
// name is empty), oldest first; a rename is listed under both names.
func (s *Store) Audit(ctx context.Context, name string) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.Transact(ctx, "audit", pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(ctx context.Context, tx pgx.Tx) error {
		out = out[:0]
		rows, _ := tx.Query(ctx, `select to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), actor, db_role, action, counter,
			old, new
			from counter_audit where $1 = '' or counter = $1 or new->>'name' = $1 order by id`, name)
		var a AuditEntry
		_, err := pgx.ForEachRow(rows, []any{&a.At, &a.Actor, &a.DBRole, &a.Action, &a.Counter, &a.Old, &a.New}, func() error {
			out = append(out, a)
			a.Old, a.New = nil, nil // the next row's own, not this one's
			return nil
		})
		return err
	})
	return out, err
}
