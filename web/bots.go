package web

import useragent "github.com/medama-io/go-useragent"

// botDetector tells crawlers by their User-Agent, with the maintained list
// of github.com/medama-io/go-useragent.
type botDetector struct{ p *useragent.Parser }

func newBotDetector() *botDetector { return &botDetector{p: useragent.NewParser()} }

func (b *botDetector) isBot(ua string) bool { return b.p.Parse(ua).IsBot() }
