package owner

import (
	"context"
	"fmt"
	"io"

	"github.com/hitcounter/hitcounter/db"
)

func (c *command) create(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if _, err := store.Create(ctx, c.actor, c.name, c.total); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s: total %d\n", c.name, c.total)
	return nil
}

func (c *command) rename(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if c.name == frontPageCounter && !c.force {
		return refuse("rename "+c.name+" would take the front page (/) down: "+c.name+" is its counter", "-force")
	}
	done, err := store.Rename(ctx, c.actor, c.name, c.newName)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "renamed %s → %s: total %d, %s (pages counting %q must use %q now)\n",
		c.name, c.newName, done.After.Total, plural(done.After.Days, "day row"), c.name, c.newName)
	return nil
}

// onOff is a switch flag's parser: on or off, set once given.
func onOff(v **bool) func(string) error {
	return func(s string) error {
		switch s {
		case "on":
			*v = new(true)
		case "off":
			*v = new(false)
		default:
			return fmt.Errorf("want on or off, not %q", s)
		}
		return nil
	}
}

// switchCounter sets the switches given and prints them all.
func (c *command) switchCounter(ctx context.Context, store *db.Store, stdout io.Writer) error {
	now, err := store.Counts(ctx, c.name)
	if err != nil {
		return err
	}
	sw := now.Switches
	if c.plusOne != nil {
		sw.NoPlusOne = !*c.plusOne
	}
	if c.page != nil {
		sw.NoPage = !*c.page
	}
	switch {
	case c.plusOne == nil && c.page == nil:
		fmt.Fprintf(stdout, "%s: ", c.name)
	case sw == now.Switches:
		fmt.Fprintf(stdout, "%s already: ", c.name)
	default:
		if _, err := store.Switch(ctx, c.actor, c.name, sw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "switched %s: ", c.name)
	}
	fmt.Fprintf(stdout, "+1 %s, page %s\n", onOffText(!sw.NoPlusOne), onOffText(!sw.NoPage))
	return nil
}

func onOffText(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// refuse is the answer to a destructive change without its confirmation
// (flags, e.g. "-yes"): what it would do, and that nothing changed.
func refuse(what, flags string) error {
	return fmt.Errorf("%s; nothing changed: add %s to do it", what, flags)
}

func (c *command) set(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if !c.yes {
		now, err := store.Counts(ctx, c.name)
		if err != nil {
			return err
		}
		return refuse(fmt.Sprintf("set %s would replace its total %d with %d (history and today's figures stay)", c.name, now.Total, c.total), "-yes")
	}
	done, err := store.Set(ctx, c.actor, c.name, c.total)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "set %s: %d → %d\n", c.name, done.Before.Total, done.After.Total)
	return nil
}

func (c *command) reset(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if !c.yes {
		now, days, err := store.Export(ctx, c.name)
		if err != nil {
			return err
		}
		return refuse(fmt.Sprintf("reset %s would set its total %d to 0 and delete its %s and today's visitors", c.name, now.Total, plural(int64(len(days)), "day row")), "-yes")
	}
	done, err := store.Reset(ctx, c.actor, c.name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reset %s: %d → 0, %s deleted\n", c.name, done.Before.Total, plural(done.Before.Days, "day row"))
	return nil
}

func (c *command) delete(ctx context.Context, store *db.Store, stdout io.Writer) error {
	frontPage := c.name == frontPageCounter
	if !c.yes || frontPage && !c.force {
		now, days, err := store.Export(ctx, c.name)
		if err != nil {
			return err
		}
		what := fmt.Sprintf("delete %s would delete the counter (total %d) and its %s; pages counting it get 404", c.name, now.Total, plural(int64(len(days)), "day row"))
		if frontPage {
			return refuse(what+", the front page (/) too: "+c.name+" is its counter", "-yes -force")
		}
		return refuse(what, "-yes")
	}
	done, err := store.Delete(ctx, c.actor, c.name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted %s: total %d, %s (the audit keeps this record)\n", c.name, done.Before.Total, plural(done.Before.Days, "day row"))
	return nil
}
