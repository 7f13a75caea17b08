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

// defaultLook is a badge's look without parameters.
var defaultLook = BadgeLook{LabelColor: DefaultBadgeLabelColor, Color: DefaultBadgeColor}

// svgDoc is what the tests read back from a badge.
type svgDoc struct {
	Width  string    `xml:"width,attr"`
	Height string    `xml:"height,attr"`
	Role   string    `xml:"role,attr"`
	Label  string    `xml:"aria-label,attr"`
	Title  string    `xml:"title"`
	Texts  []svgText `xml:"g>text"`
	Stops  []struct {
		Offset string `xml:"offset,attr"`
	} `xml:"linearGradient>stop"`
	Clip []struct {
		Rx string `xml:"rx,attr"`
	} `xml:"clipPath>rect"`
}

type svgText struct {
	Text       string `xml:",chardata"`
	TextLength string `xml:"textLength,attr"`
	Y          string `xml:"y,attr"`
	Fill       string `xml:"fill,attr"`
	FontWeight string `xml:"font-weight,attr"`
	Shadow     string `xml:"aria-hidden,attr"`
}

// drawn are the texts as drawn, without their shadows: label and value.
func (d svgDoc) drawn() []svgText {
	var texts []svgText
	for _, t := range d.Texts {
		if t.Shadow == "" {
			texts = append(texts, t)
		}
	}
	return texts
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
	svg := renderBadge(t, CountBadge("views", 1234, false, defaultLook))
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
		b := CountBadge("views", n, false, defaultLook)
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
		if b.Value.TextLength > (b.Value.Width-2*BadgeFlat.drawing().pad)*10 || b.Value.TextX != b.Value.X*10+b.Value.Width*5 {
			t.Errorf("%d: value %+v does not fit its box", n, b.Value)
		}
		last = w
	}
}

func TestBadgeTextWidth(t *testing.T) {
	// Verdana's digits are all 0.635em: 6.985px at 11px.
	if got := verdana11.width("0"); got != 70 {
		t.Errorf("width of 0: %d tenths, want 70", got)
	}
	if a, b := verdana11.width("iiii"), verdana11.width("mmmm"); a >= b {
		t.Errorf("iiii (%d) not narrower than mmmm (%d)", a, b)
	}
	// A CJK character takes an em, wider than any ASCII letter but W and m.
	if got := verdana11.width("日"); got != 110 {
		t.Errorf("width of 日: %d tenths, want 110", got)
	}
	if a, b := verdana11.width("e"), verdana11.width("e\u0301"); a != b {
		t.Errorf("a combining accent changed the width: %d, %d", a, b)
	}
	if verdana11.width("Ω") == 0 {
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
		if got := abbreviate(tt.n); got != tt.want {
			t.Errorf("abbreviate(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestAbbreviatedBadgeKeepsTheExactTitle(t *testing.T) {
	doc := parseBadge(t, renderBadge(t, CountBadge("views", 12345, true, defaultLook)))
	if doc.Texts[3].Text != "12.3k" || doc.Title != "views: 12345" {
		t.Errorf("value %q, title %q", doc.Texts[3].Text, doc.Title)
	}
}

func TestBadgeLabelIsEscaped(t *testing.T) {
	label := `<script>alert("x")</script> & 'co'`
	svg := renderBadge(t, CountBadge(label, 1, false, defaultLook))
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
		"success": "#4c1", "important": "#fe7d37", "critical": "#e05d44", "informational": "#007ec6", "inactive": "#9f9f9f",
		"4c1": "#4c1", "#ABC": "#abc", "44CC11": "#44cc11", "#0a0b0c": "#0a0b0c",
		// CSS's names, any case; shields.io's win where both have one.
		"navy": "#000080", "NAVY": "#000080", "RebeccaPurple": "#663399", "white": "#ffffff", "lightgrey": "#9f9f9f",
		"green": "#97ca00", "darkgreen": "#006400", "aliceblue": "#f0f8ff", "yellowgreen": "#a4a61d",
	} {
		if got, ok := BadgeColor(in); !ok || got != want {
			t.Errorf("BadgeColor(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "#", "12", "#12", "1234", "12345g", "red;x", "javascript:", "url(#s)", "##abc", " abc", "abc ", "navyblue", "transparent", "rgb(0,0,0)", "#navy"} {
		if got, ok := BadgeColor(in); ok {
			t.Errorf("BadgeColor(%q) = %q, accepted", in, got)
		}
	}
}

// Text is dark on a light colour and white on a dark one, each side by its
// own colour, as shields.io picks it.
func TestBadgeTextColour(t *testing.T) {
	for _, tt := range []struct {
		labelColor, color       string
		labelText, valueText    string
		labelShadow, valueShade string
	}{
		{"#fff", DefaultBadgeColor, "#333", "#fff", "#ccc", "#010101"},
		{DefaultBadgeLabelColor, "#ffffff", "#fff", "#333", "#010101", "#ccc"},
		{DefaultBadgeLabelColor, DefaultBadgeColor, "#fff", "#fff", "#010101", "#010101"},
		{"#dfb317", "#e6e6fa", "#fff", "#333", "#010101", "#ccc"}, // shields' yellow stays white; lavender is light
		{BadgeErrorColor, "#000", "#fff", "#fff", "#010101", "#010101"},
	} {
		doc := parseBadge(t, renderBadge(t, CountBadge("views", 1, false, BadgeLook{LabelColor: tt.labelColor, Color: tt.color})))
		texts := doc.Texts // shadow, label, shadow, value
		if texts[1].Fill != tt.labelText || texts[3].Fill != tt.valueText || texts[0].Fill != tt.labelShadow || texts[2].Fill != tt.valueShade {
			t.Errorf("%s | %s: texts %s | %s, shadows %s | %s; want %s | %s, %s | %s", tt.labelColor, tt.color,
				texts[1].Fill, texts[3].Fill, texts[0].Fill, texts[2].Fill, tt.labelText, tt.valueText, tt.labelShadow, tt.valueShade)
		}
	}
}

// Each style as shields.io draws it: its height, its corners and gradient
// or none, its shadows or none, and for-the-badge's upper-case texts with
// the value in bold.
func TestBadgeStyles(t *testing.T) {
	for _, tt := range []struct {
		style          BadgeStyle
		height, rx     string
		stops          int
		shadows        bool
		label, value   string
		textY, valueFW string
	}{
		{BadgeFlat, "20", "3", 2, true, "views", "1234", "140", ""},
		{BadgeFlatSquare, "20", "", 0, false, "views", "1234", "140", ""},
		{BadgePlastic, "18", "4", 4, true, "views", "1234", "130", ""},
		{BadgeForTheBadge, "28", "", 0, false, "VIEWS", "1234", "175", "bold"},
	} {
		t.Run(tt.style.String(), func(t *testing.T) {
			b := CountBadge("views", 1234, false, BadgeLook{Style: tt.style, LabelColor: DefaultBadgeLabelColor, Color: DefaultBadgeColor})
			svg := renderBadge(t, b)
			doc := parseBadge(t, svg)
			if doc.Height != tt.height || doc.Title != "views: 1234" {
				t.Errorf("height %q, title %q; want %s, views: 1234", doc.Height, doc.Title, tt.height)
			}
			rx := ""
			if len(doc.Clip) > 0 {
				rx = doc.Clip[0].Rx
			}
			if rx != tt.rx || len(doc.Stops) != tt.stops || strings.Contains(svg, "rx=") != (tt.rx != "") {
				t.Errorf("corners %q, gradient stops %d; want %q, %d", rx, len(doc.Stops), tt.rx, tt.stops)
			}
			if square := strings.Contains(svg, `shape-rendering="crispEdges"`); square != (tt.rx == "") {
				t.Errorf("crisp edges %v with corners %q", square, tt.rx)
			}
			drawn := doc.drawn()
			if len(drawn) != 2 || (len(doc.Texts) == 4) != tt.shadows {
				t.Fatalf("texts %+v, want shadows: %v", doc.Texts, tt.shadows)
			}
			if drawn[0].Text != tt.label || drawn[1].Text != tt.value || drawn[0].Y != tt.textY {
				t.Errorf("texts %q | %q at y %s; want %q | %q at %s", drawn[0].Text, drawn[1].Text, drawn[0].Y, tt.label, tt.value, tt.textY)
			}
			if drawn[0].FontWeight != "" || drawn[1].FontWeight != tt.valueFW {
				t.Errorf("font weights %q | %q, want \"\" | %q", drawn[0].FontWeight, drawn[1].FontWeight, tt.valueFW)
			}
			// Every box fits its text with the style's padding.
			pad := tt.style.drawing().pad
			for _, s := range []BadgeSide{b.Label, b.Value} {
				if s.TextLength > (s.Width-2*pad)*10 || s.Width*10 < s.TextLength+20*pad {
					t.Errorf("side %+v does not fit its text with %dpx either side", s, pad)
				}
			}
			if w, _ := strconv.Atoi(doc.Width); w != b.Label.Width+b.Value.Width {
				t.Errorf("width %s, boxes %d and %d", doc.Width, b.Label.Width, b.Value.Width)
			}
		})
	}
	// for-the-badge is wider: upper case, letter spacing, 12px padding.
	flat := CountBadge("views", 1234, false, defaultLook)
	big := CountBadge("views", 1234, false, BadgeLook{Style: BadgeForTheBadge, LabelColor: "#555", Color: "#4c1"})
	if big.Label.Width <= flat.Label.Width || big.Value.Width <= flat.Value.Width {
		t.Errorf("for-the-badge %d | %d not wider than flat %d | %d", big.Label.Width, big.Value.Width, flat.Label.Width, flat.Value.Width)
	}
}

func TestBadgeStyleNames(t *testing.T) {
	names := BadgeStyleNames()
	if strings.Join(names, ",") != "flat,flat-square,for-the-badge,plastic" {
		t.Errorf("names %q", names)
	}
	for _, n := range names {
		if s, ok := BadgeStyleOf(n); !ok || s.String() != n {
			t.Errorf("BadgeStyleOf(%q) = %v, %v", n, s, ok)
		}
	}
	for _, n := range []string{"", "social", "Flat", "flat ", "flat-squared"} {
		if _, ok := BadgeStyleOf(n); ok {
			t.Errorf("BadgeStyleOf(%q) accepted", n)
		}
	}
}

// for-the-badge's measures: Verdana 10px, bold scaled from regular by the
// digits' ratio, and 1.25px of letter spacing after each character.
func TestBadgeBoldAndSpacedWidth(t *testing.T) {
	// A digit: .635em at 10px is 6.35px; bold .711em is 7.11px.
	if got := (badgeFont{size: 10}).width("0"); got != 64 {
		t.Errorf("regular 0 at 10px: %d tenths, want 64", got)
	}
	if got := (badgeFont{size: 10, bold: true}).width("0"); got != 72 {
		t.Errorf("bold 0 at 10px: %d tenths, want 72", got)
	}
	// Four digits with spacing: 4 × (7.11 + 1.25) = 33.44px.
	if got := (badgeFont{size: 10, bold: true, spacing: 1250}).width("1234"); got != 335 {
		t.Errorf("bold spaced 1234: %d tenths, want 335", got)
	}
	// A combining mark takes no room, and no spacing.
	f := BadgeForTheBadge.drawing().font
	if a, b := f.width("E"), f.width("E\u0301"); a != b {
		t.Errorf("a combining accent changed the width: %d, %d", a, b)
	}
}
