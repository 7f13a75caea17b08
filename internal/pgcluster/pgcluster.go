// Package pgcluster runs a throwaway PostgreSQL cluster of its caller's own,
// made by scripts/pg from the installed server binaries, which the caller
// may restart, crash, freeze and start again: the fault suite's database,
// and the tests that need a server no other test shares.
package pgcluster

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/testkit"
)

// Cluster is one running cluster on 127.0.0.1.
type Cluster struct {
	Dir      string // scripts/pg's folder: data/, server.log, password, port
	Port     int
	bin      string
	password string
	opts     string // server options, kept for every start
	created  atomic.Int64
	// Env is added to the environment of pg_ctl, and so of the server and
	// what it runs (an archive_command) from its next start on.
	Env []string
}

// Start makes a cluster in a new temporary folder and starts it. opts are
// more server options ("-c name=value …"), used at every start.
func Start(opts string) (*Cluster, error) {
	root, err := testkit.Root()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hitcounter-pg-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "pg"), "start", dir)
	cmd.Env = append(os.Environ(), "PG_OPTS="+opts)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("scripts/pg start: %w\n%s", err, stderr.Bytes())
	}
	u, err := url.Parse(strings.TrimSpace(string(out)))
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, opts: opts}
	c.Port, _ = strconv.Atoi(u.Port())
	c.password, _ = u.User.Password()
	if c.bin, err = BinDir(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// BinDir is the folder of the PostgreSQL server binaries scripts/pg uses
// (scripts/pg bindir), so that what it started is run with the same ones.
func BinDir() (string, error) {
	root, err := testkit.Root()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "scripts", "pg"), "bindir")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/pg bindir: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return string(bytes.TrimSpace(out)), nil
}

// URL is the superuser's URL of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://hitcounter:%s@127.0.0.1:%d/%s?sslmode=disable", c.password, c.Port, db)
}

// CreateDatabase makes a new database named prefix_N and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, prefix string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("%s_%d", prefix, c.created.Add(1))
	if _, err := conn.Exec(ctx, "create database "+name); err != nil {
		return "", err
	}
	return c.URL(name), nil
}

// Ctl runs pg_ctl on the cluster, as its owner.
func (c *Cluster) Ctl(args ...string) error {
	full := append([]string{filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.Dir, "data"), "-l", filepath.Join(c.Dir, "server.log")}, args...)
	if os.Getuid() == 0 {
		full = append([]string{"runuser", "-u", "postgres", "--"}, full...)
	}
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the cluster again on its port, with its options.
func (c *Cluster) Start() error {
	return c.Ctl("start", "-w", "-t", "60", "-o",
		fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories= -c max_connections=300 %s", c.Port, c.opts))
}

// Crash stops the server as a crash would (immediate mode: no checkpoint,
// no flush of the WAL not yet written); Start then recovers from the WAL.
func (c *Cluster) Crash() error { return c.Ctl("stop", "-m", "immediate", "-w") }

// CrashAndReissue sets the trap that a lookup by transaction id falls into.
// Database dbURL must have one transaction open and idle, its COMMIT held
// in flight (pgproxy.CrashAtCommit), so nothing of it need have reached the
// WAL. The server is crashed and started again, and ids are taken until
// that transaction's id has been handed out again and committed by someone
// else. It returns the id; an error if the restarted server did not hand
// it out again (the transaction had reached the WAL after all).
func (c *Cluster) CrashAndReissue(ctx context.Context, dbURL string) (uint64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	var xid uint64
	err = conn.QueryRow(ctx, `select backend_xid::text::bigint from pg_stat_activity
		where datname = current_database() and state = 'idle in transaction' and backend_xid is not null`).Scan(&xid)
	conn.Close(ctx)
	if err != nil {
		return 0, fmt.Errorf("the held transaction: %w", err)
	}
	if err := c.Crash(); err != nil {
		return 0, err
	}
	if err := c.Start(); err != nil {
		return 0, err
	}
	if conn, err = pgx.Connect(ctx, dbURL); err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	reissued := false
	for n := uint64(0); n < xid; {
		if err := conn.QueryRow(ctx, "select pg_current_xact_id()::text::bigint").Scan(&n); err != nil {
			return 0, err
		}
		reissued = reissued || n == xid
	}
	if !reissued {
		return 0, fmt.Errorf("the restarted server did not hand out id %d again: the trap is not set", xid)
	}
	var status string
	if err := conn.QueryRow(ctx, "select pg_xact_status($1::text::xid8)", strconv.FormatUint(xid, 10)).Scan(&status); err != nil || status != "committed" {
		return 0, fmt.Errorf("pg_xact_status(%d) after the reissue: %q, %v; want committed (someone else's)", xid, status, err)
	}
	return xid, nil
}

// Freeze stops every process of the cluster for d, as a hung host would.
func (c *Cluster) Freeze(d time.Duration) error {
	pids, err := c.PIDs()
	if err != nil {
		return err
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGSTOP)
	}
	time.Sleep(d)
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGCONT)
	}
	return nil
}

// PIDs are the postmaster and its children.
func (c *Cluster) PIDs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "data", "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	master, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		return nil, err
	}
	pids := []int{master}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		if len(f) > 1 && f[1] == strconv.Itoa(master) {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// DataDir is the cluster's data folder.
func (c *Cluster) DataDir() string { return filepath.Join(c.Dir, "data") }

// Stop stops the server and removes its folder.
func (c *Cluster) Stop() {
	_ = c.Ctl("stop", "-m", "fast", "-w")
	_ = os.RemoveAll(c.Dir)
}
