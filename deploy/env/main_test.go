package main

import (
	"strings"
	"testing"
)

func TestEnvPrintsEnvironment(t *testing.T) {
	var out, errs strings.Builder
	environ := []string{"PATH=/usr/bin:/bin", "DATABASE_URL=postgres://u:p@db:5432/d", "EMPTY="}
	if code := run(nil, environ, &out, &errs); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs.String())
	}
	want := "PATH=/usr/bin:/bin\nDATABASE_URL=postgres://u:p@db:5432/d\nEMPTY=\n"
	if out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	if errs.Len() != 0 {
		t.Errorf("stderr = %q, want nothing", errs.String())
	}
}

func TestEnvRefusesArguments(t *testing.T) {
	var out, errs strings.Builder
	if code := run([]string{"sh"}, []string{"A=1"}, &out, &errs); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out.String())
	}
	if !strings.Contains(errs.String(), "only prints") {
		t.Errorf("stderr = %q, want an explanation", errs.String())
	}
}
