package db

import (
	"context"
	"fmt"
	"time"
)

// Archiver is the server's WAL archiving as pg_stat_archiver reports it:
// with continuous backups (README, "Backup and restore"), a WAL segment
// that cannot be archived is a gap in what can be restored.
type Archiver struct {
	Archived, Failed         int64     // segments archived, and failed attempts, since the statistics were reset
	LastArchived, LastFailed time.Time // zero: never
}

// Archiver reads pg_stat_archiver. Like Ready it does not retry: a scrape
// wants the state now, and the scraper asks again.
func (s *Store) Archiver(ctx context.Context) (Archiver, error) {
	var a Archiver
	var last, failed *time.Time
	err := s.pool.QueryRow(ctx, `select archived_count, failed_count, last_archived_time, last_failed_time from pg_stat_archiver`).
		Scan(&a.Archived, &a.Failed, &last, &failed)
	if err != nil {
		return Archiver{}, fmt.Errorf("%w: read pg_stat_archiver: %w", ErrUnavailable, err)
	}
	if last != nil {
		a.LastArchived = *last
	}
	if failed != nil {
		a.LastFailed = *failed
	}
	return a, nil
}
