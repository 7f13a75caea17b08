package main

// `hitcounter counters …`: the owner's controls. Every change goes through
// the store (db/manage.go), which runs it in one transaction with its audit
// row; this file only parses, validates, confirms and prints.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hitcounter/hitcounter/db"
)

const countersUsage = `usage: hitcounter counters SUBCOMMAND [ARGS] [FLAGS]

Subcommands:
  list                          every counter: total and today's figures [-json]
  create NAME [-total N]        a new counter, starting at N (default 0)
  set NAME TOTAL -yes           replace the total; history and today stay
  reset NAME -yes               total 0, day rows and today's visitors deleted
  rename NAME NEWNAME           history and visitors follow (no -yes: undo by renaming back)
  delete NAME -yes              the counter and its history; the audit keeps a record
  export NAME [-format csv|json] [-o FILE]
                                day rows as CSV (default) or JSON with the total, to stdout or FILE
  import NAME FILE|- [-format csv|json] [-yes]
                                day rows from FILE or stdin; each replaces that day's row.
                                CSV adds to the total, JSON sets it. A new NAME is created;
                                an existing one needs -yes
  audit [NAME]                  the recorded changes, oldest first [-json]

Flags go after the subcommand, before or after its arguments; "--" ends
them. Every
subcommand takes -database-url (default $DATABASE_URL), -timezone (default
$TIMEZONE, else UTC: set it as the server's, for "today") and -log-level
(default warn); changes take -actor (default $USER@hostname), recorded in
the audit. Destructive changes without -yes say what they would do and
change nothing. "hitcounter counters SUBCOMMAND -h" lists its flags.
`

// countersSub describes one subcommand: how it is called, how many
// arguments it takes, and which flags it has beyond the common ones.
type countersSub struct {
	args             string // for messages: "NAME TOTAL"
	minArgs, maxArgs int
	changes          bool // records an audit row: takes -actor
	yes              bool // takes -yes
	json             bool // takes -json
	format           bool // takes -format
}

func countersSubs() map[string]countersSub {
	return map[string]countersSub{
		"list":   {json: true},
		"create": {args: "NAME", minArgs: 1, maxArgs: 1, changes: true},
		"set":    {args: "NAME TOTAL", minArgs: 2, maxArgs: 2, changes: true, yes: true},
		"reset":  {args: "NAME", minArgs: 1, maxArgs: 1, changes: true, yes: true},
		"rename": {args: "NAME NEWNAME", minArgs: 2, maxArgs: 2, changes: true},
		"delete": {args: "NAME", minArgs: 1, maxArgs: 1, changes: true, yes: true},
		"export": {args: "NAME", minArgs: 1, maxArgs: 1, format: true},
		"import": {args: "NAME FILE|-", minArgs: 2, maxArgs: 2, changes: true, yes: true, format: true},
		"audit":  {args: "[NAME]", maxArgs: 1, json: true},
	}
}

// countersCmd is one parsed and validated invocation: everything is
// checked, and an import's file read, before the database is touched.
type countersCmd struct {
	sub         string
	databaseURL string
	loc         *time.Location
	logLevel    slog.Level
	actor       string
	yes         bool
	asJSON      bool
	name        string
	newName     string // rename
	total       int64  // create -total, set TOTAL
	format      string // export, import: csv or json
	out         string // export -o; empty is stdout
	file        string // import: the file's name, for messages
	days        []db.Day
	fileTotal   *int64 // import: the total a JSON file sets
}

// runCounters runs `hitcounter counters …`; args[0] is "counters".
func runCounters(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := parseCounters(args, getenv, stdin, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	if c.logLevel > slog.LevelInfo {
		log = slog.New(withoutFinalFailure{log.Handler()})
	}
	cfg := db.DefaultConfig()
	cfg.Location = c.loc
	store, err := db.Open(c.databaseURL, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := store.Ready(ctx); err != nil {
		return fmt.Errorf("database: %w (the schema is applied by `hitcounter -migrate`, which `make run` does)", err)
	}
	err = c.exec(ctx, store, stdout)
	if errors.Is(err, db.ErrOutcomeUnknown) && c.name != "" {
		return fmt.Errorf("%w; see `hitcounter counters audit %s` before trying again", err, c.name)
	}
	return err
}

// withoutFinalFailure drops the store's log of a transaction's final
// failure: runCounters returns that error and main prints it, so the log
// line would only say it twice. It drops the listener's too: the store
// keeps counts in memory for the server, which a command does not need.
// Retries are still logged.
type withoutFinalFailure struct{ slog.Handler }

func (h withoutFinalFailure) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "db transaction failed" || strings.HasPrefix(r.Message, "db listener") {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h withoutFinalFailure) WithAttrs(attrs []slog.Attr) slog.Handler {
	return withoutFinalFailure{h.Handler.WithAttrs(attrs)}
}

func (h withoutFinalFailure) WithGroup(name string) slog.Handler {
	return withoutFinalFailure{h.Handler.WithGroup(name)}
}

// parseCounters reads the subcommand, its arguments and flags, the
// environment, and an import's file.
func parseCounters(args []string, getenv func(string) string, stdin io.Reader, stderr io.Writer) (*countersCmd, error) {
	if len(args) < 2 {
		fmt.Fprint(stderr, countersUsage)
		return nil, errors.New("counters: missing subcommand: list, create, set, reset, rename, delete, export, import or audit")
	}
	c := &countersCmd{sub: args[1]}
	switch c.sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, countersUsage)
		return nil, flag.ErrHelp
	}
	spec, ok := countersSubs()[c.sub]
	if !ok {
		fmt.Fprint(stderr, countersUsage)
		if strings.HasPrefix(c.sub, "-") {
			return nil, fmt.Errorf("counters: flags go after the subcommand: hitcounter counters SUBCOMMAND %s", c.sub)
		}
		return nil, fmt.Errorf("counters: unknown subcommand %q", c.sub)
	}
	usage := strings.TrimSpace("hitcounter counters " + c.sub + " " + spec.args)

	fs := flag.NewFlagSet("hitcounter counters "+c.sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [FLAGS]\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	// The defaults from the environment are read after parsing, so -h
	// never prints the database password.
	var tz, level string
	fs.StringVar(&c.databaseURL, "database-url", "", "PostgreSQL URL (default $DATABASE_URL)")
	fs.StringVar(&tz, "timezone", "", "IANA timezone of \"today\", as the server's (default $TIMEZONE, else UTC)")
	fs.StringVar(&level, "log-level", "warn", "level of the logs on stderr: debug, info, warn or error")
	if spec.changes {
		fs.StringVar(&c.actor, "actor", "", "who the audit records (default $USER@hostname)")
	}
	if spec.yes {
		fs.BoolVar(&c.yes, "yes", false, "confirm the change")
	}
	if spec.json {
		fs.BoolVar(&c.asJSON, "json", false, "print JSON instead of a table")
	}
	if spec.format {
		fs.StringVar(&c.format, "format", "", "csv or json (default from the file's extension, else csv)")
	}
	if c.sub == "create" {
		fs.Int64Var(&c.total, "total", 0, "starting total")
	}
	if c.sub == "export" {
		fs.StringVar(&c.out, "o", "", "write to this file instead of stdout")
	}
	pos, err := parseInterspersed(fs, args[2:])
	if err != nil {
		return nil, err
	}
	if len(pos) < spec.minArgs || len(pos) > spec.maxArgs {
		return nil, fmt.Errorf("counters %s: %d arguments %q: usage: %s", c.sub, len(pos), pos, usage)
	}

	if err := c.parseArgs(pos); err != nil {
		return nil, err
	}
	if err := c.parseCommon(getenv, tz, level); err != nil {
		return nil, err
	}
	if c.sub == "import" {
		if err := c.readImport(stdin); err != nil {
			return nil, err
		}
	}
	if c.databaseURL == "" {
		return nil, errors.New("no database: set DATABASE_URL or -database-url")
	}
	return c, nil
}

// parseArgs checks the positional arguments of c.sub.
func (c *countersCmd) parseArgs(pos []string) error {
	if len(pos) > 0 {
		c.name = pos[0]
		if err := checkCounterName(c.name); err != nil {
			return err
		}
	}
	switch c.sub {
	case "create":
		if c.total < 0 {
			return fmt.Errorf("total %d: %w: must be ≥ 0", c.total, db.ErrInvalid)
		}
	case "set":
		n, err := strconv.ParseInt(pos[1], 10, 64)
		if err != nil {
			return fmt.Errorf("total %q: %w: want a whole number", pos[1], db.ErrInvalid)
		}
		if n < 0 {
			return fmt.Errorf("total %d: %w: must be ≥ 0", n, db.ErrInvalid)
		}
		c.total = n
	case "rename":
		c.newName = pos[1]
		if err := checkCounterName(c.newName); err != nil {
			return err
		}
		if c.newName == c.name {
			return fmt.Errorf("rename %s: the new name is the same", c.name)
		}
	case "export":
		if err := c.checkFormat(c.out); err != nil {
			return err
		}
		if c.out != "" {
			if fi, err := os.Stat(filepath.Dir(c.out)); err != nil || !fi.IsDir() {
				return fmt.Errorf("-o %s: no such directory %s", c.out, filepath.Dir(c.out))
			}
		}
	case "import":
		c.file = pos[1]
		if err := c.checkFormat(c.file); err != nil {
			return err
		}
	}
	return nil
}

// checkFormat settles -format: given, or from the file's extension.
func (c *countersCmd) checkFormat(file string) error {
	switch {
	case c.format == "" && strings.EqualFold(filepath.Ext(file), ".json"):
		c.format = "json"
	case c.format == "":
		c.format = "csv"
	case c.format != "csv" && c.format != "json":
		return fmt.Errorf("format %q: want csv or json", c.format)
	}
	return nil
}

// parseCommon reads the settings every subcommand shares.
func (c *countersCmd) parseCommon(getenv func(string) string, tz, level string) error {
	if c.databaseURL == "" {
		c.databaseURL = getenv("DATABASE_URL")
	}
	if tz == "" {
		tz = getenv("TIMEZONE")
	}
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return fmt.Errorf("timezone %q: want an IANA name such as UTC or Europe/Berlin", tz)
	}
	c.loc = loc
	if err := c.logLevel.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	if c.actor == "" {
		c.actor = defaultActor(getenv)
	}
	if len(c.actor) > 200 || strings.ContainsFunc(c.actor, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("actor %q: want at most 200 printable characters", c.actor)
	}
	return nil
}

func checkCounterName(name string) error {
	if !db.ValidName(name) {
		return fmt.Errorf("counter name %q: %w: %s", name, db.ErrInvalid, db.NameRule)
	}
	return nil
}

// defaultActor is who runs the command, as "user@host": $USER, else the
// OS account, else "uid N" (a container's user may have no name).
func defaultActor(getenv func(string) string) string {
	who := getenv("USER")
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	if who == "" {
		who = "uid " + strconv.Itoa(os.Getuid())
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return who + "@" + host
}

// parseInterspersed parses fs's flags wherever they are among args, and
// returns the other arguments in order. "--" ends the flags, "-" is an
// argument (stdin), and so is a negative number: "set blog -5" is then
// refused as a negative total, not as an unknown flag -5.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var flagArgs, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) < 2 || a[0] != '-' || isInteger(a):
			pos = append(pos, a)
		default:
			flagArgs = append(flagArgs, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			// A flag that takes a value takes the next argument.
			if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
				i++
				flagArgs = append(flagArgs, args[i])
			}
		}
	}
	if err := fs.Parse(flagArgs); err != nil {
		return nil, err
	}
	return append(pos, fs.Args()...), nil
}

func isInteger(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// exec does the subcommand against the store.
func (c *countersCmd) exec(ctx context.Context, store *db.Store, stdout io.Writer) error {
	switch c.sub {
	case "list":
		return c.list(ctx, store, stdout)
	case "create":
		if err := store.Create(ctx, c.actor, c.name, c.total); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s: total %d\n", c.name, c.total)
		return nil
	case "set":
		return c.set(ctx, store, stdout)
	case "reset":
		return c.reset(ctx, store, stdout)
	case "rename":
		if err := store.Rename(ctx, c.actor, c.name, c.newName); err != nil {
			return err
		}
		msg := fmt.Sprintf("renamed %s → %s", c.name, c.newName)
		if _, n, ok := lastChange(ctx, store, c.name, "rename", c.actor); ok && n != nil {
			msg += fmt.Sprintf(": total %d, %s", n.Total, plural(n.Days, "day row"))
		}
		fmt.Fprintf(stdout, "%s (pages counting %q must use %q now)\n", msg, c.name, c.newName)
		return nil
	case "delete":
		return c.delete(ctx, store, stdout)
	case "export":
		return c.export(ctx, store, stdout)
	case "import":
		return c.importDays(ctx, store, stdout)
	case "audit":
		return c.audit(ctx, store, stdout)
	}
	return fmt.Errorf("counters: unknown subcommand %q", c.sub)
}

// refuse is the answer to a destructive change without -yes: what it
// would do, and that nothing changed.
func refuse(what string) error {
	return fmt.Errorf("%s; nothing changed: add -yes to do it", what)
}

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

func (c *countersCmd) list(ctx context.Context, store *db.Store, stdout io.Writer) error {
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

func (c *countersCmd) set(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if !c.yes {
		now, err := store.Counts(ctx, c.name)
		if err != nil {
			return err
		}
		return refuse(fmt.Sprintf("set %s would replace its total %d with %d (history and today's figures stay)", c.name, now.Total, c.total))
	}
	if err := store.Set(ctx, c.actor, c.name, c.total); err != nil {
		return err
	}
	if o, n, ok := lastChange(ctx, store, c.name, "set", c.actor); ok && o != nil && n != nil {
		fmt.Fprintf(stdout, "set %s: %d → %d\n", c.name, o.Total, n.Total)
	} else {
		fmt.Fprintf(stdout, "set %s: total %d\n", c.name, c.total)
	}
	return nil
}

func (c *countersCmd) reset(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if !c.yes {
		now, days, err := store.Export(ctx, c.name)
		if err != nil {
			return err
		}
		return refuse(fmt.Sprintf("reset %s would set its total %d to 0 and delete its %s and today's visitors", c.name, now.Total, plural(int64(len(days)), "day row")))
	}
	if err := store.Reset(ctx, c.actor, c.name); err != nil {
		return err
	}
	if o, _, ok := lastChange(ctx, store, c.name, "reset", c.actor); ok && o != nil {
		fmt.Fprintf(stdout, "reset %s: %d → 0, %s deleted\n", c.name, o.Total, plural(o.Days, "day row"))
	} else {
		fmt.Fprintf(stdout, "reset %s: total 0\n", c.name)
	}
	return nil
}

func (c *countersCmd) delete(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if !c.yes {
		now, days, err := store.Export(ctx, c.name)
		if err != nil {
			return err
		}
		return refuse(fmt.Sprintf("delete %s would delete the counter (total %d) and its %s; pages counting it get 404", c.name, now.Total, plural(int64(len(days)), "day row")))
	}
	if err := store.Delete(ctx, c.actor, c.name); err != nil {
		return err
	}
	if o, _, ok := lastChange(ctx, store, c.name, "delete", c.actor); ok && o != nil {
		fmt.Fprintf(stdout, "deleted %s: total %d, %s (the audit keeps this record)\n", c.name, o.Total, plural(o.Days, "day row"))
	} else {
		fmt.Fprintf(stdout, "deleted %s\n", c.name)
	}
	return nil
}

// exportJSON is the JSON of export and import. Total is a pointer so that
// an import can tell a missing total (add the views) from zero.
type exportJSON struct {
	Name  string    `json:"name"`
	Total *int64    `json:"total"`
	Days  []dayJSON `json:"days"`
}

type dayJSON struct {
	Day      string `json:"day"`
	Views    int64  `json:"views"`
	Visitors int64  `json:"visitors"`
	Bots     int64  `json:"bots"`
	Filtered int64  `json:"filtered"`
}

const csvHeader = "day,views,visitors,bots,filtered"

func (c *countersCmd) export(ctx context.Context, store *db.Store, stdout io.Writer) error {
	counts, days, err := store.Export(ctx, c.name)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if c.format == "json" {
		out := exportJSON{Name: counts.Name, Total: &counts.Total, Days: make([]dayJSON, 0, len(days))}
		for _, d := range days {
			out.Days = append(out.Days, dayJSON{d.Day.Format(time.DateOnly), d.Views, d.Visitors, d.Bots, d.Filtered})
		}
		if err := writeJSON(&buf, out); err != nil {
			return err
		}
	} else {
		w := csv.NewWriter(&buf)
		_ = w.Write(strings.Split(csvHeader, ","))
		for _, d := range days {
			_ = w.Write([]string{d.Day.Format(time.DateOnly), strconv.FormatInt(d.Views, 10),
				strconv.FormatInt(d.Visitors, 10), strconv.FormatInt(d.Bots, 10), strconv.FormatInt(d.Filtered, 10)})
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return err
		}
	}
	if c.out == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if err := writeFileAtomic(c.out, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %s to %s: %s, total %d\n", c.name, c.out, plural(int64(len(days)), "day row"), counts.Total)
	return nil
}

// writeFileAtomic writes data to path through a temporary file beside it,
// so a failed export never leaves half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readImport reads and checks the file of an import (stdin for "-").
func (c *countersCmd) readImport(stdin io.Reader) error {
	var data []byte
	var err error
	src := c.file
	if c.file == "-" {
		src = "stdin"
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(c.file)
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	// A day after today in the server's timezone would become "today"'s
	// row later, and hits would add to it.
	y, m, d := time.Now().In(c.loc).Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if c.format == "json" {
		c.days, c.fileTotal, err = parseImportJSON(data, today)
	} else {
		c.days, err = parseImportCSV(data, today)
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", src, err)
	}
	return nil
}

// parseDay checks one day's figures; where says where it is in the file.
func parseDay(where, day string, figures [4]string, today time.Time) (db.Day, error) {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return db.Day{}, fmt.Errorf("%s: day %q: %w: want YYYY-MM-DD", where, day, db.ErrInvalid)
	}
	if t.After(today) {
		return db.Day{}, fmt.Errorf("%s: day %s: %w: after today (%s)", where, day, db.ErrInvalid, today.Format(time.DateOnly))
	}
	out := db.Day{Day: t}
	names := [4]string{"views", "visitors", "bots", "filtered"}
	ptrs := [4]*int64{&out.Views, &out.Visitors, &out.Bots, &out.Filtered}
	for i, s := range figures {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return db.Day{}, fmt.Errorf("%s: %s %q: %w: want a whole number ≥ 0", where, names[i], s, db.ErrInvalid)
		}
		*ptrs[i] = n
	}
	return out, nil
}

// parseImportCSV reads the CSV of export: the header, then one row per
// day, each day at most once. Errors name the line.
func parseImportCSV(data []byte, today time.Time) ([]db.Day, error) {
	data = bytes.TrimPrefix(data, []byte("\uFEFF")) // a spreadsheet's byte order mark
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("empty: want the header %s and a row per day", csvHeader)
	}
	if err != nil {
		return nil, err
	}
	if got := strings.Join(header, ","); strings.ReplaceAll(got, " ", "") != csvHeader {
		return nil, fmt.Errorf("line 1: header %q: %w: want %s", got, db.ErrInvalid, csvHeader)
	}
	var days []db.Day
	seen := map[time.Time]int{} // day → its line
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err // a csv.ParseError names its line
		}
		line, _ := r.FieldPos(0)
		where := "line " + strconv.Itoa(line)
		if len(rec) != 5 {
			return nil, fmt.Errorf("%s: %w: %d fields, want 5 (%s)", where, db.ErrInvalid, len(rec), csvHeader)
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		d, err := parseDay(where, rec[0], [4]string(rec[1:]), today)
		if err != nil {
			return nil, err
		}
		if first, ok := seen[d.Day]; ok {
			return nil, fmt.Errorf("%s: day %s: %w: already on line %d", where, rec[0], db.ErrInvalid, first)
		}
		seen[d.Day] = line
		days = append(days, d)
	}
	return days, nil
}

// parseImportJSON reads the JSON of export. Its name is not used: the
// command line names the counter.
func parseImportJSON(data []byte, today time.Time) ([]db.Day, *int64, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in exportJSON
	if err := dec.Decode(&in); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", db.ErrInvalid, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: more than one JSON value", db.ErrInvalid)
	}
	if in.Total != nil && *in.Total < 0 {
		return nil, nil, fmt.Errorf("total %d: %w: must be ≥ 0", *in.Total, db.ErrInvalid)
	}
	var days []db.Day
	seen := map[time.Time]int{}
	for i, j := range in.Days {
		where := fmt.Sprintf("days[%d]", i)
		f := func(n int64) string { return strconv.FormatInt(n, 10) }
		d, err := parseDay(where, j.Day, [4]string{f(j.Views), f(j.Visitors), f(j.Bots), f(j.Filtered)}, today)
		if err != nil {
			return nil, nil, err
		}
		if first, ok := seen[d.Day]; ok {
			return nil, nil, fmt.Errorf("%s: day %s: %w: already in days[%d]", where, j.Day, db.ErrInvalid, first)
		}
		seen[d.Day] = i
		days = append(days, d)
	}
	return days, in.Total, nil
}

func (c *countersCmd) importDays(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if !c.yes {
		// Into a new counter nothing is lost, so no -yes is needed. Between
		// this check and the import another owner could create the counter;
		// the import would then go into theirs, as with -yes.
		now, days, err := store.Export(ctx, c.name)
		switch {
		case errors.Is(err, db.ErrNotFound):
		case err != nil:
			return err
		default:
			return refuse(c.importPreview(now.Total, days))
		}
	}
	if err := store.Import(ctx, c.actor, c.name, c.days, c.fileTotal); err != nil {
		return err
	}
	o, n, ok := lastChange(ctx, store, c.name, "import", c.actor)
	switch {
	case !ok || n == nil:
		fmt.Fprintf(stdout, "imported %s into %s\n", plural(int64(len(c.days)), "day row"), c.name)
	case o == nil:
		fmt.Fprintf(stdout, "imported %s into new counter %s: total %d\n", plural(int64(len(c.days)), "day row"), c.name, n.Total)
	default:
		fmt.Fprintf(stdout, "imported %s into %s: %d → %d, day rows %d → %d\n", plural(int64(len(c.days)), "day row"), c.name, o.Total, n.Total, o.Days, n.Days)
	}
	return nil
}

// importPreview says what an import into an existing counter would do.
func (c *countersCmd) importPreview(total int64, days []db.Day) string {
	have := map[time.Time]int64{}
	for _, d := range days {
		have[d.Day] = d.Views
	}
	replaced, added := int64(0), int64(0)
	for _, d := range c.days {
		if v, ok := have[d.Day]; ok {
			replaced++
			added -= v
		}
		added += d.Views
	}
	newTotal := max(total+added, 0)
	if c.fileTotal != nil {
		newTotal = *c.fileTotal
	}
	return fmt.Sprintf("import into %s, which exists, would write %s (replacing %d of its %s) and take its total from %d to %d",
		c.name, plural(int64(len(c.days)), "day row"), replaced, plural(int64(len(days)), "day row"), total, newTotal)
}

// auditState is what the audit records of a counter (db.auditRow).
type auditState struct {
	Name  string `json:"name"`
	Total int64  `json:"total"`
	Days  int64  `json:"days"`
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

func (c *countersCmd) audit(ctx context.Context, store *db.Store, stdout io.Writer) error {
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
			auditSummary(e.Counter, e.Old), auditSummary(e.Counter, e.New))
	}
	return tw.Flush()
}

// auditSummary shows a recorded state in a table cell: "total=1200
// days=30", with the name when it is not the counter's (a rename).
func auditSummary(counter, s string) string {
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
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// plural is "1 day row", "2 day rows".
func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.FormatInt(n, 10) + " " + what + "s"
}
