// Package testkit is what the tests and the suites share to drive the
// program as it runs in production, a binary in a process of its own: the
// repository's root, the binary built once, started on a free port with
// its address read from what it prints, its logs kept; and the slow
// clients that the app's and nginx's header timeouts must outlast.
// `make faults` and `make bench` start the binary `make build` made; the
// deployment tests (package deploy) build it once per run.
package testkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Root is the repository's root, the folder of go.mod above the working
// directory: tests run in their package's folder, commands in the root.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Build builds the program (the module's root package) with go build and
// flags into dir, and returns the binary's path.
func Build(dir string, flags ...string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "hitcounter")
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", bin, ".")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", strings.Join(flags, " "), err, out)
	}
	return bin, nil
}

// Program is the binary running in a process of its own.
type Program struct {
	Cmd     *exec.Cmd
	Addr    string  // host:port it serves on
	Metrics string  // the URL of its /metrics, when METRICS_ADDR is set
	Logs    *Buffer // its stderr

	exited chan struct{}
	err    error
}

// Start runs the binary bin on a free port of 127.0.0.1 (-addr
// 127.0.0.1:0 before args), with env as its whole environment (nil: this
// process's), and returns once it prints "listening on http://ADDR". Its
// stderr is kept in Logs, and copied to stderr too unless that is nil.
func Start(bin string, env []string, stderr io.Writer, args ...string) (*Program, error) {
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = env
	p := &Program{Cmd: cmd, Logs: &Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.Logs
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(p.Logs, stderr)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	listening := make(chan Listening, 1)
	go func() {
		ReadListening(out, listening)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case l := <-listening:
		p.Addr, p.Metrics = l.Addr, l.Metrics
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before listening: %v\n%s", bin, p.err, p.Logs)
	case <-time.After(30 * time.Second):
		p.Kill()
		return nil, fmt.Errorf("%s did not listen within 30s\n%s", bin, p.Logs)
	}
}

// Listening is where the program says it serves.
type Listening struct {
	Addr    string // host:port, from "listening on http://ADDR"
	Metrics string // from "metrics on URL", printed first when METRICS_ADDR is set
}

// ReadListening reads the program's stdout to its end, and sends on said
// where it serves once it says so.
func ReadListening(stdout io.Reader, said chan<- Listening) {
	var metrics string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "metrics on "); ok {
			metrics = u
		}
		if a, ok := strings.CutPrefix(sc.Text(), "listening on http://"); ok {
			said <- Listening{a, metrics}
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
}

// URL is the base URL it serves on.
func (p *Program) URL() string { return "http://" + p.Addr }

// Exited is closed once the process has exited; Err then says how.
func (p *Program) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited (nil: status 0), once Exited is closed.
func (p *Program) Err() error { return p.err }

// Stop sends SIGTERM and returns how the process exited; if it has not
// within the time given, it is killed, and Stop says so.
func (p *Program) Stop(within time.Duration) error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		p.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM", p.Cmd.Path, within)
	}
}

// Kill kills the process and waits until it has exited.
func (p *Program) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.exited
}

// Eventually polls cond until it holds, and fails t if it does not within
// the time given, with what cond last saw: the one way tests wait on a
// condition, rather than sleeping and hoping.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; last seen: %s", what, within, seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Buffer is a bytes.Buffer safe for concurrent use: a process's output.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Len is how many bytes the buffer holds.
func (l *Buffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// Reset empties the buffer.
func (l *Buffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// BrowserUA is a desktop browser's User-Agent: a request with Go's own
// counts as a crawler's, apart from views.
const BrowserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// Do sends one request with c and the given headers, and returns the
// answer with its body read; any failure to get one fails t.
func Do(t testing.TB, c *http.Client, method, url string, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}
