package owner

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/hitcounter/hitcounter/db"
)

// list writes each counter as its row arrives, so a listing takes little
// memory whatever the number of counters: the table's widths come from
// the Listing the store gives first, and the JSON array is written an
// element at a time, as json.Encoder with two-space indents would write
// the whole.
func (c *command) list(ctx context.Context, store *db.Store, stdout io.Writer) error {
	w := bufio.NewWriter(stdout)
	var (
		head func(db.Listing) error
		row  func(db.Counts) error
		rows int
	)
	if c.asJSON {
		head = func(db.Listing) error { return nil }
		row = func(n db.Counts) error {
			b, err := json.MarshalIndent(n.JSON(), "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if rows == 0 {
				sep = "[\n  "
			}
			rows++
			w.WriteString(sep)
			_, err = w.Write(b) // bufio's errors stick: this returns any earlier one
			return err
		}
	} else {
		// Numbers are left-aligned as tabwriter put them: columns two
		// spaces apart, each as wide as its header or the largest total.
		// A day's figure can outgrow that (set can put a total below
		// today's views): its line is wider, its fields still apart.
		var nameW int
		var numW [4]int
		head = func(l db.Listing) error {
			nameW = max(len("NAME"), l.LongestName)
			digits := len(strconv.FormatInt(l.MaxTotal, 10))
			for i, h := range []string{"TOTAL", "TODAY", "VISITORS", "BOTS"} {
				numW[i] = max(len(h), digits)
			}
			_, err := fmt.Fprintf(w, "%-*s  %-*s  %-*s  %-*s  %-*s  UPDATED\n", nameW, "NAME",
				numW[0], "TOTAL", numW[1], "TODAY", numW[2], "VISITORS", numW[3], "BOTS")
			return err
		}
		row = func(n db.Counts) error {
			_, err := fmt.Fprintf(w, "%-*s  %-*d  %-*d  %-*d  %-*d  %s\n", nameW, n.Name,
				numW[0], n.Total, numW[1], n.Views, numW[2], n.Visitors, numW[3], n.Bots,
				n.Updated.In(c.loc).Format("2006-01-02 15:04:05 MST"))
			return err
		}
	}
	if err := store.List(ctx, head, row); err != nil {
		return err
	}
	if c.asJSON {
		if rows == 0 {
			w.WriteString("[]\n")
		} else {
			w.WriteString("\n]\n")
		}
	}
	return w.Flush()
}
