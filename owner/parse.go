package owner

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/settings"
)

// parse reads the subcommand, its flags, the environment, its arguments
// and an import's file: everything is checked before anything connects.
func parse(args []string, getenv func(string) string, stdin io.Reader, stderr io.Writer) (*command, error) {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage())
		return nil, fmt.Errorf("counters: missing subcommand: %s", subNames())
	}
	c := &command{sub: args[1]}
	switch c.sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage())
		return nil, flag.ErrHelp
	}
	sub, ok := lookup(c.sub)
	if !ok {
		if strings.HasPrefix(c.sub, "-") {
			return nil, fmt.Errorf("counters: flags go after the subcommand: hitcounter counters SUBCOMMAND %s", c.sub)
		}
		if near := suggest(c.sub); near != "" {
			return nil, fmt.Errorf("counters: unknown subcommand %q: did you mean %q?", c.sub, near)
		}
		return nil, fmt.Errorf("counters: unknown subcommand %q: want %s", c.sub, subNames())
	}
	c.run = sub.run
	synopsis := strings.Join(strings.Fields("hitcounter counters "+sub.name+" "+sub.args), " ")

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
	if sub.changes {
		fs.StringVar(&c.actor, "actor", "", "who the audit records (default $USER@hostname)")
	}
	if sub.yes {
		fs.BoolVar(&c.yes, "yes", false, "confirm the change")
	}
	if sub.force != "" {
		fs.BoolVar(&c.force, "force", false, sub.force)
	}
	if sub.json {
		fs.BoolVar(&c.asJSON, "json", false, "print JSON instead of a table")
	}
	if sub.format {
		fs.StringVar(&c.format, "format", "", "csv or json (default from the file's extension, else the content)")
	}
	if sub.flags != nil {
		sub.flags(c, fs)
	}
	pos, err := parseInterspersed(fs, args[2:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "usage: %s [FLAGS]\n\nFlags:\n", synopsis)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("counters %s: %w; %q lists its flags", c.sub, err, "hitcounter counters "+c.sub+" -h")
	}
	if minArgs, maxArgs := sub.minMaxArgs(); len(pos) < minArgs || len(pos) > maxArgs {
		return nil, fmt.Errorf("counters %s: %d arguments %q: usage: %s", c.sub, len(pos), pos, synopsis)
	}
	if len(pos) > 0 {
		c.name = pos[0]
		if err := db.CheckName(c.name); err != nil {
			return nil, err
		}
	}
	if err := c.parseCommon(getenv, tz, level); err != nil {
		return nil, err
	}
	if sub.check != nil {
		if err := sub.check(c, pos, stdin); err != nil {
			return nil, err
		}
	}
	if c.databaseURL == "" {
		return nil, errors.New("no database: set DATABASE_URL or -database-url")
	}
	return c, nil
}

func (c *command) checkCreate([]string, io.Reader) error {
	return db.CheckTotal(c.total)
}

func (c *command) checkSet(pos []string, _ io.Reader) error {
	n, err := parseTotal(pos[1])
	c.total = n
	return err
}

// parseTotal reads a total as typed: decimal digits, as import reads its
// figures. strconv.ParseInt would also take "+5" and "-0", and package
// flag's Int64Var "0x10" and "1_000". A minus sign before digits is told
// that a total is not negative.
func parseTotal(s string) (int64, error) {
	digits, neg := strings.CutPrefix(s, "-")
	if digits == "" || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("total %q: %w: want a whole number, digits only", s, db.ErrInvalid)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if neg || err != nil { // err: past int64
		return 0, fmt.Errorf("total %s: %w: must be between 0 and %d", s, db.ErrInvalid, int64(db.MaxTotal))
	}
	return n, db.CheckTotal(n)
}

// totalFlag is -total, read by parseTotal.
type totalFlag struct{ n *int64 }

func (f totalFlag) String() string {
	if f.n == nil {
		return "0"
	}
	return strconv.FormatInt(*f.n, 10)
}

func (f totalFlag) Set(s string) (err error) {
	*f.n, err = parseTotal(s)
	return err
}

func (c *command) checkRename(pos []string, _ io.Reader) error {
	c.newName = pos[1]
	if err := db.CheckName(c.newName); err != nil {
		return err
	}
	if c.newName == c.name {
		return fmt.Errorf("rename %s: the new name is the same", c.name)
	}
	return nil
}

func (c *command) checkExport([]string, io.Reader) error {
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
	return nil
}

// checkImport reads and checks the whole file before anything connects.
func (c *command) checkImport(pos []string, stdin io.Reader) error {
	c.file = pos[1]
	// Without a format or a known extension, readImport looks at the
	// content.
	if err := c.checkFormat(c.file); err != nil {
		return err
	}
	return c.readImport(stdin)
}

// checkFormat settles -format when it can: given, or from the file's
// extension; else it stays "".
func (c *command) checkFormat(file string) error {
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
func (c *command) parseCommon(getenv func(string) string, tz, level string) error {
	if c.databaseURL == "" {
		c.databaseURL = getenv("DATABASE_URL")
	}
	if tz == "" {
		tz = getenv("TIMEZONE")
	}
	var err error
	if c.loc, err = settings.Timezone(tz); err != nil {
		return err
	}
	if c.logLevel, err = settings.LogLevel(level); err != nil {
		return err
	}
	if c.actor == "" {
		c.actor = defaultActor(getenv)
	}
	if len(c.actor) > 200 || strings.ContainsFunc(c.actor, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("actor %q: want at most 200 printable characters", c.actor)
	}
	return nil
}

// subNames lists the subcommands for a message: "audit, create, … or set".
func subNames() string {
	var names []string
	for _, sub := range subcommands() {
		names = append(names, sub.name)
	}
	slices.Sort(names)
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// suggest is the subcommand a mistyped one most likely meant: the nearest
// within two edits, or the one it begins; "" when none or a tie.
func suggest(typed string) string {
	best, bestDist, tie := "", 3, false
	for _, sub := range subcommands() {
		d := editDistance(typed, sub.name)
		if len(typed) >= 2 && strings.HasPrefix(sub.name, typed) {
			d = min(d, 1)
		}
		switch {
		case d < bestDist:
			best, bestDist, tie = sub.name, d, false
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
