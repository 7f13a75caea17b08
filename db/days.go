package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Day is one counter's figures for one day.
type Day struct {
	Day      time.Time // a date: midnight UTC
	Views    int64
	Visitors int64
	Bots     int64
	Filtered int64
}

// Days returns the named counter's day rows from from to to, both
// included, oldest first; days without a row are absent.
func (s *Store) Days(ctx context.Context, name string, from, to time.Time) ([]Day, error) {
	var days []Day
	err := s.Transact(ctx, "days", pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(ctx context.Context, tx pgx.Tx) error {
		days = days[:0]
		var exists bool
		if err := tx.QueryRow(ctx, `select exists (select from counters where name = $1)`, name).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("counter %q: %w", name, ErrNotFound)
		}
		rows, _ := tx.Query(ctx, `select day, views, visitors, bots, filtered from counter_days
			where counter = $1 and day between $2 and $3 order by day`, name, from, to)
		var d Day
		_, err := pgx.ForEachRow(rows, []any{&d.Day, &d.Views, &d.Visitors, &d.Bots, &d.Filtered}, func() error {
			days = append(days, d)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return days, nil
}

// FillDays returns one Day for every date from from to to, taking the
// figures from days (sorted, as Days returns them) and zero elsewhere.
func FillDays(days []Day, from, to time.Time) []Day {
	var out []Day
	i := 0
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		for i < len(days) && days[i].Day.Before(d) {
			i++
		}
		if i < len(days) && days[i].Day.Equal(d) {
			out = append(out, days[i])
		} else {
			out = append(out, Day{Day: d})
		}
	}
	return out
}
