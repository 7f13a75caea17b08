package db

import "errors"

// The kinds of failure callers can act on. The store wraps every error it
// returns around exactly one of them (test with errors.Is), so callers never
// look at driver types or SQLSTATEs.
var (
	// ErrUnavailable: the database could not be reached or stayed overloaded
	// through all retries, or the caller's deadline ran out. Nothing was
	// changed; trying again later is safe.
	ErrUnavailable = errors.New("database unavailable")

	// ErrOutcomeUnknown: the connection was lost after COMMIT was sent, and
	// the server could not be asked what became of the transaction
	// (resolve.go), so it may or may not have been applied. It is never
	// retried, because a retry could apply it twice.
	ErrOutcomeUnknown = errors.New("transaction outcome unknown")

	// ErrNotFound: the requested row does not exist.
	ErrNotFound = errors.New("not found")

	// ErrInvalid: the database rejected the input (a check, type or
	// constraint violation). Retrying cannot help.
	ErrInvalid = errors.New("invalid input")

	// ErrExists: a counter of that name already exists (create, rename).
	ErrExists = errors.New("already exists")
)
