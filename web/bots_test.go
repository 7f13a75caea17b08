package web

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Real User-Agents of current browsers: people, whose views count.
var browserUAs = map[string]string{
	"Chrome on Windows":  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
	"Chrome on macOS":    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
	"Chrome on Linux":    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", // testkit.BrowserUA
	"Chrome on Android":  "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36",
	"Chrome on iPhone":   "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/138.0.7204.156 Mobile/15E148 Safari/604.1",
	"Firefox on Windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:141.0) Gecko/20100101 Firefox/141.0",
	"Firefox on Linux":   "Mozilla/5.0 (X11; Linux x86_64; rv:141.0) Gecko/20100101 Firefox/141.0",
	"Firefox on Android": "Mozilla/5.0 (Android 15; Mobile; rv:141.0) Gecko/141.0 Firefox/141.0",
	"Safari on macOS":    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15",
	"Safari on iPhone":   "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
	"Safari on iPad":     "Mozilla/5.0 (iPad; CPU OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
	"Edge on Windows":    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Edg/138.0.0.0",
	"Edge on Android":    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36 EdgA/138.0.0.0",
	"Opera on Windows":   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 OPR/120.0.0.0",
	"Samsung Internet":   "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36",
	// Its build, AP3A.240617.008, is a pattern of the list (notCrawlers).
	"Android WebView":       "Mozilla/5.0 (Linux; Android 15; CPH2557 Build/AP3A.240617.008; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/138.0.7204.157 Mobile Safari/537.36",
	"Firefox ESR on Debian": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Coc Coc":               "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) coc_coc_browser/117.0.228 Chrome/111.0.5563.228 Safari/537.36",
	"Yandex Browser":        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 YaBrowser/24.6.0.0 Safari/537.36",
	"Instagram on iPhone":   "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 337.0.3.23.54 (iPhone14,5; iOS 17_5; en_US; en; scale=3.00; 1170x2532; 614018613; IABMV/1)",
	"Facebook on iPhone":    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.38.109;FBBV/614555470;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/616124088]",
}

// Crawlers, HTTP libraries and tools: bots, whose views count apart.
var botUAs = map[string]string{
	"GPTBot":             "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
	"ClaudeBot":          "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
	"Bytespider":         "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
	"Scrapy":             "Scrapy/2.13.3 (+https://scrapy.org)",
	"Wget":               "Wget/1.21.3",
	"okhttp":             "okhttp/4.12.0",
	"node-fetch":         "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
	"axios":              "axios/1.11.0",
	"libwww-perl":        "libwww-perl/6.77",
	"PostmanRuntime":     "PostmanRuntime/7.44.1",
	"Node.js fetch":      "node",
	"undici":             "undici",
	"Lighthouse":         "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
	"Lighthouse desktop": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Chrome-Lighthouse",
	"empty":              "",
	"dash":               "-",
	"one letter":         "a",
	"one capital":        "X",
	"blank":              "   ",
	// Told before, and still.
	"Googlebot":      "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"bingbot":        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"curl":           "curl/8.5.0",
	"Go":             "Go-http-client/1.1",
	"HeadlessChrome": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/138.0.0.0 Safari/537.36",
	"python":         "python-requests/2.32.4",
}

// camoUAs are not people, but their views are: GitHub's image proxy
// fetches a README's badge for each person who views the README.
var camoUAs = map[string]string{
	"github-camo": "github-camo (876de43e)",
}

func TestIsBot(t *testing.T) {
	b := newBotDetector()
	for _, tt := range []struct {
		uas  map[string]string
		want bool
	}{{browserUAs, false}, {botUAs, true}, {camoUAs, false}} {
		for name, ua := range tt.uas {
			if got := b.isBot(ua); got != tt.want {
				t.Errorf("%s: isBot(%q) = %v, want %v", name, ua, got, tt.want)
			}
		}
	}
}

// crawlerEntry is an entry of the vendored list, with its examples.
type crawlerEntry struct {
	Pattern   string   `json:"pattern"`
	Instances []string `json:"instances"`
}

func crawlerEntries(tb testing.TB) []crawlerEntry {
	tb.Helper()
	var entries []crawlerEntry
	if err := json.Unmarshal(crawlersJSON, &entries); err != nil {
		tb.Fatalf("the crawler list: %v", err)
	}
	return entries
}

// The vendored list loads, and all of it is used: every pattern compiles,
// and only those of notCrawlers are left out.
func TestCrawlerList(t *testing.T) {
	entries := crawlerEntries(t)
	if len(entries) < 500 {
		t.Fatalf("the crawler list has %d patterns, want 500 or more", len(entries))
	}
	inList := map[string]bool{}
	for _, e := range entries {
		inList[e.Pattern] = true
		if _, err := regexp.Compile(e.Pattern); err != nil {
			t.Errorf("pattern %q: %v", e.Pattern, err)
		}
		// fold lower-cases ASCII alone.
		for i := range len(e.Pattern) {
			if e.Pattern[i] >= utf8.RuneSelf {
				t.Errorf("pattern %q is not ASCII", e.Pattern)
				break
			}
		}
	}
	for p := range notCrawlers {
		if !inList[p] {
			t.Errorf("notCrawlers has %q, which is no longer in the list", p)
		}
	}
	l := crawlers()
	var skipped []string
	for p := range notCrawlers {
		skipped = append(skipped, p)
	}
	slices.Sort(skipped)
	if got := slices.Sorted(slices.Values(l.skipped)); !slices.Equal(got, skipped) {
		t.Errorf("patterns left out: %q, want those of notCrawlers, %q", got, skipped)
	}
	if want := len(entries) - len(skipped) + len(extraCrawlers); len(l.patterns) != want {
		t.Errorf("%d patterns compiled, want %d", len(l.patterns), want)
	}
	// Each pattern without a literal runs on every User-Agent.
	if len(l.always) > 10 {
		t.Errorf("%d patterns have no literal of %d bytes: each runs on every view", len(l.always), minLiteral)
	}
	plain, windowed := 0, 0
	for _, p := range l.patterns {
		if p.plain != "" {
			plain++
		} else if p.window > 0 {
			windowed++
		}
	}
	t.Logf("%d patterns: %d plain strings, %d run around their literal, %d on the whole User-Agent, %d always; %d literals; %d left out",
		len(l.patterns), plain, windowed, len(l.patterns)-plain-windowed, len(l.always), len(l.lits), len(l.skipped))
}

// The fast matching tells what running every pattern would. Every
// example of the list is told, also amid other text (but for anchored
// patterns). The patterns that
// are more than a plain string are where it could go wrong: their
// examples in upper and lower case (which fold alike but rarely match),
// the browsers' User-Agents and forged ones are told as running every
// pattern tells them (too slow to do for all, under -race).
func TestCrawlerListMatchesAsRegexps(t *testing.T) {
	entries := crawlerEntries(t)
	l := crawlers()
	slow := func(ua string) bool {
		ua = ua[:min(len(ua), maxUA)]
		for _, p := range l.patterns {
			if p.re.MatchString(ua) {
				return true
			}
		}
		return false
	}
	uas := slices.Collect(maps.Values(browserUAs))
	uas = append(uas, slices.Collect(maps.Values(botUAs))...)
	uas = append(uas, forgedUA(t, 1<<10), forgedUA(t, 12<<10), strings.ToLower(forgedUA(t, 1<<10)))
	pad := strings.Repeat("Mozilla/5.0 ", 30)
	n := 0
	for _, e := range entries {
		_, no := notCrawlers[e.Pattern]
		_, plain := regexp.MustCompile(e.Pattern).LiteralPrefix()
		for _, ua := range e.Instances {
			n++
			if !plain {
				uas = append(uas, ua, strings.ToUpper(ua), strings.ToLower(ua))
			}
			if no {
				continue
			}
			if !l.match(ua) {
				t.Errorf("%q, an example of %q, is not told", ua, e.Pattern)
			}
			// (^ and $ tie a match to the start or end.)
			if long := pad + ua + pad; len(long) <= maxUA && !strings.ContainsAny(e.Pattern, "^$") && !l.match(long) {
				t.Errorf("%q, an example of %q amid other text, is not told", long, e.Pattern)
			}
		}
	}
	if n < 1000 {
		t.Errorf("only %d examples in the list", n)
	}
	for _, ua := range uas {
		if got, want := l.match(ua), slow(ua); got != want {
			t.Errorf("match(%q) = %v, running every pattern %v", ua, got, want)
		}
	}
}

// forgedUA is a User-Agent of size bytes made to cost the most: the
// patterns that are not plain strings, each with its letters in upper
// case, so that each is run and fails.
func forgedUA(tb testing.TB, size int) string {
	entries := crawlerEntries(tb)
	unescape := strings.NewReplacer(`\`, "", "^", "", "$", "", "(", "", ")", "", "[", "", "]", "")
	var b strings.Builder
	for b.Len() < size {
		for _, e := range entries {
			if _, complete := regexp.MustCompile(e.Pattern).LiteralPrefix(); !complete {
				b.WriteString(strings.ToUpper(unescape.Replace(e.Pattern)) + " ")
			}
		}
	}
	return b.String()[:size]
}

// BenchmarkIsBot times the decision every page, embed and badge view
// makes. "unique" is a User-Agent never seen before each time, as a
// client varying it would send; "forged-*" one made to cost the most,
// of 1 KiB and of 12 KiB (the server takes 16 KiB of header fields).
func BenchmarkIsBot(b *testing.B) {
	d := newBotDetector()
	unique := make([]string, 1<<16)
	for i := range unique {
		unique[i] = fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.%d.%d Safari/537.36", i>>8, i&255)
	}
	for _, bb := range []struct{ name, ua string }{
		{"chrome", browserUAs["Chrome on Windows"]},
		{"firefox", browserUAs["Firefox on Windows"]},
		{"iphone", browserUAs["Safari on iPhone"]},
		{"crawler", botUAs["GPTBot"]},
		{"camo", camoUAs["github-camo"]},
		{"forged-1k", forgedUA(b, 1<<10)},
		{"forged-12k", forgedUA(b, 12<<10)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				d.isBot(bb.ua)
			}
		})
	}
	b.Run("unique", func(b *testing.B) {
		i := 0
		for b.Loop() {
			d.isBot(unique[i&(len(unique)-1)])
			i++
		}
	})
}
