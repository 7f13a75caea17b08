package main

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connGuard bounds the server's open connections, so a client holding
// thousands of idle keep-alive connections cannot use up the process's
// file descriptors and starve everyone else. At the limit, accepting a
// new connection first closes the connection that has been idle longest
// (an idle keep-alive connection costs its client nothing to reopen);
// with none idle, the new connection waits in the kernel's backlog until
// one closes (the header and idle timeouts see to that).
type connGuard struct {
	net.Listener
	max  int
	shed atomic.Int64 // idle connections closed to make room, read by the metrics

	mu    sync.Mutex
	open  int
	idle  map[net.Conn]time.Time // since when each idle connection is idle
	freed chan struct{}          // a connection closed: room to accept

	closeOnce sync.Once
	closed    chan struct{}
}

func newConnGuard(ln net.Listener, max int) *connGuard {
	return &connGuard{Listener: ln, max: max, idle: map[net.Conn]time.Time{},
		freed: make(chan struct{}, 1), closed: make(chan struct{})}
}

// Close closes the listener and ends an Accept waiting for room.
func (g *connGuard) Close() error {
	g.closeOnce.Do(func() { close(g.closed) })
	return g.Listener.Close()
}

// Accept waits for room, then accepts.
func (g *connGuard) Accept() (net.Conn, error) {
	for {
		g.mu.Lock()
		if g.open < g.max {
			g.open++
			g.mu.Unlock()
			c, err := g.Listener.Accept()
			if err != nil {
				g.release()
			}
			return c, err
		}
		oldest := g.oldestIdle()
		g.mu.Unlock()
		if oldest != nil {
			_ = oldest.Close() // its StateClosed makes the room
		}
		select {
		case <-g.freed:
		case <-g.closed:
			return nil, net.ErrClosed
		}
	}
}

// oldestIdle is the connection idle longest, or nil; g.mu is held.
func (g *connGuard) oldestIdle() net.Conn {
	var oldest net.Conn
	var since time.Time
	for c, t := range g.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	if oldest != nil {
		delete(g.idle, oldest)
		g.shed.Add(1)
	}
	return oldest
}

func (g *connGuard) release() {
	g.mu.Lock()
	g.open--
	g.mu.Unlock()
	select {
	case g.freed <- struct{}{}:
	default:
	}
}

// connState is the http.Server's ConnState hook.
func (g *connGuard) connState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateIdle:
		g.mu.Lock()
		g.idle[c] = time.Now()
		g.mu.Unlock()
	case http.StateActive:
		g.mu.Lock()
		delete(g.idle, c)
		g.mu.Unlock()
	case http.StateClosed, http.StateHijacked:
		g.mu.Lock()
		delete(g.idle, c)
		g.mu.Unlock()
		g.release()
	}
}

// fdHeadroom is what the process keeps of its file descriptors for all
// but client connections: the database pool, the listener's, logs.
const fdHeadroom = 256

// connLimit is the limit of open client connections: the setting, or
// less when the process may not open that many files.
func connLimit(setting int) (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return setting, nil // cannot tell: trust the setting
	}
	room := int(min(rl.Cur, 1<<30)) - fdHeadroom
	if room < 1 {
		return 0, errors.New("the process may open too few files to serve (raise ulimit -n)")
	}
	return min(setting, room), nil
}
