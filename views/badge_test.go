package views

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func renderBadge(t *testing.T, b Badge) string {
	t.Helper()
	var sb strings.Builder
	if err := BadgeSVG(b).Render(context.Background(), &sb); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// svgDoc is what the tests read back from a badge.
type svgDoc struct {
	Width  string `xml:"width,attr"`
	Height string `xml:"height,attr"`
	Role   string `xml:"role,attr"`
	Label  string `xml:"aria-label,attr"`
	Title  string `xml:"title"`
	Texts  []struct {
		Text       string `xml:",chardata"`
		TextLength string `xml:"textLength,attr"`
	} `xml:"g>text"`
}

// parseBadge decodes the whole document as XML, token by token, then into
// svgDoc; any malformed markup fails the test.
func parseBadge(t *testing.T, svg string) svgDoc {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	d.Strict = true
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("badge is not well-formed XML: %v\n%s", err, svg)
		}
	}
	var doc svgDoc
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestBadgeSVG(t *testing.T) {
	svg := renderBadge(t, CountBadge("views", 1234, false, DefaultBadgeLabelColor, DefaultBadgeColor))
	doc := parseBadge(t, svg)
	if doc.Title != "views: 1234" || doc.Label != "views: 1234" || doc.Role != "img" {
		t.Errorf("title %q, aria-label %q, role %q", doc.Title, doc.Label, doc.Role)
	}
	if !strings.HasPrefix(svg, `<svg xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("no SVG namespace on the root: %.80s", svg)
	}
	if doc.Height != "20" {
		t.Errorf("height %q", doc.Height)
	}
	// Label and value, each with its shadow.
	if len(doc.Texts) != 4 || doc.Texts[1].Text != "views" || doc.Texts[3].Text != "1234" {
		t.Fatalf("texts %+v", doc.Texts)
	}
	for _, want := range []string{`fill="#555"`, `fill="#4c1"`, `font-family="Verdana,Geneva,DejaVu Sans,sans-serif"`, `font-size="110"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("badge lacks %s", want)
		}
	}
	for _, bad := range []string{"<script", "<style", "style=", "href", "<image", "<foreignObject", "http://", "https://"} {
		if strings.Contains(strings.Replace(svg, `xmlns="http://www.w3.org/2000/svg"`, "", 1), bad) {
			t.Errorf("badge contains %s", bad)
		}
	}
}

func TestBadgeWidthGrowsWithTheNumber(t *testing.T) {
	last := 0
	for _, n := range []int64{9, 99999, 1234567890} {
		b := CountBadge("views", n, false, DefaultBadgeLabelColor, DefaultBadgeColor)
		w, err := strconv.Atoi(parseBadge(t, renderBadge(t, b)).Width)
		if err != nil {
			t.Fatal(err)
		}
		if w <= last {
			t.Errorf("%d: width %d, not wider than the shorter number's %d", n, w, last)
		}
		if w != b.Label.Width+b.Value.Width || b.Value.X != b.Label.Width {
			t.Errorf("%d: boxes %+v and %+v do not make up the width %d", n, b.Label, b.Value, w)
		}
		// The text fits its box with the padding on either side.
		if b.Value.TextLength > (b.Value.Width-2*badgePad)*10 || b.Value.TextX != b.Value.X*10+b.Value.Width*5 {
			t.Errorf("%d: value %+v does not fit its box", n, b.Value)
		}
		last = w
	}
}

func TestBadgeTextWidth(t *testing.T) {
	// Verdana's digits are all 0.635em: 6.985px at 11px.
	if got := textWidth("0"); got != 70 {
		t.Errorf("width of 0: %d tenths, want 70", got)
	}
	if a, b := textWidth("iiii"), textWidth("mmmm"); a >= b {
		t.Errorf("iiii (%d) not narrower than mmmm (%d)", a, b)
	}
	// A CJK character takes an em, wider than any ASCII letter but W and m.
	if got := textWidth("日"); got != 110 {
		t.Errorf("width of 日: %d tenths, want 110", got)
	}
	if a, b := textWidth("e"), textWidth("e\u0301"); a != b {
		t.Errorf("a combining accent changed the width: %d, %d", a, b)
	}
	if textWidth("Ω") == 0 {
		t.Errorf("a letter outside the table has no width")
	}
}

func TestBadgeAbbreviate(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0"}, {7, "7"}, {999, "999"},
		{1000, "1k"}, {1099, "1k"}, {1234, "1.2k"}, {1999, "1.9k"}, {12345, "12.3k"},
		{99_999, "99.9k"}, {100_000, "100k"}, {123_456, "123k"}, {999_999, "999k"},
		{1_000_000, "1M"}, {1_234_567, "1.2M"}, {12_345_678, "12.3M"}, {123_456_789, "123M"},
		{1_234_567_890, "1.2B"}, {1_234_567_890_123, "1.2T"},
		{9_223_372_036_854_775_807, "9223372T"},
	} {
		if got := Abbreviate(tt.n); got != tt.want {
			t.Errorf("Abbreviate(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestAbbreviatedBadgeKeepsTheExactTitle(t *testing.T) {
	doc := parseBadge(t, renderBadge(t, CountBadge("views", 12345, true, DefaultBadgeLabelColor, DefaultBadgeColor)))
	if doc.Texts[3].Text != "12.3k" || doc.Title != "views: 12345" {
		t.Errorf("value %q, title %q", doc.Texts[3].Text, doc.Title)
	}
}

func TestBadgeLabelIsEscaped(t *testing.T) {
	label := `<script>alert("x")</script> & 'co'`
	svg := renderBadge(t, CountBadge(label, 1, false, DefaultBadgeLabelColor, DefaultBadgeColor))
	if strings.Contains(svg, "<script") {
		t.Fatalf("label not escaped:\n%s", svg)
	}
	doc := parseBadge(t, svg)
	if doc.Texts[1].Text != label || doc.Title != label+": 1" || doc.Label != label+": 1" {
		t.Errorf("label does not read back as text: %q, title %q, aria-label %q", doc.Texts[1].Text, doc.Title, doc.Label)
	}
}

func TestBadgeColor(t *testing.T) {
	for in, want := range map[string]string{
		"brightgreen": "#4c1", "Red": "#e05d44", "grey": "#555", "gray": "#555", "blueviolet": "#8a2be2",
		"4c1": "#4c1", "#ABC": "#abc", "44CC11": "#44cc11", "#0a0b0c": "#0a0b0c",
	} {
		if got, ok := BadgeColor(in); !ok || got != want {
			t.Errorf("BadgeColor(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "#", "12", "#12", "1234", "12345g", "red;x", "javascript:", "url(#s)", "##abc", " abc", "abc "} {
		if got, ok := BadgeColor(in); ok {
			t.Errorf("BadgeColor(%q) = %q, accepted", in, got)
		}
	}
}
