package settings

import (
	"log/slog"
	"testing"
)

func TestTimezone(t *testing.T) {
	for name, want := range map[string]string{"": "UTC", "UTC": "UTC", "Europe/Berlin": "Europe/Berlin"} {
		loc, err := Timezone(name)
		if err != nil || loc.String() != want {
			t.Errorf("Timezone(%q) = %v, %v; want %s", name, loc, err, want)
		}
	}
	for _, bad := range []string{"Local", "Mars/Olympus", "utc+1"} {
		if _, err := Timezone(bad); err == nil {
			t.Errorf("Timezone(%q) accepted", bad)
		}
	}
}

func TestLogLevel(t *testing.T) {
	for s, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "WARN": slog.LevelWarn, "error": slog.LevelError} {
		if l, err := LogLevel(s); err != nil || l != want {
			t.Errorf("LogLevel(%q) = %v, %v; want %v", s, l, err, want)
		}
	}
	for _, bad := range []string{"", "loud", "3"} {
		if _, err := LogLevel(bad); err == nil {
			t.Errorf("LogLevel(%q) accepted", bad)
		}
	}
}
