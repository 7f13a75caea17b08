package testkit

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Slowloris checks that slow clients cannot starve the others: with 200
// connections made by dial sending a request's headers a byte at a time,
// an ordinary visitor (c at base) has its pages, polls and clicks answered
// and its clicks counted exactly (hits is the main counter's count), and
// the server then closes every slow connection at its header timeout.
func Slowloris(t *testing.T, dial func() (net.Conn, error), c *http.Client, base string, hits func() int64) {
	t.Helper()
	const slow = 200
	const clicks = 8 // within nginx's burst of clicks per client
	s := startSlowClients(t, slow, dial)
	Eventually(t, 20*time.Second, fmt.Sprintf("%d slow clients connected", slow), func() (bool, string) {
		return s.opened.Load() == slow, fmt.Sprintf("%d connected", s.opened.Load())
	})
	before := hits()
	for i := range clicks {
		for _, r := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/count"}, {"POST", "/hit"}} {
			req, _ := http.NewRequest(r.method, base+r.path, nil)
			req.Header.Set("User-Agent", BrowserUA)
			req.Header.Set("HX-Request", "true")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("round %d, %s %s while slow clients hold connections: %v", i, r.method, r.path, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("round %d, %s %s: %d", i, r.method, r.path, resp.StatusCode)
			}
		}
	}
	// Only meaningful if the slow clients were there all along.
	if n := s.closed.Load(); n != 0 {
		t.Fatalf("%d slow clients were closed before the other client was done: the test proves nothing", n)
	}
	if got := hits(); got != before+2*clicks { // each round: a page view and a click
		t.Errorf("counted %d, want %d", got-before, 2*clicks)
	}
	// And the slow ones do not stay: the header timeout closes each.
	Eventually(t, 30*time.Second, "every slow client closed by the server", func() (bool, string) {
		return s.closed.Load() == slow, fmt.Sprintf("%d closed", s.closed.Load())
	})
}

// slowClients holds connections that send a request's headers a byte at
// a time and never finish them, until the server closes each.
type slowClients struct {
	opened atomic.Int64 // connected and sending
	closed atomic.Int64 // closed by the server
	done   sync.WaitGroup
	stop   chan struct{}
}

// startSlowClients opens n slow connections with dial, until the test ends.
func startSlowClients(t *testing.T, n int, dial func() (net.Conn, error)) *slowClients {
	t.Helper()
	s := &slowClients{stop: make(chan struct{})}
	for range n {
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			conn, err := dial()
			if err != nil {
				t.Errorf("slow client: %v", err)
				return
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "); err != nil {
				t.Errorf("slow client: %v", err)
				return
			}
			s.opened.Add(1)
			// The server ends it by closing (nginx may first answer 408):
			// a read returns then.
			gone := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, conn)
				close(gone)
			}()
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-gone:
					s.closed.Add(1)
					return
				case <-s.stop:
					return
				case <-tick.C:
					_, _ = conn.Write([]byte("a")) // a closed one shows on the read
				}
			}
		}()
	}
	t.Cleanup(func() {
		close(s.stop)
		s.done.Wait()
	})
	return s
}
