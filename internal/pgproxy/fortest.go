package pgproxy

import (
	"net/url"
	"testing"
)

// ForTest starts a proxy in front of the server of databaseURL, closed when
// t ends, and returns it with the URL that goes through it.
func ForTest(t testing.TB, databaseURL string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("parse database URL: %v", err)
	}
	p, err := Start(u.Host)
	if err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	u.Host = p.Addr()
	return p, u.String()
}
