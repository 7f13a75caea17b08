package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// memory measures the server's resident memory with n counters: once they
// are loaded, after one poll of each, and after two reloads of the
// listener (its connection killed: it reloads every count), beside an
// instance with one counter. It prints the figures, never asserts them.
func (b *bench) memory(n int) error {
	fmt.Printf("\nmemory with %d counters (VmRSS of the server, after each step):\n", n)
	one, err := b.memoryOf(1, false)
	if err != nil {
		return err
	}
	many, err := b.memoryOf(n, true)
	if err != nil {
		return err
	}
	fmt.Printf("  1 counter, loaded:                 %6.1f MB\n", mb(one[0]))
	fmt.Printf("  %d counters, loaded:          %6.1f MB  (%.0f B per counter above one counter)\n", n, mb(many[0]), float64(many[0]-one[0])/float64(n-1))
	fmt.Printf("  after one poll of each:            %6.1f MB  (%+.0f B per counter)\n", mb(many[1]), float64(many[1]-many[0])/float64(n))
	fmt.Printf("  after two listener reloads:        %6.1f MB  (%+.0f B per counter)\n", mb(many[2]), float64(many[2]-many[1])/float64(n))
	return nil
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// memoryOf starts an instance on a new database of n counters (main and
// c2…cn) and returns its VmRSS once loaded, and with poll, after one poll
// of each and after two listener reloads.
func (b *bench) memoryOf(n int, poll bool) ([]int64, error) {
	dbURL, err := b.database()
	if err != nil {
		return nil, err
	}
	a, err := startApp(b.bin, dbURL, true) // migrates
	if err != nil {
		return nil, err
	}
	if _, err := a.stop(); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(b.ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(b.ctx)
	if _, err := conn.Exec(b.ctx, `insert into counters (name) select 'c' || i from generate_series(2, $1) i`, n); err != nil {
		return nil, err
	}
	a, err = startApp(b.bin, dbURL, true, "-metrics-addr", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer a.stop()
	if err := a.listenerUp(true); err != nil {
		return nil, err
	}
	out := []int64{a.rss()}
	if !poll {
		return out, nil
	}
	if err := a.pollEach(n); err != nil {
		return nil, err
	}
	out = append(out, a.rss())
	for range 2 {
		if _, err := conn.Exec(b.ctx, `select pg_terminate_backend(pid) from pg_stat_activity
			where datname = current_database() and application_name = 'hitcounter listener'`); err != nil {
			return nil, err
		}
		if err := a.listenerUp(false); err != nil {
			return nil, err
		}
		if err := a.listenerUp(true); err != nil {
			return nil, err
		}
	}
	return append(out, a.rss()), nil
}

// rss is the server's resident memory now.
func (a *app) rss() int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1000
		}
	}
	return 0
}

// listenerUp waits (up to a minute) until the server's metrics say its
// listener is up, or down.
func (a *app) listenerUp(up bool) error {
	want := "hitcounter_db_listener_up 0"
	if up {
		want = "hitcounter_db_listener_up 1"
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(a.Metrics)
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 1<<20)
			found := false
			for sc.Scan() {
				if sc.Text() == want {
					found = true
				}
			}
			resp.Body.Close()
			if found {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no %q within a minute", want)
}

// pollEach polls every counter once, on 16 keep-alive connections.
func (a *app) pollEach(n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				path := "/count"
				if i > 1 {
					path = fmt.Sprintf("/c/c%d/count", i)
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Addr+path, nil)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("GET %s: %s", path, resp.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs)
}
