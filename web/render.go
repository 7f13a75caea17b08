package web

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/a-h/templ"

	"github.com/hitcounter/hitcounter/views"
)

// handlerFunc is a handler that returns its error instead of writing it, so
// one place (handle) turns errors into responses.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc: an error becomes an error page (the counter
// fragment for htmx) and is noted for the request log.
func (s *server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		noteError(r, err)
		status, msg := problem(err)
		// htmx swaps error answers too (htmx 4), and its only target is the
		// counter: answer with the counter showing the message, still polling.
		page := views.ErrorPage(views.Error{Assets: s.assets, Title: http.StatusText(status), Message: msg})
		if isHTMX(r) {
			page = views.CounterFragment(views.Counter{Problem: msg, PollEvery: s.cfg.PollInterval})
		}
		if err := s.render(w, r, status, page); err != nil {
			noteError(r, err)
		}
	}
}

// render writes a component with a status. It renders into a buffer first,
// so a failing component never sends half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) error {
	var buf bytes.Buffer
	// Not the request's context: when its deadline has passed, the answer
	// that says so must still render (templ stops on a done context).
	if err := c.Render(context.WithoutCancel(r.Context()), &buf); err != nil {
		http.Error(w, "Something went wrong on our side.", http.StatusInternalServerError)
		return fmt.Errorf("render: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	// Counts change all the time: never show a stored copy.
	h.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "2")
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		// The client went away; nothing more to tell it.
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "write response", slog.Any("err", err))
	}
	return nil
}
