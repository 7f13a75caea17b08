package patroni

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// TemplateFile is the production Patroni configuration, relative to the
// module's root: the cluster runs with its settings, changed only where a
// loopback test machine must differ (see nodeConfig).
const TemplateFile = "deploy/patroni.yml"

// Patroni's own defaults, for settings the template leaves out.
const (
	defaultNamespace = "/service/"
	defaultTTL       = 30 * time.Second
	defaultLoopWait  = 10 * time.Second
	defaultRetry     = 10 * time.Second
)

// templatePath finds TemplateFile: in the first folder with a go.mod
// upwards from the working directory (go test runs in the package's
// folder, a command usually at the module's root), else upwards from this
// source file as it was compiled (a binary run elsewhere, unless built
// with -trimpath).
func templatePath() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, d := range starts {
		for {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				p := filepath.Join(d, filepath.FromSlash(TemplateFile))
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				break // another module's root
			}
			up := filepath.Dir(d)
			if up == d {
				break
			}
			d = up
		}
	}
	return "", fmt.Errorf("patroni: %s not found above the working directory or this package's source: run from within the hitcounter module", TemplateFile)
}

// loadTemplate reads and parses TemplateFile.
func loadTemplate() (map[string]any, error) {
	p, err := templatePath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return parseTemplate(b, p)
}

func parseTemplate(b []byte, name string) (map[string]any, error) {
	var t map[string]any
	if err := yaml.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("patroni: %s: %w", name, err)
	}
	if t == nil {
		return nil, fmt.Errorf("patroni: %s is empty", name)
	}
	// Patroni reads the per-node configuration that nodeConfig writes as
	// JSON, which has no map keys other than strings.
	if err := checkStringKeys(t, ""); err != nil {
		return nil, fmt.Errorf("patroni: %s: %w", name, err)
	}
	return t, nil
}

func checkStringKeys(v any, at string) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if err := checkStringKeys(e, at+"."+k); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkStringKeys(e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case map[any]any:
		return fmt.Errorf("%s: a mapping with non-string keys", strings.TrimPrefix(at, "."))
	}
	return nil
}

// useTemplate takes the cluster's settings from the template t: the DCS
// timers (unless Options sets them), namespace, role names (with new
// passwords), and checks the timers.
func (c *Cluster) useTemplate(t map[string]any) error {
	c.tmpl = t
	secs := func(key string, opt, def time.Duration) (time.Duration, error) {
		if opt != 0 {
			return opt, nil
		}
		v, ok := get(t, "bootstrap", "dcs", key)
		if !ok {
			return def, nil
		}
		n, ok := v.(int)
		if !ok {
			return 0, fmt.Errorf("patroni: %s: bootstrap.dcs.%s is %v, not a number of seconds", TemplateFile, key, v)
		}
		return time.Duration(n) * time.Second, nil
	}
	var err error
	if c.ttl, err = secs("ttl", c.opts.TTL, defaultTTL); err != nil {
		return err
	}
	if c.loopWait, err = secs("loop_wait", c.opts.LoopWait, defaultLoopWait); err != nil {
		return err
	}
	if c.retryTimeout, err = secs("retry_timeout", c.opts.RetryTimeout, defaultRetry); err != nil {
		return err
	}
	if c.ttl%time.Second != 0 || c.loopWait%time.Second != 0 || c.retryTimeout%time.Second != 0 ||
		c.loopWait < time.Second || c.retryTimeout < time.Second || c.loopWait+2*c.retryTimeout > c.ttl {
		return fmt.Errorf("patroni: timers ttl %s, loop_wait %s, retry_timeout %s (Options, else %s): want whole seconds with loop_wait + 2*retry_timeout <= ttl",
			c.ttl, c.loopWait, c.retryTimeout, TemplateFile)
	}

	c.namespace = defaultNamespace
	if v, ok := t["namespace"].(string); ok && v != "" {
		c.namespace = v
	}
	auth, _ := get(t, "postgresql", "authentication")
	roles, _ := auth.(map[string]any)
	c.passwords = map[string]string{}
	for role, v := range roles {
		if m, ok := v.(map[string]any); ok && m["username"] != nil {
			c.passwords[role] = secret()
		}
	}
	su, _ := get(t, "postgresql", "authentication", "superuser", "username")
	if c.User, _ = su.(string); c.User == "" {
		return fmt.Errorf("patroni: %s has no postgresql.authentication.superuser.username", TemplateFile)
	}
	c.Password = c.passwords["superuser"]
	return nil
}

// basePath is where Patroni keeps the cluster's keys in etcd, built as
// Patroni builds it from namespace and scope.
func (c *Cluster) basePath() string { return path.Join("/", c.namespace, c.Scope) }

// smallServer are PostgreSQL settings for three servers (and the tests)
// sharing a 2-core machine. They are local parameters of each node, which
// Patroni lays over the cluster-wide ones; none of them is among the
// template's (TestNodeConfig checks).
var smallServer = map[string]any{
	"shared_buffers":       "32MB",
	"work_mem":             "4MB",
	"maintenance_work_mem": "32MB",
	"min_wal_size":         "64MB",
	"max_wal_size":         "256MB",
	"log_checkpoints":      "off", // PostgreSQL 15's default is on: noise in a test log
}

// nodeConfig is node n's configuration: the template with what must differ
// on a loopback test machine laid over it. Everything else (the DCS
// timers unless Options sets them, synchronous and strict mode,
// primary_start_timeout, pg_rewind, slots, the cluster-wide PostgreSQL
// parameters, initdb's options, role names, tags) is the template's.
func (c *Cluster) nodeConfig(n *node) map[string]any {
	cfg := deepCopy(c.tmpl).(map[string]any)
	set := func(v any, keys ...string) { setPath(cfg, v, keys...) }

	// Unique per run: Stop and the watchdog find PostgreSQL's processes by
	// cluster_name (the scope) in their titles.
	set(c.Scope, "scope")
	set(n.name, "name")
	api := fmt.Sprintf("127.0.0.1:%d", n.apiPort)
	set(api, "restapi", "listen")
	set(api, "restapi", "connect_address")
	set([]any{fmt.Sprintf("127.0.0.1:%d", c.etcdPort)}, "etcd3", "hosts")
	pg := fmt.Sprintf("127.0.0.1:%d", n.pgPort)
	set(pg, "postgresql", "listen")
	set(pg, "postgresql", "connect_address")
	set(n.dataDir(), "postgresql", "data_dir")
	set(c.binDir, "postgresql", "bin_dir")
	// One per node: a shared file would be rewritten under the others.
	set(filepath.Join(n.dir, "pgpass"), "postgresql", "pgpass")
	for role, pw := range c.passwords {
		set(pw, "postgresql", "authentication", role, "password")
	}
	// Patroni connects over TCP; the unix socket lives in the node's own
	// folder so that the nodes (and any other PostgreSQL) do not collide.
	set(n.dir, "postgresql", "parameters", "unix_socket_directories")
	for k, v := range smallServer {
		set(v, "postgresql", "parameters", k)
	}
	// The template's rules, with every network being loopback.
	for _, at := range [][]string{{"postgresql", "pg_hba"}, {"bootstrap", "pg_hba"}} {
		if v, ok := get(cfg, at...); ok {
			set(loopbackHBA(v), at...)
		}
	}
	// No /dev/watchdog for a test, and a reset of the machine is not a
	// way to end one.
	set("off", "watchdog", "mode")
	// A fresh copy does not wait for a spread checkpoint.
	set([]any{map[string]any{"checkpoint": "fast"}}, "postgresql", "basebackup")
	// Throwaway data: a node that cannot be rewound is copied afresh
	// rather than left out.
	set(true, "postgresql", "remove_data_directory_on_rewind_failure")
	set(true, "postgresql", "remove_data_directory_on_diverged_timelines")
	for _, t := range []struct {
		key string
		opt time.Duration
	}{{"ttl", c.opts.TTL}, {"loop_wait", c.opts.LoopWait}, {"retry_timeout", c.opts.RetryTimeout}} {
		if t.opt != 0 {
			set(int(t.opt/time.Second), "bootstrap", "dcs", t.key)
		}
	}
	return cfg
}

// loopbackHBA is pg_hba lines with every host line's address made
// 127.0.0.1/32 (dropping a separate netmask), duplicates removed; local
// lines and anything it does not understand are kept as they are.
func loopbackHBA(v any) any {
	lines, ok := v.([]any)
	if !ok {
		return v
	}
	var out []any
	for _, l := range lines {
		s, ok := l.(string)
		if f := strings.Fields(s); ok && len(f) >= 4 && strings.HasPrefix(f[0], "host") {
			addr := []string{"127.0.0.1/32"}
			rest := f[4:]
			if !strings.Contains(f[3], "/") && net.ParseIP(f[3]) != nil && len(rest) > 0 && net.ParseIP(rest[0]) != nil {
				rest = rest[1:] // "ADDRESS MASK"
			}
			l = strings.Join(slices.Concat(f[:3], addr, rest), " ")
		}
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func get(m map[string]any, keys ...string) (any, bool) {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// setPath sets m[keys[0]][keys[1]]… to v, making (or replacing with) maps
// on the way.
func setPath(m map[string]any, v any, keys ...string) {
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	default:
		return v
	}
}
