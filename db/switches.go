package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Switch sets a counter's switches (see Switches). Every instance applies
// them on the announcement of the change; the audit keeps them before and
// after.
func (s *Store) Switch(ctx context.Context, actor, name string, sw Switches) (Change, error) {
	return s.change(ctx, "switch", actor, name, func(ctx context.Context, tx pgx.Tx, old *Snapshot) (*Snapshot, error) {
		if old == nil {
			return nil, fmt.Errorf("counter %q: %w", name, ErrNotFound)
		}
		// old is the audit's "before": the switches are read into it here,
		// since no other action records them.
		err := tx.QueryRow(ctx, `select not plus_one, not page from counters where name = $1`, name).Scan(&old.NoPlusOne, &old.NoPage)
		if err != nil {
			return nil, err
		}
		if old.NoPlusOne == sw.NoPlusOne && old.NoPage == sw.NoPage {
			return old, nil // nothing changes, nothing to audit
		}
		_, err = tx.Exec(ctx, `update counters set plus_one = $2, page = $3, updated_at = now() where name = $1`,
			name, !sw.NoPlusOne, !sw.NoPage)
		return &Snapshot{Name: name, Total: old.Total, Days: old.Days, NoPlusOne: sw.NoPlusOne, NoPage: sw.NoPage}, err
	})
}
