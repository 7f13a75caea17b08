package deploy

// The deployment, run for real: compose.yaml and the Dockerfile, unmodified,
// on a private Docker Engine (scripts/docker-stack), doing what an operator
// does. Registry images are local stand-ins with the same tags (no registry
// is reachable here); the test says which.
//
// It runs with HITCOUNTER_COMPOSE_TEST=1 (`make test` and `make
// test-compose` set it), as root; its first run on a machine installs
// docker.io and debootstrap and builds what it caches (about ten minutes).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// deployment is a copy of the repository's tracked files with an .env, run
// by docker compose on the private engine.
type deployment struct {
	t   *testing.T
	dir string
	env []string // DOCKER_HOST, DOCKER_CONFIG
}

func startDeployment(t *testing.T) *deployment {
	t.Helper()
	if os.Getenv("HITCOUNTER_COMPOSE_TEST") != "1" {
		t.Skip("the deployment test runs with HITCOUNTER_COMPOSE_TEST=1 (make test, make test-compose): it starts a Docker Engine and builds images")
	}
	if os.Geteuid() != 0 {
		t.Skip("the deployment test needs root: it starts a private Docker Engine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "scripts/docker-stack", "start")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/docker-stack start: %v\n%s", err, stderr.String())
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "docker-stack: stand-ins:") {
			t.Logf("registry images replaced by local stand-ins (scripts/standins): %s", strings.TrimPrefix(l, "docker-stack: stand-ins: "))
		}
	}
	t.Logf("engine, compose plugin and stand-ins ready in %s", time.Since(start).Round(time.Second))

	d := &deployment{t: t, dir: t.TempDir(), env: strings.Fields(string(out))}
	// The working tree as a clone of it would be: the tracked files and the
	// new ones not yet committed, nothing git ignores (.env, .pgdata, bin).
	files, err := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(d.dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	// The first step of the README: cp .env.example .env, then edit it.
	env, err := os.ReadFile(filepath.Join(d.dir, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	edited := regexp.MustCompile(`(?m)^POSTGRES_PASSWORD=.*$`).ReplaceAllString(string(env), "POSTGRES_PASSWORD="+testOwnerPassword)
	edited = regexp.MustCompile(`(?m)^APP_DB_PASSWORD=.*$`).ReplaceAllString(edited, "APP_DB_PASSWORD="+testAppPassword)
	edited = regexp.MustCompile(`(?m)^DOMAIN=.*$`).ReplaceAllString(edited, "DOMAIN="+testDomain)
	edited = regexp.MustCompile(`(?m)^CERTBOT_STAGING=.*$`).ReplaceAllString(edited, "CERTBOT_STAGING=0")
	edited = regexp.MustCompile(`(?m)^ACME_SERVER=.*$`).ReplaceAllString(edited, "ACME_SERVER=https://pebble:14000/dir")
	edited = regexp.MustCompile(`(?m)^BACKUP_DIR=.*$`).ReplaceAllString(edited, "BACKUP_DIR="+filepath.Join(d.dir, "backups"))
	if err := os.WriteFile(filepath.Join(d.dir, ".env"), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	// Beside production: host ports on loopback, chosen by the engine; and
	// a real ACME CA for certbot, Pebble, which reaches nginx under the
	// test's domain through Docker's DNS, and which certbot trusts.
	if err := os.WriteFile(filepath.Join(d.dir, "compose.override.yaml"), []byte(composeOverride), 0o644); err != nil {
		t.Fatal(err)
	}
	writePebbleFiles(t, filepath.Join(d.dir, "pebble"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("docker compose logs:\n%s", d.composeMaybe("logs", "--no-color", "--tail", "50"))
		}
		d.composeMaybe("down", "-v", "--remove-orphans")
		if err := exec.Command("scripts/docker-stack", "stop").Run(); err != nil {
			t.Errorf("stop the engine: %v", err)
		}
		version := exec.Command("docker", "version")
		version.Env = append(os.Environ(), d.env...)
		if version.Run() == nil {
			t.Error("the private engine still answers after scripts/docker-stack stop")
		}
	})
	return d
}

// The operator's commands that the test runs, as the docs' Deploy section
// lists them (TestREADMEListsTheDeployCommands holds them there).
const (
	cmdBuild       = "docker compose build"
	cmdUp          = "docker compose up -d --wait"
	cmdPs          = "docker compose ps -a"
	cmdLogsWeb     = "docker compose logs web"
	cmdEnv         = "docker compose exec web env"
	cmdCounters    = "docker compose exec web /hitcounter counters"
	cmdMetrics     = "docker compose exec web /hitcounter -probe http://127.0.0.1:9100/metrics"
	cmdStopDB      = "docker compose stop db"
	cmdStartDB     = "docker compose start db"
	cmdRecreateWeb = "docker compose up -d --force-recreate web"
	cmdScaleWeb    = "docker compose up -d --wait --scale web=2"
	cmdRenew       = "docker compose exec certbot certbot renew --force-renewal --no-random-sleep-on-renew"
	cmdReload      = "docker compose exec nginx nginx -s reload"
	cmdDown        = "docker compose down"
)

var deployCommands = []string{cmdBuild, cmdUp, cmdPs, cmdLogsWeb, cmdEnv, cmdCounters, cmdMetrics, cmdStopDB, cmdStartDB, cmdRecreateWeb, cmdScaleWeb, cmdRenew, cmdReload, cmdDown}

// op runs one of the operator's commands, with extra arguments.
func (d *deployment) op(cmd string, extra ...string) string {
	d.t.Helper()
	return d.compose(append(strings.Fields(strings.TrimPrefix(cmd, "docker compose ")), extra...)...)
}

// The passwords the test's .env sets: the owner's (POSTGRES_PASSWORD) and
// the app role's (APP_DB_PASSWORD).
const (
	testOwnerPassword = "c0mposeTestPassw0rd"
	testAppPassword   = "c0mposeTestAppPassw0rd"
)

// setEnv sets a variable of the deployment's .env, as an operator edits it.
func (d *deployment) setEnv(k, v string) {
	d.t.Helper()
	path := filepath.Join(d.dir, ".env")
	b, err := os.ReadFile(path)
	if err != nil {
		d.t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + `=.*$`)
	if !re.Match(b) {
		d.t.Fatalf(".env has no %s", k)
	}
	if err := os.WriteFile(path, re.ReplaceAll(b, []byte(k+"="+v)), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// psqlAs runs psql in the db container over TCP as the role with the
// password, as the app connects, on the database of .env.example.
func (d *deployment) psqlAs(user, password, sql string) (string, error) {
	return d.run("exec", "-T", "db", "psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-tA",
		"--dbname=postgres://"+user+":"+password+"@127.0.0.1:5432/hitcounter?sslmode=disable", "-c", sql)
}

// checkAppRole: the app's role works with its password, and can create nothing.
func (d *deployment) checkAppRole(password string) {
	d.t.Helper()
	if out, err := d.psqlAs("hitcounter_app", password, "select current_user, count(*) > 0 from counters"); err != nil || strings.TrimSpace(out) != "hitcounter_app|t" {
		d.t.Errorf("psql as hitcounter_app: %v\n%s", err, out)
	}
	for _, sql := range []string{"create table x ()", "create temporary table x ()", "alter table counters add column x int", "update schema_version set version = 0"} {
		out, err := d.psqlAs("hitcounter_app", password, sql)
		if err == nil || !regexp.MustCompile(`permission denied|must be owner`).MatchString(out) {
			d.t.Errorf("psql as hitcounter_app: %s: %v, want permission denied\n%s", sql, err, out)
		}
	}
}

// testDomain is the deployment's DOMAIN: nginx's name on the compose
// network, which Pebble validates over HTTP-01.
const testDomain = "hits.test"

const composeOverride = `services:
  nginx:
    ports: !override
      - "127.0.0.1::80"
      - "127.0.0.1::443"
    networks:
      default:
        aliases: [` + testDomain + `]
  certbot:
    environment:
      REQUESTS_CA_BUNDLE: /pebble/ca.pem
    volumes:
      - ./pebble:/pebble:ro
    depends_on:
      pebble:
        condition: service_healthy
  pebble:
    image: hitcounter-test/pebble
    command: ["-config", "/pebble/config.json"]
    environment:
      PEBBLE_VA_NOSLEEP: "1"
      PEBBLE_WFE_NONCEREJECT: "0"
    volumes:
      - ./pebble:/pebble:ro
    healthcheck:
      test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 14000), 1)"]
      interval: 1s
      retries: 30
`

// writePebbleFiles writes Pebble's configuration and the certificate of its
// ACME endpoint (for the name pebble), with the CA that certbot trusts.
func writePebbleFiles(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA for Pebble's endpoint"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pebble"}, DNSNames: []string{"pebble"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	config := `{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
  "certificate": "/pebble/cert.pem", "privateKey": "/pebble/key.pem", "httpPort": 80, "tlsPort": 443,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}`
	for name, b := range map[string][]byte{
		"ca.pem":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"cert.pem":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"config.json": []byte(config),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// servedCertificate is the leaf certificate nginx presents on 443.
func servedCertificate(t *testing.T, hostPort string) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", hostPort,
		&tls.Config{ServerName: testDomain, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to nginx: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// compose runs docker compose in the deployment's folder, bounded in time.
func (d *deployment) compose(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatalf("docker compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (d *deployment) composeMaybe(args ...string) string {
	out, _ := d.run(args...)
	return out
}

func (d *deployment) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"compose"}, args...)...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *deployment) docker(args ...string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// url is nginx's published address for a container port.
func (d *deployment) url(scheme, port string) string {
	d.t.Helper()
	hostPort := strings.TrimSpace(d.compose("port", "nginx", port))
	return scheme + "://" + hostPort
}

type composeService struct {
	Service  string `json:"Service"`
	Name     string `json:"Name"`
	State    string `json:"State"`
	Health   string `json:"Health"`
	ExitCode int    `json:"ExitCode"`
}

func (d *deployment) ps() map[string][]composeService {
	d.t.Helper()
	out := d.op(cmdPs, "--format", "json")
	all := map[string][]composeService{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var s composeService
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			d.t.Fatalf("docker compose ps: %v in %q", err, l)
		}
		all[s.Service] = append(all[s.Service], s)
	}
	return all
}

// waitFor polls cond until it holds or the deadline passes.
func (d *deployment) waitFor(timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	d.t.Helper()
	start := time.Now()
	for {
		ok, seen := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			d.t.Fatalf("%s: not within %s; last seen: %s", what, timeout, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// insecure: the deployment serves tls-bootstrap's self-signed placeholder.
var composeClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func fetch(method, url string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("HX-Request", "true")
	resp, err := composeClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

var countRE = regexp.MustCompile(`<strong id="count">(\d+)</strong>`)

func TestDeploymentWithCompose(t *testing.T) {
	d := startDeployment(t)
	began := time.Now()

	// 1. build, then up: db healthy → migrate exits 0 → web healthy → nginx.
	// The engine's data root is kept between runs, and up builds an image
	// only when there is none of the project's name: build first, as an
	// upgrade does, so the images are this checkout's.
	up := time.Now()
	d.op(cmdBuild)
	d.op(cmdUp)
	t.Logf("docker compose build, up -d --wait: %s", time.Since(up).Round(time.Second))

	// 2. What ps shows, the page, a click, the redirect, exec env.
	ps := d.ps()
	for svc, want := range map[string]string{"db": "healthy", "web": "healthy", "backup": "healthy"} {
		if len(ps[svc]) != 1 || ps[svc][0].State != "running" || ps[svc][0].Health != want {
			t.Errorf("%s: %+v, want one running and %s", svc, ps[svc], want)
		}
	}
	for _, svc := range []string{"migrate", "app-role", "tls-bootstrap"} {
		if len(ps[svc]) != 1 || ps[svc][0].State != "exited" || ps[svc][0].ExitCode != 0 {
			t.Errorf("%s: %+v, want one exited with 0", svc, ps[svc])
		}
	}
	if len(ps["nginx"]) != 1 || ps["nginx"][0].State != "running" {
		t.Errorf("nginx: %+v, want running", ps["nginx"])
	}
	if len(ps["certbot"]) != 1 || ps["certbot"][0].State != "running" {
		t.Errorf("certbot: %+v, want running (it renews)", ps["certbot"])
	}

	https := d.url("https", "443")
	status, body, err := fetch("GET", https+"/")
	if err != nil || status != 200 || !countRE.MatchString(body) {
		t.Fatalf("GET / over HTTPS through nginx: %d %v\n%s", status, err, body)
	}
	n := countOf(t, body)
	status, body, err = fetch("POST", https+"/hit")
	if err != nil || status != 200 || countOf(t, body) != n+1 {
		t.Fatalf("a click: %d %v\n%s", status, err, body)
	}
	req, _ := http.NewRequest("GET", d.url("http", "80")+"/somewhere?x=1", nil)
	resp, err := composeClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("HTTP: %d to %q, want 301 to https://", resp.StatusCode, resp.Header.Get("Location"))
	}
	env := d.op(cmdEnv)
	// The app connects as its own role (app-role made it after migrate),
	// which can read and write rows, and create nothing.
	for _, want := range []string{"ADDR=:8000", "LOG_FORMAT=json", "CLIENT_IP_HEADER=X-Real-IP", "DATABASE_URL=postgres://hitcounter_app:" + testAppPassword + "@db:5432/"} {
		if !strings.Contains(env, want) {
			t.Errorf("docker compose exec web env lacks %s:\n%s", want, env)
		}
	}
	d.checkAppRole(testAppPassword)
	// Metrics answer inside the container, on their own port.
	if out := d.op(cmdMetrics); !strings.Contains(out, "200 OK") {
		t.Errorf("%s: %s", cmdMetrics, out)
	}

	// The owner's controls, in the web container: a counter carried over
	// from elsewhere, its page and badge through nginx, the list.
	if out := d.op(cmdCounters, "create", "blog", "-total", "41"); !strings.Contains(out, "created blog") {
		t.Errorf("counters create: %s", out)
	}
	status, body, err = fetch("GET", https+"/c/blog")
	if err != nil || status != 200 || countOf(t, body) != 41 {
		t.Errorf("GET /c/blog: %d %v\n%s", status, err, body)
	}
	if status, body, err = fetch("GET", https+"/c/blog/badge.svg?count=0"); err != nil || status != 200 || !strings.Contains(body, "views: 41") {
		t.Errorf("the badge: %d %v\n%s", status, err, body)
	}
	if out := d.op(cmdCounters, "list"); !regexp.MustCompile(`(?m)^blog\s+41\s`).MatchString(out) {
		t.Errorf("counters list:\n%s", out)
	}
	// The controls too ran as the app's role: the audit says so.
	if out, err := d.psqlAs("hitcounter", testOwnerPassword, "select string_agg(distinct db_role, ',') from counter_audit where counter = 'blog'"); err != nil || strings.TrimSpace(out) != "hitcounter_app" {
		t.Errorf("counter_audit's db_role of blog: %v\n%s, want hitcounter_app", err, out)
	}

	// 3. The database stops: the page says so, the log shows the retries
	// and the failure; it starts again: the page recovers by itself.
	d.op(cmdStopDB)
	d.waitFor(30*time.Second, "the page saying the counter is unavailable", func() (bool, string) {
		status, body, err := fetch("GET", https+"/")
		return status == 503 && strings.Contains(body, "Counter unavailable"), fmt.Sprint(status, err)
	})
	logs := d.op(cmdLogsWeb, "--no-color")
	for _, want := range []string{`"msg":"db retry"`, `"msg":"db transaction failed"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("docker compose logs web lacks %s", want)
		}
	}
	d.op(cmdStartDB)
	took := d.waitFor(60*time.Second, "the page back after the database started", func() (bool, string) {
		status, _, err := fetch("GET", https+"/count")
		return status == 200, fmt.Sprint(status, err)
	})
	t.Logf("the page recovered %s after docker compose start db", took.Round(time.Millisecond))

	// 4. web crashes (its process killed from the host: the engine's
	// restart policy brings it back; `docker kill` would count as a manual
	// stop and leave it down) and is recreated: nginx follows both.
	web := d.ps()["web"][0].Name
	pid := strings.TrimSpace(d.docker("inspect", "-f", "{{.State.Pid}}", web))
	if err := exec.Command("kill", "-9", pid).Run(); err != nil {
		t.Fatalf("kill -9 %s (web's process): %v", pid, err)
	}
	took = d.waitFor(60*time.Second, "nginx reaching web after it crashed", func() (bool, string) {
		status, _, err := fetch("GET", https+"/count")
		return status == 200, fmt.Sprint(status, err)
	})
	restarts := strings.TrimSpace(d.docker("inspect", "-f", "{{.RestartCount}}", web))
	t.Logf("after web crashed, the engine restarted it (restarts: %s) and nginx served the page again in %s", restarts, took.Round(time.Millisecond))
	d.op(cmdRecreateWeb)
	took = d.waitFor(30*time.Second, "nginx reaching the recreated web", func() (bool, string) {
		status, _, err := fetch("GET", https+"/count")
		return status == 200, fmt.Sprint(status, err)
	})
	t.Logf("after --force-recreate web, nginx served the page again in %s", took.Round(time.Millisecond))

	// 5. Two instances: clicks through nginx stay exact, both serve.
	d.op(cmdScaleWeb)
	if got := len(d.ps()["web"]); got != 2 {
		t.Fatalf("%d web containers after --scale web=2", got)
	}
	_, body, _ = fetch("GET", https+"/count")
	before := countOf(t, body)
	// Clicks at a person's pace (nginx refuses a flood from one address
	// with 429), until both instances have counted some.
	acked, refused := 0, 0
	served := map[string]int{}
	d.waitFor(60*time.Second, "clicks served by both instances", func() (bool, string) {
		for range 10 {
			status, _, err := fetch("POST", https+"/hit")
			switch {
			case err != nil:
				t.Fatalf("click with two instances: %v", err)
			case status == 200:
				acked++
			case status == 429:
				refused++
			default:
				t.Fatalf("click with two instances: status %d", status)
			}
			time.Sleep(150 * time.Millisecond)
		}
		clear(served)
		sc := bufio.NewScanner(strings.NewReader(d.op(cmdLogsWeb, "--no-color")))
		for sc.Scan() {
			if name, line, ok := strings.Cut(sc.Text(), "|"); ok && strings.Contains(line, `"path":"/hit"`) && strings.Contains(line, `"status":200`) {
				served[strings.TrimSpace(name)]++
			}
		}
		return len(served) == 2, fmt.Sprint(served)
	})
	_, body, _ = fetch("GET", https+"/count")
	if got := countOf(t, body); got != before+int64(acked) {
		t.Errorf("with two instances: count %d, want %d + %d acknowledged clicks", got, before, acked)
	}
	t.Logf("two instances: %d clicks acknowledged and counted exactly (%d refused with 429 by nginx's limit); clicks per instance since start: %v", acked, refused, served)

	// 6. certbot, started with the stack, against a real ACME CA (Pebble):
	// the placeholder goes, nginx serves Pebble's certificate after a
	// reload, and a forced renewal gives a new serial that nginx serves next.
	hostPort := strings.TrimPrefix(d.url("https", "443"), "https://")
	placeholder := servedCertificate(t, hostPort)
	d.waitFor(5*time.Minute, "certbot's certificate from Pebble", func() (bool, string) {
		logs := d.composeMaybe("logs", "--no-color", "certbot")
		return strings.Contains(logs, "ready in"), lastLines(logs, 5)
	})
	d.op(cmdReload)
	var issued *x509.Certificate
	d.waitFor(30*time.Second, "nginx serving Pebble's certificate", func() (bool, string) {
		issued = servedCertificate(t, hostPort)
		return strings.Contains(issued.Issuer.CommonName, "Pebble"), issued.Issuer.CommonName
	})
	if placeholder.Issuer.CommonName == issued.Issuer.CommonName {
		t.Errorf("the placeholder was issued by %q too", placeholder.Issuer.CommonName)
	}
	if err := issued.VerifyHostname(testDomain); err != nil {
		t.Errorf("Pebble's certificate: %v", err)
	}
	t.Logf("nginx serves a certificate for %s issued by %q, serial %x", testDomain, issued.Issuer.CommonName, issued.SerialNumber)
	renew := time.Now()
	d.op(cmdRenew, "--non-interactive")
	t.Logf("certbot renew --force-renewal took %s", time.Since(renew).Round(time.Second))
	d.op(cmdReload)
	d.waitFor(30*time.Second, "nginx serving the renewed certificate", func() (bool, string) {
		renewed := servedCertificate(t, hostPort)
		return renewed.SerialNumber.Cmp(issued.SerialNumber) != 0 && strings.Contains(renewed.Issuer.CommonName, "Pebble"),
			fmt.Sprintf("serial %x", renewed.SerialNumber)
	})
	t.Log("after a forced renewal and a reload, nginx serves a new serial")

	// 7. down and up keep the count; down -v removes it. In between, the
	// database of a deployment from before the app's role (web connected
	// as the owner): no hitcounter_app; and a new APP_DB_PASSWORD in .env.
	// up makes the role again, with the new password.
	d.op(cmdDown)
	if out := d.op(cmdPs, "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("containers left after down: %s", out)
	}
	d.compose("up", "-d", "--wait", "db")
	if out, err := d.psqlAs("hitcounter", testOwnerPassword, "drop owned by hitcounter_app; drop role hitcounter_app"); err != nil {
		t.Fatalf("drop the app's role: %v\n%s", err, out)
	}
	d.compose("down")
	const rotated = "r0tatedTestAppPassw0rd"
	d.setEnv("APP_DB_PASSWORD", rotated)
	// The app's settings come from .env too (TestComposeWebTakesEverySettingFromEnv
	// checks them all with compose-go; here two, on the engine).
	d.setEnv("TIMEZONE", "Europe/Berlin")
	d.setEnv("EMBED_ORIGINS", "https://blog.example.com")
	d.op(cmdUp)
	d.checkAppRole(rotated)
	if env := d.op(cmdEnv); !strings.Contains(env, "TIMEZONE=Europe/Berlin\n") || !strings.Contains(env, "EMBED_ORIGINS=https://blog.example.com\n") {
		t.Errorf("web's environment after TIMEZONE and EMBED_ORIGINS were set in .env:\n%s", env)
	}
	if out, err := d.psqlAs("hitcounter_app", testAppPassword, "select 1"); err == nil {
		t.Errorf("the app's old password still works after APP_DB_PASSWORD changed and up:\n%s", out)
	}
	_, body, _ = fetch("GET", d.url("https", "443")+"/count")
	if got := countOf(t, body); got != before+int64(acked) {
		t.Errorf("after down and up the count is %d, want %d", got, before+int64(acked))
	}
	d.op(cmdDown, "-v")
	if out := d.docker("volume", "ls", "-q", "--filter", "label=com.docker.compose.project=hitcounter"); strings.TrimSpace(out) != "" {
		t.Errorf("volumes left after down -v: %s", out)
	}
	t.Logf("the deployment test took %s", time.Since(began).Round(time.Second))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// The docs' Deploy section lists every command the deployment test runs.
func TestREADMEListsTheDeployCommands(t *testing.T) {
	docSectionLists(t, "Deploy", deployCommands)
}
