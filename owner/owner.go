// Package owner is the owner's controls, `hitcounter counters …`: another
// front door onto db, beside web. Every change goes through the store
// (db/manage.go), which runs it in one transaction with its audit row;
// this package only parses, validates, confirms and prints.
package owner

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hitcounter/hitcounter/db"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// subcommand is one of `hitcounter counters …`: the one home of its name,
// arguments, help, flags and what runs it. The usage text, the dispatch,
// the list in messages and the suggestions for a typo all come from the
// table.
type subcommand struct {
	name     string
	args     string // positional, for the usage: "NAME TOTAL"; "[NAME]" is optional
	synopsis string // its flags, for the usage: "[-total N]"
	help     string // what it does, wrapped into the usage text
	changes  bool   // records an audit row: takes -actor
	yes      bool   // takes -yes
	json     bool   // takes -json
	format   bool   // takes -format
	force    string // takes -force, which does this
	// flags adds its own flags; check reads its arguments (pos, after the
	// flags and the common settings). Both may be nil.
	flags func(c *command, fs *flag.FlagSet)
	check func(c *command, pos []string, stdin io.Reader) error
	run   func(c *command, ctx context.Context, store *db.Store, stdout io.Writer) error
}

// subcommands is the table, in the order of the usage text.
func subcommands() []subcommand {
	return []subcommand{
		{name: "list", synopsis: "[-json]", json: true, run: (*command).list,
			help: "every counter: total and today's figures"},
		{name: "create", args: "NAME", synopsis: "[-total N]", changes: true,
			flags: func(c *command, fs *flag.FlagSet) {
				fs.Var(totalFlag{&c.total}, "total", "starting total `N`, digits only")
			},
			check: (*command).checkCreate, run: (*command).create,
			help: "a new counter, starting at N (default 0): carry over an old counter's count"},
		{name: "set", args: "NAME TOTAL", synopsis: "-yes", changes: true, yes: true, check: (*command).checkSet, run: (*command).set,
			help: "replace the total; history and today's figures stay"},
		{name: "reset", args: "NAME", synopsis: "-yes", changes: true, yes: true, run: (*command).reset,
			help: "total 0, day rows and today's visitors deleted"},
		{name: "rename", args: "NAME NEWNAME", synopsis: "[-force]", changes: true, check: (*command).checkRename, run: (*command).rename,
			force: "also rename " + frontPageCounter + ", the front page's counter",
			help:  "history and visitors follow (no -yes: undo by renaming back); " + frontPageCounter + ", the front page's counter, needs -force"},
		{name: "delete", args: "NAME", synopsis: "-yes [-force]", changes: true, yes: true, run: (*command).delete,
			force: "with -yes, also delete " + frontPageCounter + ", the front page's counter",
			help:  "the counter and its history; the audit keeps a record. " + frontPageCounter + ", the front page's counter, also needs -force"},
		{name: "export", args: "NAME", synopsis: "[-format csv|json] [-o FILE [-force]]", format: true,
			force: "overwrite the file of -o if it exists",
			flags: func(c *command, fs *flag.FlagSet) {
				fs.StringVar(&c.out, "o", "", "write to this file instead of stdout")
			},
			check: (*command).checkExport, run: (*command).export,
			help: "the total and day rows as CSV (default) or JSON, to stdout or FILE; an existing FILE needs -force"},
		{name: "import", args: "NAME FILE|-", synopsis: "[-format csv|json] [-yes]", changes: true, yes: true, format: true,
			check: (*command).checkImport, run: (*command).importDays,
			help: "day rows from FILE or stdin; each replaces that day's row. The file's total (CSV \"#~total,N\", " +
				"JSON \"total\") becomes the counter's; without one the views are added to it. CSV needs the columns " +
				"day,views; visitors,bots,filtered are optional. A new NAME is created; an existing one needs -yes"},
		{name: "switch", args: "NAME", synopsis: "[-plus-one on|off] [-page on|off]", changes: true,
			flags: func(c *command, fs *flag.FlagSet) {
				fs.Func("plus-one", "on or off: the counter's page and embeds offer +1", onOff(&c.plusOne))
				fs.Func("page", "on or off: /c/NAME shows the counter's page", onOff(&c.page))
			},
			run: (*command).switchCounter,
			help: "whether the counter's page and embeds offer +1, and whether /c/NAME is a page at all " +
				"(badges, embeds and the API go on); without flags, shows them"},
		{name: "audit", args: "[NAME]", synopsis: "[-json]", json: true, run: (*command).audit,
			help: "the recorded changes, oldest first"},
	}
}

// usage is the text of `hitcounter counters -h`, from the table.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: hitcounter counters SUBCOMMAND [ARGS] [FLAGS]\n\nSubcommands:\n")
	const col = 32 // where the help starts
	for _, sub := range subcommands() {
		line := strings.Join(strings.Fields(sub.name+" "+sub.args+" "+sub.synopsis), " ")
		help := wrap(sub.help, 78-col)
		if len(line) < col-3 {
			fmt.Fprintf(&b, "  %-*s%s\n", col-2, line, help[0])
			help = help[1:]
		} else {
			fmt.Fprintf(&b, "  %s\n", line)
		}
		for _, h := range help {
			fmt.Fprintf(&b, "%*s%s\n", col, "", h)
		}
	}
	b.WriteString(`
Flags go after the subcommand, before or after its arguments; "--" ends
them. Every subcommand takes -database-url (default $DATABASE_URL),
-timezone (default $TIMEZONE, else UTC: set it as the server's, for
"today") and -log-level (default warn); changes take -actor (default
$USER@hostname), recorded in the audit. Destructive changes without -yes
say what they would do and change nothing. -format defaults to the file's
extension, else the content: JSON if it starts with { or [, else CSV.
"hitcounter counters SUBCOMMAND -h" lists its flags.
`)
	return b.String()
}

// wrap breaks text into lines of at most width bytes, at spaces; a ~ is a
// space that does not break ("#~total,N").
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += strings.ReplaceAll(w, "~", " ")
	}
	return append(lines, line)
}

// lookup finds a subcommand by name.
func lookup(name string) (subcommand, bool) {
	for _, sub := range subcommands() {
		if sub.name == name {
			return sub, true
		}
	}
	return subcommand{}, false
}

// minMaxArgs is how many positional arguments sub takes.
func (sub subcommand) minMaxArgs() (minArgs, maxArgs int) {
	for _, a := range strings.Fields(sub.args) {
		maxArgs++
		if !strings.HasPrefix(a, "[") {
			minArgs++
		}
	}
	return minArgs, maxArgs
}

// frontPageCounter is the counter of the front page, /: deleting it takes
// the front page down.
const frontPageCounter = db.MainCounter

// command is one parsed and validated invocation: everything is
// checked, and an import's file read, before the database is touched.
type command struct {
	sub         string
	run         func(c *command, ctx context.Context, store *db.Store, stdout io.Writer) error
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

// Run runs `hitcounter counters …`; args[0] is "counters".
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := parse(args, getenv, stdin, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	cfg := db.DefaultConfig()
	cfg.Location = c.loc
	cfg.Background = false // one command: no listener, no daily work to start or log
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
