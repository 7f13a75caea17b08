package views

import (
	"strconv"
	"strings"
	"unicode"
)

// Badge is a badge as drawn, in one of shields.io's styles: the label on
// the left, the value on the right, each a coloured box with its text in
// the middle. Texts are drawn at ten times the size and scaled down by .1,
// as shields.io does, so their positions and lengths are whole tenths of a
// pixel.
type Badge struct {
	Title         string // the accessible name and tooltip: "views: 1234"
	Width, Height int    // px
	Style         BadgeStyle
	Label, Value  BadgeSide
}

// BadgeSide is one box of a badge and its text.
type BadgeSide struct {
	Text     string // as drawn: upper case in for-the-badge
	Fill     string // #rgb or #rrggbb
	X, Width int    // px
	// TextX is the middle of the box, TextLength the measured width of the
	// text: both in tenths of a pixel.
	TextX, TextLength int
	// TextFill and ShadowFill are the text's colours, by Fill's brightness.
	TextFill, ShadowFill string
	Bold                 bool
}

// BadgeLook is how a badge looks: its style and colours, as SVG fills.
type BadgeLook struct {
	Style             BadgeStyle
	LabelColor, Color string
}

// The badge's default colours, and the one of a badge that shows a failure.
const (
	DefaultBadgeLabelColor = "#555"
	DefaultBadgeColor      = "#4c1"
	BadgeErrorColor        = "#9f9f9f"
)

// BadgeStyle is one of shields.io's styles (not social, whose speech
// bubble shape is another drawing); the zero value is flat, the default.
type BadgeStyle int

const (
	BadgeFlat BadgeStyle = iota
	BadgeFlatSquare
	BadgeForTheBadge
	BadgePlastic
)

// badgeDrawing is what a style changes: sizes in px, baselines in tenths of
// a px, taken from shields.io's templates.
type badgeDrawing struct {
	name               string
	height, pad, round int // round: the corners' radius
	font               badgeFont
	upper, boldValue   bool
	textY, shadowY     int            // shadowY 0: no shadow
	gradient           []gradientStop // nil: plain boxes, square corners
}

type gradientStop struct{ Offset, Color, Opacity string }

var badgeDrawings = [...]badgeDrawing{
	BadgeFlat: {name: "flat", height: 20, pad: 5, round: 3, font: verdana11, textY: 140, shadowY: 150,
		gradient: []gradientStop{{"0", "#bbb", ".1"}, {"1", "#000", ".1"}}},
	BadgeFlatSquare: {name: "flat-square", height: 20, pad: 5, font: verdana11, textY: 140},
	// shields.io's for-the-badge: 10px, value in bold, 1.25px between
	// letters (drawn by textLength's default lengthAdjust, spacing).
	BadgeForTheBadge: {name: "for-the-badge", height: 28, pad: 12, font: badgeFont{size: 10, spacing: 1250},
		upper: true, boldValue: true, textY: 175},
	BadgePlastic: {name: "plastic", height: 18, pad: 5, round: 4, font: verdana11, textY: 130, shadowY: 140,
		gradient: []gradientStop{{"0", "#fff", ".7"}, {".1", "#aaa", ".1"}, {".9", "#000", ".3"}, {"1", "#000", ".5"}}},
}

func (s BadgeStyle) drawing() badgeDrawing { return badgeDrawings[s] }

func (s BadgeStyle) String() string { return s.drawing().name }

// BadgeStyleOf is the style of that name.
func BadgeStyleOf(name string) (BadgeStyle, bool) {
	for s, d := range badgeDrawings {
		if d.name == name {
			return BadgeStyle(s), true
		}
	}
	return BadgeFlat, false
}

// BadgeStyleNames lists the styles, the default first.
func BadgeStyleNames() []string {
	names := make([]string, len(badgeDrawings))
	for s, d := range badgeDrawings {
		names[s] = d.name
	}
	return names
}

// CountBadge shows n, abbreviated when abbr is set; the title always has
// the exact number.
func CountBadge(label string, n int64, abbr bool, look BadgeLook) Badge {
	full := strconv.FormatInt(n, 10)
	value := full
	if abbr {
		value = abbreviate(n)
	}
	b := NewBadge(label, value, look)
	b.Title = label + ": " + full
	return b
}

// NewBadge lays out a badge: each box is its text's measured width plus the
// style's padding. The title keeps the texts as given.
func NewBadge(label, value string, look BadgeLook) Badge {
	d := look.Style.drawing()
	l := side(label, look.LabelColor, 0, d, false)
	v := side(value, look.Color, l.Width, d, d.boldValue)
	return Badge{Title: label + ": " + value, Width: l.Width + v.Width, Height: d.height, Style: look.Style, Label: l, Value: v}
}

func side(text, fill string, x int, d badgeDrawing, bold bool) BadgeSide {
	if d.upper {
		text = strings.ToUpper(text)
	}
	f := d.font
	f.bold = bold
	tl := max(f.width(text), 10) // a text of marks alone still gets a pixel
	w := (tl+9)/10 + 2*d.pad
	textFill, shadowFill := textColors(fill)
	return BadgeSide{Text: text, Fill: fill, X: x, Width: w, TextX: x*10 + w*5, TextLength: tl,
		TextFill: textFill, ShadowFill: shadowFill, Bold: bold}
}

// textColors are the text and shadow colours on fill, as shields.io picks
// them: dark text on a light colour, one whose brightness (ITU-R BT.601
// weights, 0 to 1) is .69 or more, so that white text on fff is not
// invisible; white text otherwise.
func textColors(fill string) (text, shadow string) {
	hex := strings.TrimPrefix(fill, "#")
	if len(hex) == 3 {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	rgb, err := strconv.ParseUint(hex, 16, 32)
	if err == nil && len(hex) == 6 {
		r, g, b := rgb>>16, rgb>>8&0xff, rgb&0xff
		if 299*r+587*g+114*b >= 690*255 { // in thousandths, as integers
			return "#333", "#ccc"
		}
	}
	return "#fff", "#010101"
}

// abbreviate shortens a count: 999, 1.2k, 12.3k, 123k, 1.2M, 1.2B, 1.2T.
// It rounds down, so a badge never shows a figure not yet reached (999999
// is 999k, not 1000k); one decimal is kept below 100 of a unit, without a
// trailing ".0".
func abbreviate(n int64) string {
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

// BadgeColorRule says which colours BadgeColor takes, for error messages:
// listing all names would be a wall of 150.
const BadgeColorRule = "a colour name (shields.io's, like brightgreen, or a CSS one, like navy) or 3 or 6 hex digits, like 4c1 or 44cc11"

// shieldsColors are the named colours of shields.io, with its aliases.
// They come before CSS's, as on shields.io: green is 97ca00, not 008000.
var shieldsColors = map[string]string{
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

// cssColors are CSS's named colours (CSS Color Module Level 4).
var cssColors = map[string]string{
	"aliceblue": "#f0f8ff", "antiquewhite": "#faebd7", "aqua": "#00ffff", "aquamarine": "#7fffd4",
	"azure": "#f0ffff", "beige": "#f5f5dc", "bisque": "#ffe4c4", "black": "#000000",
	"blanchedalmond": "#ffebcd", "blue": "#0000ff", "blueviolet": "#8a2be2", "brown": "#a52a2a",
	"burlywood": "#deb887", "cadetblue": "#5f9ea0", "chartreuse": "#7fff00", "chocolate": "#d2691e",
	"coral": "#ff7f50", "cornflowerblue": "#6495ed", "cornsilk": "#fff8dc", "crimson": "#dc143c",
	"cyan": "#00ffff", "darkblue": "#00008b", "darkcyan": "#008b8b", "darkgoldenrod": "#b8860b",
	"darkgray": "#a9a9a9", "darkgreen": "#006400", "darkgrey": "#a9a9a9", "darkkhaki": "#bdb76b",
	"darkmagenta": "#8b008b", "darkolivegreen": "#556b2f", "darkorange": "#ff8c00", "darkorchid": "#9932cc",
	"darkred": "#8b0000", "darksalmon": "#e9967a", "darkseagreen": "#8fbc8f", "darkslateblue": "#483d8b",
	"darkslategray": "#2f4f4f", "darkslategrey": "#2f4f4f", "darkturquoise": "#00ced1", "darkviolet": "#9400d3",
	"deeppink": "#ff1493", "deepskyblue": "#00bfff", "dimgray": "#696969", "dimgrey": "#696969",
	"dodgerblue": "#1e90ff", "firebrick": "#b22222", "floralwhite": "#fffaf0", "forestgreen": "#228b22",
	"fuchsia": "#ff00ff", "gainsboro": "#dcdcdc", "ghostwhite": "#f8f8ff", "gold": "#ffd700",
	"goldenrod": "#daa520", "gray": "#808080", "green": "#008000", "greenyellow": "#adff2f",
	"grey": "#808080", "honeydew": "#f0fff0", "hotpink": "#ff69b4", "indianred": "#cd5c5c",
	"indigo": "#4b0082", "ivory": "#fffff0", "khaki": "#f0e68c", "lavender": "#e6e6fa",
	"lavenderblush": "#fff0f5", "lawngreen": "#7cfc00", "lemonchiffon": "#fffacd", "lightblue": "#add8e6",
	"lightcoral": "#f08080", "lightcyan": "#e0ffff", "lightgoldenrodyellow": "#fafad2", "lightgray": "#d3d3d3",
	"lightgreen": "#90ee90", "lightgrey": "#d3d3d3", "lightpink": "#ffb6c1", "lightsalmon": "#ffa07a",
	"lightseagreen": "#20b2aa", "lightskyblue": "#87cefa", "lightslategray": "#778899", "lightslategrey": "#778899",
	"lightsteelblue": "#b0c4de", "lightyellow": "#ffffe0", "lime": "#00ff00", "limegreen": "#32cd32",
	"linen": "#faf0e6", "magenta": "#ff00ff", "maroon": "#800000", "mediumaquamarine": "#66cdaa",
	"mediumblue": "#0000cd", "mediumorchid": "#ba55d3", "mediumpurple": "#9370db", "mediumseagreen": "#3cb371",
	"mediumslateblue": "#7b68ee", "mediumspringgreen": "#00fa9a", "mediumturquoise": "#48d1cc", "mediumvioletred": "#c71585",
	"midnightblue": "#191970", "mintcream": "#f5fffa", "mistyrose": "#ffe4e1", "moccasin": "#ffe4b5",
	"navajowhite": "#ffdead", "navy": "#000080", "oldlace": "#fdf5e6", "olive": "#808000",
	"olivedrab": "#6b8e23", "orange": "#ffa500", "orangered": "#ff4500", "orchid": "#da70d6",
	"palegoldenrod": "#eee8aa", "palegreen": "#98fb98", "paleturquoise": "#afeeee", "palevioletred": "#db7093",
	"papayawhip": "#ffefd5", "peachpuff": "#ffdab9", "peru": "#cd853f", "pink": "#ffc0cb",
	"plum": "#dda0dd", "powderblue": "#b0e0e6", "purple": "#800080", "rebeccapurple": "#663399",
	"red": "#ff0000", "rosybrown": "#bc8f8f", "royalblue": "#4169e1", "saddlebrown": "#8b4513",
	"salmon": "#fa8072", "sandybrown": "#f4a460", "seagreen": "#2e8b57", "seashell": "#fff5ee",
	"sienna": "#a0522d", "silver": "#c0c0c0", "skyblue": "#87ceeb", "slateblue": "#6a5acd",
	"slategray": "#708090", "slategrey": "#708090", "snow": "#fffafa", "springgreen": "#00ff7f",
	"steelblue": "#4682b4", "tan": "#d2b48c", "teal": "#008080", "thistle": "#d8bfd8",
	"tomato": "#ff6347", "turquoise": "#40e0d0", "violet": "#ee82ee", "wheat": "#f5deb3",
	"white": "#ffffff", "whitesmoke": "#f5f5f5", "yellow": "#ffff00", "yellowgreen": "#9acd32",
}

// BadgeColor resolves a colour as given in a query, case-insensitively: a
// name of shields.io's or of CSS's, or 3 or 6 hex digits with or without a
// leading #. It returns the colour as an SVG fill, always hex; ok is false
// for anything else, so nothing but a colour ever reaches the markup.
func BadgeColor(s string) (fill string, ok bool) {
	name := strings.ToLower(s)
	if c, ok := shieldsColors[name]; ok {
		return c, true
	}
	if c, ok := cssColors[name]; ok {
		return c, true
	}
	hex := strings.TrimPrefix(name, "#")
	if len(hex) != 3 && len(hex) != 6 {
		return "", false
	}
	for _, r := range hex {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return "", false
		}
	}
	return "#" + hex, true
}

// Text measurement. Badges are drawn in Verdana; each text gets a
// textLength of its width in Verdana, so a browser with another font of
// the list fits it to exactly the box measured for it.

// badgeFont is a text's font: Verdana at size px, regular or bold, with
// spacing thousandths of a px added after each character.
type badgeFont struct {
	size, spacing int
	bold          bool
}

var verdana11 = badgeFont{size: 11}

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
	defaultWidth = 635  // a digit's: other scripts' letters are about as wide
	wideWidth    = 1000 // CJK, Hangul, fullwidth forms and emoji take an em
	// Verdana Bold is the regular widths scaled by its digits' ratio,
	// .711em to .635em: exact for digits, which a count is, and within a
	// few percent for letters, which textLength makes up for.
	boldNum, boldDen = 711, 635
)

// width is s's width in f, in tenths of a pixel, rounded up.
func (f badgeFont) width(s string) int {
	em, chars := 0, 0 // thousandths of an em; characters that take room
	for _, r := range s {
		if w := runeWidth(r); w > 0 {
			em += w
			chars++
		}
	}
	if f.bold {
		em = (em*boldNum + boldDen - 1) / boldDen
	}
	return (em*f.size + chars*f.spacing + 99) / 100
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

func (b Badge) width() string            { return strconv.Itoa(b.Width) }
func (b Badge) height() string           { return strconv.Itoa(b.Height) }
func (b Badge) round() string            { return strconv.Itoa(b.Style.drawing().round) }
func (b Badge) textY() string            { return strconv.Itoa(b.Style.drawing().textY) }
func (b Badge) shadowY() string          { return strconv.Itoa(b.Style.drawing().shadowY) }
func (b Badge) shadow() bool             { return b.Style.drawing().shadowY != 0 }
func (b Badge) gradient() []gradientStop { return b.Style.drawing().gradient }
func (b Badge) fontSize() string         { return strconv.Itoa(b.Style.drawing().font.size * 10) }

func (s BadgeSide) x() string          { return strconv.Itoa(s.X) }
func (s BadgeSide) width() string      { return strconv.Itoa(s.Width) }
func (s BadgeSide) textX() string      { return strconv.Itoa(s.TextX) }
func (s BadgeSide) textLength() string { return strconv.Itoa(s.TextLength) }
