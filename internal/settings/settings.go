// Package settings holds the rules for the settings that the server
// (package main) and the owner's controls (owner) both read, so the two
// front doors cannot disagree about them.
package settings

import (
	"fmt"
	"log/slog"
	"time"
)

// Timezone is TIMEZONE: an IANA name, the zone of "today" for day rows
// and visitors. Empty is UTC, the default; "Local" is refused, since it
// would follow the machine's setting, which differs between a server and
// the owner's shell.
func Timezone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return nil, fmt.Errorf("timezone %q: want an IANA name such as UTC or Europe/Berlin", name)
	}
	return loc, nil
}

// LogLevel is LOG_LEVEL: debug, info, warn or error.
func LogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
