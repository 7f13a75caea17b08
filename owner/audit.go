package owner

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/hitcounter/hitcounter/db"
)

func (c *command) audit(ctx context.Context, store *db.Store, stdout io.Writer) error {
	entries, err := store.Audit(ctx, c.name)
	if err != nil {
		return err
	}
	if c.asJSON {
		if entries == nil {
			entries = []db.AuditEntry{}
		}
		return writeJSON(stdout, entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tACTOR\tACTION\tCOUNTER\tOLD\tNEW")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At, e.Actor, e.Action, e.Counter,
			auditSummary(e.Counter, e.Action, e.Old), auditSummary(e.Counter, e.Action, e.New))
	}
	return tw.Flush()
}

// auditSummary shows a recorded state in a table cell: "total=1200
// days=30", with the name when it is not the counter's (a rename).
func auditSummary(counter, action string, a *db.Snapshot) string {
	if a == nil {
		return "-"
	}
	out := fmt.Sprintf("total=%d days=%d", a.Total, a.Days)
	if a.Name != counter {
		out = "name=" + a.Name + " " + out
	}
	if action == "switch" { // only its rows record the switches
		out += " +1=" + onOffText(!a.NoPlusOne) + " page=" + onOffText(!a.NoPage)
	}
	return out
}
