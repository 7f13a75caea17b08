package patroni

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// overlaid are the settings nodeConfig may change in the template, each
// for a reason a loopback test machine has (see nodeConfig). Anything else
// that differs is a copy drifting from production's settings.
var overlaid = []string{
	"scope", // unique per run
	"name",  // per node, as production's PATRONI_NAME
	"restapi.listen", "restapi.connect_address",
	"etcd3.hosts",
	"postgresql.listen", "postgresql.connect_address",
	"postgresql.data_dir", "postgresql.bin_dir", "postgresql.pgpass",
	"postgresql.authentication.superuser.password",
	"postgresql.authentication.replication.password",
	"postgresql.authentication.rewind.password",
	"postgresql.parameters.unix_socket_directories",
	// small memory for three servers on 2 cores
	"postgresql.parameters.shared_buffers", "postgresql.parameters.work_mem",
	"postgresql.parameters.maintenance_work_mem",
	"postgresql.parameters.min_wal_size", "postgresql.parameters.max_wal_size",
	"postgresql.parameters.log_checkpoints",
	"postgresql.pg_hba", "bootstrap.pg_hba", // loopback addresses
	"watchdog.mode",
	"postgresql.basebackup",
	"postgresql.remove_data_directory_on_rewind_failure",
	"postgresql.remove_data_directory_on_diverged_timelines",
}

// testCluster is a Cluster that has loaded tmpl and placed its nodes on
// made-up ports, without starting anything.
func testCluster(t *testing.T, tmpl map[string]any, o Options) *Cluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	c := &Cluster{opts: o, Dir: t.TempDir(), Scope: "hc-test", binDir: "/usr/lib/postgresql/15/bin", etcdPort: 2379}
	if err := c.useTemplate(tmpl); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= o.Nodes; i++ {
		c.nodes = append(c.nodes, &node{
			name: fmt.Sprintf("node%d", i), dir: filepath.Join(c.Dir, fmt.Sprintf("node%d", i)),
			pgPort: 20000 + i, apiPort: 21000 + i,
		})
	}
	return c
}

func mustTemplate(t *testing.T) map[string]any {
	t.Helper()
	tmpl, err := loadTemplate()
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// TestTemplate checks that deploy/patroni.yml has what the fault tests and
// docs/ha.md rely on: synchronous strict mode, failover instead of an
// in-place restart, pg_rewind (with what it needs), slots.
func TestTemplate(t *testing.T) {
	tmpl := mustTemplate(t)
	for _, w := range []struct {
		path string
		want any
	}{
		{"bootstrap.dcs.synchronous_mode", true},
		{"bootstrap.dcs.synchronous_mode_strict", true},
		{"bootstrap.dcs.primary_start_timeout", 0},
		{"bootstrap.dcs.postgresql.use_pg_rewind", true},
		{"bootstrap.dcs.postgresql.use_slots", true},
		{"bootstrap.dcs.postgresql.parameters.wal_log_hints", "on"},
		{"bootstrap.dcs.postgresql.parameters.synchronous_commit", "on"},
		{"watchdog.mode", "automatic"},
	} {
		if got, ok := get(tmpl, strings.Split(w.path, ".")...); !ok || got != w.want {
			t.Errorf("%s: %s is %#v, want %#v", TemplateFile, w.path, got, w.want)
		}
	}
	c := testCluster(t, tmpl, Options{})
	if c.loopWait+2*c.retryTimeout > c.ttl {
		t.Errorf("timers %s/%s/%s break loop_wait + 2*retry_timeout <= ttl", c.ttl, c.loopWait, c.retryTimeout)
	}
}

// TestNodeConfig checks that each node's configuration is the template
// with only the overlaid settings changed: the DCS section (timers, modes,
// cluster-wide parameters) as is, unless Options sets the timers.
func TestNodeConfig(t *testing.T) {
	tmpl := mustTemplate(t)
	orig := deepCopy(tmpl)
	c := testCluster(t, tmpl, Options{})
	dcs, _ := get(tmpl, "bootstrap", "dcs")
	dcsParams, _ := get(tmpl, "bootstrap", "dcs", "postgresql", "parameters")

	perNode := map[string]map[any]string{} // path → value → node, for values that must differ
	for _, n := range c.nodes {
		cfg := c.nodeConfig(n)
		if _, err := json.Marshal(cfg); err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
		for _, p := range diffPaths(tmpl, cfg, "") {
			if !slices.Contains(overlaid, p) {
				show := func(m map[string]any) string {
					if v, ok := get(m, strings.Split(p, ".")...); ok {
						return fmt.Sprintf("%#v", v)
					}
					return "absent"
				}
				t.Errorf("%s: %s is %s, in the template %s: not a setting the harness may change", n.name, p, show(cfg), show(tmpl))
			}
		}
		// With no timers in Options, the DCS section is the template's,
		// timers included.
		if got, _ := get(cfg, "bootstrap", "dcs"); !reflect.DeepEqual(got, dcs) {
			t.Errorf("%s: bootstrap.dcs differs from the template's: %v", n.name, diffPaths(dcs, got, "bootstrap.dcs"))
		}
		for _, p := range []string{"synchronous_mode", "synchronous_mode_strict", "primary_start_timeout", "ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover"} {
			want, wok := get(tmpl, "bootstrap", "dcs", p)
			got, gok := get(cfg, "bootstrap", "dcs", p)
			if !wok || !gok || got != want {
				t.Errorf("%s: bootstrap.dcs.%s is %#v, the template's %#v", n.name, p, got, want)
			}
		}
		// Patroni lays a node's local parameters over the cluster-wide
		// ones: none may shadow the template's.
		local, _ := get(cfg, "postgresql", "parameters")
		for k := range local.(map[string]any) {
			if _, ok := dcsParams.(map[string]any)[k]; ok {
				t.Errorf("%s: postgresql.parameters.%s shadows the template's cluster-wide setting", n.name, k)
			}
		}
		// Nor may the local postgresql section override the DCS one's.
		for _, k := range []string{"use_pg_rewind", "use_slots"} {
			if v, ok := get(cfg, "postgresql", k); ok {
				t.Errorf("%s: postgresql.%s is set locally (%v)", n.name, k, v)
			}
		}
		if got, _ := get(cfg, "watchdog", "mode"); got != "off" {
			t.Errorf("%s: watchdog.mode is %v, want off", n.name, got)
		}
		checkHBA(t, n.name, tmpl, cfg)
		for _, p := range []string{"name", "restapi.listen", "postgresql.listen", "postgresql.data_dir", "postgresql.pgpass", "postgresql.parameters.unix_socket_directories"} {
			v, _ := get(cfg, strings.Split(p, ".")...)
			if perNode[p] == nil {
				perNode[p] = map[any]string{}
			}
			if other, dup := perNode[p][v]; dup {
				t.Errorf("%s and %s share %s %v", other, n.name, p, v)
			}
			perNode[p][v] = n.name
		}
		if v, _ := get(cfg, "postgresql", "data_dir"); !strings.HasPrefix(v.(string), n.dir+"/") {
			t.Errorf("%s: data_dir %v is not in the node's folder %s", n.name, v, n.dir)
		}
	}
	if !reflect.DeepEqual(tmpl, orig) {
		t.Errorf("nodeConfig changed the template: %v", diffPaths(orig, tmpl, ""))
	}
	if su, _ := get(tmpl, "postgresql", "authentication", "superuser", "username"); c.User != su {
		t.Errorf("User is %q, the template's superuser %v", c.User, su)
	}
	if c.key("leader") != "/service/hc-test/leader" {
		t.Errorf("leader key %s", c.key("leader"))
	}

	// Timers set in Options replace the template's, and nothing else in
	// the DCS section changes.
	c = testCluster(t, tmpl, Options{TTL: 20 * time.Second, LoopWait: 3 * time.Second, RetryTimeout: 5 * time.Second})
	cfg := c.nodeConfig(c.nodes[0])
	got, _ := get(cfg, "bootstrap", "dcs")
	if d := diffPaths(dcs, got, ""); !slices.Equal(d, []string{"loop_wait", "retry_timeout", "ttl"}) {
		t.Errorf("with timers in Options, bootstrap.dcs differs from the template's in %v, want just the timers", d)
	}
	for k, want := range map[string]int{"ttl": 20, "loop_wait": 3, "retry_timeout": 5} {
		if v, _ := get(cfg, "bootstrap", "dcs", k); v != want {
			t.Errorf("Options' %s: bootstrap.dcs.%s is %v, want %d", k, k, v, want)
		}
	}
	if c.ttl != 20*time.Second {
		t.Errorf("ttl in effect %s, want Options' 20s", c.ttl)
	}
}

// TestNodeConfigFollowsTemplate changes the template and checks that the
// nodes' configuration follows: nothing is a copy of its values.
func TestNodeConfigFollowsTemplate(t *testing.T) {
	tmpl := mustTemplate(t)
	setPath(tmpl, false, "bootstrap", "dcs", "synchronous_mode_strict")
	setPath(tmpl, 300, "bootstrap", "dcs", "primary_start_timeout")
	setPath(tmpl, 30, "bootstrap", "dcs", "ttl")
	setPath(tmpl, 10, "bootstrap", "dcs", "loop_wait")
	setPath(tmpl, 10, "bootstrap", "dcs", "retry_timeout")
	setPath(tmpl, false, "bootstrap", "dcs", "postgresql", "use_pg_rewind")
	setPath(tmpl, 128, "bootstrap", "dcs", "postgresql", "parameters", "max_locks_per_transaction")
	setPath(tmpl, "admin", "postgresql", "authentication", "superuser", "username")
	setPath(tmpl, []any{"host all all 192.168.1.0 255.255.255.0 md5", "hostssl all admin samenet cert"}, "postgresql", "pg_hba")
	setPath(tmpl, "/elsewhere", "namespace")
	c := testCluster(t, tmpl, Options{})
	cfg := c.nodeConfig(c.nodes[1])
	for _, w := range []struct {
		path string
		want any
	}{
		{"bootstrap.dcs.synchronous_mode_strict", false},
		{"bootstrap.dcs.primary_start_timeout", 300},
		{"bootstrap.dcs.ttl", 30},
		{"bootstrap.dcs.postgresql.use_pg_rewind", false},
		{"bootstrap.dcs.postgresql.parameters.max_locks_per_transaction", 128},
		{"postgresql.authentication.superuser.username", "admin"},
		{"namespace", "/elsewhere"},
	} {
		if got, _ := get(cfg, strings.Split(w.path, ".")...); got != w.want {
			t.Errorf("template's %s is %#v, node's %#v", w.path, w.want, got)
		}
	}
	if c.User != "admin" || c.ttl != 30*time.Second || c.loopWait != 10*time.Second || c.retryTimeout != 10*time.Second {
		t.Errorf("user %q, timers %s/%s/%s: want the template's admin, 30s/10s/10s", c.User, c.ttl, c.loopWait, c.retryTimeout)
	}
	if c.key("leader") != "/elsewhere/hc-test/leader" {
		t.Errorf("leader key %s, want it under the template's namespace", c.key("leader"))
	}
	hba, _ := get(cfg, "postgresql", "pg_hba")
	if want := []any{"host all all 127.0.0.1/32 md5", "hostssl all admin 127.0.0.1/32 cert"}; !reflect.DeepEqual(hba, want) {
		t.Errorf("pg_hba %q, want %q", hba, want)
	}

	// Timers that break Patroni's rule are refused.
	setPath(tmpl, 5, "bootstrap", "dcs", "ttl")
	if err := (&Cluster{}).useTemplate(tmpl); err == nil {
		t.Error("a template with ttl 5, loop_wait 10, retry_timeout 10 was accepted")
	}
	// So are Options' timers against the template's.
	if err := (&Cluster{opts: Options{TTL: 30 * time.Second, LoopWait: 25 * time.Second}}).useTemplate(mustTemplate(t)); err == nil {
		t.Error("Options' ttl 30s with loop_wait 25s and the template's retry_timeout were accepted")
	}
}

// checkHBA checks that the node's pg_hba rules are the template's with
// every address loopback.
func checkHBA(t *testing.T, node string, tmpl, cfg map[string]any) {
	t.Helper()
	rules := func(m map[string]any, loopback bool) []string {
		v, _ := get(m, "postgresql", "pg_hba")
		var out []string
		for _, l := range v.([]any) {
			f := strings.Fields(l.(string))
			if f[0] != "local" {
				if loopback && f[3] != "127.0.0.1/32" {
					t.Errorf("%s: pg_hba line %q is not for 127.0.0.1/32", node, l)
				}
				f = slices.Delete(f, 3, 4) // the address
			}
			s := strings.Join(f, " ")
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
	if want, got := rules(tmpl, false), rules(cfg, true); !slices.Equal(got, want) {
		t.Errorf("%s: pg_hba rules without addresses %q, the template's %q", node, got, want)
	}
}

// diffPaths lists the dotted paths of the leaves in which a and b differ
// (lists are leaves), sorted.
func diffPaths(a, b any, at string) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok && !bok {
		if reflect.DeepEqual(a, b) {
			return nil
		}
		return []string{at}
	}
	if !aok && a != nil || !bok && b != nil {
		return []string{at}
	}
	var out []string
	for k := range am {
		out = append(out, diffPaths(am[k], bm[k], strings.TrimPrefix(at+"."+k, "."))...)
	}
	for k := range bm {
		if _, ok := am[k]; !ok {
			out = append(out, diffPaths(nil, bm[k], strings.TrimPrefix(at+"."+k, "."))...)
		}
	}
	slices.Sort(out)
	return out
}

// TestTemplateValidates runs Patroni's own check of deploy/patroni.yml with
// a node's environment, as an operator would (patroni --validate-config).
// It needs only the patroni and PostgreSQL binaries and starts nothing
// that stays.
func TestTemplateValidates(t *testing.T) {
	patroni, err := exec.LookPath("patroni")
	if err != nil {
		t.Skip("patroni not installed (scripts/deps patroni)")
	}
	binDir, err := postgresBinDir()
	if err != nil {
		t.Skip(err)
	}
	path, err := templatePath()
	if err != nil {
		t.Fatal(err)
	}
	// The validator connects to each etcd host and checks that the listen
	// ports are free.
	etcd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command("timeout", "60", patroni, "--validate-config", path)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	node := []string{
		"PATRONI_NAME=db1",
		"PATRONI_RESTAPI_LISTEN=" + free(),
		"PATRONI_RESTAPI_CONNECT_ADDRESS=10.0.0.11:8008", // the validator refuses loopback here
		"PATRONI_POSTGRESQL_LISTEN=" + free(),
		"PATRONI_POSTGRESQL_CONNECT_ADDRESS=10.0.0.11:5432",
		"PATRONI_POSTGRESQL_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"PATRONI_POSTGRESQL_BIN_DIR=" + binDir,
		"PATRONI_ETCD3_HOSTS='" + etcd.Addr().String() + "'",
		"PATRONI_SUPERUSER_PASSWORD=s", "PATRONI_REPLICATION_PASSWORD=r", "PATRONI_REWIND_PASSWORD=w",
	}
	if out, err := run(node...); err != nil || out != "" {
		t.Errorf("patroni --validate-config %s with a node's environment: %v\n%s", TemplateFile, err, out)
	}
	// And the validator does catch a missing per-node value.
	if out, err := run(node[1:]...); err == nil || !strings.Contains(out, "name") {
		t.Errorf("without PATRONI_NAME the validator said %v %q, want a complaint about name", err, out)
	}
}

// TestTemplatePath finds the template from the package's folder (go test),
// the module's root (a command such as faults) and a folder outside the
// module (through this source file's path).
func TestTemplatePath(t *testing.T) {
	want, err := filepath.Abs(filepath.Join("..", "..", filepath.FromSlash(TemplateFile)))
	if err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"package": ".", "root": filepath.Join("..", ".."), "outside": t.TempDir()} {
		dir, _ := filepath.Abs(dir)
		t.Run(name, func(t *testing.T) {
			t.Chdir(dir)
			if got, err := templatePath(); err != nil || got != want {
				t.Errorf("from %s: %q, %v; want %s", dir, got, err, want)
			}
		})
	}
}
