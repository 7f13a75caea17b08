package web

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/bits"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	useragent "github.com/medama-io/go-useragent"
)

// Crawlers are told by their User-Agent: a few rules of our own first, then
// the maintained list of crawler-user-agents (web/crawlers/, refreshed by
// scripts/refresh-crawlers), about 1500 regular expressions each naming a
// crawler, an HTTP library or a tool, and last github.com/medama-io/go-useragent,
// which also tells the default User-Agents of HTTP libraries the list
// lacks (Java/…, PHP/…, Ruby, Dart/…, python-urllib3/…) and any "…Bot"
// token.
//
// isBot runs on every view of a page, an embed or a badge, so it must stay
// cheap for any User-Agent, including one never seen before (a client can
// vary it at will, so no cache would bound the cost). Running the 1500
// expressions costs about 0.1 ms for a browser's User-Agent, and their
// alternation 1.5 ms; instead
// each expression gives the literal strings one of which any match
// contains (Googlebot\/ gives "googlebot/", [wW]get gives "wget"), and a
// User-Agent is scanned once for them, case folded, by a trigram of each.
// Only the expressions of the literals found (none, for a browser's
// User-Agent) are then run.

//go:embed crawlers/crawler-user-agents.json
var crawlersJSON []byte

// extraCrawlers are patterns the list lacks, in its syntax.
var extraCrawlers = []string{
	`PostmanRuntime/`,
	// The default User-Agent of Node.js's fetch and of undici, alone.
	`^node$`,
	`^undici$`,
}

// notCrawlers are the list's patterns we don't use, each with why.
var notCrawlers = map[string]string{
	// GitHub's image proxy fetches a README's images for each person who
	// views it: its views of a badge are a person's (see isBot).
	`github-camo`: "views of a README",
	// An Android build number (of Android 15 on OPPO, OnePlus and realme
	// phones), in the User-Agent of every in-app browser and WebView on
	// them: people, not a crawler.
	`AP3A\.240617\.008`: "an Android build, not a crawler",
}

// botDetector tells crawlers by their User-Agent.
type botDetector struct {
	list *crawlerList
	ua   *useragent.Parser
}

// newBotDetector returns a detector on the list, which is compiled once.
func newBotDetector() *botDetector {
	return &botDetector{list: crawlers(), ua: useragent.NewParser()}
}

var crawlers = sync.OnceValue(func() *crawlerList {
	l, err := loadCrawlers(crawlersJSON)
	if err != nil {
		panic(err) // the embedded list is tested: TestCrawlerList
	}
	return l
})

func (b *botDetector) isBot(ua string) bool {
	// GitHub's image proxy ("github-camo (876de43e)") is no person, but it
	// fetches a badge for each person viewing a README: those are views.
	if strings.HasPrefix(ua, "github-camo") {
		return false
	}
	// No browser sends an empty User-Agent, "-" or a single letter.
	if t := strings.TrimSpace(ua); len(t) <= utf8.UTFMax && utf8.RuneCountInString(t) <= 1 {
		return true
	}
	ua = ua[:min(len(ua), maxUA)]
	return b.list.match(ua) || b.ua.Parse(ua).IsBot()
}

// crawlerList matches User-Agents against a list of patterns.
type crawlerList struct {
	patterns []crawlerPattern
	// The literals of the patterns, by a 16-bit hash (slot) of one
	// trigram (three bytes) of each, its anchor: set has a bit for each
	// slot used, so most places of a User-Agent cost a shift, a
	// multiplication and a load. The literals of a slot are
	// lits[start[r]:start[r+1]], r its rank in set (the bits set before
	// it; rank counts those of the words before).
	set   [1 << 16 / 64]uint64
	rank  [1 << 16 / 64]uint16
	start []int
	lits  []literal
	// always are the patterns without a literal of three bytes or more,
	// run on every User-Agent.
	always []int
	// skipped are the list's patterns left out, by notCrawlers or because
	// they don't compile.
	skipped []string
}

// crawlerPattern is a pattern of the list, compiled.
type crawlerPattern struct {
	re *regexp.Regexp
	// plain is the pattern when it is a plain string (most are), so
	// its literal is checked as it is instead of running re.
	plain string
	// window, when not 0, is the longest match of re, which has no
	// anchor (^, $, \b): a match holding a literal found at i lies
	// within window bytes of i either side, so re runs there alone.
	window int
}

// literal is a case-folded string that every match of patterns[pattern]
// contains, or one of several such strings.
type literal struct {
	s       string
	anchor  uint32 // the trigram of s at offset
	offset  int
	pattern int
}

// minLiteral is the shortest literal indexed: a trigram.
const minLiteral = 3

// browserSample is what most User-Agents are made of. A literal's anchor
// is a trigram of it absent here, and the rarest among the literals', so
// that browsers' User-Agents seldom reach the literals: "applebot" is
// found by "leb", not by "app" ("AppleWebKit") nor "bot" (in many
// literals). It only makes matching faster.
const browserSample = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) (Macintosh; Intel Mac OS X 10_15_7) " +
	"(X11; Linux x86_64; rv:141.0) (Linux; Android 10; K) (iPhone; CPU iPhone OS 18_5 like Mac OS X) " +
	"AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36 Gecko/20100101 " +
	"Firefox/141.0 Version/18.5 Mobile/15E148 Safari/604.1 CriOS/138 Edg/138 OPR/120 SamsungBrowser/28 Build/ wv"

// loadCrawlers reads the list (a JSON array of objects with a "pattern")
// and compiles it with extraCrawlers.
func loadCrawlers(data []byte) (*crawlerList, error) {
	var entries []struct {
		Pattern string `json:"pattern"`
	}
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("crawler list: %w", err)
	}
	l := &crawlerList{}
	add := func(pattern string) {
		if _, no := notCrawlers[pattern]; no || pattern == "" {
			l.skipped = append(l.skipped, pattern)
			return
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			l.skipped = append(l.skipped, pattern)
			return
		}
		tree, err := syntax.Parse(pattern, syntax.Perl) // as regexp.Compile did
		if err != nil {
			l.skipped = append(l.skipped, pattern)
			return
		}
		i := len(l.patterns)
		lits, ok := requiredLiterals(tree)
		p := crawlerPattern{re: re}
		if prefix, complete := re.LiteralPrefix(); complete && ok && len(lits) == 1 && lits[0] == foldString(prefix) {
			p.plain = prefix
		} else if n, bounded := longest(tree); bounded {
			p.window = n
		}
		l.patterns = append(l.patterns, p)
		if !ok {
			l.always = append(l.always, i)
			return
		}
		for _, s := range lits {
			l.lits = append(l.lits, literal{s: s, pattern: i})
		}
	}
	for _, e := range entries {
		add(e.Pattern)
	}
	for _, p := range extraCrawlers {
		add(p)
	}

	// Anchors: a trigram of each literal, the one in fewest literals,
	// avoiding those of browserSample.
	sample := foldString(browserSample)
	in := map[uint32]int{}
	for _, lit := range l.lits {
		for o := range len(lit.s) - 2 {
			in[trigram(lit.s[o], lit.s[o+1], lit.s[o+2])]++
		}
	}
	for i := range l.lits {
		lit := &l.lits[i]
		best := -1
		for o := range len(lit.s) - 2 {
			k := trigram(lit.s[o], lit.s[o+1], lit.s[o+2])
			cost := in[k]
			if strings.Contains(sample, lit.s[o:o+3]) {
				cost += len(l.lits)
			}
			if best < 0 || cost < best {
				best, lit.anchor, lit.offset = cost, k, o
			}
		}
		l.set[slot(lit.anchor)/64] |= 1 << (slot(lit.anchor) % 64)
	}
	slices.SortStableFunc(l.lits, func(a, b literal) int { return cmp.Compare(slot(a.anchor), slot(b.anchor)) })
	n := uint16(0)
	for w, word := range l.set {
		l.rank[w] = n
		n += uint16(bits.OnesCount64(word))
	}
	for i, lit := range l.lits {
		if i == 0 || slot(lit.anchor) != slot(l.lits[i-1].anchor) {
			l.start = append(l.start, i)
		}
	}
	l.start = append(l.start, len(l.lits))
	return l, nil
}

// maxUA is how much of a User-Agent is looked at: real ones are shorter
// (under 500 bytes), and it bounds what a forged one costs (the server
// takes 16 KiB of header fields).
const maxUA = 1024

// match says whether a pattern matches ua (its first maxUA bytes).
func (l *crawlerList) match(ua string) bool {
	ua = ua[:min(len(ua), maxUA)]
	for _, i := range l.always {
		if l.patterns[i].re.MatchString(ua) {
			return true
		}
	}
	if len(ua) < minLiteral {
		return false
	}
	// tried has a bit for each expression run on all of ua and not
	// matched: each runs once at most, however often ua has its literal
	// (a forged one could have it hundreds of times, in another case).
	var tried []uint64
	k := trigram(0, fold(ua[0]), fold(ua[1]))
	for i := 2; i < len(ua); i++ {
		k = (k<<8 | uint32(fold(ua[i]))) & 0xffffff
		b := slot(k)
		word, mask := l.set[b/64], uint64(1)<<(b%64)
		if word&mask == 0 {
			continue
		}
		r := int(l.rank[b/64]) + bits.OnesCount64(word&(mask-1))
		for _, lit := range l.lits[l.start[r]:l.start[r+1]] {
			// The anchor ends at i: the literal starts offset bytes
			// before it.
			at := i - 2 - lit.offset
			if lit.anchor != k || at < 0 || !hasFoldedPrefix(ua[at:], lit.s) {
				continue
			}
			p := &l.patterns[lit.pattern]
			if p.plain != "" {
				if strings.HasPrefix(ua[at:], p.plain) {
					return true
				}
				continue
			}
			if p.window > 0 {
				if p.re.MatchString(ua[max(0, at-p.window):min(len(ua), at+p.window)]) {
					return true
				}
				continue
			}
			if tried == nil {
				tried = make([]uint64, (len(l.patterns)+63)/64)
			}
			if tried[lit.pattern/64]&(1<<(lit.pattern%64)) != 0 {
				continue
			}
			tried[lit.pattern/64] |= 1 << (lit.pattern % 64)
			if p.re.MatchString(ua) {
				return true
			}
		}
	}
	return false
}

func trigram(a, b, c byte) uint32 { return uint32(a)<<16 | uint32(b)<<8 | uint32(c) }

// slot is a hash of trigram k: its place in the bit set.
func slot(k uint32) uint32 { return (k * 0x9e3779b1) >> 16 }

// fold lower-cases an ASCII letter. The list is ASCII (TestCrawlerList)
// and case-sensitive, so folding ASCII alone never loses a match.
func fold(c byte) byte { return lower[c] }

// lower is fold as a table: a branch on the case of each byte of a
// User-Agent is mispredicted half of the time.
var lower = func() (t [256]byte) {
	for c := range t {
		t[c] = byte(c)
		if 'A' <= c && c <= 'Z' {
			t[c] += 'a' - 'A'
		}
	}
	return t
}()

func foldString(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = fold(c)
	}
	return string(b)
}

// hasFoldedPrefix says whether s starts with the folded literal lit.
func hasFoldedPrefix(s, lit string) bool {
	if len(s) < len(lit) {
		return false
	}
	for i := 0; i < len(lit); i++ {
		if fold(s[i]) != lit[i] {
			return false
		}
	}
	return true
}

// requiredLiterals returns strings, case folded, one of which every match
// of re contains, each at least minLiteral bytes long; ok is false when it
// finds none (the pattern is then run on every User-Agent).
func requiredLiterals(re *syntax.Regexp) (lits []string, ok bool) {
	lits, ok = literals(re.Simplify())
	if !ok || shortest(lits) < minLiteral {
		return nil, false
	}
	return lits, true
}

// longest returns the most bytes a match of re can take, when that is
// bounded and re has no anchor (^, $, \b, \B): a match in a part of a
// string is then one in the whole.
func longest(re *syntax.Regexp) (int, bool) {
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch:
		return 0, true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return len(re.Rune) * utf8.UTFMax, true
		}
		return len(string(re.Rune)), true
	case syntax.OpCharClass:
		if len(re.Rune) == 0 || re.Rune[len(re.Rune)-1] < utf8.RuneSelf {
			return 1, true
		}
		return utf8.UTFMax, true
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return utf8.UTFMax, true
	case syntax.OpCapture, syntax.OpQuest:
		return longest(re.Sub[0])
	case syntax.OpRepeat:
		n, ok := longest(re.Sub[0])
		return n * re.Max, ok && re.Max >= 0
	case syntax.OpConcat, syntax.OpAlternate:
		total := 0
		for _, sub := range re.Sub {
			n, ok := longest(sub)
			if !ok {
				return 0, false
			}
			if re.Op == syntax.OpConcat {
				total += n
			} else {
				total = max(total, n)
			}
		}
		return total, true
	}
	// Star, plus, and the anchors.
	return 0, false
}

// literals returns strings one of which every match of re contains.
func literals(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{foldString(string(re.Rune))}, true
	case syntax.OpCharClass:
		if c, ok := foldedByte(re); ok {
			return []string{string(c)}, true
		}
	case syntax.OpCapture, syntax.OpPlus:
		return literals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return literals(re.Sub[0])
		}
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			lits, ok := literals(sub)
			if !ok {
				return nil, false
			}
			all = append(all, lits...)
		}
		return all, true
	case syntax.OpConcat:
		// Runs of literal characters join into one literal; of those and
		// of the other parts' literals, take those whose shortest is the
		// longest.
		var best []string
		consider := func(lits []string) {
			if best == nil || shortest(lits) > shortest(best) {
				best = lits
			}
		}
		run := ""
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpLiteral {
				run += foldString(string(sub.Rune))
				continue
			}
			if c, ok := foldedByte(sub); ok {
				run += string(c)
				continue
			}
			if run != "" {
				consider([]string{run})
				run = ""
			}
			if lits, ok := literals(sub); ok {
				consider(lits)
			}
		}
		if run != "" {
			consider([]string{run})
		}
		return best, best != nil
	}
	return nil, false
}

// foldedByte returns the one ASCII character, case folded, that the
// character class re matches (as [wW] or [x]).
func foldedByte(re *syntax.Regexp) (byte, bool) {
	if re.Op != syntax.OpCharClass {
		return 0, false
	}
	var c byte
	for i := 0; i < len(re.Rune); i += 2 {
		for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
			if r >= utf8.RuneSelf || (c != 0 && fold(byte(r)) != c) {
				return 0, false
			}
			c = fold(byte(r))
		}
	}
	return c, c != 0
}

func shortest(lits []string) int {
	n := -1
	for _, s := range lits {
		if n < 0 || len(s) < n {
			n = len(s)
		}
	}
	return n
}
