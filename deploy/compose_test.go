package deploy

// The production deployment, checked without a Docker engine: compose.yaml
// as the Compose Specification's reference loader (compose-go, the library
// inside `docker compose`) reads it with the values of .env.example; the
// Dockerfile's stages; and the build context, which must compile.

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/hitcounter/hitcounter/db"
	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/migrations"
)

// exampleEnv is .env.example as docker compose reads a .env file.
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{".env.example"})
	if err != nil {
		t.Fatalf("read .env.example: %v", err)
	}
	return env
}

// loadCompose loads compose.yaml as `docker compose` would with env as its
// .env (and no other variables).
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"},
		cli.WithWorkingDirectory(wd),
		cli.WithEnv(vars),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func mustLoadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, env)
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

func environment(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// mount is the service's volume or bind mount at target.
func mount(t *testing.T, s types.ServiceConfig, target string) types.ServiceVolumeConfig {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			return v
		}
	}
	t.Fatalf("service %s mounts nothing at %s", s.Name, target)
	return types.ServiceVolumeConfig{}
}

func dependsOn(t *testing.T, s types.ServiceConfig, on, condition string) types.ServiceDependency {
	t.Helper()
	d, ok := s.DependsOn[on]
	if !ok {
		t.Fatalf("service %s does not depend on %s", s.Name, on)
	}
	if d.Condition != condition {
		t.Errorf("service %s waits for %s to be %q, want %q", s.Name, on, d.Condition, condition)
	}
	return d
}

func sortedNames(p *types.Project) []string {
	names := p.ServiceNames()
	slices.Sort(names)
	return names
}

func TestComposeServices(t *testing.T) {
	p := mustLoadCompose(t, exampleEnv(t))
	if p.Name != "hitcounter" {
		t.Errorf("project name %q, want hitcounter (named volumes are hitcounter_*)", p.Name)
	}
	// Everything, certbot included, starts with a plain `up`: a profile
	// let `up`, `ps` and `down` without it leave renewals stopped or
	// certbot running unseen.
	if got, want := sortedNames(p), []string{"app-role", "backup", "certbot", "db", "migrate", "nginx", "tls-bootstrap", "web"}; !slices.Equal(got, want) {
		t.Errorf("services started by default %v, want %v", got, want)
	}
	if len(p.DisabledServices) != 0 {
		t.Errorf("services off by default %v, want none", p.DisabledServices)
	}
	for _, s := range p.Services {
		if len(s.Profiles) != 0 {
			t.Errorf("service %s has profiles %v, want none", s.Name, s.Profiles)
		}
		// Pinned images: a tag with a version, never latest.
		if s.Image != "" && !regexp.MustCompile(`^[a-z0-9./-]+:v?\d[\w.-]*$`).MatchString(s.Image) {
			t.Errorf("service %s: image %q has no pinned version tag", s.Name, s.Image)
		}
		// Logs rotate, for every service.
		if l := s.Logging; l == nil || l.Driver != "json-file" || l.Options["max-size"] == "" || l.Options["max-file"] == "" {
			t.Errorf("service %s: logging %+v, want json-file with max-size and max-file", s.Name, s.Logging)
		}
	}
	if len(p.Services) == 0 {
		t.Fatal("no services to check")
	}
}

func TestComposeDatabase(t *testing.T) {
	env := exampleEnv(t)
	db := service(t, mustLoadCompose(t, env), "db")
	// The official image, pinned, with pgBackRest added.
	if db.Build == nil || db.Build.Target != "db" {
		t.Errorf("db build %+v, want the Dockerfile's stage db", db.Build)
	}
	dbStage := stage(t, dockerStages(t), "db")
	if dbStage.from != "postgres:17-alpine" || !dbStage.has("RUN apk add --no-cache pgbackrest") {
		t.Errorf("Dockerfile stage db: FROM %s %q, want postgres:17-alpine with apk add pgbackrest", dbStage.from, dbStage.lines)
	}
	if db.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("db restart %q, want unless-stopped", db.Restart)
	}
	// PostgreSQL's shutdown checkpoint, not the engine's 10 s SIGKILL.
	if db.StopGracePeriod == nil || time.Duration(*db.StopGracePeriod) < 30*time.Second {
		t.Errorf("db stop_grace_period %v, want at least 30s", db.StopGracePeriod)
	}
	if db.HealthCheck == nil || len(db.HealthCheck.Test) != 2 || db.HealthCheck.Test[0] != "CMD-SHELL" || !strings.HasPrefix(db.HealthCheck.Test[1], "pg_isready ") {
		t.Fatalf("db healthcheck %v, want pg_isready", db.HealthCheck)
	}
	test := db.HealthCheck.Test[1]
	// Over TCP (not the first start's socket-only server), and writable
	// (not a restored database still replaying the archive).
	for _, want := range []string{"--username=" + env["POSTGRES_USER"], "--dbname=" + env["POSTGRES_DB"], "--host=127.0.0.1", `"$(psql`, "select pg_is_in_recovery()", `= f ]`} {
		if !strings.Contains(test, want) {
			t.Errorf("db healthcheck %q lacks %q", test, want)
		}
	}
	data := mount(t, db, "/var/lib/postgresql/data")
	if data.Type != types.VolumeTypeVolume || data.Source != "pgdata" {
		t.Errorf("db data on %s %q, want the named volume pgdata", data.Type, data.Source)
	}
	dbEnv := environment(db)
	for _, k := range []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} {
		if dbEnv[k] != env[k] {
			t.Errorf("db %s = %q, want %q from .env", k, dbEnv[k], env[k])
		}
	}
}

// composeFixed are the app's settings that the deployment sets itself;
// every other one comes from .env.
var composeFixed = map[string]string{
	"DATABASE_URL":     "the app's role on the db service",
	"ADDR":             "nginx proxies to web:8000",
	"MIGRATE":          "the migrate service migrates, as the owner",
	"MIGRATE_WAIT":     "web never migrates",
	"CLIENT_IP_HEADER": "nginx sets X-Real-IP",
	"TRUSTED_PROXIES":  "Docker's private networks",
	"LOG_FORMAT":       "JSON for the engine's logs",
	"METRICS_ADDR":     "its own port on the compose network",
	"SHUTDOWN_TIMEOUT": "within web's stop_grace_period",
}

// Every setting of the program can be set in .env, except those the
// deployment sets itself: with each in .env, web gets it as it is.
func TestComposeWebTakesEverySettingFromEnv(t *testing.T) {
	all, err := settings(t, map[string]string{"DATABASE_URL": "postgres://u@db:5432/x"})
	if err != nil {
		t.Fatal(err)
	}
	programReads := slices.Sorted(maps.Keys(all))
	env := exampleEnv(t)
	var passed []string
	for _, name := range programReads {
		if _, fixed := composeFixed[name]; fixed {
			continue
		}
		if _, ok := env[name]; !ok {
			t.Errorf(".env.example lacks %s", name)
		}
		env[name] = "value-of-" + name
		passed = append(passed, name)
	}
	if len(passed) == 0 {
		t.Fatal("no setting comes from .env")
	}
	web := environment(service(t, mustLoadCompose(t, env), "web"))
	for _, name := range passed {
		if web[name] != env[name] {
			t.Errorf("web %s = %q with %s=%q in .env", name, web[name], name, env[name])
		}
	}
	for name := range composeFixed {
		if !slices.Contains(programReads, name) {
			t.Errorf("composeFixed names %s, which the program does not read", name)
		}
		if _, ok := web[name]; !ok && name != "MIGRATE" && name != "MIGRATE_WAIT" {
			t.Errorf("web does not set %s (%s)", name, composeFixed[name])
		}
	}
	// .env.example leaves each empty: the program's default, whose one
	// home is the program.
	example := exampleEnv(t)
	for _, name := range passed {
		if example[name] != "" {
			t.Errorf(".env.example sets %s=%q: leave it empty, for the program's default", name, example[name])
		}
	}
	// SHUTDOWN_TIMEOUT fits in the grace period the engine gives.
	ws := service(t, mustLoadCompose(t, example), "web")
	wsEnv := environment(ws)
	got, err := settings(t, wsEnv)
	if err != nil {
		t.Fatal(err)
	}
	shutdownTimeout, err := time.ParseDuration(got["SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatal(err)
	}
	if ws.StopGracePeriod == nil || time.Duration(*ws.StopGracePeriod) <= shutdownTimeout {
		t.Errorf("web stop_grace_period %v, SHUTDOWN_TIMEOUT %s: want the grace period longer", ws.StopGracePeriod, shutdownTimeout)
	}
}

// Backups: the database archives its WAL with deploy/postgresql-archive.conf's
// settings, and the backup service works beside it on the same data,
// socket and repository, which is a folder of the host.
func TestComposeBackups(t *testing.T) {
	env := exampleEnv(t)
	env["BACKUP_DIR"] = "/srv/backups/hitcounter"
	p := mustLoadCompose(t, env)
	db, backup := service(t, p, "db"), service(t, p, "backup")

	want := []string{"postgres"}
	for _, s := range archiveSettings(t) {
		want = append(want, "-c", s)
	}
	if !slices.Equal(db.Command, want) {
		t.Errorf("db command %q, want %q (deploy/postgresql-archive.conf)", db.Command, want)
	}
	if !slices.Equal(db.Entrypoint, []string{"/bin/sh", "/deploy/db-entrypoint.sh"}) {
		t.Errorf("db entrypoint %q", db.Entrypoint)
	}
	if backup.Build == nil || backup.Build.Target != "db" || backup.User != "postgres" {
		t.Errorf("backup: build %+v as %q, want the db stage as postgres", backup.Build, backup.User)
	}
	for _, s := range []types.ServiceConfig{db, backup} {
		for target, source := range map[string]string{"/var/lib/postgresql/data": "pgdata", "/var/run/postgresql": "pgsocket", "/var/lib/pgbackrest": env["BACKUP_DIR"]} {
			if m := mount(t, s, target); m.Source != source {
				t.Errorf("%s mounts %s at %s, want %s", s.Name, m.Source, target, source)
			}
		}
		if m := mount(t, s, "/var/lib/pgbackrest"); m.Type != types.VolumeTypeBind {
			t.Errorf("%s: the repository is a %s, want a folder of the host (down -v removes volumes)", s.Name, m.Type)
		}
		e := environment(s)
		conf, ok := strings.CutPrefix(e["PGBACKREST_CONFIG"], "/deploy/")
		if !ok || mount(t, s, "/deploy").Source != filepath.Join(mustGetwd(t), "deploy") {
			t.Errorf("%s: PGBACKREST_CONFIG %q is not in ./deploy mounted at /deploy", s.Name, e["PGBACKREST_CONFIG"])
		} else if _, err := os.Stat(filepath.Join("deploy", conf)); err != nil {
			t.Error(err)
		}
		if e["PGBACKREST_PG1_PATH"] != "/var/lib/postgresql/data" || e["PGBACKREST_PG1_USER"] != env["POSTGRES_USER"] {
			t.Errorf("%s: pgBackRest's cluster %q as %q, want the image's data folder as POSTGRES_USER", s.Name, e["PGBACKREST_PG1_PATH"], e["PGBACKREST_PG1_USER"])
		}
	}
	dependsOn(t, backup, "db", types.ServiceConditionHealthy)
	// web stops first, so that backup's last archived WAL has every click.
	dependsOn(t, service(t, p, "web"), "backup", types.ServiceConditionStarted)
	if backup.HealthCheck == nil || !slices.Equal(backup.HealthCheck.Test, []string{"CMD", "/bin/sh", "/deploy/backup.sh", "fresh"}) {
		t.Errorf("backup healthcheck %+v, want backup.sh fresh", backup.HealthCheck)
	}
	if backup.StopGracePeriod == nil || time.Duration(*backup.StopGracePeriod) < 70*time.Second {
		t.Errorf("backup stop_grace_period %v: want more than pgbackrest check's 60 s archive timeout", backup.StopGracePeriod)
	}

	delete(env, "BACKUP_DIR")
	if _, err := loadCompose(t, env); err == nil || !strings.Contains(err.Error(), "set BACKUP_DIR in .env") {
		t.Errorf("compose.yaml without BACKUP_DIR: %v", err)
	}
}

// The compose schedule (deploy/backup.sh) is the bare-metal one (the timers):
// a full backup on Sundays, a differential one on other days, at 03:00.
func TestBackupScheduleAgrees(t *testing.T) {
	script, err := os.ReadFile("deploy/backup.sh")
	if err != nil {
		t.Fatal(err)
	}
	hour := regexp.MustCompile(`(?m)^at_hour=(\d+)\b`).FindSubmatch(script)
	day := regexp.MustCompile(`(?m)^full_day=(\d)\b`).FindSubmatch(script)
	if hour == nil || day == nil {
		t.Fatal("deploy/backup.sh sets no at_hour or full_day")
	}
	h, _ := strconv.Atoi(string(hour[1]))
	days := map[string]string{"1": "Mon", "2": "Tue", "3": "Wed", "4": "Thu", "5": "Fri", "6": "Sat", "7": "Sun"}
	at := fmt.Sprintf("*-*-* %02d:00:00", h)
	for kind, when := range map[string]string{"full": days[string(day[1])], "diff": "Mon..Sat"} {
		if kind == "diff" && days[string(day[1])] != "Sun" {
			t.Fatalf("full_day %s: the diff timer's Mon..Sat assumes Sunday", day[1])
		}
		timer, err := os.ReadFile("deploy/hitcounter-backup-" + kind + ".timer")
		if err != nil {
			t.Fatal(err)
		}
		if want := "OnCalendar=" + when + " " + at; !strings.Contains(string(timer), want) {
			t.Errorf("hitcounter-backup-%s.timer lacks %q, which deploy/backup.sh does", kind, want)
		}
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestComposeMigrate(t *testing.T) {
	p := mustLoadCompose(t, exampleEnv(t))
	m := service(t, p, "migrate")
	if m.Build == nil || m.Build.Target != "migrate" {
		t.Errorf("migrate build %+v, want the Dockerfile's target migrate", m.Build)
	}
	dependsOn(t, m, "db", types.ServiceConditionHealthy)
	if m.Restart != types.RestartPolicyNo {
		t.Errorf("migrate restart %q, want no: it is a one-shot", m.Restart)
	}
	// The migrations run as the owner: they create and alter tables.
	checkDatabaseURL(t, environment(m)["DATABASE_URL"], exampleEnv(t), ownerRole)
}

// The database roles of compose.yaml: the owner of .env, and the app's own,
// whose name compose.yaml fixes.
type dbRole struct{ user, password string }

var (
	ownerRole = dbRole{"$POSTGRES_USER", "$POSTGRES_PASSWORD"}
	appRole   = dbRole{appRoleName, "$APP_DB_PASSWORD"}
)

// appRoleName is the role web connects as (deploy/app-role.sql).
const appRoleName = "hitcounter_app"

func (r dbRole) resolve(env map[string]string) (user, password string) {
	expand := func(s string) string {
		if v, ok := strings.CutPrefix(s, "$"); ok {
			return env[v]
		}
		return s
	}
	return expand(r.user), expand(r.password)
}

// checkDatabaseURL: the db service, with the role's user and password and
// the database of .env.
func checkDatabaseURL(t *testing.T, raw string, env map[string]string, role dbRole) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("DATABASE_URL %q: %v", raw, err)
	}
	user, password := role.resolve(env)
	pw, _ := u.User.Password()
	if u.Scheme != "postgres" || u.Hostname() != "db" || u.Port() != "5432" ||
		u.User.Username() != user || pw != password || u.Path != "/"+env["POSTGRES_DB"] {
		t.Errorf("DATABASE_URL %q, want postgres://%s:%s@db:5432/$POSTGRES_DB", raw, role.user, role.password)
	}
}

// The app's role is made and kept by a one-shot after every migration,
// with deploy/app-role.sql run as the owner by the postgres image's psql;
// web starts only once it succeeded.
func TestComposeAppRole(t *testing.T) {
	env := exampleEnv(t)
	p := mustLoadCompose(t, env)
	ar := service(t, p, "app-role")
	if db := stage(t, dockerStages(t), "db"); ar.Image != db.from {
		t.Errorf("app-role image %q, want the db image's %q (its psql)", ar.Image, db.from)
	}
	dependsOn(t, ar, "migrate", types.ServiceConditionCompletedSuccessfully)
	if ar.Restart != types.RestartPolicyNo {
		t.Errorf("app-role restart %q, want no: it is a one-shot", ar.Restart)
	}
	if ar.User != "postgres" || !ar.ReadOnly || !slices.Contains(ar.CapDrop, "ALL") {
		t.Errorf("app-role: user %q, read-only %v, cap_drop %v; want postgres, read-only, ALL dropped", ar.User, ar.ReadOnly, ar.CapDrop)
	}
	d := mount(t, ar, "/deploy")
	if d.Type != types.VolumeTypeBind || !d.ReadOnly || filepath.Base(d.Source) != "deploy" {
		t.Errorf("app-role /deploy: %s %s read-only %v, want ./deploy read-only", d.Type, d.Source, d.ReadOnly)
	}
	// psql with the script and the owner's URL, stopping at the first error.
	cmd := strings.Join(append(slices.Clone(ar.Entrypoint), ar.Command...), " ")
	for _, want := range []string{"exec psql ", "--no-psqlrc", `--dbname="$DATABASE_URL"`, "--file=/deploy/app-role.sql"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("app-role runs %q, which lacks %q", cmd, want)
		}
	}
	script, err := os.ReadFile(filepath.Join(d.Source, "app-role.sql"))
	if err != nil {
		t.Fatalf("app-role runs a script that is not in the repository: %v", err)
	}
	if !bytes.Contains(script, []byte("\\set ON_ERROR_STOP on")) {
		t.Error("deploy/app-role.sql does not set ON_ERROR_STOP: an error would exit 0")
	}
	arEnv := environment(ar)
	checkDatabaseURL(t, arEnv["DATABASE_URL"], env, ownerRole)
	if arEnv["APP_DB_USER"] != appRoleName || arEnv["APP_DB_PASSWORD"] != env["APP_DB_PASSWORD"] {
		t.Errorf("app-role APP_DB_USER %q, APP_DB_PASSWORD %q; want %s and .env's %q", arEnv["APP_DB_USER"], arEnv["APP_DB_PASSWORD"], appRoleName, env["APP_DB_PASSWORD"])
	}
	dependsOn(t, service(t, p, "web"), "app-role", types.ServiceConditionCompletedSuccessfully)
}

func TestComposeWeb(t *testing.T) {
	env := exampleEnv(t)
	web := service(t, mustLoadCompose(t, env), "web")
	if web.Build == nil || web.Build.Target != "web" {
		t.Errorf("web build %+v, want the Dockerfile's target web", web.Build)
	}
	dependsOn(t, web, "migrate", types.ServiceConditionCompletedSuccessfully)
	if web.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("web restart %q, want unless-stopped", web.Restart)
	}
	if len(web.Ports) != 0 {
		t.Errorf("web publishes %v: only nginx may reach it", web.Ports)
	}
	if !slices.Contains(web.Expose, "8000") {
		t.Errorf("web exposes %v, want 8000", web.Expose)
	}
	wantProbe := []string{"CMD", "/hitcounter", "-probe", "http://127.0.0.1:8000/readyz"}
	if web.HealthCheck == nil || !slices.Equal(web.HealthCheck.Test, wantProbe) {
		t.Fatalf("web healthcheck %v, want %v", web.HealthCheck, wantProbe)
	}

	webEnv := environment(web)
	// The app's own role: rows only, no DDL. So no -migrate either.
	checkDatabaseURL(t, webEnv["DATABASE_URL"], env, appRole)
	if v, ok := webEnv["MIGRATE"]; ok {
		t.Errorf("web MIGRATE=%q: the migrate service migrates, as the owner; the app's role cannot", v)
	}
	want := map[string]string{
		"CLIENT_IP_HEADER": "X-Real-IP",
		"LOG_FORMAT":       "json",
	}
	for k, v := range want {
		if webEnv[k] != v {
			t.Errorf("web %s = %q, want %q", k, webEnv[k], v)
		}
	}
	// Docker's networks are on the private ranges; nothing else is trusted.
	var prefixes []netip.Prefix
	for s := range strings.SplitSeq(webEnv["TRUSTED_PROXIES"], ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("TRUSTED_PROXIES: %v", err)
		}
		prefixes = append(prefixes, p)
	}
	want3 := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16")}
	if !slices.Equal(prefixes, want3) {
		t.Errorf("TRUSTED_PROXIES %v, want %v", prefixes, want3)
	}

	// The program itself accepts this environment (its logger's settings
	// included: -print-config checks them as a start does), and the probe
	// command.
	c, err := settings(t, webEnv)
	if err != nil {
		t.Fatalf("the web service's environment is not a valid configuration: %v", err)
	}
	if c["ADDR"] != ":8000" || c["CLIENT_IP_HEADER"] != "X-Real-IP" || c["LOG_FORMAT"] != "json" {
		t.Errorf("configuration from the environment: addr %q, client IP header %q, log format %q", c["ADDR"], c["CLIENT_IP_HEADER"], c["LOG_FORMAT"])
	}
	// Metrics on their own port, not the one nginx proxies to; web
	// publishes nothing (checked above).
	if c["METRICS_ADDR"] != ":9100" {
		t.Errorf("web METRICS_ADDR %q, want :9100", c["METRICS_ADDR"])
	}
	// The healthcheck's arguments, as they are but for the port: the
	// program probes that URL, and exits 0 on its 200.
	probed := make(chan string, 1)
	readyz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case probed <- r.URL.Path:
		default:
		}
	}))
	defer readyz.Close()
	args := slices.Clone(web.HealthCheck.Test[2:])
	args[len(args)-1] = strings.Replace(args[len(args)-1], "127.0.0.1:8000", readyz.Listener.Addr().String(), 1)
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	if err != nil || len(probed) == 0 || <-probed != "/readyz" {
		t.Errorf("healthcheck command %q (to a stand-in's port): %v\n%s", web.HealthCheck.Test[1:], err, out)
	}
}

func TestComposeNginx(t *testing.T) {
	p := mustLoadCompose(t, exampleEnv(t))
	ngx := service(t, p, "nginx")
	if !strings.HasPrefix(ngx.Image, "nginx:") {
		t.Errorf("nginx image %q, want the official nginx", ngx.Image)
	}
	dependsOn(t, ngx, "web", types.ServiceConditionHealthy)
	dependsOn(t, ngx, "tls-bootstrap", types.ServiceConditionCompletedSuccessfully)
	if ngx.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("nginx restart %q, want unless-stopped", ngx.Restart)
	}
	var published []string
	for _, port := range ngx.Ports {
		published = append(published, port.Published+":"+strconv.FormatUint(uint64(port.Target), 10))
	}
	slices.Sort(published)
	if !slices.Equal(published, []string{"443:443", "80:80"}) {
		t.Errorf("nginx publishes %v, want 80:80 and 443:443", published)
	}
	for target, source := range map[string]string{
		"/etc/nginx/nginx.conf":               "nginx.conf",
		"/etc/nginx/hitcounter-upstream.conf": "nginx-upstream-compose.conf",
		"/srv/hitcounter/assets":              "assets",
	} {
		m := mount(t, ngx, target)
		if m.Type != types.VolumeTypeBind || !m.ReadOnly || filepath.Base(m.Source) != source {
			t.Errorf("nginx %s: %s %s (read-only %v), want ./%s read-only", target, m.Type, m.Source, m.ReadOnly, source)
		}
	}
	// The certificates and the challenge files: shared named volumes.
	certbot := service(t, p, "certbot")
	bootstrap := service(t, p, "tls-bootstrap")
	for _, target := range []string{"/etc/letsencrypt", "/var/www/certbot"} {
		m := mount(t, ngx, target)
		if m.Type != types.VolumeTypeVolume || !m.ReadOnly {
			t.Errorf("nginx %s: %s read-only %v, want a named volume, read-only", target, m.Type, m.ReadOnly)
		}
		if c := mount(t, certbot, target); c.Source != m.Source || c.ReadOnly {
			t.Errorf("certbot %s: volume %q (read-only %v), want nginx's %q, writable", target, c.Source, c.ReadOnly, m.Source)
		}
	}
	if b, n := mount(t, bootstrap, "/etc/letsencrypt"), mount(t, ngx, "/etc/letsencrypt"); b.Source != n.Source || b.ReadOnly {
		t.Errorf("tls-bootstrap /etc/letsencrypt: volume %q (read-only %v), want nginx's %q, writable", b.Source, b.ReadOnly, n.Source)
	}
	// Reloads every 6 hours, nginx in the foreground as PID 1; compose left
	// the shell text alone (no $ to interpolate).
	cmd := strings.Join(ngx.Command, " ")
	for _, want := range []string{"sleep 6h", "nginx -s reload", "exec nginx -g 'daemon off;'"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("nginx command %q lacks %q", cmd, want)
		}
	}
}

func TestComposeCertificates(t *testing.T) {
	env := exampleEnv(t)
	p := mustLoadCompose(t, env)
	bootstrap := service(t, p, "tls-bootstrap")
	certbot := service(t, p, "certbot")
	if bootstrap.Image != certbot.Image || !strings.HasPrefix(certbot.Image, "certbot/certbot:v") {
		t.Errorf("images: tls-bootstrap %q, certbot %q; want the same pinned certbot/certbot", bootstrap.Image, certbot.Image)
	}
	if bootstrap.Restart != types.RestartPolicyNo {
		t.Errorf("tls-bootstrap restart %q, want no: it is a one-shot", bootstrap.Restart)
	}
	if certbot.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("certbot restart %q, want unless-stopped: it renews", certbot.Restart)
	}
	dependsOn(t, certbot, "nginx", types.ServiceConditionStarted)
	for _, s := range []types.ServiceConfig{bootstrap, certbot} {
		// The scripts run from the read-only ./deploy mount, with sh.
		if len(s.Entrypoint) != 2 || s.Entrypoint[0] != "/bin/sh" || !strings.HasPrefix(s.Entrypoint[1], "/deploy/") {
			t.Errorf("%s entrypoint %v, want /bin/sh /deploy/SCRIPT", s.Name, s.Entrypoint)
			continue
		}
		d := mount(t, s, "/deploy")
		if d.Type != types.VolumeTypeBind || !d.ReadOnly || filepath.Base(d.Source) != "deploy" {
			t.Errorf("%s /deploy: %s %s read-only %v, want ./deploy read-only", s.Name, d.Type, d.Source, d.ReadOnly)
		}
		script := filepath.Join(d.Source, strings.TrimPrefix(s.Entrypoint[1], "/deploy/"))
		if _, err := os.Stat(script); err != nil {
			t.Errorf("%s runs a script that is not in the repository: %v", s.Name, err)
		}
	}
	certbotEnv := environment(certbot)
	for _, k := range []string{"DOMAIN", "EMAIL", "CERTBOT_STAGING"} {
		if certbotEnv[k] != env[k] {
			t.Errorf("certbot %s = %q, want %q from .env", k, certbotEnv[k], env[k])
		}
	}
}

// Every file or folder that compose.yaml mounts from the repository exists
// (nginx.conf, assets, deploy), and so does the build context.
func TestComposeMountedFilesExist(t *testing.T) {
	p := mustLoadCompose(t, exampleEnv(t))
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			// The backup repository is made at the first up.
			if v.Type != types.VolumeTypeBind || v.Target == "/var/lib/pgbackrest" {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s at %s: %v", s.Name, v.Source, v.Target, err)
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, "Dockerfile")); err != nil {
				t.Errorf("service %s builds from %s: %v", s.Name, s.Build.Context, err)
			}
		}
	}
	for name, v := range p.Volumes {
		if v.External {
			t.Errorf("volume %s is external: compose must create it", name)
		}
	}
}

// The database settings are required, with a message that says where.
func TestComposeRequiresDatabaseSettings(t *testing.T) {
	for _, k := range []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "APP_DB_PASSWORD"} {
		for _, unset := range []bool{true, false} {
			env := exampleEnv(t)
			if unset {
				delete(env, k)
			} else {
				env[k] = ""
			}
			_, err := loadCompose(t, env)
			if want := "set " + k + " in .env"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("compose.yaml without %s (unset %v): error %v, want one that says %q", k, unset, err, want)
			}
		}
	}
}

// The passwords come only from .env: compose.yaml never holds one, and the
// services get whatever .env says. Each goes where its role is used and
// nowhere else: the owner's never reaches web, the app's never migrate.
func TestComposePasswordOnlyFromEnv(t *testing.T) {
	env := exampleEnv(t)
	text, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"POSTGRES_PASSWORD", "APP_DB_PASSWORD"} {
		if bytes.Contains(text, []byte(env[k])) {
			t.Errorf("compose.yaml contains the %s of .env.example", k)
		}
		// It goes into a URL as it is: the example must show a URL-safe one.
		if !regexp.MustCompile(`^[A-Za-z0-9._~-]{16,}$`).MatchString(env[k]) {
			t.Errorf(".env.example's %s %q: want 16 or more of A-Z a-z 0-9 . _ ~ -", k, env[k])
		}
	}
	if env["POSTGRES_PASSWORD"] == env["APP_DB_PASSWORD"] {
		t.Error(".env.example gives the owner and the app the same password")
	}

	for _, k := range []string{"POSTGRES_PASSWORD", "APP_DB_PASSWORD"} {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		env[k] = hex.EncodeToString(b)
	}
	p := mustLoadCompose(t, env)
	if got := environment(service(t, p, "db"))["POSTGRES_PASSWORD"]; got != env["POSTGRES_PASSWORD"] {
		t.Errorf("db POSTGRES_PASSWORD %q, want .env's %q", got, env["POSTGRES_PASSWORD"])
	}
	for name, role := range map[string]dbRole{"migrate": ownerRole, "app-role": ownerRole, "web": appRole} {
		checkDatabaseURL(t, environment(service(t, p, name))["DATABASE_URL"], env, role)
	}
	if got := environment(service(t, p, "app-role"))["APP_DB_PASSWORD"]; got != env["APP_DB_PASSWORD"] {
		t.Errorf("app-role APP_DB_PASSWORD %q, want .env's %q", got, env["APP_DB_PASSWORD"])
	}
	// Where each password may be: service → variables.
	allowed := map[string]map[string][]string{
		"POSTGRES_PASSWORD": {"db": {"POSTGRES_PASSWORD"}, "migrate": {"DATABASE_URL"}, "app-role": {"DATABASE_URL"}},
		"APP_DB_PASSWORD":   {"web": {"DATABASE_URL"}, "app-role": {"APP_DB_PASSWORD"}},
	}
	for pwVar, where := range allowed {
		for _, s := range p.Services {
			for k, v := range environment(s) {
				if strings.Contains(v, env[pwVar]) && !slices.Contains(where[s.Name], k) {
					t.Errorf("service %s has %s in %s", s.Name, pwVar, k)
				}
			}
		}
	}
}

// .env.example names every variable compose.yaml reads, and only those
// (besides docker compose's own COMPOSE_*).
func TestComposeEnvExampleIsComplete(t *testing.T) {
	text, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	ref := regexp.MustCompile(`(?:^|[^$])\$\{([A-Z_][A-Z0-9_]*)`)
	for line := range strings.SplitSeq(string(text), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range ref.FindAllStringSubmatch(line, -1) {
			used[m[1]] = true
		}
	}
	env := exampleEnv(t)
	for k := range used {
		if _, ok := env[k]; !ok {
			t.Errorf("compose.yaml reads %s, which .env.example does not set", k)
		}
	}
	for k := range env {
		if !used[k] && !strings.HasPrefix(k, "COMPOSE_") {
			t.Errorf(".env.example sets %s, which compose.yaml does not read", k)
		}
	}
}

// dockerStage is one FROM of the Dockerfile and the instructions under it,
// continuation lines joined.
type dockerStage struct {
	name, from string
	lines      []string
}

func dockerStages(t *testing.T) []dockerStage {
	t.Helper()
	text, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	for line := range strings.SplitSeq(string(text), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont)
			continue
		}
		cur.WriteString(line)
		ins := strings.Join(strings.Fields(cur.String()), " ")
		cur.Reset()
		f := strings.Fields(ins)
		if strings.EqualFold(f[0], "FROM") {
			st := dockerStage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				st.name = f[3]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before the first FROM", ins)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, ins)
	}
	return stages
}

func stage(t *testing.T, stages []dockerStage, name string) dockerStage {
	t.Helper()
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %s", name)
	return dockerStage{}
}

func (s dockerStage) has(line string) bool { return slices.Contains(s.lines, line) }

// The go builds of the Dockerfile, which TestComposeBuildContextCompiles
// repeats on the build context.
var dockerGoBuilds = []struct{ stage, out, pkg string }{
	{"tern", "tern", "github.com/jackc/tern/v2"},
	{"build", "hitcounter", "."},
	{"build", "env", "./deploy/env"},
}

func TestComposeDockerfile(t *testing.T) {
	stages := dockerStages(t)

	// Go: go.mod's version, so GOTOOLCHAIN=local of the image builds it.
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	golang := 0
	for _, s := range stages {
		if img, ok := strings.CutPrefix(s.from, "golang:"); ok {
			golang++
			if v, _, _ := strings.Cut(img, "-"); v != string(goLine[1]) {
				t.Errorf("Dockerfile stage %s: FROM %s, want Go %s of go.mod", s.name, s.from, goLine[1])
			}
		}
	}
	if golang == 0 {
		t.Error("Dockerfile builds from no golang image")
	}
	modules := stage(t, stages, "modules")
	for _, want := range []string{"ENV CGO_ENABLED=0", "COPY go.mod go.sum ./", "RUN go mod download"} {
		if !modules.has(want) {
			t.Errorf("Dockerfile stage modules lacks %q", want)
		}
	}
	for _, b := range dockerGoBuilds {
		want := `go build -trimpath -ldflags="-s -w" -o /out/` + b.out + " " + b.pkg
		found := false
		for _, l := range stage(t, stages, b.stage).lines {
			found = found || (strings.HasPrefix(l, "RUN ") && strings.Contains(l, want))
		}
		if !found {
			t.Errorf("Dockerfile stage %s does not run %q", b.stage, want)
		}
	}

	// The final stage is the server: `docker build .` gives it.
	last := stages[len(stages)-1]
	if last.name != "web" {
		t.Errorf("the last Dockerfile stage is %q, want web", last.name)
	}
	runtime := map[string][]string{
		"web": {
			"COPY --from=build /out/hitcounter /hitcounter",
			"COPY --from=build /out/env /usr/bin/env",
			"USER nonroot", "EXPOSE 8000", `ENTRYPOINT ["/hitcounter"]`,
		},
		"migrate": {
			"COPY --from=tern /out/tern /tern",
			"COPY migrations/tern.conf migrations/*.sql /migrations/",
			"USER nonroot",
			`ENTRYPOINT ["/tern", "migrate", "--migrations", "/migrations", "--config", "/migrations/tern.conf"]`,
		},
	}
	for name, want := range runtime {
		s := stage(t, stages, name)
		if !strings.HasPrefix(s.from, "gcr.io/distroless/static-") || !strings.HasSuffix(s.from, ":nonroot") {
			t.Errorf("Dockerfile stage %s: FROM %s, want distroless static, nonroot", name, s.from)
		}
		for _, w := range want {
			if !s.has(w) {
				t.Errorf("Dockerfile stage %s lacks %q", name, w)
			}
		}
	}

	// compose.yaml builds these targets.
	p := mustLoadCompose(t, exampleEnv(t))
	for _, s := range p.Services {
		if s.Build != nil {
			stage(t, stages, s.Build.Target)
		}
	}
}

// The build context (the repository less .dockerignore) holds everything
// the Dockerfile copies and compiles: its go builds run here on a copy of
// exactly that context, and make static binaries for distroless/static.
func TestComposeBuildContextCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the images' binaries")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	buildCtx := t.TempDir()
	copyBuildContext(t, ".", buildCtx)
	for _, name := range []string{"go.mod", "go.sum", "migrations/tern.conf", "migrations/001_create_counters.sql", "deploy/env/main.go"} {
		if _, err := os.Stat(filepath.Join(buildCtx, name)); err != nil {
			t.Errorf("build context lacks %s, which the Dockerfile needs", name)
		}
	}
	for _, secret := range []string{".env", ".git", ".pgdata", "deploy/compose_test.go"} {
		if _, err := os.Lstat(filepath.Join(buildCtx, secret)); err == nil {
			t.Errorf("build context holds %s", secret)
		}
	}

	// Stage tern has only go.mod and go.sum.
	modOnly := t.TempDir()
	for _, name := range []string{"go.mod", "go.sum"} {
		copyFile(t, filepath.Join(buildCtx, name), filepath.Join(modOnly, name))
	}
	out := t.TempDir()
	for _, b := range dockerGoBuilds {
		dir := buildCtx
		if b.stage == "tern" {
			dir = modOnly
		}
		cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(out, b.out), b.pkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=", "GOWORK=off")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("stage %s: go build -o %s %s: %v\n%s", b.stage, b.out, b.pkg, err, msg)
		}
		f, err := elf.Open(filepath.Join(out, b.out))
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked: distroless/static has no libc", b.out)
			}
		}
		f.Close()
	}

	// The image's env prints the environment it is given, nothing else.
	cmd := exec.Command(filepath.Join(out, "env"))
	cmd.Env = []string{"DATABASE_URL=postgres://u:p@db:5432/d", "LOG_FORMAT=json"}
	got, err := cmd.Output()
	if err != nil || string(got) != "DATABASE_URL=postgres://u:p@db:5432/d\nLOG_FORMAT=json\n" {
		t.Errorf("env printed %q, %v", got, err)
	}
}

// copyBuildContext copies the files of src that .dockerignore leaves in the
// build context, with Docker's own matcher.
func copyBuildContext(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Open(filepath.Join(src, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		switch {
		case excluded && d.IsDir() && !pm.Exclusions():
			return filepath.SkipDir
		case excluded:
			return nil
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case d.Type().IsRegular():
			copyFile(t, path, filepath.Join(dst, rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy the build context: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// deploy/app-role.sql, which the app-role service runs, on a real
// PostgreSQL (the tests' server): the owner migrates, the script makes the
// app's role, and that role can do everything the app and `hitcounter
// counters` do, and no DDL at all. Run again, as the owner and without a
// password, it changes nothing; a table of a later migration is the app's
// to write by the owner's default privileges.
func TestComposeAppRoleSQL(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server := testdb.ServerURL(t)
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var super bool
	if err := admin.QueryRow(ctx, "select rolsuper from pg_roles where rolname = current_user").Scan(&super); err != nil || !super {
		t.Skipf("the test server's user is no superuser (%v): it cannot create the roles", err)
	}

	b := make([]byte, 6)
	_, _ = rand.Read(b)
	owner, app := "hc_owner_"+hex.EncodeToString(b), "hc_app_"+hex.EncodeToString(b)
	ownerPW, appPW := "owner-"+hex.EncodeToString(b), "app-"+hex.EncodeToString(b)
	// Roles outlive databases: dropped after the database (cleanups run last first).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop roles: %v", err)
			return
		}
		defer admin.Close(context.Background())
		for _, r := range []string{app, owner} {
			if _, err := admin.Exec(ctx, "drop role if exists "+r); err != nil {
				t.Errorf("drop role %s: %v", r, err)
			}
		}
	})
	if _, err := admin.Exec(ctx, fmt.Sprintf("create role %s login password '%s'", owner, ownerPW)); err != nil {
		t.Fatal(err)
	}
	adminURL := testdb.New(t)
	dbName := strings.TrimPrefix(mustParseURL(t, adminURL).Path, "/")
	if _, err := admin.Exec(ctx, fmt.Sprintf("alter database %s owner to %s", dbName, owner)); err != nil {
		t.Fatal(err)
	}
	as := func(user, password string) string {
		u := mustParseURL(t, adminURL)
		u.User = url.UserPassword(user, password)
		return u.String()
	}
	ownerURL, appURL := as(owner, ownerPW), as(app, appPW)

	// The owner migrates, as the migrate service does.
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrations.NewMigrator(ctx, conn)
	if err == nil {
		err = m.Migrate(ctx)
	}
	conn.Close(context.Background())
	if err != nil {
		t.Fatalf("migrate as the owner: %v", err)
	}

	runScript := func(dbURL string, env ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, psql, "--no-psqlrc", "--quiet", "--dbname="+dbURL, "--file=deploy/app-role.sql")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("psql -f deploy/app-role.sql: %v\n%s", err, out)
		}
		return string(out)
	}
	// As the compose service runs it (there as the owner, who is the
	// superuser of the postgres image).
	out := runScript(adminURL, "APP_DB_USER="+app, "APP_DB_PASSWORD="+appPW)
	var tables int
	tablesConn := testdb.Connect(t, adminURL)
	defer tablesConn.Close(context.Background())
	if err := tablesConn.QueryRow(ctx, "select count(*) from pg_tables where schemaname = 'public' and tablename <> $1", migrations.VersionTable).Scan(&tables); err != nil || tables == 0 {
		t.Fatalf("the migrations' tables: %d, %v", tables, err)
	}
	for _, want := range []string{"created role " + app, fmt.Sprintf("role %s may select, insert, update and delete the rows of %d tables", app, tables)} {
		if !strings.Contains(out, want) {
			t.Errorf("app-role.sql said:\n%s\nwant %q", out, want)
		}
	}
	// Again, as the owner (no superuser, no CREATEROLE) and without a
	// password: the role and its password stay.
	runScript(ownerURL, "APP_DB_USER="+app, "APP_DB_PASSWORD=")

	// The app's role: no DDL of any kind, no writing the schema version.
	appConn, err := pgx.Connect(ctx, appURL)
	if err != nil {
		t.Fatalf("connect as the app's role: %v", err)
	}
	defer appConn.Close(context.Background())
	for _, stmt := range []string{
		"create table x ()",
		"create temporary table x ()",
		"create schema x",
		"create function x() returns int language sql as 'select 1'",
		"create index x on counters (hits)",
		"alter table counters add column x int",
		"drop table visitors",
		"truncate visitors",
		"create trigger x before insert on counters for each row execute function counters_bump_version()",
		"update schema_version set version = version",
		"insert into schema_version values (0)",
		"delete from schema_version",
	} {
		_, err := appConn.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("the app's role: %s: %v, want insufficient privilege (42501)", stmt, err)
		}
	}
	var version int32
	if err := appConn.QueryRow(ctx, "select version from schema_version").Scan(&version); err != nil || version == 0 {
		t.Errorf("the app's role reads the schema version: %d, %v", version, err)
	}
	var role string
	if err := appConn.QueryRow(ctx, "select current_user").Scan(&role); err != nil || role != app {
		t.Errorf("connected as %q, %v; want %s", role, err, app)
	}

	// Everything the app and the owner's controls do, as the app's role.
	cfg := db.DefaultConfig()
	cfg.AutoCreate = true
	store, err := db.Open(appURL, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("as the app's role, %s: %v", what, err)
		}
	}
	must("ready", store.Ready(ctx))
	_, err = store.Record(ctx, "main", db.Hit{Kind: db.View, Visitor: "192.0.2.1 test"})
	must("a view with a visitor", err)
	_, err = store.Record(ctx, "auto", db.Hit{Kind: db.View})
	must("a view that auto-creates its counter", err)
	_, err = store.Create(ctx, "test", "blog", 41)
	must("create", err)
	_, err = store.Set(ctx, "test", "blog", 42)
	must("set", err)
	_, err = store.Rename(ctx, "test", "blog", "news")
	must("rename", err)
	total := int64(7)
	_, err = store.Import(ctx, "test", "news", []db.Day{{Day: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), Views: 3}}, &total)
	must("import", err)
	_, err = store.Switch(ctx, "test", "news", db.Switches{NoPlusOne: true})
	must("switch", err)
	_, _, err = store.Export(ctx, "news")
	must("export", err)
	_, err = store.Reset(ctx, "test", "news")
	must("reset", err)
	_, err = store.Delete(ctx, "test", "news")
	must("delete", err)
	_, err = store.PruneMarkers(ctx)
	must("prune commit markers", err)
	_, err = store.Archiver(ctx)
	must("read pg_stat_archiver (metrics)", err)
	err = store.List(ctx, func(db.Listing) error { return nil }, func(db.Counts) error { return nil })
	must("list", err)
	audit, err := store.Audit(ctx, "")
	must("audit", err)
	if len(audit) == 0 || audit[len(audit)-1].DBRole != app {
		t.Errorf("audit %+v, want entries written as %s", audit, app)
	}

	// A later migration's table, created by the owner: the app writes its
	// rows, and its sequence, with no new run of the script.
	ownerConn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ownerConn.Exec(ctx, "create table later (id bigserial primary key, note text)")
	ownerConn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := appConn.Exec(ctx, "insert into later (note) values ('x')"); err != nil {
		t.Errorf("the app's role, a later migration's table: %v", err)
	}
}

func mustParseURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
