package db

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hitcounter/hitcounter/internal/pgcluster"
	"github.com/hitcounter/hitcounter/internal/testdb"
)

// storedHash is what the increment statement stores for a visitor of the
// counter with id under salt: the test's own copy of the scheme, so a
// change to it is a change the test sees.
func storedHash(salt []byte, id int64, visitor string) []byte {
	h := sha256.Sum256(append(binary.BigEndian.AppendUint64(nil, uint64(id)), visitorHash(salt, visitor)...))
	return h[:16]
}

func currentSalt(t *testing.T, s *Store) []byte {
	t.Helper()
	c := s.salts.cur.Load()
	if c == nil || !c.day.Equal(s.Today()) {
		t.Fatal("the store holds no salt for today")
	}
	return c.salt
}

// Two instances count a visitor once: the second gets the salt from the
// first, over the database, without it being stored there.
func TestInstancesShareTheVisitorSalt(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	a, _ := newStore(t, dbURL, fastPolicy())
	b, _ := newStore(t, dbURL, fastPolicy())
	if !bytes.Equal(currentSalt(t, a), currentSalt(t, b)) {
		t.Fatal("the two instances hold different salts")
	}
	ctx := testCtx(t)
	if _, err := a.Record(ctx, "main", Hit{Visitor: "203.0.113.5\x00Firefox"}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Record(ctx, "main", Hit{Visitor: "203.0.113.5\x00Firefox"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Views != 2 || c.Visitors != 1 {
		t.Errorf("got %d views by %d visitors, want 2 views by 1", c.Views, c.Visitors)
	}
}

// With every instance stopped the salt is gone: the next one makes a new
// salt, and today's visitors count again (the cost docs/counters.md states).
func TestEveryInstanceStoppedMakesANewSalt(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	ctx := testCtx(t)
	a, _ := newStore(t, dbURL, fastPolicy())
	first := currentSalt(t, a)
	if _, err := a.Record(ctx, "main", Hit{Visitor: "v"}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, _ := newStore(t, dbURL, fastPolicy())
	if bytes.Equal(first, currentSalt(t, b)) {
		t.Fatal("a new instance has the salt of one that stopped before it started")
	}
	c, err := b.Record(ctx, "main", Hit{Visitor: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Visitors != 2 {
		t.Errorf("got %d visitors, want the visitor counted again (2)", c.Visitors)
	}
}

// A rename keeps today's visitors: the hash is bound to the counter's id,
// not its name.
func TestRenameKeepsTodaysVisitors(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	s, _ := newStore(t, dbURL, fastPolicy())
	ctx := testCtx(t)
	if _, err := s.Record(ctx, "main", Hit{Visitor: "203.0.113.5\x00Firefox"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rename(ctx, "test", "main", "home"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Record(ctx, "home", Hit{Visitor: "203.0.113.5\x00Firefox"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Views != 2 || c.Visitors != 1 {
		t.Errorf("after the rename: %d views by %d visitors, want 2 views by 1", c.Views, c.Visitors)
	}
}

// Someone holding a copy of the database's files — the data directory with
// its WAL, as a backup holds them — finds neither the salt nor anything
// that maps an address to a hash: no salt, no HMAC of a visitor under it,
// no address. The hashes it does find are those of the visitors (checked
// with the salt from the instances' memory), so the traffic happened.
func TestACopyOfTheDatabaseHoldsNoSalt(t *testing.T) {
	t.Parallel()
	pg, err := pgcluster.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	ctx := testCtx(t)
	dbURL, err := pg.CreateDatabase(ctx, "hc_at_rest")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Migrate(t, dbURL)
	// Two instances, so the salt also travels between them.
	a, _ := newStore(t, dbURL, fastPolicy())
	b, _ := newStore(t, dbURL, fastPolicy())
	var visitors []string
	for i := range 40 {
		v := fmt.Sprintf("198.51.100.%d\x00Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", i+1)
		visitors = append(visitors, v)
		s := a
		if i%2 == 1 {
			s = b
		}
		if _, err := s.Record(ctx, "main", Hit{Visitor: v}); err != nil {
			t.Fatal(err)
		}
	}
	salt := currentSalt(t, a)
	if !bytes.Equal(salt, currentSalt(t, b)) {
		t.Fatal("the two instances hold different salts")
	}
	var id int64
	if err := connect(t, dbURL).QueryRow(ctx, `select id from counters where name = 'main'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	rows, err := connect(t, dbURL).Query(ctx, `select hash from visitors where counter = 'main'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		stored[string(h)] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, v := range visitors {
		if !stored[string(storedHash(salt, id, v))] {
			t.Fatalf("visitor %q has no stored hash: the test's scheme is not the store's", v)
		}
	}

	// Everything on disk, as a copy would take it once the server has
	// written it all: a checkpoint, and the server stopped.
	a.Close()
	b.Close()
	if err := pg.Ctl("stop", "-m", "fast", "-w"); err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"the salt":           salt,
		"the salt in hex":    []byte(hex.EncodeToString(salt)),
		"the salt in base64": []byte(base64.StdEncoding.EncodeToString(salt)),
		"an address":         []byte("198.51.100."),
	}
	for _, v := range visitors {
		secrets[fmt.Sprintf("the HMAC of %q", v)] = visitorHash(salt, v)
	}
	files, size := 0, 0
	err = filepath.WalkDir(pg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files, size = files+1, size+len(data)
		for what, b := range secrets {
			if bytes.Contains(data, b) {
				t.Errorf("%s is in %s", what, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("read %d files: not a data directory", files)
	}
	t.Logf("read %d files, %d MB", files, size>>20)
}
