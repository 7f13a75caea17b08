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
	"maps"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hitcounter/hitcounter/db"
)

const countersUsage = `usage: hitcounter counters SUBCOMMAND [ARGS] [FLAGS]

Subcommands:
  list                          every counter: total and today's figures [-json]
  create NAME [-total N]        a new counter, starting at N (default 0)
  set NAME TOTAL -yes           replace the total; history and today stay
  reset NAME -yes               total 0, day rows and today's visitors deleted
  rename NAME NEWNAME           history and visitors follow (no -yes: undo by renaming back);
                                main, the front page's counter, needs -force
  delete NAME -yes              the counter and its history; the audit keeps a record.
                                main, the front page's counter, also needs -force
  export NAME [-format csv|json] [-o FILE [-force]]
                                the total and day rows as CSV (default) or JSON, to stdout
                                or FILE; an existing FILE needs -force
  import NAME FILE|- [-format csv|json] [-yes]
                                day rows from FILE or stdin; each replaces that day's row.
                                The file's total (CSV "# total,N", JSON "total") becomes
                                the counter's; without one the views are added to it.
                                CSV needs the columns day,views; visitors,bots,filtered
                                are optional. A new NAME is created; an existing one
                                needs -yes
  switch NAME [-plus-one on|off] [-page on|off]
                                whether the counter's page and embeds offer +1, and
                                whether /c/NAME is a page at all (badges, embeds and
                                the API go on); without flags, shows them
  audit [NAME]                  the recorded changes, oldest first [-json]

Flags go after the subcommand, before or after its arguments; "--" ends
them. Every subcommand takes -database-url (default $DATABASE_URL),
-timezone (default $TIMEZONE, else UTC: set it as the server's, for
"today") and -log-level (default warn); changes take -actor (default
$USER@hostname), recorded in the audit. Destructive changes without -yes
say what they would do and change nothing. -format defaults to the file's
extension, else CSV; an import that starts with { or [ is JSON.
"hitcounter counters SUBCOMMAND -h" lists its flags.
`

// countersSub describes one subcommand: how it is called, how many
// arguments it takes, which flags it has beyond the common ones, and what
// runs it.
type countersSub struct {
	args             string // for messages: "NAME TOTAL"
	minArgs, maxArgs int
	changes          bool   // records an audit row: takes -actor
	yes              bool   // takes -yes
	json             bool   // takes -json
	format           bool   // takes -format
	force            string // takes -force, which does this
	run              func(c *countersCmd, ctx context.Context, store *db.Store, stdout io.Writer) error
}

// countersSubs is the one list of subcommands: it dispatches, and names
// them in messages and suggestions.
func countersSubs() map[string]countersSub {
	return map[string]countersSub{
		"list":   {json: true, run: (*countersCmd).list},
		"create": {args: "NAME", minArgs: 1, maxArgs: 1, changes: true, run: (*countersCmd).create},
		"set":    {args: "NAME TOTAL", minArgs: 2, maxArgs: 2, changes: true, yes: true, run: (*countersCmd).set},
		"reset":  {args: "NAME", minArgs: 1, maxArgs: 1, changes: true, yes: true, run: (*countersCmd).reset},
		"rename": {args: "NAME NEWNAME", minArgs: 2, maxArgs: 2, changes: true,
			force: "also rename " + frontPageCounter + ", the front page's counter", run: (*countersCmd).rename},
		"delete": {args: "NAME", minArgs: 1, maxArgs: 1, changes: true, yes: true,
			force: "with -yes, also delete " + frontPageCounter + ", the front page's counter", run: (*countersCmd).delete},
		"export": {args: "NAME", minArgs: 1, maxArgs: 1, format: true,
			force: "overwrite the file of -o if it exists", run: (*countersCmd).export},
		"import": {args: "NAME FILE|-", minArgs: 2, maxArgs: 2, changes: true, yes: true, format: true, run: (*countersCmd).importDays},
		"switch": {args: "NAME", minArgs: 1, maxArgs: 1, changes: true, run: (*countersCmd).switchCounter},
		"audit":  {args: "[NAME]", maxArgs: 1, json: true, run: (*countersCmd).audit},
	}
}

// frontPageCounter is the counter of the front page, /: deleting it takes
// the front page down.
const frontPageCounter = db.MainCounter

// countersCmd is one parsed and validated invocation: everything is
// checked, and an import's file read, before the database is touched.
type countersCmd struct {
	sub         string
	run         func(c *countersCmd, ctx context.Context, store *db.Store, stdout io.Writer) error
	databaseURL string
	loc         *time.Location
	logLevel    slog.Level
	actor       string
	yes         bool
	force       bool
	asJSON      bool
	name        string
	newName     string // rename
	total       int64  // create -total, set TOTAL
	format      string // export, import: csv or json
	out         string // export -o; empty is stdout
	file        string // import: the file's name, for messages
	days        []db.Day
	fileTotal   *int64 // import: the total a JSON file sets
	plusOne     *bool  // switch -plus-one; nil: unchanged
	page        *bool  // switch -page; nil: unchanged
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
	if err := reach(ctx, c.databaseURL); err != nil {
		return err
	}
	if err := store.Ready(ctx); err != nil {
		return fmt.Errorf("database: %w (the schema is applied by `hitcounter -migrate`, which `make run` does)", err)
	}
	err = c.run(c, ctx, store, stdout)
	if errors.Is(err, db.ErrOutcomeUnknown) && c.name != "" {
		return fmt.Errorf("%w; see `hitcounter counters audit %s` before trying again", err, c.name)
	}
	return err
}

// reach connects once, without the store's retries: an owner at a prompt
// wants a database that is down or mistyped said at once, in one line,
// not the server's retry logs. Commands keep the retries once it answers.
func reach(ctx context.Context, databaseURL string) error {
	pc, err := pgxpool.ParseConfig(databaseURL) // pool_* parameters are not the server's
	if err != nil {
		// db.Open has refused it already; pgx's message may quote the password.
		return fmt.Errorf("database URL: %w", db.ErrInvalid)
	}
	cfg := pc.ConnConfig
	if cfg.ConnectTimeout == 0 { // else a server that never answers hangs the command
		cfg.ConnectTimeout = 10 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) { // it answered: a password, a database name
			return fmt.Errorf("the database at %s refused the connection: %w", addr, pgErr)
		}
		return fmt.Errorf("cannot reach the database at %s: %w", addr, connectCause(err))
	}
	return conn.Close(ctx)
}

// connectCause is the root of pgx's connect error ("connection refused"),
// without the per-attempt lines around it. Of several attempts (TLS, then
// plain) the last says most.
func connectCause(err error) error {
	for {
		var next error
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			if errs := u.Unwrap(); len(errs) > 0 {
				next = errs[len(errs)-1]
			}
		case interface{ Unwrap() error }:
			next = u.Unwrap()
		}
		if next == nil {
			break
		}
		err = next
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the server closed the connection (%w)", err)
	}
	return err
}

// withoutFinalFailure drops the store's log of a transaction's final
// failure: runCounters returns that error and main prints it, so the log
// line would only say it twice. It drops the outage lines too (they speak
// of the server's requests) and the listener's: the store keeps counts in
// memory for the server, which a command does not need. Retries are still
// logged.
type withoutFinalFailure struct{ slog.Handler }

func (h withoutFinalFailure) Handle(ctx context.Context, r slog.Record) error {
	for _, drop := range []string{"db transaction failed", "db listener", "db unavailable", "db still unavailable"} {
		if strings.HasPrefix(r.Message, drop) {
			return nil
		}
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
	subs := countersSubs()
	if len(args) < 2 {
		fmt.Fprint(stderr, countersUsage)
		return nil, fmt.Errorf("counters: missing subcommand: %s", subNames(subs))
	}
	c := &countersCmd{sub: args[1]}
	switch c.sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, countersUsage)
		return nil, flag.ErrHelp
	}
	spec, ok := subs[c.sub]
	if !ok {
		if strings.HasPrefix(c.sub, "-") {
			return nil, fmt.Errorf("counters: flags go after the subcommand: hitcounter counters SUBCOMMAND %s", c.sub)
		}
		if near := suggest(c.sub, subs); near != "" {
			return nil, fmt.Errorf("counters: unknown subcommand %q: did you mean %q?", c.sub, near)
		}
		return nil, fmt.Errorf("counters: unknown subcommand %q: want %s", c.sub, subNames(subs))
	}
	c.run = spec.run
	usage := strings.TrimSpace("hitcounter counters " + c.sub + " " + spec.args)

	// The flag package prints its errors and the usage itself; the error
	// is returned instead (main prints it once), and the usage is for -h.
	fs := flag.NewFlagSet("hitcounter counters "+c.sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
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
	if spec.force != "" {
		fs.BoolVar(&c.force, "force", false, spec.force)
	}
	if spec.json {
		fs.BoolVar(&c.asJSON, "json", false, "print JSON instead of a table")
	}
	if spec.format {
		fs.StringVar(&c.format, "format", "", "csv or json (default from the file's extension, else csv; an import starting with { or [ is json)")
	}
	if c.sub == "create" {
		fs.Int64Var(&c.total, "total", 0, "starting total")
	}
	if c.sub == "export" {
		fs.StringVar(&c.out, "o", "", "write to this file instead of stdout")
	}
	var plusOne, page string
	if c.sub == "switch" {
		fs.StringVar(&plusOne, "plus-one", "", "on or off: the counter's page and embeds offer +1")
		fs.StringVar(&page, "page", "", "on or off: /c/NAME shows the counter's page")
	}
	pos, err := parseInterspersed(fs, args[2:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "usage: %s [FLAGS]\n\nFlags:\n", usage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("counters %s: %w; %q lists its flags", c.sub, err, "hitcounter counters "+c.sub+" -h")
	}
	if len(pos) < spec.minArgs || len(pos) > spec.maxArgs {
		return nil, fmt.Errorf("counters %s: %d arguments %q: usage: %s", c.sub, len(pos), pos, usage)
	}

	if err := c.parseArgs(pos); err != nil {
		return nil, err
	}
	if c.plusOne, err = onOff("plus-one", plusOne); err != nil {
		return nil, err
	}
	if c.page, err = onOff("page", page); err != nil {
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
		if c.format == "" {
			c.format = "csv"
		}
		if c.out != "" {
			if fi, err := os.Stat(filepath.Dir(c.out)); err != nil || !fi.IsDir() {
				return fmt.Errorf("-o %s: no such directory %s", c.out, filepath.Dir(c.out))
			}
			// Checked before the export, so nothing is read in vain; the
			// atomic write replaces the file only with -force.
			if _, err := os.Lstat(c.out); err == nil && !c.force {
				return fmt.Errorf("-o %s: the file exists; add -force to overwrite it", c.out)
			}
		}
	case "import":
		c.file = pos[1]
		// Without a format or a known extension, readImport looks at the
		// content.
		if err := c.checkFormat(c.file); err != nil {
			return err
		}
	}
	return nil
}

// checkFormat settles -format when it can: given, or from the file's
// extension; else it stays "".
func (c *countersCmd) checkFormat(file string) error {
	switch {
	case c.format == "" && strings.EqualFold(filepath.Ext(file), ".json"):
		c.format = "json"
	case c.format == "" && strings.EqualFold(filepath.Ext(file), ".csv"):
		c.format = "csv"
	case c.format != "" && c.format != "csv" && c.format != "json":
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

// subNames lists the subcommands for a message: "audit, create, … or set".
func subNames(subs map[string]countersSub) string {
	names := slices.Sorted(maps.Keys(subs))
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// suggest is the subcommand a mistyped one most likely meant: the nearest
// within two edits, or the one it begins; "" when none or a tie.
func suggest(typed string, subs map[string]countersSub) string {
	best, bestDist, tie := "", 3, false
	for name := range subs {
		d := editDistance(typed, name)
		if len(typed) >= 2 && strings.HasPrefix(name, typed) {
			d = min(d, 1)
		}
		switch {
		case d < bestDist:
			best, bestDist, tie = name, d, false
		case d == bestDist:
			tie = true
		}
	}
	if tie {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, by bytes: the
// names are ASCII.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
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

func (c *countersCmd) create(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if err := store.Create(ctx, c.actor, c.name, c.total); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s: total %d\n", c.name, c.total)
	return nil
}

func (c *countersCmd) rename(ctx context.Context, store *db.Store, stdout io.Writer) error {
	if c.name == frontPageCounter && !c.force {
		return refuse("rename "+c.name+" would take the front page (/) down: "+c.name+" is its counter", "-force")
	}
	if err := store.Rename(ctx, c.actor, c.name, c.newName); err != nil {
		return err
	}
	msg := fmt.Sprintf("renamed %s → %s", c.name, c.newName)
	if _, n, ok := lastChange(ctx, store, c.name, "rename", c.actor); ok && n != nil {
		msg += fmt.Sprintf(": total %d, %s", n.Total, plural(n.Days, "day row"))
	}
	fmt.Fprintf(stdout, "%s (pages counting %q must use %q now)\n", msg, c.name, c.newName)
	return nil
}

// onOff reads a switch flag: "" is unchanged (nil).
func onOff(flag, v string) (*bool, error) {
	switch v {
	case "":
		return nil, nil
	case "on":
		return new(true), nil
	case "off":
		return new(false), nil
	}
	return nil, fmt.Errorf("counters switch: -%s %q: want on or off", flag, v)
}

// switchCounter sets the switches given and prints them all.
func (c *countersCmd) switchCounter(ctx context.Context, store *db.Store, stdout io.Writer) error {
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
		if err := store.Switch(ctx, c.actor, c.name, sw); err != nil {
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
		return refuse(fmt.Sprintf("set %s would replace its total %d with %d (history and today's figures stay)", c.name, now.Total, c.total), "-yes")
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
		return refuse(fmt.Sprintf("reset %s would set its total %d to 0 and delete its %s and today's visitors", c.name, now.Total, plural(int64(len(days)), "day row")), "-yes")
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

// exportJSON is the JSON of export (Day dayJSON) and import (Day
// json.RawMessage: each day is decoded on its own, so an error can say
// which). Total is a pointer so that an import can tell a missing total
// (add the views) from zero.
type exportJSON[Day any] struct {
	Name  string `json:"name"`
	Total *int64 `json:"total"`
	Days  []Day  `json:"days"`
}

type dayJSON struct {
	Day      string `json:"day"`
	Views    int64  `json:"views"`
	Visitors int64  `json:"visitors"`
	Bots     int64  `json:"bots"`
	Filtered int64  `json:"filtered"`
}

// figureNames are a day's figures as the CSV's columns and the JSON's
// fields name them, in the order of db.Day.
var figureNames = [4]string{"views", "visitors", "bots", "filtered"}

// csvHeader is the header of an export; an import needs its first two
// columns, in any order with any of the others.
var csvHeader = "day," + strings.Join(figureNames[:], ",")

// csvTotal starts the line of a CSV that carries the counter's total, as
// JSON's "total" does: "# total,20000". A spreadsheet shows it as a row of
// two cells, and CSV readers can skip it as a comment.
const csvTotal = "# total"

func (c *countersCmd) export(ctx context.Context, store *db.Store, stdout io.Writer) error {
	counts, days, err := store.Export(ctx, c.name)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if c.format == "json" {
		out := exportJSON[dayJSON]{Name: counts.Name, Total: &counts.Total, Days: make([]dayJSON, 0, len(days))}
		for _, d := range days {
			out.Days = append(out.Days, dayJSON{d.Day.Format(time.DateOnly), d.Views, d.Visitors, d.Bots, d.Filtered})
		}
		if err := writeJSON(&buf, out); err != nil {
			return err
		}
	} else {
		w := csv.NewWriter(&buf)
		_ = w.Write([]string{csvTotal, strconv.FormatInt(counts.Total, 10)})
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
	data = bytes.TrimPrefix(data, []byte("\uFEFF")) // a spreadsheet's byte order mark
	if c.format == "" {
		// Neither -format nor the name says: a CSV starts with its header,
		// a "# total" line or a day, never with { or [.
		c.format = "csv"
		if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			c.format = "json"
		}
	}
	// A day after today in the server's timezone would become "today"'s
	// row later, and hits would add to it.
	y, m, d := time.Now().In(c.loc).Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	parse := parseImportCSV
	if c.format == "json" {
		parse = parseImportJSON
	}
	if c.days, c.fileTotal, err = parse(data, today); err != nil {
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
	ptrs := [4]*int64{&out.Views, &out.Visitors, &out.Bots, &out.Filtered}
	for i, s := range figures {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return db.Day{}, fmt.Errorf("%s: %s %q: %w: want a whole number ≥ 0", where, figureNames[i], s, db.ErrInvalid)
		}
		*ptrs[i] = n
	}
	return out, nil
}

// dayChecker refuses a day given twice; where says where it is in the
// file.
type dayChecker map[time.Time]string

func (seen dayChecker) check(d db.Day, where string) error {
	if first, ok := seen[d.Day]; ok {
		return fmt.Errorf("%s: day %s: %w: given twice, first at %s", where, d.Day.Format(time.DateOnly), db.ErrInvalid, first)
	}
	seen[d.Day] = where
	return nil
}

// parseImportCSV reads the CSV of export: lines starting with # are
// comments, except "# total,N", which gives the total; then the header,
// with day and views and any of the other figures (missing ones are 0);
// then one row per day, each day at most once. Errors name the line.
func parseImportCSV(data []byte, today time.Time) ([]db.Day, *int64, error) {
	total, err := parseCSVTotal(data)
	if err != nil {
		return nil, nil, err
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#' // the same lines as parseCSVTotal's; line numbers still count them
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("no header: want %s (visitors, bots and filtered may be left out) and a row per day", csvHeader)
	}
	if err != nil {
		return nil, nil, err // a csv.ParseError names its line
	}
	cols, err := csvColumns(header)
	if err != nil {
		line, _ := r.FieldPos(0)
		return nil, nil, fmt.Errorf("line %d: header %q: %w", line, strings.Join(header, ","), err)
	}
	var days []db.Day
	seen := dayChecker{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		line, _ := r.FieldPos(0)
		where := "line " + strconv.Itoa(line)
		if len(rec) != len(header) {
			return nil, nil, fmt.Errorf("%s: %w: %d fields, want %d (%s)", where, db.ErrInvalid, len(rec), len(header), strings.Join(header, ","))
		}
		figures := [4]string{"0", "0", "0", "0"}
		for i, col := range cols[1:] {
			if col >= 0 {
				figures[i] = strings.TrimSpace(rec[col])
			}
		}
		d, err := parseDay(where, strings.TrimSpace(rec[cols[0]]), figures, today)
		if err != nil {
			return nil, nil, err
		}
		if err := seen.check(d, where); err != nil {
			return nil, nil, err
		}
		days = append(days, d)
	}
	return days, total, nil
}

// csvColumns maps the header to the field of day and of each figure
// (-1: not in the file).
func csvColumns(header []string) ([5]int, error) {
	names := strings.Split(csvHeader, ",")
	cols := [5]int{-1, -1, -1, -1, -1}
	for i, h := range header {
		k := slices.Index(names, strings.ToLower(strings.TrimSpace(h)))
		switch {
		case k < 0:
			return cols, fmt.Errorf("%w: column %q: want %s", db.ErrInvalid, h, csvHeader)
		case cols[k] >= 0:
			return cols, fmt.Errorf("%w: column %s twice", db.ErrInvalid, names[k])
		}
		cols[k] = i
	}
	if cols[0] < 0 || cols[1] < 0 {
		return cols, fmt.Errorf("%w: want at least day,views, and any of the others of %s", db.ErrInvalid, csvHeader)
	}
	return cols, nil
}

// parseCSVTotal finds the "# total,N" line of a CSV, if any. A comment
// whose first word is "total" but is not that line is refused rather than
// skipped, so a mistyped total is not silently lost.
func parseCSVTotal(data []byte) (*int64, error) {
	var total *int64
	first := 0 // the line of total
	for i, line := range strings.Split(string(data), "\n") {
		body, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "#")
		word := strings.TrimSpace(body)
		if end := strings.IndexFunc(word, func(r rune) bool { return !unicode.IsLetter(r) }); end >= 0 {
			word = word[:end]
		}
		if !ok || !strings.EqualFold(word, "total") {
			continue
		}
		// A spreadsheet saves the line padded with empty cells: "# total,5,,,".
		name, n, _ := strings.Cut(strings.TrimRight(body, ", "), ",")
		v, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		switch {
		case !strings.EqualFold(strings.TrimSpace(name), "total") || err != nil || v < 0:
			return nil, fmt.Errorf("line %d: %q: %w: want %s,N with N a whole number ≥ 0", i+1, line, db.ErrInvalid, csvTotal)
		case total != nil:
			return nil, fmt.Errorf("line %d: %w: a second total, after line %d's", i+1, db.ErrInvalid, first)
		}
		total, first = &v, i+1
	}
	return total, nil
}

// parseImportJSON reads the JSON of export. Its name is not used: the
// command line names the counter.
func parseImportJSON(data []byte, today time.Time) ([]db.Day, *int64, error) {
	var in exportJSON[json.RawMessage]
	if err := decodeJSON(data, &in, ""); err != nil {
		return nil, nil, err
	}
	if in.Total != nil && *in.Total < 0 {
		return nil, nil, fmt.Errorf("total %d: %w: must be ≥ 0", *in.Total, db.ErrInvalid)
	}
	var days []db.Day
	seen := dayChecker{}
	for i, raw := range in.Days {
		where := fmt.Sprintf("days[%d]", i)
		var j dayJSON
		if err := decodeJSON(raw, &j, where); err != nil {
			return nil, nil, err
		}
		f := func(n int64) string { return strconv.FormatInt(n, 10) }
		d, err := parseDay(where, j.Day, [4]string{f(j.Views), f(j.Visitors), f(j.Bots), f(j.Filtered)}, today)
		if err != nil {
			return nil, nil, err
		}
		if err := seen.check(d, where); err != nil {
			return nil, nil, err
		}
		days = append(days, d)
	}
	return days, in.Total, nil
}

// decodeJSON decodes exactly one JSON value of data into v, with errors in
// the file's terms rather than Go's: `"days[2].views" must be a whole
// number, not a string`. path is where data is in the file ("" for all
// of it).
func decodeJSON(data []byte, v any, path string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		return fmt.Errorf("%w: more than one JSON value", db.ErrInvalid)
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return fmt.Errorf("empty: %w: want {\"name\", \"total\", \"days\": […]}", db.ErrInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the JSON ends early (%w)", db.ErrInvalid, err)
	case errors.As(err, &syntaxErr):
		line := 1 + bytes.Count(data[:syntaxErr.Offset], []byte("\n"))
		return fmt.Errorf("line %d: %w: %w", line, db.ErrInvalid, syntaxErr)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if path != "" {
			field = strings.TrimSuffix(path+"."+field, ".")
		}
		what := "the file"
		if field != "" {
			what = strconv.Quote(field)
		}
		return fmt.Errorf("%s must be %s, not %s", what, jsonKind(typeErr.Type), jsonValue(typeErr.Value))
	}
	// An unknown field: `json: unknown field "dayz"`.
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if path != "" {
		return fmt.Errorf("%s: %w: %s", path, db.ErrInvalid, msg)
	}
	return fmt.Errorf("%w: %s", db.ErrInvalid, msg)
}

// jsonKind names what a Go type takes, in JSON's words.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list [ … ]"
	}
	return "an object { … }"
}

// jsonValue names what the file has instead: UnmarshalTypeError.Value is
// "string", "number 1.5", "bool", "array" or "object".
func jsonValue(v string) string {
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	switch v {
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a " + v
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
			return refuse(c.importPreview(now.Total, days), "-yes")
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
