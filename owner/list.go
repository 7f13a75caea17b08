package owner

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/hitcounter/hitcounter/db"
)

type listJSON struct {
	Name     string    `json:"name"`
	Total    int64     `json:"total"`
	Day      string    `json:"day"`
	Views    int64     `json:"views"`
	Visitors int64     `json:"visitors"`
	Bots     int64     `json:"bots"`
	Filtered int64     `json:"filtered"`
	Updated  time.Time `json:"updated"`
}

func (c *command) list(ctx context.Context, store *db.Store, stdout io.Writer) error {
	counts, err := store.List(ctx)
	if err != nil {
		return err
	}
	if c.asJSON {
		out := make([]listJSON, 0, len(counts))
		for _, n := range counts {
			out = append(out, listJSON{Name: n.Name, Total: n.Total, Day: n.Day.Format(time.DateOnly),
				Views: n.Views, Visitors: n.Visitors, Bots: n.Bots, Filtered: n.Filtered, Updated: n.Updated.In(c.loc)})
		}
		return writeJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTOTAL\tTODAY\tVISITORS\tBOTS\tUPDATED")
	for _, n := range counts {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", n.Name, n.Total, n.Views, n.Visitors, n.Bots,
			n.Updated.In(c.loc).Format("2006-01-02 15:04:05 MST"))
	}
	return tw.Flush()
}
