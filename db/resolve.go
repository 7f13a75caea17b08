package db

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// A COMMIT whose answer was lost (the connection, the server or its
// machine died while it was in flight) may or may not have been applied.
// Every write transaction inserts a marker, a row under a random id chosen
// before it was sent (migrations/004_commit_markers.sql), so instead of
// telling the user "maybe", the store asks the server, on another
// connection, whether that marker exists. One lookup covers a whole batch.
//
// The lookup inserts the same id as a fence, in a transaction of its own:
//   - the marked transaction still runs (its COMMIT waits for a
//     synchronous standby, or its session has not noticed the lost
//     connection yet): the unique key makes the lookup wait for it to end;
//   - it committed: its row is there, and the lookup finds it;
//   - it never committed (rolled back, or lost in a crash or a failover
//     before it reached the WAL that survived): the fence takes the id,
//     so the answer cannot change later.
//
// The lookup's own COMMIT writes, so it waits for the synchronous standby
// like any other: its success means the answer is on every node
// synchronous_standby_names asks for, including a commit that was itself
// only local (its wait for the standby cut short).
//
// Neither a transaction id nor the server's incarnation is needed: a
// restarted server hands out again the ids of transactions that never
// reached its WAL, and a crash of one backend restarts all the others
// within the same postmaster, under the same start time.

// marker identifies one write transaction: a UUID of version 7 (RFC 9562),
// whose first 48 bits are the Unix time in milliseconds, so markers sort
// by time and old ones go by a range of the primary key.
type marker [16]byte

func newMarker(now time.Time) marker {
	var m marker
	_, _ = rand.Read(m[6:]) // never fails (crypto/rand, Go 1.24+)
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint16(m[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(m[2:6], uint32(ms))
	m[6] = m[6]&0x0f | 0x70 // version 7
	m[8] = m[8]&0x3f | 0x80 // variant 10
	return m
}

// markerBefore is the smallest marker of time t: every marker made before t
// sorts below it.
func markerBefore(t time.Time) marker {
	var m marker
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint16(m[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(m[2:6], uint32(ms))
	return m
}

func (m marker) String() string {
	var b [36]byte
	hex.Encode(b[0:8], m[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], m[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], m[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], m[8:10])
	b[23] = '-'
	hex.Encode(b[24:], m[10:])
	return string(b[:])
}

// insertMarker is the statement a write transaction runs before COMMIT.
const insertMarker = `insert into commit_markers (id) values ($1)`

// lookupMarker is the lookup: the fence, or the marker found (and touched,
// so the lookup writes and its COMMIT waits for the standby).
const lookupMarker = `insert into commit_markers (id, fence) values ($1, true)
on conflict (id) do update set looked_up = now()
returning fence`

// resolution is what became of a transaction in doubt.
type resolution string

const (
	committed  resolution = "committed"
	aborted    resolution = "aborted"
	unknowable resolution = "unknown"
)

// resolvePoll is how long resolve waits before it asks again, after a
// lookup that could not reach the server or could not commit.
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

// resolve asks what became of the transaction of marker m, until it knows
// or ctx (plus ResolveGrace) ends: then it is unknowable for the caller,
// and the lookup goes on in the background (resolveLater), so the log says
// what really happened.
func (s *Store) resolve(ctx context.Context, op string, m marker, attrs []slog.Attr) resolution {
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
		r, lastErr = s.lookup(ctx, m)
		if r != "" {
			break
		}
		t := time.NewTimer(resolvePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			s.resolveLater(op, m, attrs)
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
		slog.String("marker", m.String()),
		slog.Int("asked", asked),
		slog.Duration("took", time.Since(start).Round(time.Millisecond)),
		slog.Any("last_err", lastErr)}, attrs...)...)
	return r
}

// lookup asks the server once: committed, aborted, or "" with the error
// when it could not tell (no connection, or the lookup's own COMMIT did
// not come back: the next lookup finds what this one left, if anything).
func (s *Store) lookup(ctx context.Context, m marker) (resolution, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	var fence bool
	if err := tx.QueryRow(ctx, lookupMarker, m).Scan(&fence); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return "", err
	}
	if fence {
		return aborted, nil
	}
	return committed, nil
}

// lateResolveFor bounds the background lookup of a COMMIT its caller was
// told is unknown: the server may be down for minutes (a restart, a
// failover), and when it answers the log says what became of those hits.
const lateResolveFor = 15 * time.Minute

const lateResolvePoll = time.Second

// resolveLater goes on asking about m after its caller has been answered
// "outcome unknown", and logs the outcome ("db commit resolved late"), or
// that it is still in doubt when it gives up or the store closes, with the
// query an operator can run by hand.
func (s *Store) resolveLater(op string, m marker, attrs []slog.Attr) {
	s.late.Go(func() {
		ctx, cancel := context.WithTimeout(s.lateCtx, lateResolveFor)
		defer cancel()
		start := time.Now()
		for {
			r, err := s.lookup(ctx, m)
			if r != "" {
				s.observe().Resolved("late_" + string(r))
				s.log.LogAttrs(ctx, slog.LevelWarn, "db commit resolved late", append([]slog.Attr{
					slog.String("op", op), slog.String("outcome", string(r)), slog.String("marker", m.String()),
					slog.Duration("after", time.Since(start).Round(time.Millisecond))}, attrs...)...)
				return
			}
			t := time.NewTimer(lateResolvePoll)
			select {
			case <-ctx.Done():
				t.Stop()
				s.log.LogAttrs(context.Background(), slog.LevelError, "db commit still in doubt", append([]slog.Attr{
					slog.String("op", op), slog.String("marker", m.String()),
					// Run by hand, it answers for good: committed or not.
					slog.String("look_up", "begin; "+lookupLiteral(m)+"; commit; -- fence false: committed, true: not"),
					slog.Any("last_err", err)}, attrs...)...)
				return
			case <-t.C:
			}
		}
	})
}

// lookupLiteral is lookupMarker on one line with m written in, for an
// operator's psql.
func lookupLiteral(m marker) string {
	return strings.Join(strings.Fields(strings.Replace(lookupMarker, "$1", "'"+m.String()+"'", 1)), " ")
}

// markersKeptFor is how long a marker is kept: past the longest lookup
// (a caller's deadline, ResolveGrace, lateResolveFor), with room for
// instances whose clocks disagree by minutes.
const markersKeptFor = 2 * lateResolveFor

// markerPruneEvery is how often an instance deletes old markers.
const markerPruneEvery = time.Minute

// pruneMarkers deletes markers older than markersKeptFor every
// markerPruneEvery, until ctx ends. Every instance does; a delete another
// instance did first finds nothing.
func (s *Store) pruneMarkers(ctx context.Context) {
	t := time.NewTicker(markerPruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.PruneMarkers(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "commit markers not pruned; the next round retries", slog.Any("err", err))
		}
	}
}

// PruneMarkers deletes the markers older than markersKeptFor now, and says
// how many.
func (s *Store) PruneMarkers(ctx context.Context) (int64, error) {
	var n int64
	err := s.transactIdempotent(ctx, "prune markers", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `delete from commit_markers where id < $1`, markerBefore(s.cfg.now().Add(-markersKeptFor)))
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
