package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testdb"
)

// slowClients holds n connections that send a request's headers a byte at
// a time and never finish them (slowloris), until the server closes each.
type slowClients struct {
	opened atomic.Int64 // connected and sending
	closed atomic.Int64 // closed by the server
	done   sync.WaitGroup
	stop   chan struct{}
}

// startSlowClients opens n slow connections with dial, from this test.
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

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Slow clients (slowloris) cannot starve the others: with 200 connections
// sending their headers a byte at a time, other clients' pages, polls and
// clicks are answered, clicks counted exactly, and the server closes every
// slow connection at its header timeout, directly and through nginx.
func TestSlowClientsDoNotStarveOthers(t *testing.T) {
	const slow = 200
	const clicks = 8 // within nginx's burst of clicks per client

	// serve is what one ordinary visitor does while the slow clients
	// hold their connections: every request answered, clicks exact.
	serve := func(t *testing.T, c *http.Client, base, dbURL string, s *slowClients) {
		t.Helper()
		waitFor(t, 20*time.Second, fmt.Sprintf("%d slow clients connected", slow), func() bool { return s.opened.Load() == slow })
		before := testdb.Hits(t, dbURL, "main")
		for i := range clicks {
			for _, r := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/count"}, {"POST", "/hit"}} {
				req, _ := http.NewRequest(r.method, base+r.path, nil)
				req.Header.Set("User-Agent", browserUA)
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
		if got := testdb.Hits(t, dbURL, "main"); got != before+2*clicks { // each round: a page view and a click
			t.Errorf("counted %d, want %d", got-before, 2*clicks)
		}
		// And the slow ones do not stay: the header timeout closes each.
		waitFor(t, 30*time.Second, "every slow client closed by the server", func() bool { return s.closed.Load() == slow })
	}

	t.Run("app", func(t *testing.T) {
		t.Parallel()
		dbURL := testdb.NewMigrated(t)
		app := startRun(t, map[string]string{"DATABASE_URL": dbURL})
		addr := strings.TrimPrefix(app.base, "http://")
		s := startSlowClients(t, slow, func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) })
		serve(t, &http.Client{Timeout: 10 * time.Second}, app.base, dbURL, s)
	})

	t.Run("nginx", func(t *testing.T) {
		t.Parallel()
		p := startProxied(t, proxyOptions{})
		addr := strings.TrimPrefix(p.httpsURL, "https://")
		// From another loopback address than the visitor's, as an
		// attacker would be: nginx's per-address limits are not the test.
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}
		s := startSlowClients(t, slow, func() (net.Conn, error) {
			return tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: p.ca, NextProtos: []string{"http/1.1"}})
		})
		serve(t, p.client("127.0.0.2"), p.httpsURL, p.dbURL, s)
	})
}
