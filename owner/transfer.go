package owner

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hitcounter/hitcounter/db"
)

// exportJSON is the JSON of export. An import reads it key by key
// (parseImportJSON), in the keys' case, and may leave out any of them.
type exportJSON struct {
	Name  string       `json:"name"`
	Total int64        `json:"total"`
	Days  []db.DayJSON `json:"days"`
}

// figureNames are a day's figures as the CSV's columns and the JSON's
// fields name them, in the order of db.Day.
var figureNames = [4]string{"views", "visitors", "bots", "filtered"}

// fileKeys and dayKeys are the keys of the JSON, as export writes them.
var (
	fileKeys = []string{"name", "total", "days"}
	dayKeys  = append([]string{"day"}, figureNames[:]...)
)

// csvHeader is the header of an export; an import needs its first two
// columns, in any order with any of the others.
var csvHeader = "day," + strings.Join(figureNames[:], ",")

// csvTotal starts the line of a CSV that carries the counter's total, as
// JSON's "total" does: "# total,20000". A spreadsheet shows it as a row of
// two cells, and CSV readers can skip it as a comment.
const csvTotal = "# total"

func (c *command) export(ctx context.Context, store *db.Store, stdout io.Writer) error {
	counts, days, err := store.Export(ctx, c.name)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if c.format == "json" {
		out := exportJSON{Name: counts.Name, Total: counts.Total, Days: make([]db.DayJSON, 0, len(days))}
		for _, d := range days {
			out.Days = append(out.Days, d.JSON())
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
func (c *command) readImport(stdin io.Reader) error {
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
	// The store's rule, checked before connecting; the parsers have said
	// where in the file already.
	if err := db.CheckDays(c.days); err != nil {
		return fmt.Errorf("import %s: %w", src, err)
	}
	return nil
}

// parseFigure reads a figure as export writes it: digits only, with no
// sign (strconv.ParseInt takes "+5" and "-0"), from 0 to db.MaxTotal.
func parseFigure(s string) (int64, bool) {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n <= db.MaxTotal
}

// parseDay checks one day, its figures as written in the file; where says
// where it is in the file. It holds db.CheckDays's rules for a day, so
// that the error names the line (the sum of the views is left to
// CheckDays), and refuses a day after today.
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
		n, ok := parseFigure(s)
		if !ok {
			return db.Day{}, fmt.Errorf("%s: %s %q: %w: want a whole number from 0 to %d", where, figureNames[i], s, db.ErrInvalid, int64(db.MaxTotal))
		}
		*ptrs[i] = n
	}
	if out.Visitors > out.Views {
		return db.Day{}, fmt.Errorf("%s: day %s: %w: %d visitors, more than its %d views (visitors are the distinct viewers among the day's views)",
			where, day, db.ErrInvalid, out.Visitors, out.Views)
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
		v, ok := parseFigure(strings.TrimSpace(n))
		switch {
		case !strings.EqualFold(strings.TrimSpace(name), "total") || !ok:
			return nil, fmt.Errorf("line %d: %q: %w: want %s,N with N a whole number between 0 and %d", i+1, line, db.ErrInvalid, csvTotal, int64(db.MaxTotal))
		case total != nil:
			return nil, fmt.Errorf("line %d: %w: a second total, after line %d's", i+1, db.ErrInvalid, first)
		}
		total, first = &v, i+1
	}
	return total, nil
}

// parseImportJSON reads the JSON of export. Its name is not used: the
// command line names the counter. Any key may be left out (a missing
// total adds the days' views, a missing figure is 0), but none is null,
// in another case or given twice: encoding/json would read null as
// nothing, match "Views" to views and keep the last of two, so the file
// is read key by key.
func parseImportJSON(data []byte, today time.Time) ([]db.Day, *int64, error) {
	// The whole file first, so a syntax error names its line in the file.
	if err := decodeJSON(data, new(json.RawMessage), ""); err != nil {
		return nil, nil, err
	}
	file, err := jsonObject(data, "", fileKeys)
	if err != nil {
		return nil, nil, err
	}
	if raw, ok := file["name"]; ok {
		var name string
		if err := decodeNotNull(raw, "name", &name); err != nil {
			return nil, nil, err
		}
	}
	var total *int64
	if raw, ok := file["total"]; ok {
		if isNull(raw) {
			return nil, nil, errors.New(`"total" must be a whole number, not null: leave "total" out to add the days' views to the counter's total`)
		}
		var n int64
		if err := decodeJSON(raw, &n, "total"); err != nil {
			return nil, nil, err
		}
		if _, ok := parseFigure(string(raw)); !ok {
			return nil, nil, fmt.Errorf("total %s: %w: want a whole number from 0 to %d", raw, db.ErrInvalid, int64(db.MaxTotal))
		}
		total = &n
	}
	var list []json.RawMessage
	if raw, ok := file["days"]; ok {
		if err := decodeNotNull(raw, "days", &list); err != nil {
			return nil, nil, err
		}
	}
	var days []db.Day
	seen := dayChecker{}
	for i, raw := range list {
		where := fmt.Sprintf("days[%d]", i)
		fields, err := jsonObject(raw, where, dayKeys)
		if err != nil {
			return nil, nil, err
		}
		var day string
		if raw, ok := fields["day"]; ok {
			if err := decodeNotNull(raw, where+".day", &day); err != nil {
				return nil, nil, err
			}
		}
		// Each figure as written, for parseDay: encoding/json reads -0 as 0.
		figures := [4]string{"0", "0", "0", "0"}
		for k, name := range figureNames {
			raw, ok := fields[name]
			if !ok {
				continue
			}
			var n int64
			if err := decodeNotNull(raw, where+"."+name, &n); err != nil {
				return nil, nil, err
			}
			figures[k] = string(raw)
		}
		d, err := parseDay(where, day, figures, today)
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

// jsonObject reads raw, at path in the file, as an object of keys, each
// at most once and in its case.
func jsonObject(raw json.RawMessage, path string, keys []string) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := decodeNotNull(raw, path, &obj); err != nil {
		return nil, err
	}
	// obj has the keys, but not how often each was given: the tokens do.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	given := make(map[string]bool, len(obj))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		var msg string
		switch lower := slices.IndexFunc(keys, func(k string) bool { return strings.EqualFold(k, key) }); {
		case given[key]:
			msg = fmt.Sprintf("field %q given twice", key)
		case slices.Contains(keys, key):
		case lower >= 0:
			msg = fmt.Sprintf("field %q: want %q, in lower case", key, keys[lower])
		default:
			msg = fmt.Sprintf("unknown field %q: want %s", key, strings.Join(keys, ", "))
		}
		if msg != "" {
			if path != "" {
				return nil, fmt.Errorf("%s: %w: %s", path, db.ErrInvalid, msg)
			}
			return nil, fmt.Errorf("%w: %s", db.ErrInvalid, msg)
		}
		given[key] = true
	}
	return obj, nil
}

// isNull says whether raw is JSON's null.
func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// decodeNotNull is decodeJSON refusing null, which encoding/json reads as
// nothing: as no days, a total of 0, a day "".
func decodeNotNull(raw json.RawMessage, path string, v any) error {
	if !isNull(raw) {
		return decodeJSON(raw, v, path)
	}
	what := "the file"
	if path != "" {
		what = strconv.Quote(path)
	}
	return fmt.Errorf("%s must be %s, not null", what, jsonKind(reflect.TypeOf(v).Elem()))
}

// decodeJSON decodes exactly one JSON value of data into v, with errors in
// the file's terms rather than Go's: `"days[2].views" must be a whole
// number, not a string`. path is where data is in the file ("" for all
// of it).
func decodeJSON(data []byte, v any, path string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
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
	// Anything else, in encoding/json's words. (Unknown keys are
	// jsonObject's: nothing here decodes into a struct.)
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

func (c *command) importDays(ctx context.Context, store *db.Store, stdout io.Writer) error {
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
			what, newTotal := c.importPreview(now.Total, days)
			if newTotal > db.MaxTotal {
				return fmt.Errorf("%s: %w: a total is at most %d", what, db.ErrInvalid, int64(db.MaxTotal))
			}
			return refuse(what, "-yes")
		}
	}
	done, err := store.Import(ctx, c.actor, c.name, c.days, c.fileTotal)
	if err != nil {
		return err
	}
	o, n := done.Before, done.After
	switch {
	case o == nil:
		fmt.Fprintf(stdout, "imported %s into new counter %s: total %d\n", plural(int64(len(c.days)), "day row"), c.name, n.Total)
	default:
		fmt.Fprintf(stdout, "imported %s into %s: %d → %d, day rows %d → %d\n", plural(int64(len(c.days)), "day row"), c.name, o.Total, n.Total, o.Days, n.Days)
	}
	return nil
}

// importPreview says what an import into an existing counter would do.
func (c *command) importPreview(total int64, days []db.Day) (what string, newTotal int64) {
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
		// As the store counts it: the file's views are at most MaxTotal in
		// all, and below -MaxTotal the total is 0 either way.
		added = max(added+d.Views, -db.MaxTotal)
	}
	newTotal = max(total+added, 0)
	if c.fileTotal != nil {
		newTotal = *c.fileTotal
	}
	return fmt.Sprintf("import into %s, which exists, would write %s (replacing %d of its %s) and take its total from %d to %d",
		c.name, plural(int64(len(c.days)), "day row"), replaced, plural(int64(len(days)), "day row"), total, newTotal), newTotal
}
