package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

// requestID gives every request an id of the server's own, for the log
// (request_id) and the X-Request-Id answer header. A client's
// X-Request-Id is never used as it: a client could forge or reuse the id
// that correlates the logs. It is kept apart, as client_request_id.
func requestID(next http.Handler) http.Handler {
	var prefix [6]byte
	_, _ = rand.Read(prefix[:]) // never fails (crypto/rand)
	host := hex.EncodeToString(prefix[:])
	var seq atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := host + "-" + strconv.FormatUint(seq.Add(1), 36)
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), middleware.RequestIDKey, id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestNote carries a request's error from the handler to its log line,
// so each request is logged once, with its cause.
type requestNote struct{ err error }

type noteKey struct{}

// noteError records err for the request log; the first error is the cause.
func noteError(r *http.Request, err error) {
	if n, ok := r.Context().Value(noteKey{}).(*requestNote); ok && n.err == nil {
		n.err = err
	}
}

// logRequests writes one structured line per request. Quiet routes
// (routeKind.quiet: polls, probes, static files) log at debug level unless
// they fail: at info they would drown everything else.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		note := &requestNote{}
		r = r.WithContext(context.WithValue(r.Context(), noteKey{}, note))
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			took := time.Since(start)
			route, kind := s.routeOf(r)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			level := slog.LevelInfo
			// The client left while the answer was being made: its work was
			// cancelled (and the answer went nowhere).
			gone := r.Context().Err() != nil && errors.Is(note.err, context.Canceled)
			switch {
			case gone:
				level = slog.LevelDebug // nothing reached it; nobody's fault here
			case status == http.StatusServiceUnavailable:
				level = slog.LevelWarn // the database layer has logged the failure itself
			case status >= 500:
				level = slog.LevelError
			case status < 400 && kind.quiet():
				level = slog.LevelDebug
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int("bytes", ww.BytesWritten()),
				slog.Duration("duration", took),
				slog.String("client_ip", clientIP(r)),
				slog.String("request_id", middleware.GetReqID(r.Context())),
			}
			if id := r.Header.Get("X-Request-Id"); id != "" {
				attrs = append(attrs, slog.String("client_request_id", truncate(id, 64)))
			}
			if gone {
				attrs = append(attrs, slog.Bool("client_gone", true))
			}
			if note.err != nil {
				attrs = append(attrs, slog.Any("err", note.err))
			}
			s.log.LogAttrs(r.Context(), level, "request", attrs...)
			if s.cfg.ObserveRequest != nil {
				if route == "" {
					route = "unmatched"
				}
				if gone {
					// nginx's "client closed request": not a failure of the
					// server's, whatever status the unsent answer had.
					status = 499
				}
				s.cfg.ObserveRequest(route, r.Method, status, took)
			}
		}()
		next.ServeHTTP(ww, r)
	})
}

// clientIP is the address set by the trusted proxy header when one is
// configured, else the peer address.
func clientIP(r *http.Request) string {
	if ip := middleware.GetClientIP(r.Context()); ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// fromTrustedProxy tells a request whose peer is a trusted proxy, whose
// word about the client is believed: a peer in TrustedProxies or, when
// that is empty, any peer once ClientIPHeader says a proxy is in front.
// It is the rule chi's ClientIPFromHeader applies to the client IP header
// (routes.go), peer parsing included, so the two never disagree.
func (s *server) fromTrustedProxy(r *http.Request) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return s.cfg.ClientIPHeader != ""
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	// A v4-mapped or zoned address must not slip past a plain prefix.
	ip = ip.Unmap().WithZone("")
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// overHTTPS tells a request the client sent over TLS: to this server, or
// to a trusted proxy that says so (X-Forwarded-Proto).
func (s *server) overHTTPS(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" && s.fromTrustedProxy(r)
}

// recoverPanics turns a panic into a 500 page and a logged stack trace.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // net/http's way to abort a response; not ours to catch
			}
			s.handle(func(http.ResponseWriter, *http.Request) error {
				return fmt.Errorf("panic: %v\n%s", v, debug.Stack())
			})(w, r)
		}()
		next.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy allows only this origin's own files: no inline
// script or style, no eval. htmx runs without them (its indicator CSS is
// turned off in the page's htmx-config).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// refuseCrossOrigin answers 403 to state-changing requests from other sites
// (by Sec-Fetch-Site, or Origin against Host), the CSRF defence.
func (s *server) refuseCrossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(s.handle(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusForbidden, "Cross-site requests are refused.")
	}))
	return cop.Handler(next)
}

// limitBody refuses bodies over MaxBodyBytes: at once when Content-Length
// says so, else when the handler reads past the limit.
func (s *server) limitBody(next http.Handler) http.Handler {
	tooLarge := s.handle(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusRequestEntityTooLarge, "The request body is too large.")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			w.Header().Set("Connection", "close")
			tooLarge(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// deadline bounds every request, database retries included, so an answer
// (if only "unavailable") always comes before a proxy gives up.
func (s *server) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// truncate cuts s to at most n bytes, for client-given text in the log.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
