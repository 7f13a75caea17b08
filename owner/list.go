package owner

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/hitcounter/hitcounter/db"
)

func (c *command) list(ctx context.Context, store *db.Store, stdout io.Writer) error {
	counts, err := store.List(ctx)
	if err != nil {
		return err
	}
	if c.asJSON {
		out := make([]db.CountsJSON, 0, len(counts))
		for _, n := range counts {
			out = append(out, n.JSON())
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
