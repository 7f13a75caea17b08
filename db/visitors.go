package db

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A visitor is counted once per counter per day without cookies and
// without keeping who it was: its hash is an HMAC of the counter and the
// caller's visitor string (client IP and User-Agent) under a random salt of
// the day. The salt is stored only for its day, shared by every instance;
// the first write of a new day creates the new salt and deletes the older
// salts and every older hash in the same transaction, so yesterday's
// visitors can be neither recomputed nor linked to today's.

// saltCache keeps the current day's salt, so a write needs no extra query.
type saltCache struct {
	cur atomic.Pointer[daySalt]
	// making is a one-slot semaphore, not a mutex: making a day's salt is
	// a transaction, and writes queued behind one stuck on a database
	// that is down or frozen must still give up at their own deadline.
	making chan struct{}
}

type daySalt struct {
	day  time.Time
	salt []byte
}

// salt returns day's salt, creating it (and forgetting older days) the
// first time any instance needs it.
func (s *Store) salt(ctx context.Context, day time.Time) ([]byte, error) {
	if c := s.salts.cur.Load(); c != nil && c.day.Equal(day) {
		return c.salt, nil
	}
	select {
	case s.salts.making <- struct{}{}:
		defer func() { <-s.salts.making }()
	case <-ctx.Done():
		return nil, fmt.Errorf("visitor salt: %w: %w", ErrUnavailable, ctx.Err())
	}
	if c := s.salts.cur.Load(); c != nil && c.day.Equal(day) {
		return c.salt, nil // made while this one waited
	}
	fresh := make([]byte, sha256.Size)
	_, _ = rand.Read(fresh) // never fails (crypto/rand)
	var salt []byte
	// Idempotent: run twice, it keeps the first salt and deletes nothing more.
	err := s.transactIdempotent(ctx, "rotate visitor salt", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		// Another instance may have made today's salt first: use theirs.
		if _, err := tx.Exec(ctx, `insert into visitor_salts (day, salt) values ($1, $2) on conflict (day) do nothing`, day, fresh); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `select salt from visitor_salts where day = $1`, day).Scan(&salt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `delete from visitor_salts where day < $1`, day); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `delete from visitors where day < $1`, day)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("visitor salt: %w", err) // nothing counted: ErrUnavailable
	}
	s.salts.cur.Store(&daySalt{day: day, salt: salt})
	return salt, nil
}

// visitorHash is the visitor's identity for one counter and day: 16 bytes
// of HMAC-SHA256, plenty to keep distinct visitors apart.
func visitorHash(salt []byte, counter, visitor string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(counter))
	m.Write([]byte{0})
	m.Write([]byte(visitor))
	return m.Sum(nil)[:16]
}

// rotateDaily makes each new day's salt at its midnight, deleting the old
// salt and hashes, even when no hit comes to do it; until ctx ends.
func (s *Store) rotateDaily(ctx context.Context) {
	for {
		now := s.cfg.now().In(s.cfg.Location)
		y, m, d := now.Date()
		next := time.Date(y, m, d+1, 0, 0, 1, 0, s.cfg.Location)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if _, err := s.salt(ctx, s.Today()); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "visitor salt rotation failed; the next write of the day retries it", slog.Any("err", err))
		}
	}
}
