package db

import (
	"context"
	"errors"
)

// Observer hears what the store does, for metrics. The store calls it
// synchronously: implementations must be quick and safe for concurrent use.
type Observer interface {
	// Batch: one write counted size hits.
	Batch(size int)
	// Retry: an attempt of op failed in phase and will be tried again.
	Retry(op, phase, sqlstate string)
	// Failure: op failed for good, with one of the kinds of errors.go
	// ("unavailable", "outcome_unknown", "not_found", "invalid", "exists",
	// "canceled" when its caller went away, "other").
	Failure(op, kind string)
	// Resolved: a COMMIT in doubt was looked up: "committed", "aborted"
	// or "unknown".
	Resolved(outcome string)
}

type noObserver struct{}

func (noObserver) Batch(int)                    {}
func (noObserver) Retry(string, string, string) {}
func (noObserver) Failure(string, string)       {}
func (noObserver) Resolved(string)              {}

func (s *Store) observe() Observer {
	if s.cfg.Observer == nil {
		return noObserver{}
	}
	return s.cfg.Observer
}

// kindName names a final failure for the Observer.
func kindName(kind, err error) string {
	if kind == nil {
		for _, k := range []error{ErrNotFound, ErrInvalid, ErrExists} {
			if errors.Is(err, k) {
				kind = k
			}
		}
	}
	switch {
	case kind == ErrUnavailable && errors.Is(err, context.Canceled):
		return "canceled"
	case kind == ErrUnavailable:
		return "unavailable"
	case kind == ErrOutcomeUnknown:
		return "outcome_unknown"
	case kind == ErrNotFound:
		return "not_found"
	case kind == ErrInvalid:
		return "invalid"
	case kind == ErrExists:
		return "exists"
	}
	return "other"
}
