package patroni

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hitcounter/hitcounter/internal/pgcluster"
)

const (
	// Ports are drawn below Linux's ephemeral range (32768–60999) so that
	// the kernel's outgoing connections do not take them between our pick
	// and the process's bind.
	portLow, portHigh = 15000, 32000
	// startTries bounds how often a process is started again on new ports
	// after its log says its port was taken.
	startTries = 5
	// pollEvery is how often waits look at their condition again.
	pollEvery = 150 * time.Millisecond
	// bindError is what etcd ("bind: address already in use"), Patroni's
	// REST API ("[Errno 98] Address already in use") and PostgreSQL
	// ("could not bind IPv4 address ...: Address already in use") log
	// when a port is taken; compared case-insensitively.
	bindError = "address already in use"
)

// Options say how to run the cluster; the zero value is a 3-node cluster in
// a temporary folder with the settings of TemplateFile (deploy/patroni.yml).
type Options struct {
	// Dir is the working folder (created): etcd's data and each node's
	// data, patroni.yml and log. Empty: a new temporary folder, removed by
	// Stop. As root it must be reachable by the 'postgres' user.
	Dir string
	// Nodes is the number of Patroni nodes (default 3; at least 2, since
	// synchronous_mode_strict needs a standby to commit).
	Nodes int
	// TTL, LoopWait and RetryTimeout, when set, replace the template's DCS
	// timers (zero: the template's). A dead leader is replaced after at
	// most TTL, so small values make failover fast; Patroni needs LoopWait
	// + 2*RetryTimeout <= TTL so that a leader that cannot reach etcd
	// demotes itself before its key expires and another node promotes.
	TTL, LoopWait, RetryTimeout time.Duration
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Cluster is a running etcd plus Patroni nodes. Its methods may be called
// from several goroutines.
type Cluster struct {
	Dir   string // the working folder
	Scope string // Patroni's cluster name, also PostgreSQL's cluster_name
	// User is the template's PostgreSQL superuser, created at bootstrap,
	// and Password its password (new for each cluster). The app's tests
	// connect as a superuser because they create databases.
	User, Password string

	opts      Options
	tmpl      map[string]any    // TemplateFile, parsed
	passwords map[string]string // by role in postgresql.authentication (superuser, replication, rewind)
	namespace string            // the template's, for the keys in etcd
	// The DCS timers in effect: Options', else the template's.
	ttl, loopWait, retryTimeout time.Duration

	rmDir      bool                // Dir was made by Start
	cred       *syscall.Credential // run Patroni as 'postgres' (nil: as the caller)
	binDir     string              // PostgreSQL's bin folder
	patroniBin string
	etcdBin    string
	http       *http.Client

	mu       sync.Mutex
	etcd     *proc
	etcdPort int
	nodes    []*node
	watchdog *exec.Cmd
	wdIn     io.WriteCloser
	stopped  bool
}

type node struct {
	name            string
	dir             string
	pgPort, apiPort int
	patroni         *proc // nil while the node is killed
}

func (n *node) dataDir() string { return filepath.Join(n.dir, "data") }
func (n *node) logPath() string { return filepath.Join(n.dir, "patroni.log") }

// proc is a process Start or StartNode started, in a process group of its own.
type proc struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when it has exited (and been reaped)
	logPath string
	logFrom int64 // where this run's output begins in the log
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// log is what the process has written to its log since it started.
func (p *proc) log() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(p.logFrom, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func (p *proc) bindFailed() bool {
	return strings.Contains(strings.ToLower(p.log()), bindError)
}

// kill ends the process's whole group with SIGKILL and waits until it is reaped.
func (p *proc) kill() error {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pid %d did not exit 10s after SIGKILL", p.cmd.Process.Pid)
	}
}

// Start bootstraps etcd and all nodes and returns once the cluster is
// healthy (see WaitHealthy): one leader, every replica streaming, a
// synchronous standby named in the DCS, and User able to commit on the
// leader. On error everything started is stopped again. Without a deadline
// on ctx, Start gives up after 5 minutes.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 2 {
		return nil, fmt.Errorf("patroni: %d nodes: synchronous_mode_strict needs at least 2", o.Nodes)
	}
	c := &Cluster{opts: o, http: &http.Client{}}
	tmpl, err := loadTemplate()
	if err != nil {
		return nil, err
	}
	if err := c.useTemplate(tmpl); err != nil {
		return nil, err
	}
	if c.patroniBin, err = exec.LookPath("patroni"); err != nil {
		return nil, errors.New("patroni: patroni not found: install it with scripts/deps patroni (Debian: apt-get install patroni etcd-server etcd-client)")
	}
	if c.etcdBin, err = exec.LookPath("etcd"); err != nil {
		return nil, errors.New("patroni: etcd not found: install it with scripts/deps patroni (Debian: apt-get install etcd-server etcd-client)")
	}
	if c.binDir, err = postgresBinDir(); err != nil {
		return nil, err
	}
	c.Scope = "hc-" + secret()[:8]

	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.makeDir(); err != nil {
		return nil, err
	}
	if err := c.startWatchdog(); err != nil {
		return nil, err
	}
	began := time.Now()
	if err := c.startEtcd(ctx); err != nil {
		return nil, err
	}
	c.logf("etcd serving on 127.0.0.1:%d (%s)", c.etcdPort, time.Since(began).Round(time.Millisecond))
	for i := 1; i <= o.Nodes; i++ {
		n := &node{name: fmt.Sprintf("node%d", i), dir: filepath.Join(c.Dir, fmt.Sprintf("node%d", i))}
		c.nodes = append(c.nodes, n)
	}
	if err := c.bootstrapNodes(ctx); err != nil {
		return nil, err
	}
	leader, _ := c.Leader(ctx)
	c.logf("cluster %s healthy in %s: leader %s, URL %s", c.Scope, time.Since(began).Round(time.Millisecond), leader, c.redactedURL())
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Log != nil {
		fmt.Fprintf(c.opts.Log, "patroni: "+format+"\n", args...)
	}
}

// postgresBinDir is the project's PostgreSQL (pgcluster.BinDir, as
// scripts/pg finds it), which must have pg_rewind too.
func postgresBinDir() (string, error) {
	d, err := pgcluster.BinDir()
	if err != nil {
		return "", fmt.Errorf("patroni: %w", err)
	}
	if st, err := os.Stat(filepath.Join(d, "pg_rewind")); err != nil || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("patroni: no pg_rewind in %s: Patroni needs it (use_pg_rewind)", d)
	}
	return d, nil
}

func secret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// makeDir creates Dir and, as root, hands it to 'postgres', which runs
// Patroni and PostgreSQL (PostgreSQL refuses to run as root).
func (c *Cluster) makeDir() error {
	var err error
	if c.opts.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "hitcounter-ha-"); err != nil {
			return err
		}
		c.rmDir = true
	} else {
		if c.Dir, err = filepath.Abs(c.opts.Dir); err != nil {
			return err
		}
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return errors.New("patroni: running as root needs a 'postgres' user to run PostgreSQL (Debian's postgresql package creates it)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
	if err := os.Chown(c.Dir, uid, gid); err != nil {
		return err
	}
	// The folders above Dir must let 'postgres' through, or initdb fails
	// with a puzzling "permission denied" deep in Patroni's log.
	for d := filepath.Dir(c.Dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		bit := os.FileMode(0o001)
		if int(sys.Uid) == uid {
			bit = 0o100
		} else if int(sys.Gid) == gid {
			bit = 0o010
		}
		if st.Mode().Perm()&bit == 0 {
			return fmt.Errorf("patroni: the 'postgres' user cannot reach %s (%s is %s): choose another Dir or chmod o+x it", c.Dir, d, st.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// mkdirFor makes a folder inside Dir owned by the user that writes it.
func (c *Cluster) mkdirFor(dir string, postgres bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if postgres && c.cred != nil {
		return os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid))
	}
	return nil
}

// watchdogScript runs beside the caller and waits for its stdin (a pipe from
// the caller) to close: when the caller dies without Stop (a test timeout,
// a panic), the parent-death signal ends etcd and Patroni, but PostgreSQL,
// which Patroni detached with setsid, would live on. The script kills every
// process whose command line names the cluster's folder, or whose title
// names the cluster (PostgreSQL's backends), then removes a temporary Dir.
// Dir and scope come in the environment so that the script's own command
// line does not match.
const watchdogScript = `while read -r _; do :; done
for round in 1 2 3 4 5 6 7 8 9 10; do
  found=
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case $cmd in
      *"$HC_DIR/"*|"postgres: $HC_SCOPE: "*) kill -9 "$pid" 2>/dev/null && found=1 ;;
    esac
  done
  [ -z "$found" ] && break
  sleep 0.3
done
if [ -n "$HC_RMDIR" ]; then rm -rf -- "$HC_DIR"; fi
`

func (c *Cluster) startWatchdog() error {
	cmd := exec.Command("/bin/sh", "-c", watchdogScript)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HC_DIR=" + c.Dir, "HC_SCOPE=" + c.Scope}
	if c.rmDir {
		cmd.Env = append(cmd.Env, "HC_RMDIR=1")
	}
	// Its own process group, so a Ctrl-C to the caller's group does not
	// end it before it has done its work.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.watchdog, c.wdIn = cmd, in
	return nil
}

// spawn starts argv in a process group of its own (so that kill ends it with
// its helpers), with output appended to logPath, a SIGKILL should the caller
// die, and a clean environment (PATRONI_* and ETCD_* variables would
// override the configuration).
func (c *Cluster) spawn(logPath string, asPostgres bool, home string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	from, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = home
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8", "LC_ALL=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if asPostgres {
		cmd.SysProcAttr.Credential = c.cred
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), logPath: logPath, logFrom: from}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// portPicked, when set (by a test), sees every port freePort hands out, and
// may take it to force the retry path.
var portPicked func(port int)

// freePort draws a port in [portLow, portHigh) that is not in used and that
// we could bind just now; the process may still lose it, hence the retries.
func freePort(used map[int]bool) (int, error) {
	for range 200 {
		n, err := rand.Int(rand.Reader, big.NewInt(portHigh-portLow))
		if err != nil {
			return 0, err
		}
		port := portLow + int(n.Int64())
		if used[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		used[port] = true
		if portPicked != nil {
			portPicked(port)
		}
		return port, nil
	}
	return 0, errors.New("patroni: no free port found")
}

func (c *Cluster) usedPorts() map[int]bool {
	used := map[int]bool{c.etcdPort: true}
	for _, n := range c.nodes {
		used[n.pgPort], used[n.apiPort] = true, true
	}
	return used
}

// startEtcd starts the single etcd member and waits until it reports healthy.
func (c *Cluster) startEtcd(ctx context.Context) error {
	dir := filepath.Join(c.Dir, "etcd")
	logPath := filepath.Join(c.Dir, "etcd.log")
	for try := 1; ; try++ {
		used := c.usedPorts()
		client, err := freePort(used)
		if err != nil {
			return err
		}
		peer, err := freePort(used)
		if err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := c.mkdirFor(dir, false); err != nil {
			return err
		}
		clientURL, peerURL := fmt.Sprintf("http://127.0.0.1:%d", client), fmt.Sprintf("http://127.0.0.1:%d", peer)
		p, err := c.spawn(logPath, false, dir, c.etcdBin,
			"--name", "etcd0", "--data-dir", dir,
			"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", "etcd0="+peerURL, "--initial-cluster-state", "new",
			"--initial-cluster-token", c.Scope,
			"--logger", "zap", "--log-outputs", "stderr",
			// Patroni rewrites its keys every loop_wait: keep the history
			// (and etcd's memory) small over a long fault suite.
			"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000",
			"--snapshot-count", "5000")
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.etcd, c.etcdPort = p, client
		c.mu.Unlock()
		err = poll(ctx, 30*time.Second, func() (bool, error) {
			if p.exited() {
				return false, errors.New("etcd exited")
			}
			return c.etcdHealthy(ctx), nil
		})
		if err == nil {
			return nil
		}
		_ = p.kill()
		if try < startTries && p.bindFailed() {
			c.logf("etcd: port %d or %d was taken, trying new ones", client, peer)
			continue
		}
		return fmt.Errorf("patroni: start etcd: %v\n%s", err, tail(p.log(), 30))
	}
}

// poll calls cond every pollEvery until it is true or fails, ctx ends or
// limit passes.
func poll(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func (c *Cluster) etcdHealthy(ctx context.Context) bool {
	var h struct {
		Health string `json:"health"`
	}
	err := c.getJSON(ctx, fmt.Sprintf("http://127.0.0.1:%d/health", c.etcdPort), &h)
	return err == nil && h.Health == "true"
}

// launch writes n's configuration and starts its Patroni.
func (c *Cluster) launch(n *node) error {
	if err := c.mkdirFor(n.dir, true); err != nil {
		return err
	}
	// JSON, which Patroni's YAML parser reads.
	conf, err := json.MarshalIndent(c.nodeConfig(n), "", "  ")
	if err != nil {
		return err
	}
	confPath := filepath.Join(n.dir, "patroni.yml")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return err
	}
	if c.cred != nil {
		if err := os.Chown(confPath, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	p, err := c.spawn(n.logPath(), true, n.dir, c.patroniBin, confPath)
	if err != nil {
		return err
	}
	c.mu.Lock()
	n.patroni = p
	c.mu.Unlock()
	return nil
}

// bootstrapNodes starts every node at once (one wins the initialize key
// and runs initdb, the others copy it) and waits until the cluster is
// healthy. When a node's port was taken, all nodes start again from
// nothing on new ports: a node killed in the middle of its bootstrap could
// leave the initialize key behind with no cluster to join.
func (c *Cluster) bootstrapNodes(ctx context.Context) error {
	for try := 1; ; try++ {
		c.mu.Lock()
		for _, n := range c.nodes {
			n.pgPort, n.apiPort = 0, 0
		}
		var err error
		for _, n := range c.nodes {
			used := c.usedPorts()
			if n.pgPort, err = freePort(used); err != nil {
				break
			}
			if n.apiPort, err = freePort(used); err != nil {
				break
			}
		}
		c.mu.Unlock()
		if err != nil {
			return err
		}
		for _, n := range c.nodes {
			if err := c.launch(n); err != nil {
				return err
			}
		}
		err = c.waitBootstrap(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errPortTaken) || try == startTries {
			return err
		}
		c.logf("%v: starting all nodes again on new ports", err)
		for _, n := range c.nodes {
			if err := c.killNode(n); err != nil {
				return err
			}
			if err := os.RemoveAll(n.dataDir()); err != nil {
				return err
			}
		}
		if err := c.etcdDeletePrefix(ctx, c.basePath()+"/"); err != nil {
			return err
		}
	}
}

var errPortTaken = errors.New("port taken")

// waitBootstrap waits until the cluster is healthy; it returns errPortTaken
// as soon as a node's log says one of its ports was taken.
func (c *Cluster) waitBootstrap(ctx context.Context) error {
	for {
		for _, n := range c.nodes {
			p := c.proc(n)
			if p.bindFailed() {
				return fmt.Errorf("%s: %w (PostgreSQL %d or REST API %d)", n.name, errPortTaken, n.pgPort, n.apiPort)
			}
			if p.exited() {
				return fmt.Errorf("patroni: %s exited during bootstrap:\n%s", n.name, tail(p.log(), 40))
			}
		}
		err := c.health(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("patroni: cluster not healthy before the deadline: %v\n%s", err, c.logTails(15))
		case <-time.After(pollEvery):
		}
	}
}

func (c *Cluster) logTails(lines int) string {
	var b strings.Builder
	for _, n := range c.nodes {
		if p := c.proc(n); p != nil {
			fmt.Fprintf(&b, "--- %s (%s)\n%s\n", n.name, n.logPath(), tail(p.log(), lines))
		}
	}
	return b.String()
}

func (c *Cluster) proc(n *node) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.patroni
}

func (c *Cluster) node(name string) (*node, error) {
	for _, n := range c.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("patroni: no node %q", name)
}

// Nodes are the nodes' names (node1, node2, …), which are also their
// application_name on the primary.
func (c *Cluster) Nodes() []string {
	var names []string
	for _, n := range c.nodes {
		names = append(names, n.name)
	}
	return names
}

// CreateDatabase creates database name on the primary and returns its URL
// once every node has it: pgx stops at the first host that says a
// database does not exist, so a standby that has not replayed the
// creation yet would fail the multi-host URL's connects.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	_, err = conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
	conn.Close(context.Background())
	if err != nil {
		return "", err
	}
	for _, n := range c.Nodes() {
		var last error
		err := poll(ctx, 30*time.Second, func() (bool, error) {
			conn, err := pgx.Connect(ctx, c.NodeURL(n, name))
			if err == nil {
				conn.Close(context.Background())
			}
			last = err
			return err == nil, nil
		})
		if err != nil {
			return "", fmt.Errorf("patroni: database %s on %s: %w (%v)", name, n, err, last)
		}
	}
	return c.URL(name), nil
}

// URL is the URL for the app: every node, of which pgx takes the first that
// accepts writes (target_session_attrs=read-write), so a reconnect after a
// failover finds the new primary.
func (c *Cluster) URL(db string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var hosts []string
	for _, n := range c.nodes {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", n.pgPort))
	}
	return c.url(strings.Join(hosts, ","), db) + "&target_session_attrs=read-write"
}

// NodeURL is the URL of node name's PostgreSQL alone, whatever its role ("" if
// there is no such node).
func (c *Cluster) NodeURL(name, db string) string {
	n, err := c.node(name)
	if err != nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.url(fmt.Sprintf("127.0.0.1:%d", n.pgPort), db)
}

func (c *Cluster) url(hosts, db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable",
		url.UserPassword(c.User, c.Password).String(), hosts, url.PathEscape(db))
}

func (c *Cluster) redactedURL() string {
	return strings.Replace(c.URL("postgres"), c.Password, "xxxxx", 1)
}

func (c *Cluster) apiURL(n *node, path string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("http://127.0.0.1:%d%s", n.apiPort, path)
}

func (c *Cluster) getJSON(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// etcdGet reads key from etcd through its v3 JSON gateway ("" if absent).
func (c *Cluster) etcdGet(ctx context.Context, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	body, _ := json.Marshal(map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))})
	c.mu.Lock()
	u := fmt.Sprintf("http://127.0.0.1:%d/v3/kv/range", c.etcdPort)
	c.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("patroni: read %s from etcd: %w", key, err)
	}
	defer resp.Body.Close()
	var r struct {
		Kvs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", fmt.Errorf("patroni: read %s from etcd: %w", key, err)
	}
	if len(r.Kvs) == 0 {
		return "", nil
	}
	v, err := base64.StdEncoding.DecodeString(r.Kvs[0].Value)
	return string(v), err
}

// etcdDeletePrefix removes every key that starts with prefix.
func (c *Cluster) etcdDeletePrefix(ctx context.Context, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	end := []byte(prefix)
	end[len(end)-1]++ // the range [prefix, end) is everything under prefix
	body, _ := json.Marshal(map[string]string{
		"key":       base64.StdEncoding.EncodeToString([]byte(prefix)),
		"range_end": base64.StdEncoding.EncodeToString(end),
	})
	c.mu.Lock()
	u := fmt.Sprintf("http://127.0.0.1:%d/v3/kv/deleterange", c.etcdPort)
	c.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("patroni: delete %s* from etcd: %w", prefix, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("patroni: delete %s* from etcd: %s", prefix, resp.Status)
	}
	return nil
}

func (c *Cluster) key(name string) string { return c.basePath() + "/" + name }

// Leader is the node holding the leader key in etcd: the primary, or the node
// whose key has not yet expired after it died (up to TTL).
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	v, err := c.etcdGet(ctx, c.key("leader"))
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", errors.New("patroni: no leader")
	}
	return v, nil
}

// SyncStandby is the synchronous standby named in the DCS sync key, the only
// node Patroni will promote in synchronous mode.
func (c *Cluster) SyncStandby(ctx context.Context) (string, error) {
	v, err := c.etcdGet(ctx, c.key("sync"))
	if err != nil {
		return "", err
	}
	var s struct {
		Leader      string  `json:"leader"`
		SyncStandby *string `json:"sync_standby"`
	}
	if v != "" {
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			return "", fmt.Errorf("patroni: sync key %q: %w", v, err)
		}
	}
	if s.SyncStandby == nil || *s.SyncStandby == "" {
		return "", errors.New("patroni: no synchronous standby")
	}
	return *s.SyncStandby, nil
}

// status is the part of Patroni's GET /patroni that health needs.
type status struct {
	State       string      `json:"state"`
	Role        string      `json:"role"`
	Replication []walSender `json:"replication"` // the primary's pg_stat_replication
}

type walSender struct {
	ApplicationName string `json:"application_name"`
	State           string `json:"state"`
	SyncState       string `json:"sync_state"`
}

// WaitHealthy waits until every node's Patroni runs PostgreSQL, one node is
// leader and primary, every other node streams from it, the DCS names a
// synchronous standby that the primary confirms as sync, and User can
// commit on the leader. It returns what was still missing when ctx ended.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	for {
		err := c.health(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("patroni: cluster not healthy: %v", err)
		case <-time.After(pollEvery):
		}
	}
}

// health is nil when the cluster is healthy, else the first thing that is not.
func (c *Cluster) health(ctx context.Context) error {
	statuses := map[string]status{}
	for _, n := range c.nodes {
		if p := c.proc(n); p == nil || p.exited() {
			return fmt.Errorf("%s: Patroni is not running", n.name)
		}
		var st status
		if err := c.getJSON(ctx, c.apiURL(n, "/patroni"), &st); err != nil {
			return fmt.Errorf("%s: %v", n.name, err)
		}
		if st.State != "running" {
			return fmt.Errorf("%s: PostgreSQL is %q", n.name, st.State)
		}
		statuses[n.name] = st
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	ls, ok := statuses[leader]
	if !ok {
		return fmt.Errorf("leader key names %q, not one of our nodes", leader)
	}
	if ls.Role != "master" && ls.Role != "primary" {
		return fmt.Errorf("leader %s is still %s", leader, ls.Role)
	}
	sync, err := c.SyncStandby(ctx)
	if err != nil {
		return err
	}
	for _, n := range c.nodes {
		if n.name == leader {
			continue
		}
		if r := statuses[n.name].Role; r != "replica" {
			return fmt.Errorf("%s is %s, not a replica", n.name, r)
		}
		i := slices.IndexFunc(ls.Replication, func(r walSender) bool { return r.ApplicationName == n.name })
		if i < 0 || ls.Replication[i].State != "streaming" {
			return fmt.Errorf("%s is not streaming from %s", n.name, leader)
		}
		if n.name == sync && ls.Replication[i].SyncState != "sync" {
			return fmt.Errorf("%s is the DCS's sync standby but %s's sync_state for it is %q", n.name, leader, ls.Replication[i].SyncState)
		}
	}
	// A COMMIT waits for the synchronous standby only if its transaction
	// wrote WAL (an xid alone is not enough): a transactional logical
	// message writes WAL, and no table. Its COMMIT proves the primary is
	// writable and its standby confirms.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.NodeURL(leader, "postgres"))
	if err != nil {
		return fmt.Errorf("connect to leader %s: %v", leader, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "select pg_catalog.pg_logical_emit_message(true, 'hitcounter', 'healthy')"); err != nil {
		return fmt.Errorf("commit on leader %s: %v", leader, err)
	}
	return nil
}

// KillNode makes node name's machine vanish: SIGKILL to its Patroni and to
// its PostgreSQL (postmaster and every child), with no chance to hand over.
func (c *Cluster) KillNode(name string) error {
	n, err := c.node(name)
	if err != nil {
		return err
	}
	return c.killNode(n)
}

func (c *Cluster) killNode(n *node) error {
	c.mu.Lock()
	p := n.patroni
	n.patroni = nil
	c.mu.Unlock()
	var errs []error
	if p != nil {
		errs = append(errs, p.kill())
	}
	// Everything that names the node's folder (the postmaster, and a
	// pg_rewind, pg_basebackup or single-user postgres Patroni was running)
	// and all its descendants (backends, walsenders, …).
	prefix := n.dir + "/"
	errs = append(errs, killTrees(func(pi procInfo) bool { return strings.Contains(pi.cmdline, prefix) }))
	return errors.Join(errs...)
}

// StartNode starts node name's Patroni again after KillNode, on the same
// ports and data. Patroni decides how it rejoins (crash recovery, then
// pg_rewind, or a fresh copy); StartNode returns once its REST API answers:
// use WaitHealthy to wait until it streams.
func (c *Cluster) StartNode(ctx context.Context, name string) error {
	n, err := c.node(name)
	if err != nil {
		return err
	}
	if p := c.proc(n); p != nil && !p.exited() {
		return fmt.Errorf("patroni: %s is running", name)
	}
	if err := c.launch(n); err != nil {
		return err
	}
	p := c.proc(n)
	err = poll(ctx, time.Minute, func() (bool, error) {
		if p.exited() || p.bindFailed() {
			return false, fmt.Errorf("patroni: %s failed to start:\n%s", name, tail(p.log(), 30))
		}
		var st status
		return c.getJSON(ctx, c.apiURL(n, "/patroni"), &st) == nil, nil
	})
	if err != nil {
		_ = c.killNode(n)
		return fmt.Errorf("patroni: start %s: %w", name, err)
	}
	return nil
}

// CrashPostgres kills node name's postmaster and all its children with
// SIGKILL, leaving Patroni running to notice (with primary_start_timeout 0
// a crashed primary fails over rather than restarting in place).
func (c *Cluster) CrashPostgres(name string) error {
	n, err := c.node(name)
	if err != nil {
		return err
	}
	data := n.dataDir()
	found := false
	err = killTrees(func(pi procInfo) bool {
		// The postmaster: Patroni starts it as "postgres -D DATA ...".
		m := pi.comm == "postgres" && strings.Contains(pi.cmdline, " -D "+data+" ")
		found = found || m
		return m
	})
	if err == nil && !found {
		err = fmt.Errorf("patroni: %s has no running postmaster", name)
	}
	return err
}

// Switchover hands the primary role from the current leader to node to (""
// lets Patroni choose; in synchronous mode it must be the synchronous
// standby) through Patroni's REST API, and returns once another node holds
// the leader key.
func (c *Cluster) Switchover(ctx context.Context, to string) error {
	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	ln, err := c.node(leader)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"leader": leader, "candidate": to})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.apiURL(ln, "/switchover"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("patroni: switchover: %w", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// 200: done; 503 "status unknown": Patroni stopped watching, the leader
	// key tells. Anything else (412 and its reason) is a refusal.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return fmt.Errorf("patroni: switchover from %s refused: %s %s", leader, resp.Status, strings.TrimSpace(string(msg)))
	}
	err = poll(ctx, 2*c.ttl+time.Minute, func() (bool, error) {
		l, err := c.Leader(ctx)
		return err == nil && l != leader && (to == "" || l == to), nil
	})
	if err != nil {
		return fmt.Errorf("patroni: switchover from %s (%s %s): the leader did not change: %v", leader, resp.Status, strings.TrimSpace(string(msg)), err)
	}
	return nil
}

// StopWalsender freezes (SIGSTOP) the leader's walsender(s) for standby name,
// found in pg_stat_replication by application_name, so that, when name is
// the synchronous standby, every COMMIT on the leader hangs waiting for it.
// resume sends SIGCONT to those still alive.
func (c *Cluster) StopWalsender(name string) (resume func() error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, c.NodeURL(leader, "postgres"))
	if err != nil {
		return nil, fmt.Errorf("patroni: connect to leader %s: %w", leader, err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "select pid from pg_catalog.pg_stat_replication where application_name = $1", name)
	if err != nil {
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("patroni: %s has no walsender for %s", leader, name)
	}
	var stopped []int
	for _, pid := range pids {
		if err := syscall.Kill(int(pid), syscall.SIGSTOP); err != nil {
			return nil, errors.Join(fmt.Errorf("patroni: SIGSTOP walsender %d: %w", pid, err), cont(stopped))
		}
		stopped = append(stopped, int(pid))
	}
	return func() error { return cont(stopped) }, nil
}

func cont(pids []int) error {
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("patroni: SIGCONT %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// Stop kills every process of the cluster (nodes first, then etcd, then
// anything else that names the cluster's folder or cluster_name), waits until
// they are gone, and removes Dir if Start made it. Safe to call more than
// once, and on a cluster Start gave up on.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	etcd := c.etcd
	c.mu.Unlock()
	for _, n := range c.nodes {
		if err := c.killNode(n); err != nil {
			c.logf("stop %s: %v", n.name, err)
		}
	}
	if etcd != nil {
		if err := etcd.kill(); err != nil {
			c.logf("stop etcd: %v", err)
		}
	}
	if c.Dir != "" {
		prefix, title := c.Dir+"/", "postgres: "+c.Scope+": "
		if err := killTrees(func(pi procInfo) bool {
			return strings.Contains(pi.cmdline, prefix) || strings.HasPrefix(pi.cmdline, title)
		}); err != nil {
			c.logf("stop: %v", err)
		}
	}
	if c.watchdog != nil {
		c.wdIn.Close() // it sweeps once more (finding nothing) and exits
		done := make(chan struct{})
		go func() { _ = c.watchdog.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-c.watchdog.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if c.rmDir {
		if err := os.RemoveAll(c.Dir); err != nil {
			c.logf("stop: %v", err)
		}
	}
}

// procInfo is one process as /proc shows it.
type procInfo struct {
	pid, ppid int
	state     byte   // R, S, T, Z, …
	comm      string // executable name, as in /proc/PID/stat
	cmdline   string // arguments joined by spaces (or the process title)
}

// processes lists every live (not zombie) process.
func processes() map[int]procInfo {
	ents, _ := os.ReadDir("/proc")
	ps := make(map[int]procInfo, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
		open, close := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(string(stat[close+1:]))
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		ps[pid] = procInfo{
			pid: pid, ppid: ppid, state: f[0][0],
			comm:    string(stat[open+1 : close]),
			cmdline: strings.TrimSpace(string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))),
		}
	}
	return ps
}

// killTrees kills every process match selects, with all its descendants, and
// waits until they are gone. It freezes them (SIGSTOP) first and looks again,
// so that a postmaster cannot fork a child that escapes between the look and
// the kill.
func killTrees(match func(procInfo) bool) error {
	self := os.Getpid()
	frozen := map[int]bool{}
	for range 20 {
		ps := processes()
		grew := false
		for pid, pi := range ps {
			if frozen[pid] || pid == self {
				continue
			}
			if match(pi) || frozen[pi.ppid] {
				_ = syscall.Kill(pid, syscall.SIGSTOP)
				frozen[pid] = true
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	for pid := range frozen {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps := processes()
		var left []int
		for pid := range frozen {
			if _, alive := ps[pid]; alive {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("patroni: processes %v still alive 10s after SIGKILL", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
