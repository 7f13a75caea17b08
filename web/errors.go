package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/hitcounter/hitcounter/db"
)

// statusError is an error the web layer makes itself, with the status and
// the message the user sees.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func errorf(status int, msg string) error { return &statusError{status: status, msg: msg} }

// problem is the one table from errors to what the user gets: the HTTP
// status and a message safe to show. Internal error text never reaches the
// user; it goes to the log.
func problem(err error) (status int, msg string) {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.status, se.msg
	case errors.Is(err, db.ErrOutcomeUnknown):
		return http.StatusServiceUnavailable, "The database connection broke while saving your hit, and the database could not tell whether it was counted. Look at the count before you click again."
	case errors.Is(err, db.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "Counter unavailable, retrying…"
	case errors.Is(err, db.ErrNotFound):
		return http.StatusNotFound, "That counter does not exist."
	case errors.Is(err, db.ErrInvalid):
		return http.StatusBadRequest, "The request was not valid."
	case errors.Is(err, db.ErrExists):
		return http.StatusConflict, "A counter of that name already exists."
	default:
		return http.StatusInternalServerError, "Something went wrong on our side. Please try again."
	}
}
