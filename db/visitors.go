package db

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A visitor is counted once per counter per day without cookies and
// without keeping who it was. Its hash is made in two steps:
//
//   - the store computes HMAC-SHA256(salt, visitor string), the visitor
//     string being the client IP and User-Agent, under a random salt of the
//     day that exists only in the memory of the running instances;
//   - the increment statement stores sha256(counter id || that HMAC),
//     truncated to 16 bytes: the counter's id, not its name, so a rename
//     keeps today's visitors, and two counters' hashes of one visitor
//     differ, so a copy of the table cannot link them.
//
// The salt is never written to the database, its WAL or a backup: nobody
// holding those files can recompute a hash from an address, today's or an
// older day's. Instances share it over their listener connections
// (saltsChannel), each answer sealed to the asking instance's own
// in-memory X25519 key, so the notification queue holds only sealed
// copies. The first instance to need a day's salt that no running
// instance holds makes it, under an advisory lock so two never both do.
// The cost: when every instance stops at once (a restart of a single
// instance included), the salt is gone, and a visitor seen earlier that
// day counts again on their next view.

const (
	// saltsChannel is where instances ask for the day's salt and answer.
	saltsChannel = "hitcounter_salts"
	// saltLock is the advisory lock an instance holds while it asks the
	// others for a salt and, when none has it, makes it ("hcsalt" in hex).
	saltLock = int64(0x686373616c74)
	// askWait bounds how long an asker waits for the other instances'
	// answers; each answers within a round trip, so only an instance that
	// hangs makes anyone wait this long.
	askWait = 2 * time.Second
)

// saltCache keeps the current day's salt, so a write needs no extra query.
type saltCache struct {
	cur atomic.Pointer[daySalt]
	// making is a one-slot semaphore, not a mutex: getting a day's salt
	// takes a transaction, and writes queued behind one stuck on a
	// database that is down or frozen must still give up at their own
	// deadline.
	making chan struct{}
	// key seals and opens the salts instances hand each other. It lives
	// and dies with the process.
	key *ecdh.PrivateKey

	mu    sync.Mutex
	asked *askRound // the ask in flight, if any (one at a time: making)
	// pid is the listener connection's backend, so an asker does not wait
	// for its own answer; 0 while the listener is down. up is closed
	// while it is not 0.
	pid uint32
	up  chan struct{}
}

// listening records the listener's backend, 0 when it went down.
func (c *saltCache) listening(pid uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pid != 0 && c.pid == 0:
		close(c.up)
	case pid == 0 && c.pid != 0:
		c.up = make(chan struct{})
	}
	c.pid = pid
}

// listener waits until the listener is up, and returns its backend.
func (c *saltCache) listener(ctx context.Context) (uint32, error) {
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	select {
	case <-up:
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: the listener is down, so no instance can hand over the visitor salt: %w", ErrUnavailable, ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid, nil
}

type daySalt struct {
	day  time.Time
	salt []byte
}

// askRound collects the answers to one ask.
type askRound struct {
	day  string
	got  chan []byte   // the salt, from the first instance that holds it
	none chan struct{} // one per instance that holds no salt for the day
}

func (c *saltCache) init() {
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand never fails
	}
	c.making, c.key, c.up = make(chan struct{}, 1), key, make(chan struct{})
}

// saltMsg is a message on saltsChannel. Ask, Give and None name a day
// (YYYY-MM-DD); From is the sender's public key, To the asker's.
type saltMsg struct {
	Ask  string `json:"ask,omitempty"`
	Give string `json:"give,omitempty"`
	None string `json:"none,omitempty"`
	From []byte `json:"from"`
	To   []byte `json:"to,omitempty"`
	Box  []byte `json:"box,omitempty"` // the salt, sealed to To
}

// salt returns day's salt: the one this instance holds, the one another
// running instance holds, or a new one.
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
		return c.salt, nil // got while this one waited
	}
	if !s.cfg.Background {
		// No listener, so nobody to share with: a one-shot command (and
		// tests of a lone store) keeps its own.
		salt := newSalt()
		s.salts.cur.Store(&daySalt{day: day, salt: salt})
		return salt, nil
	}
	if _, err := s.salts.listener(ctx); err != nil {
		return nil, fmt.Errorf("visitor salt: %w", err)
	}
	var salt []byte
	// Idempotent: run twice, it asks again and deletes nothing more.
	err := s.transactIdempotent(ctx, "get visitor salt", pgx.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		salt = nil
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, saltLock); err != nil {
			return err
		}
		pid, err := s.salts.listener(ctx)
		if err != nil {
			return err
		}
		var others int
		if err := tx.QueryRow(ctx, `select count(*) from pg_stat_activity
			where datname = current_database() and application_name = $1 and pid <> $2`,
			listenerName, pid).Scan(&others); err != nil {
			return err
		}
		if others > 0 {
			got, err := s.askSalt(ctx, day, others)
			if err != nil || got != nil {
				salt = got
				return err
			}
		}
		// Nobody holds it: a new day (the older days' hashes go), or
		// every instance was stopped.
		if _, err := tx.Exec(ctx, `delete from visitors where day < $1`, day); err != nil {
			return err
		}
		salt = newSalt()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("visitor salt: %w", err) // nothing counted: ErrUnavailable
	}
	s.salts.cur.Store(&daySalt{day: day, salt: salt})
	return salt, nil
}

func newSalt() []byte {
	salt := make([]byte, sha256.Size)
	_, _ = rand.Read(salt) // never fails (crypto/rand)
	return salt
}

// askSalt asks the other instances for day's salt, and returns it, or nil
// once each of others said it has none (or askWait passed).
func (s *Store) askSalt(ctx context.Context, day time.Time, others int) ([]byte, error) {
	r := &askRound{day: day.Format(time.DateOnly), got: make(chan []byte, 1), none: make(chan struct{}, others)}
	s.salts.mu.Lock()
	s.salts.asked = r
	s.salts.mu.Unlock()
	defer func() {
		s.salts.mu.Lock()
		s.salts.asked = nil
		s.salts.mu.Unlock()
	}()
	if err := s.notifySalts(ctx, saltMsg{Ask: r.day, From: s.salts.key.PublicKey().Bytes()}); err != nil {
		return nil, err
	}
	wait := time.NewTimer(askWait)
	defer wait.Stop()
	for range others {
		select {
		case salt := <-r.got:
			return salt, nil
		case <-r.none:
		case <-wait.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select { // an answer may have come with the last "none"
	case salt := <-r.got:
		return salt, nil
	default:
		return nil, nil
	}
}

// notifySalts sends m outside any transaction, so it is delivered now.
func (s *Store) notifySalts(ctx context.Context, m saltMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `select pg_notify($1, $2)`, saltsChannel, string(b))
	return err
}

// saltNotified handles a message of another instance, on the listener's
// goroutine: an ask is answered by another goroutine, so the listener
// goes on applying counts meanwhile.
func (s *Store) saltNotified(ctx context.Context, payload string) {
	var m saltMsg
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "unreadable message on "+saltsChannel, slog.Any("err", err))
		return
	}
	me := s.salts.key.PublicKey().Bytes()
	switch {
	case hmac.Equal(m.From, me): // our own ask
	case m.Ask != "":
		s.background.Go(func() { s.answerSalt(ctx, m) })
	case hmac.Equal(m.To, me):
		s.salts.mu.Lock()
		r := s.salts.asked
		s.salts.mu.Unlock()
		switch {
		case r == nil:
		case m.None == r.day:
			select {
			case r.none <- struct{}{}:
			default:
			}
		case m.Give == r.day:
			salt, err := openSalt(s.salts.key, m.From, m.Give, m.Box)
			if err != nil {
				s.log.LogAttrs(ctx, slog.LevelWarn, "a visitor salt that does not open", slog.Any("err", err))
				return
			}
			select {
			case r.got <- salt:
			default:
			}
		}
	}
}

// answerSalt gives an asker the salt of the day it asked for, sealed to
// its key, or says this instance has none.
func (s *Store) answerSalt(ctx context.Context, ask saltMsg) {
	me := s.salts.key.PublicKey().Bytes()
	reply := saltMsg{None: ask.Ask, From: me, To: ask.From}
	if c := s.salts.cur.Load(); c != nil && c.day.Format(time.DateOnly) == ask.Ask {
		box, err := sealSalt(s.salts.key, ask.From, ask.Ask, c.salt)
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "cannot seal the visitor salt for an asker", slog.Any("err", err))
			return
		}
		reply = saltMsg{Give: ask.Ask, From: me, To: ask.From, Box: box}
	}
	send, cancel := context.WithTimeout(ctx, askWait)
	defer cancel()
	if err := s.notifySalts(send, reply); err != nil && ctx.Err() == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "cannot answer another instance's ask for the visitor salt", slog.Any("err", err))
	}
}

// saltKey is the AES key two instances share: X25519 between one's
// private key and the other's public key, through HKDF bound to the day.
func saltKey(key *ecdh.PrivateKey, peer []byte, day string) (cipher.AEAD, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, err
	}
	shared, err := key.ECDH(pub)
	if err != nil {
		return nil, err
	}
	k, err := hkdf.Key(sha256.New, shared, nil, "hitcounter visitor salt "+day, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealSalt(key *ecdh.PrivateKey, to []byte, day string, salt []byte) ([]byte, error) {
	aead, err := saltKey(key, to, day)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, salt, []byte(day)), nil
}

func openSalt(key *ecdh.PrivateKey, from []byte, day string, box []byte) ([]byte, error) {
	aead, err := saltKey(key, from, day)
	if err != nil {
		return nil, err
	}
	if len(box) < aead.NonceSize() {
		return nil, errors.New("sealed salt too short")
	}
	salt, err := aead.Open(nil, box[:aead.NonceSize()], box[aead.NonceSize():], []byte(day))
	if err != nil {
		return nil, err
	}
	if len(salt) != sha256.Size {
		return nil, fmt.Errorf("salt of %d bytes, want %d", len(salt), sha256.Size)
	}
	return salt, nil
}

// visitorHash is the visitor's identity for a day, before the increment
// statement binds it to the counter: HMAC-SHA256 under the day's salt.
func visitorHash(salt []byte, visitor string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(visitor))
	return m.Sum(nil)
}

// rotateDaily gets each new day's salt at its midnight (deleting the old
// hashes when it is the one making it), even when no hit comes to do it;
// until ctx ends.
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
