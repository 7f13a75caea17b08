package db

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// A switch reaches every instance's memory, comes back with the counts of
// a hit, survives other changes, and is audited; an unknown counter is
// refused.
func TestSwitches(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewMigrated(t)
	a, _ := newStore(t, dbURL, fastPolicy())
	b, _ := newStore(t, dbURL, fastPolicy())
	waitListening(t, a)
	waitListening(t, b)
	ctx := testCtx(t)

	if c, err := b.Counts(ctx, "main"); err != nil || c.Switches != (Switches{}) {
		t.Fatalf("a new counter: %+v, %v; want every switch on", c.Switches, err)
	}
	off := Switches{NoPlusOne: true, NoPage: true}
	if _, err := a.Switch(ctx, "tester", "main", off); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the switches on the other instance", func() (bool, string) {
		c, err := b.Counts(ctx, "main")
		return err == nil && c.Switches == off, fmt.Sprintf("%+v, %v", c.Switches, err)
	})
	if c, err := b.Record(ctx, "main", Hit{Kind: View}); err != nil || c.Switches != off || c.Total != 1 {
		t.Errorf("a hit's counts: %+v, %v; want total 1 and the switches off", c, err)
	}
	if _, err := a.Set(ctx, "tester", "main", 100); err != nil {
		t.Fatal(err)
	}
	var list []Counts
	err := a.List(ctx, func(Listing) error { return nil }, func(c Counts) error { list = append(list, c); return nil })
	if err != nil || len(list) != 1 || list[0].Switches != off || list[0].Total != 100 {
		t.Errorf("List after a set: %+v, %v; want main at 100, switches kept", list, err)
	}

	// Switching to what is already set changes and audits nothing.
	if _, err := a.Switch(ctx, "tester", "main", off); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Switch(ctx, "tester", "main", Switches{NoPage: true}); err != nil {
		t.Fatal(err)
	}
	entries, err := a.Audit(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	var switches []string
	for _, e := range entries {
		if e.Action == "switch" {
			old, _ := json.Marshal(e.Old)
			new, _ := json.Marshal(e.New)
			switches = append(switches, fmt.Sprintf("%s -> %s", old, new))
		}
	}
	want := []string{
		`{"name":"main","total":0} -> {"name":"main","total":0,"no_plus_one":true,"no_page":true}`,
		`{"name":"main","total":100,"days":1,"no_plus_one":true,"no_page":true} -> {"name":"main","total":100,"days":1,"no_page":true}`,
	}
	if fmt.Sprint(switches) != fmt.Sprint(want) {
		t.Errorf("audit of the switches:\n%q\nwant\n%q", switches, want)
	}

	if _, err := a.Switch(ctx, "tester", "nope", off); !errors.Is(err, ErrNotFound) {
		t.Errorf("switching an unknown counter: %v, want ErrNotFound", err)
	}
}
