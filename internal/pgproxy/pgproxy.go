// Package pgproxy is a TCP proxy in front of a PostgreSQL server that injects
// faults for tests: a server that is down, and a connection lost just before
// or just after COMMIT.
//
// It understands only the framing of the wire protocol, not its content, and
// only for connections without TLS (sslmode=disable; an SSLRequest or
// GSSENCRequest the server refuses with 'N' is fine). If the server accepts
// TLS or GSS encryption, or the client speaks something else, the connection
// is relayed unparsed and no COMMIT fault applies to it.
//
//	p, err := pgproxy.Start("127.0.0.1:5432")
//	defer p.Close()
//	// connect to p.Addr() instead of the server
//	p.Arm(pgproxy.CutAfterCommit, 1) // the next COMMIT commits, but its client never hears
package pgproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is a way to lose a connection around a COMMIT. A COMMIT is either a
// simple Query message whose text is "commit" (any case, surrounding space
// and one trailing ';' allowed), which is how pgx commits a transaction, or
// the Sync that ends an implicit transaction (outside BEGIN … COMMIT) in
// which a write (insert, update or delete) was executed: the server commits
// that statement when it reads the Sync.
type Fault int

const (
	// CutBeforeCommit closes both sides of the connection instead of
	// forwarding the COMMIT. The server rolls the transaction back; the
	// client sees its connection die after it sent COMMIT.
	CutBeforeCommit Fault = iota + 1

	// CutAfterCommit forwards the COMMIT, waits until the server's whole
	// reply to it (up to and including ReadyForQuery) has reached the proxy,
	// drops that reply and closes both sides. The server has committed
	// before the client sees its connection die, and the client never hears
	// the outcome.
	CutAfterCommit

	// CrashAtCommit makes the server look crashed at the moment the COMMIT
	// was sent: the COMMIT is not forwarded, every client connection is
	// cut and new ones are refused, as after SetDown(true). But the server
	// side of the faulted connection stays open and silent until
	// SetDown(false) or Close: the server neither commits nor rolls the
	// transaction back, so nothing of it need reach the server's WAL
	// before a test really crashes the server, just as when a machine dies
	// with a COMMIT in flight.
	CrashAtCommit
)

func (f Fault) String() string {
	switch f {
	case CutBeforeCommit:
		return "CutBeforeCommit"
	case CutAfterCommit:
		return "CutAfterCommit"
	case CrashAtCommit:
		return "CrashAtCommit"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	maxStartupLength  = 10000   // PostgreSQL's own limit on the untyped first messages
	maxMessageLength  = 1 << 30 // PostgreSQL's limit on a protocol message
	dialTimeout       = 10 * time.Second
	bufferSize        = 32 << 10
)

// Proxy relays TCP connections from its own loopback address to a target
// server. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // cancelled by Close, ends dials in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the proxy started

	frozen atomic.Bool // see Freeze

	mu     sync.Mutex
	closed bool
	down   bool
	conns  map[*conn]struct{}
	armed  map[Fault]int
	held   []net.Conn // server sides kept open by CrashAtCommit
}

// Start listens on 127.0.0.1 on a free port and relays every connection to
// target ("host:port").
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pgproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[*conn]struct{}),
		armed:  make(map[Fault]int),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the "host:port" clients connect to instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops listening, cuts every connection and waits for all of the
// proxy's goroutines to end. Calling it again does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.takeConnsLocked()
	held := p.takeHeldLocked()
	p.mu.Unlock()
	for _, s := range held {
		s.Close()
	}

	p.cancel()
	err := p.ln.Close()
	for _, c := range conns {
		c.cut()
	}
	p.wg.Wait()
	return err
}

// SetDown(true) makes the server look crashed: every open connection is cut,
// and new connections are accepted and closed at once, so clients fail fast.
// SetDown(false) relays new connections again.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	var conns []*conn
	var held []net.Conn
	if down {
		conns = p.takeConnsLocked()
	} else {
		held = p.takeHeldLocked()
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.cut()
	}
	for _, s := range held {
		s.Close()
	}
}

// Freeze(true) makes the server look frozen (SIGSTOP): connections stay
// open, but nothing more a client sends reaches the server, so every
// query waits for an answer that does not come. Freeze(false) lets what
// waited go through.
func (p *Proxy) Freeze(frozen bool) { p.frozen.Store(frozen) }

// waitThawed holds a message for the server while the proxy is frozen;
// false if the connection was cut meanwhile.
func (c *conn) waitThawed() bool {
	for c.p.frozen.Load() {
		select {
		case <-c.done:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

// Arm makes the next n COMMITs, on any connection, suffer fault f; n = 0
// disarms it. If several faults are armed, they are used in the order
// CrashAtCommit, CutBeforeCommit, CutAfterCommit.
func (p *Proxy) Arm(f Fault, n int) {
	if f != CutBeforeCommit && f != CutAfterCommit && f != CrashAtCommit {
		panic(fmt.Sprintf("pgproxy: Arm: unknown fault %v", f))
	}
	if n < 0 {
		panic(fmt.Sprintf("pgproxy: Arm: negative count %d", n))
	}
	p.mu.Lock()
	p.armed[f] = n
	p.mu.Unlock()
}

// Armed is how many more COMMITs fault f is armed for; 0 once it has hit
// all of them.
func (p *Proxy) Armed(f Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.armed[f]
}

// takeFault uses up one armed fault for a COMMIT, or returns 0 if none is.
func (p *Proxy) takeFault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range []Fault{CrashAtCommit, CutBeforeCommit, CutAfterCommit} {
		if p.armed[f] > 0 {
			p.armed[f]--
			return f
		}
	}
	return 0
}

func (p *Proxy) takeConnsLocked() []*conn {
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	clear(p.conns)
	return conns
}

func (p *Proxy) takeHeldLocked() []net.Conn {
	held := p.held
	p.held = nil
	return held
}

// crash is CrashAtCommit on c: the proxy goes down, and c's server side is
// kept open instead of closed.
func (p *Proxy) crash(c *conn) {
	c.hold.Store(true)
	p.SetDown(true)
	c.cut()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// E.g. out of file descriptors: back off a little, like net/http.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		p.mu.Lock()
		if p.closed || p.down {
			p.mu.Unlock()
			client.Close()
			continue
		}
		p.wg.Add(1) // under mu, so Close cannot be waiting on a zero count
		p.mu.Unlock()
		go p.handle(client)
	}
}

// handle connects a new client to the target and starts its relays.
func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	c := &conn{
		p:       p,
		client:  client,
		server:  server,
		done:    make(chan struct{}),
		startup: make(chan startupSignal),
		answer:  make(chan byte),
	}
	p.mu.Lock()
	if p.closed || p.down {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()
	go c.clientToServer()
	go c.serverToClient()
}

// startupSignal tells the server→client relay what the server will send
// next, which only the client→server relay knows during startup.
type startupSignal int

const (
	expectAnswer startupSignal = iota + 1 // one byte answering SSLRequest/GSSENCRequest
	expectTyped                           // typed messages from now on
	expectRaw                             // unknown protocol: relay unparsed
)

// conn is one relayed client connection.
type conn struct {
	p              *Proxy
	client, server net.Conn
	once           sync.Once
	done           chan struct{} // closed by cut

	startup chan startupSignal // client→server relay to server→client relay
	answer  chan byte          // the server's answer to an SSL/GSS request, the other way

	// dropReply, if not 0, is the ordinal of the ReadyForQuery-terminated
	// reply to drop before cutting (CutAfterCommit); the server→client
	// relay counts replies.
	dropReply atomic.Int64
	// inTx is the transaction status of the last ReadyForQuery relayed:
	// true inside BEGIN … COMMIT. The client sends the next query only
	// after it, so it holds when the client→server relay reads a Sync.
	inTx atomic.Bool
	// hold keeps the server side open when the connection is cut
	// (CrashAtCommit): the proxy closes it later.
	hold atomic.Bool
}

// cut closes both sides (or only the client's, when held); both relays then
// end. Safe to call many times.
func (c *conn) cut() {
	c.once.Do(func() {
		close(c.done)
		c.client.Close()
		c.p.mu.Lock()
		delete(c.p.conns, c)
		held := c.hold.Load() && !c.p.closed && c.p.down
		if held {
			c.p.held = append(c.p.held, c.server)
		}
		c.p.mu.Unlock()
		if !held {
			c.server.Close()
		}
	})
}

func (c *conn) clientToServer() {
	defer c.p.wg.Done()
	defer c.cut()
	r := bufio.NewReaderSize(c.client, bufferSize)
	w := bufio.NewWriterSize(c.server, bufferSize)

	// Startup: untyped messages (int32 length including itself, then an
	// int32 code). SSL and GSS encryption requests get a one-byte answer and
	// are followed by another untyped message.
	var replies int64 // ReadyForQuery-terminated replies the server owes so far
	for {
		hdr, err := r.Peek(8)
		if err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if n < 8 || n > maxStartupLength {
			// Not the PostgreSQL protocol this proxy understands (e.g. direct TLS).
			if !c.signal(expectRaw) {
				return
			}
			_, _ = r.WriteTo(c.server)
			return
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			return
		}
		code := binary.BigEndian.Uint32(msg[4:8])
		if code == sslRequestCode || code == gssEncRequestCode {
			if !c.signal(expectAnswer) {
				return
			}
			if _, err := c.server.Write(msg); err != nil {
				return
			}
			var b byte
			select {
			case b = <-c.answer:
			case <-c.done:
				return
			}
			if b != 'N' {
				// Encryption follows: relay it unparsed.
				_, _ = r.WriteTo(c.server)
				return
			}
			continue
		}
		// A StartupMessage (answered by authentication, then
		// ReadyForQuery) or a CancelRequest (answered by nothing).
		if code>>16 == 3 {
			replies = 1
		}
		if !c.signal(expectTyped) {
			return
		}
		if _, err := c.server.Write(msg); err != nil {
			return
		}
		break
	}

	// Typed messages: type byte, int32 length including itself, body.
	var (
		buf      []byte
		prepared = map[string]bool{} // statement name → is a write (from Parse)
		begins   = map[string]bool{} // statement name → is a BEGIN
		bound    bool                // the last Bind's statement is a write
		wrote    bool                // a write was executed since the last Sync
		began    bool                // a BEGIN was bound since the last Sync: no implicit commit
	)
	for {
		var err error
		buf, err = readTyped(r, buf)
		if err != nil {
			return
		}
		switch buf[0] {
		case 'Q', 'S', 'F': // Query, Sync and FunctionCall each get one ReadyForQuery
			replies++
		}
		commit := false
		switch buf[0] {
		case 'Q':
			commit = isCommit(buf[5:])
		case 'P': // Parse: statement name, query text, …
			name, rest, _ := bytes.Cut(buf[5:], []byte{0})
			prepared[string(name)] = isWrite(rest)
			begins[string(name)] = isBegin(rest)
		case 'B': // Bind: portal name, statement name, …
			_, rest, _ := bytes.Cut(buf[5:], []byte{0})
			name, _, _ := bytes.Cut(rest, []byte{0})
			bound = prepared[string(name)]
			began = began || begins[string(name)]
		case 'E':
			wrote = wrote || bound
		case 'S':
			commit = wrote && !c.inTx.Load() && !began
			wrote, began = false, false
		}
		if commit {
			switch c.p.takeFault() {
			case CutBeforeCommit:
				_ = w.Flush() // what came before the COMMIT still goes through
				return
			case CutAfterCommit:
				c.dropReply.Store(replies) // before the server can possibly answer
			case CrashAtCommit:
				_ = w.Flush()
				c.p.crash(c)
				return
			}
		}
		if !c.waitThawed() {
			return
		}
		if _, err := w.Write(buf); err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// signal passes s to the server→client relay; false if the connection was cut.
func (c *conn) signal(s startupSignal) bool {
	select {
	case c.startup <- s:
		return true
	case <-c.done:
		return false
	}
}

func (c *conn) serverToClient() {
	defer c.p.wg.Done()
	defer c.cut()
	r := bufio.NewReaderSize(c.server, bufferSize)
	w := bufio.NewWriterSize(c.client, bufferSize)

	// The server speaks only when spoken to, so wait to learn what the
	// client said before reading: a single answer byte and typed message
	// 'N' (NoticeResponse) cannot be told apart otherwise.
startup:
	for {
		var s startupSignal
		select {
		case s = <-c.startup:
		case <-c.done:
			return
		}
		switch s {
		case expectAnswer:
			b, err := r.ReadByte()
			if err != nil {
				return
			}
			if _, err := c.client.Write([]byte{b}); err != nil {
				return
			}
			select {
			case c.answer <- b:
			case <-c.done:
				return
			}
			if b != 'N' {
				_, _ = r.WriteTo(c.client)
				return
			}
		case expectRaw:
			_, _ = r.WriteTo(c.client)
			return
		case expectTyped:
			break startup
		}
	}

	var buf []byte
	var replies int64 // ReadyForQuery messages received
	for {
		var err error
		buf, err = readTyped(r, buf)
		if err != nil {
			_ = w.Flush()
			return
		}
		if drop := c.dropReply.Load(); drop != 0 && replies+1 == drop {
			// Part of the reply to a COMMIT under CutAfterCommit: the
			// client must not see it. Once it is complete, the server has
			// committed (or failed) for sure: cut.
			if buf[0] == 'Z' {
				_ = w.Flush()
				return
			}
		} else {
			if buf[0] == 'Z' {
				replies++
				c.inTx.Store(len(buf) > 5 && buf[5] != 'I')
			}
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// readTyped reads one typed message (type byte, int32 length, body) into
// buf, growing it if needed, and returns it whole.
func readTyped(r *bufio.Reader, buf []byte) ([]byte, error) {
	if cap(buf) < 5 {
		buf = make([]byte, 5, 4096)
	}
	buf = buf[:5]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, err
	}
	n := binary.BigEndian.Uint32(buf[1:5])
	if n < 4 || n > maxMessageLength {
		return buf, fmt.Errorf("pgproxy: message %q has bad length %d", buf[0], n)
	}
	total := 1 + int(n)
	if cap(buf) < total {
		grown := make([]byte, total)
		copy(grown, buf)
		buf = grown
	}
	buf = buf[:total]
	_, err := io.ReadFull(r, buf[5:])
	return buf, err
}

// isWrite reports whether a query text writes: it starts with insert,
// update or delete after leading space, or it is a WITH whose text has one
// of those words (the store's increment is a WITH of writes). A comment
// first is not recognised.
func isWrite(query []byte) bool {
	q := bytes.ToLower(bytes.TrimSpace(bytes.TrimRight(query, "\x00")))
	verbs := []string{"insert", "update", "delete"}
	if startsWithWord(q, "with") {
		for _, w := range bytes.FieldsFunc(q, func(r rune) bool { return !('a' <= r && r <= 'z') }) {
			if slices.Contains(verbs, string(w)) {
				return true
			}
		}
		return false
	}
	for _, verb := range verbs {
		if startsWithWord(q, verb) {
			return true
		}
	}
	return false
}

func startsWithWord(q []byte, w string) bool {
	return len(q) > len(w) && string(q[:len(w)]) == w && (q[len(w)] == ' ' || q[len(w)] == '\n' || q[len(w)] == '\t')
}

// isBegin reports whether a query text opens a transaction (BEGIN, with
// options or not): a pipeline that does commits nothing at its Sync.
func isBegin(query []byte) bool {
	q := bytes.ToLower(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(bytes.TrimRight(query, "\x00")), []byte(";"))))
	return string(q) == "begin" || startsWithWord(q, "begin") || bytes.HasPrefix(q, []byte("start transaction"))
}

// isCommit reports whether the body of a Query message is a plain COMMIT.
func isCommit(body []byte) bool {
	s := bytes.TrimRight(body, "\x00")
	s = bytes.TrimSpace(s)
	s = bytes.TrimSuffix(s, []byte(";"))
	s = bytes.TrimSpace(s)
	return bytes.EqualFold(s, []byte("commit"))
}
