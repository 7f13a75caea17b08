package deploy

import (
	"bufio"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testkit"
)

// The tests run in the repository's root, where the files they check are
// (compose.yaml, nginx.conf, deploy/…) and where docker compose and the
// scripts run; the binary is built into a folder of the run's own.
func TestMain(m *testing.M) {
	os.Exit(func() int {
		root, err := testkit.Root()
		if err == nil {
			err = os.Chdir(root)
		}
		if err == nil {
			binDir, err = os.MkdirTemp("", "hitcounter-bin-")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(binDir)
		return m.Run()
	}())
}

var (
	binDir     string
	buildFlags []string // -race where the tests run with it (race_test.go)
	buildOnce  sync.Once
	bin        string
	buildErr   error
)

// binary is the program's binary, built on first use.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { bin, buildErr = testkit.Build(binDir, buildFlags...) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// program is the binary serving, with env as its whole environment.
type program struct {
	*testkit.Program
	base string // http://127.0.0.1:PORT
}

// startProgram starts the program on a port of 127.0.0.1 and returns once
// it listens. When the test ends it is stopped with SIGTERM, and must then
// exit 0.
func startProgram(t testing.TB, env map[string]string, args ...string) *program {
	t.Helper()
	p, err := testkit.Start(binary(t), environ(env), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Errorf("the program after SIGTERM: %v", err)
		}
		if t.Failed() {
			t.Logf("program logs:\n%s", p.Logs)
		}
	})
	base := p.URL()
	testkit.Eventually(t, 10*time.Second, base+"/healthz OK", func() (bool, string) {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return &program{p, base}
}

func environ(env map[string]string) []string {
	vars := []string{} // not nil: nothing but env
	for _, k := range slices.Sorted(maps.Keys(env)) {
		vars = append(vars, k+"="+env[k])
	}
	return vars
}

// settings are the program's settings in effect with env as its whole
// environment and args, by environment variable, as -print-config prints
// them; or why it refuses them.
func settings(t *testing.T, env map[string]string, args ...string) (map[string]string, error) {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"-print-config"}, args...)...)
	cmd.Env = environ(env)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if u, err := url.Parse(env["DATABASE_URL"]); err == nil {
		if pw, ok := u.User.Password(); ok && strings.Contains(string(out), pw) {
			t.Errorf("-print-config shows the database password:\n%s", out)
		}
	}
	got := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("-print-config printed %q, want NAME=value", line)
		}
		got[k] = v
	}
	return got, nil
}

// docSection is the section under the heading title (of any level) in
// README.md or one of docs/*.md, to the next heading of its level or
// above, and the file it is in.
func docSection(t *testing.T, title string) (section, file string) {
	t.Helper()
	docs, err := fs.Glob(os.DirFS("."), "docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range append([]string{"README.md"}, docs...) {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		level, fenced := 0, false
		for sc := bufio.NewScanner(strings.NewReader(string(text))); sc.Scan(); {
			line := sc.Text()
			if strings.HasPrefix(line, "```") {
				fenced = !fenced
			}
			hashes := len(line) - len(strings.TrimLeft(line, "#"))
			heading := !fenced && hashes > 0 && strings.HasPrefix(line[hashes:], " ")
			switch {
			case level == 0 && heading && strings.TrimSpace(line[hashes:]) == title:
				level = hashes
			case level > 0 && heading && hashes <= level:
				return b.String(), file
			case level > 0:
				b.WriteString(line + "\n")
			}
		}
		if level > 0 {
			return b.String(), file
		}
	}
	t.Fatalf("no heading %q in README.md or docs/*.md", title)
	return "", ""
}

// docSectionLists fails t unless the section under the heading title (in
// README.md or docs/*.md) holds every one of cmds.
func docSectionLists(t *testing.T, title string, cmds []string) {
	t.Helper()
	section, file := docSection(t, title)
	if len(cmds) == 0 || strings.TrimSpace(section) == "" {
		t.Fatalf("no commands, or an empty section %q in %s", title, file)
	}
	for _, cmd := range cmds {
		if !strings.Contains(section, cmd) {
			t.Errorf("%s's section %q lacks %q", file, title, cmd)
		}
	}
}
