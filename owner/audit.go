package owner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/hitcounter/hitcounter/db"
)

// auditState is what the audit records of a counter (db.auditRow).
type auditState struct {
	Name      string `json:"name"`
	Total     int64  `json:"total"`
	Days      int64  `json:"days"`
	NoPlusOne bool   `json:"no_plus_one"`
	NoPage    bool   `json:"no_page"`
}

func parseAuditState(s string) *auditState {
	if s == "" {
		return nil
	}
	var a auditState
	if json.Unmarshal([]byte(s), &a) != nil {
		return nil
	}
	return &a
}

// lastChange returns the counter before and after the latest change of
// action by actor, from the audit, for the line that reports it: the exact
// figures the transaction saw, which a read before the change could not
// give under concurrent hits. ok is false when there is none.
func lastChange(ctx context.Context, store *db.Store, name, action, actor string) (before, after *auditState, ok bool) {
	entries, err := store.Audit(ctx, name)
	if err != nil {
		return nil, nil, false
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if e := entries[i]; e.Action == action && e.Actor == actor {
			return parseAuditState(e.Old), parseAuditState(e.New), true
		}
	}
	return nil, nil, false
}

type auditJSON struct {
	At      string          `json:"at"`
	Actor   string          `json:"actor"`
	DBRole  string          `json:"db_role"`
	Action  string          `json:"action"`
	Counter string          `json:"counter"`
	Old     json.RawMessage `json:"old"`
	New     json.RawMessage `json:"new"`
}

func (c *command) audit(ctx context.Context, store *db.Store, stdout io.Writer) error {
	entries, err := store.Audit(ctx, c.name)
	if err != nil {
		return err
	}
	if c.asJSON {
		raw := func(s string) json.RawMessage {
			if s == "" {
				return json.RawMessage("null")
			}
			return json.RawMessage(s)
		}
		out := make([]auditJSON, 0, len(entries))
		for _, e := range entries {
			out = append(out, auditJSON{e.At, e.Actor, e.DBRole, e.Action, e.Counter, raw(e.Old), raw(e.New)})
		}
		return writeJSON(stdout, out)
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
func auditSummary(counter, action, s string) string {
	a := parseAuditState(s)
	if a == nil {
		if s == "" {
			return "-"
		}
		return s
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
