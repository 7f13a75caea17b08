package views

import (
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Badge is a flat badge (shields.io's "flat" style) as drawn: the label on
// the left, the value on the right, each a coloured box with its text in
// the middle. Texts are drawn at ten times the size and scaled down by .1,
// as shields.io does, so their positions and lengths are whole tenths of a
// pixel.
type Badge struct {
	Title        string // the accessible name and tooltip: "views: 1234"
	Width        int    // px
	Label, Value BadgeSide
}

// BadgeSide is one box of a badge and its text.
type BadgeSide struct {
	Text     string
	Fill     string // #rgb or #rrggbb
	X, Width int    // px
	// TextX is the middle of the box, TextLength the measured width of the
	// text: both in tenths of a pixel.
	TextX, TextLength int
}

const (
	badgeHeight = 20
	badgePad    = 5 // px either side of a text
)

// The badge's default colours, and the one of a badge that shows a failure.
const (
	DefaultBadgeLabelColor = "#555"
	DefaultBadgeColor      = "#4c1"
	BadgeErrorColor        = "#9f9f9f"
)

// CountBadge shows n, abbreviated when abbr is set; the title always has
// the exact number.
func CountBadge(label string, n int64, abbr bool, labelColor, color string) Badge {
	full := strconv.FormatInt(n, 10)
	value := full
	if abbr {
		value = Abbreviate(n)
	}
	b := NewBadge(label, value, labelColor, color)
	b.Title = label + ": " + full
	return b
}

// NewBadge lays out a badge: each box is its text's measured width plus the
// padding.
func NewBadge(label, value, labelColor, color string) Badge {
	l := side(label, labelColor, 0)
	v := side(value, color, l.Width)
	return Badge{Title: label + ": " + value, Width: l.Width + v.Width, Label: l, Value: v}
}

func side(text, fill string, x int) BadgeSide {
	tl := max(textWidth(text), 10) // a text of marks alone still gets a pixel
	w := (tl+9)/10 + 2*badgePad
	return BadgeSide{Text: text, Fill: fill, X: x, Width: w, TextX: x*10 + w*5, TextLength: tl}
}

// Abbreviate shortens a count: 999, 1.2k, 12.3k, 123k, 1.2M, 1.2B, 1.2T.
// It rounds down, so a badge never shows a figure not yet reached (999999
// is 999k, not 1000k); one decimal is kept below 100 of a unit, without a
// trailing ".0".
func Abbreviate(n int64) string {
	units := []struct {
		size   int64
		suffix string
	}{{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "k"}}
	for _, u := range units {
		if n < u.size {
			continue
		}
		tenths := n / (u.size / 10) // not n*10/size: that overflows near the top
		whole, frac := tenths/10, tenths%10
		if whole >= 100 || frac == 0 {
			return strconv.FormatInt(whole, 10) + u.suffix
		}
		return strconv.FormatInt(whole, 10) + "." + strconv.FormatInt(frac, 10) + u.suffix
	}
	return strconv.FormatInt(n, 10)
}

// badgeColors are the named colours of shields.io, with its aliases.
var badgeColors = map[string]string{
	"brightgreen":   "#4c1",
	"green":         "#97ca00",
	"yellowgreen":   "#a4a61d",
	"yellow":        "#dfb317",
	"orange":        "#fe7d37",
	"red":           "#e05d44",
	"blue":          "#007ec6",
	"lightgrey":     "#9f9f9f",
	"lightgray":     "#9f9f9f",
	"grey":          "#555",
	"gray":          "#555",
	"blueviolet":    "#8a2be2",
	"success":       "#4c1",
	"important":     "#fe7d37",
	"critical":      "#e05d44",
	"informational": "#007ec6",
	"inactive":      "#9f9f9f",
}

// BadgeColor resolves a colour as given in a query: a name of the table
// above, or 3 or 6 hex digits with or without a leading #. It returns the
// colour as an SVG fill; ok is false for anything else, so nothing but a
// colour ever reaches the markup.
func BadgeColor(s string) (fill string, ok bool) {
	if c, ok := badgeColors[strings.ToLower(s)]; ok {
		return c, true
	}
	hex := strings.TrimPrefix(s, "#")
	if len(hex) != 3 && len(hex) != 6 {
		return "", false
	}
	for _, r := range hex {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return "", false
		}
	}
	return "#" + strings.ToLower(hex), true
}

// BadgeColorNames lists the named colours, for error messages.
func BadgeColorNames() []string {
	names := make([]string, 0, len(badgeColors))
	for n := range badgeColors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Text measurement. Badges are drawn in Verdana 11px; each text gets a
// textLength of its width in Verdana, so a browser with another font of
// the list fits it to exactly the box measured for it.

// verdanaWidths are Verdana's advance widths of ASCII 32 (space) to 126
// (~), in thousandths of an em.
var verdanaWidths = [95]int{
	351, 393, 458, 818, 635, 1076, 726, 268, 454, 454, 635, 818, 363, 454, 363, 454, // space to /
	635, 635, 635, 635, 635, 635, 635, 635, 635, 635, // 0 to 9
	454, 454, 818, 818, 818, 545, 1000, // : to @
	683, 685, 698, 770, 632, 574, 775, 751, 420, 454, 692, 556, 842, // A to M
	748, 787, 603, 787, 695, 683, 616, 731, 683, 988, 685, 615, 685, // N to Z
	454, 454, 454, 818, 635, 635, // [ to `
	600, 623, 520, 623, 595, 351, 623, 632, 274, 344, 591, 274, 972, // a to m
	632, 606, 623, 623, 426, 520, 394, 632, 591, 818, 591, 591, 525, // n to z
	634, 454, 634, 818, // { to ~
}

const (
	fontSize     = 11   // px
	defaultWidth = 635  // a digit's: other scripts' letters are about as wide
	wideWidth    = 1000 // CJK, Hangul, fullwidth forms and emoji take an em
)

// textWidth is s's width in Verdana 11px, in tenths of a pixel, rounded up.
func textWidth(s string) int {
	em := 0 // thousandths of an em
	for _, r := range s {
		em += runeWidth(r)
	}
	return (em*fontSize + 99) / 100
}

func runeWidth(r rune) int {
	switch {
	case r >= ' ' && r <= '~':
		return verdanaWidths[r-' ']
	case unicode.In(r, unicode.Mn, unicode.Me):
		return 0 // combining marks sit on the letter before
	case isWide(r):
		return wideWidth
	default:
		return defaultWidth
	}
}

// wideRanges are the blocks of characters an em wide: East Asian scripts,
// fullwidth forms and pictographs.
var wideRanges = [][2]rune{
	{0x1100, 0x115f},   // Hangul Jamo
	{0x2e80, 0xa4cf},   // CJK radicals to Yi
	{0xac00, 0xd7a3},   // Hangul syllables
	{0xf900, 0xfaff},   // CJK compatibility ideographs
	{0xfe30, 0xfe4f},   // CJK compatibility forms
	{0xff00, 0xff60},   // fullwidth forms
	{0xffe0, 0xffe6},   // fullwidth signs
	{0x1f300, 0x1faff}, // pictographs and emoji
	{0x20000, 0x3fffd}, // CJK extensions
}

func isWide(r rune) bool {
	for _, w := range wideRanges {
		if r >= w[0] && r <= w[1] {
			return true
		}
	}
	return false
}

// Attribute values for the template.

func (b Badge) width() string { return strconv.Itoa(b.Width) }
func heightAttr() string      { return strconv.Itoa(badgeHeight) }

func (s BadgeSide) x() string          { return strconv.Itoa(s.X) }
func (s BadgeSide) width() string      { return strconv.Itoa(s.Width) }
func (s BadgeSide) textX() string      { return strconv.Itoa(s.TextX) }
func (s BadgeSide) textLength() string { return strconv.Itoa(s.TextLength) }
