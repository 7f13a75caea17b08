package db

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// A COMMIT whose answer was lost (the connection broke while it was in
// flight) may or may not have been applied. Every write learns its
// transaction id before it sends COMMIT, so instead of telling the user
// "maybe", the store asks the server, on another connection, what became
// of that transaction: pg_xact_status. One lookup covers a whole batch.

// currentXid is the SQL of the transaction's own id, as text: xid8, the
// 64-bit id that does not wrap around.
const currentXid = "pg_current_xact_id()::text"

func scanXid(row pgx.Row, xid *uint64) error {
	var s string
	if err := row.Scan(&s); err != nil {
		return err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	*xid = n
	return err
}

// resolution is what became of a transaction in doubt.
type resolution string

const (
	committed  resolution = "committed"
	aborted    resolution = "aborted"
	unknowable resolution = "unknown"
)

// resolvePoll is how long resolve waits before it asks again, while the
// transaction is still in progress or the server does not answer yet.
const resolvePoll = 50 * time.Millisecond

const (
	// ResolveGrace is how long past its caller's deadline a lookup may go
	// on, for a server that froze with a COMMIT in flight (a stopped VM, a
	// stalled disk) and comes back: the answer is then late but true, and
	// still well before a proxy gives up (the HTTP server's write timeout
	// allows for it).
	ResolveGrace = 5 * time.Second
	// resolveNoDeadline bounds a lookup for a caller without a deadline.
	resolveNoDeadline = 10 * time.Second
)

// resolve asks what became of transaction xid, until it knows or ctx ends.
//
//   - committed, aborted: as the server says. A server that crashed and
//     recovered knows too: a transaction in progress at the crash is aborted.
//   - in progress: the server has not finished it (its session may not
//     have noticed the lost connection yet): ask again shortly.
//   - "in the future" (SQLSTATE 22023): the server has no trace of the
//     id, so the transaction's work was lost before it could commit (a
//     crash before its WAL was flushed, or a failover): aborted.
//   - no status (too old: the server no longer keeps it): unknowable.
//   - the server does not answer: ask again until ctx (plus ResolveGrace)
//     ends, then unknowable for the caller; the lookup goes on in the
//     background (resolveLater), so the log says what really happened.
func (s *Store) resolve(ctx context.Context, op string, xid uint64, attrs []slog.Attr) resolution {
	// A COMMIT cut by its caller's deadline still deserves its answer:
	// ask a moment beyond it (and no longer than that without a deadline).
	budget := ResolveGrace
	if dl, ok := ctx.Deadline(); ok {
		budget += max(time.Until(dl), 0)
	} else {
		budget += resolveNoDeadline
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	start := time.Now()
	asked := 0
	var r resolution
	var lastErr error
	for r == "" {
		asked++
		r, lastErr = s.lookup(ctx, xid)
		if r != "" {
			break
		}
		t := time.NewTimer(resolvePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			s.resolveLater(op, xid, attrs)
			r = unknowable
		case <-t.C:
		}
	}
	s.observe().Resolved(string(r))
	level := slog.LevelWarn
	if r == unknowable {
		level = slog.LevelError
	}
	s.log.LogAttrs(ctx, level, "db commit resolved", append([]slog.Attr{
		slog.String("op", op),
		slog.String("outcome", string(r)),
		slog.Uint64("xid", xid),
		slog.Int("asked", asked),
		slog.Duration("took", time.Since(start).Round(time.Millisecond)),
		slog.Any("last_err", lastErr)}, attrs...)...)
	return r
}

// lookup asks the server once: committed, aborted, unknowable (it keeps no
// status that old), or "" (still in progress, or no answer: err).
func (s *Store) lookup(ctx context.Context, xid uint64) (resolution, error) {
	var status *string
	err := s.pool.QueryRow(ctx, `select pg_xact_status($1::text::xid8)`, strconv.FormatUint(xid, 10)).Scan(&status)
	switch {
	case err == nil && status == nil:
		return unknowable, nil
	case err == nil && *status == "committed":
		return committed, nil
	case err == nil && *status == "aborted":
		return aborted, nil
	case err == nil: // in progress
		return "", nil
	case sqlState(err) == "22023": // an id from the future
		return aborted, nil
	}
	return "", err
}

// LateResolveFor bounds the background lookup of a COMMIT its caller was
// told is unknown: the server may be down for minutes (a restart, a
// failover), and when it answers the log says what became of those hits.
const LateResolveFor = 15 * time.Minute

const lateResolvePoll = time.Second

// resolveLater goes on asking about xid after its caller has been answered
// "outcome unknown", and logs the outcome ("db commit resolved late"), or
// that it is still in doubt when it gives up or the store closes, with the
// query an operator can run by hand.
func (s *Store) resolveLater(op string, xid uint64, attrs []slog.Attr) {
	s.late.Go(func() {
		ctx, cancel := context.WithTimeout(s.lateCtx, LateResolveFor)
		defer cancel()
		start := time.Now()
		for {
			r, err := s.lookup(ctx, xid)
			if r != "" {
				s.observe().Resolved("late_" + string(r))
				s.log.LogAttrs(ctx, slog.LevelWarn, "db commit resolved late", append([]slog.Attr{
					slog.String("op", op), slog.String("outcome", string(r)), slog.Uint64("xid", xid),
					slog.Duration("after", time.Since(start).Round(time.Millisecond))}, attrs...)...)
				return
			}
			t := time.NewTimer(lateResolvePoll)
			select {
			case <-ctx.Done():
				t.Stop()
				s.log.LogAttrs(context.Background(), slog.LevelError, "db commit still in doubt", append([]slog.Attr{
					slog.String("op", op), slog.Uint64("xid", xid),
					slog.String("look_up", "select pg_xact_status('"+strconv.FormatUint(xid, 10)+"'::xid8)"),
					slog.Any("last_err", err)}, attrs...)...)
				return
			case <-t.C:
			}
		}
	})
}
