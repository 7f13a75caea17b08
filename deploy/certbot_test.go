package deploy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testkit"
)

// The certificate chicken-and-egg, played out with the real nginx and the
// deploy scripts (certbot itself replaced by a stand-in that issues a
// certificate with openssl): nginx starts on tls-bootstrap's placeholder,
// certbot.sh swaps in the issued certificate, and a reload serves it.
func TestFirstBootThenCertificate(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not found: install it (Debian: apt-get install openssl)")
	}
	le := worldReadableDir(t)
	live := filepath.Join(le, "live", "hitcounter")

	// tls-bootstrap: no certificate yet → a self-signed placeholder.
	bootstrap := func() string {
		t.Helper()
		cmd := exec.Command("sh", "deploy/tls-bootstrap.sh")
		cmd.Env = append(os.Environ(), "LETSENCRYPT_DIR="+le, "DOMAIN=localhost")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tls-bootstrap.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	bootstrap()
	if _, err := os.Stat(filepath.Join(live, ".self-signed")); err != nil {
		t.Fatalf("no placeholder marker: %v", err)
	}
	first, _ := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	if out := bootstrap(); !strings.Contains(out, "nothing to do") {
		t.Fatalf("second tls-bootstrap run: %s", out)
	}
	if again, _ := os.ReadFile(filepath.Join(live, "fullchain.pem")); string(again) != string(first) {
		t.Fatal("a second tls-bootstrap run replaced a valid placeholder")
	}

	// nginx starts with the placeholder.
	p := startProxied(t, proxyOptions{conf: map[string]string{
		"/etc/letsencrypt/live/hitcounter/fullchain.pem": filepath.Join(live, "fullchain.pem"),
		"/etc/letsencrypt/live/hitcounter/privkey.pem":   filepath.Join(live, "privkey.pem"),
	}})
	if cn := servedCommonName(t, p); cn != "localhost" {
		t.Fatalf("nginx serves %q, want the placeholder for localhost", cn)
	}

	// certbot.sh with a stand-in certbot: the placeholder goes, the issued
	// certificate comes, renewals loop.
	bin := worldReadableDir(t)
	calls := filepath.Join(bin, "calls")
	fake := `#!/bin/sh
echo "$*" >> "` + calls + `"
if [ "$1" = certonly ]; then
	d="$LETSENCRYPT_DIR/live/hitcounter"
	mkdir -p "$d" "$LETSENCRYPT_DIR/renewal"
	[ -e "$d/.self-signed" ] && { echo "stand-in certbot: the placeholder was not removed" >&2; exit 1; }
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 \
		-subj "/CN=issued.example" -addext "subjectAltName=DNS:localhost" \
		-keyout "$d/privkey.pem" -out "$d/fullchain.pem" 2>/dev/null
	echo "server = https://acme-staging-v02.api.letsencrypt.org/directory" > "$LETSENCRYPT_DIR/renewal/hitcounter.conf"
fi
`
	if err := os.WriteFile(filepath.Join(bin, "certbot"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "deploy/certbot.sh")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "LETSENCRYPT_DIR="+le,
		"DOMAIN=hits.example.com", "EMAIL=admin@example.com", "CERTBOT_STAGING=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "ready in") {
				ready <- all.String()
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- all.String()
	}()
	out := <-ready
	if !strings.Contains(out, "ready in") {
		t.Fatalf("certbot.sh did not get the certificate:\n%s", out)
	}
	// It now waits to renew; docker compose stop sends SIGTERM.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("certbot.sh on SIGTERM: %v (want a clean exit)\n%s", err, out)
	}
	args, _ := os.ReadFile(calls)
	for _, want := range []string{"certonly", "--webroot", "--cert-name hitcounter", "--domain hits.example.com", "--staging"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("certbot was called with %q, lacking %q", args, want)
		}
	}
	if _, err := os.Stat(filepath.Join(live, ".self-signed")); !os.IsNotExist(err) {
		t.Errorf("the placeholder marker is still there: %v", err)
	}

	// A reload (what the nginx service does every 6 hours) serves it.
	if err := p.nginx.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the issued certificate served after the reload", func() (bool, string) {
		cn := servedCommonName(t, p)
		return cn == "issued.example", cn
	})
}

// servedCommonName is the subject of the certificate nginx presents.
func servedCommonName(t *testing.T, p *proxied) string {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(p.httpsURL, "https://"), &tls.Config{
		ServerName:         "localhost",
		InsecureSkipVerify: true, // self-signed on purpose; only its name is read
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return x509.CertificateInvalidError{}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("TLS to nginx: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// deploy/hitcounter.service is a unit systemd accepts.
func TestSystemdUnitVerifies(t *testing.T) {
	systemdVerify(t, map[string]string{"hitcounter.service": unitRunning(t, "deploy/hitcounter.service", "/usr/local/bin/hitcounter")})
}

// unitRunning is the unit file at path with its ExecStart, the program
// bin, pointed at /bin/true: verify wants the program to exist.
func unitRunning(t *testing.T, path, bin string) string {
	t.Helper()
	unit, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(unit), "ExecStart="+bin, "ExecStart=/bin/true", 1)
	if text == string(unit) {
		t.Fatalf("%s's ExecStart is not %s, where the README installs it", path, bin)
	}
	return text
}

// systemdVerify has systemd-analyze verify the units (file name → text)
// together.
func systemdVerify(t *testing.T, units map[string]string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian: systemd)")
	}
	dir := t.TempDir()
	var paths []string
	for name, text := range units {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// certbot is always part of the stack: without a DOMAIN it says so, asks
// nothing of any CA, and waits until compose stops it.
func TestCertbotWithoutDomainWaits(t *testing.T) {
	bin := worldReadableDir(t)
	calls := filepath.Join(bin, "calls")
	if err := os.WriteFile(filepath.Join(bin, "certbot"), []byte("#!/bin/sh\necho \"$*\" >> \""+calls+"\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "deploy/certbot.sh")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DOMAIN=", "EMAIL=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	said := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		said <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-said:
		if !strings.Contains(line, "no DOMAIN") {
			t.Errorf("certbot.sh without DOMAIN said %q", line)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("certbot.sh without DOMAIN said nothing within 10s")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("certbot.sh on SIGTERM: %v, want a clean exit", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("certbot.sh did not stop within 10s of SIGTERM")
	}
	if _, err := os.Stat(calls); !os.IsNotExist(err) {
		b, _ := os.ReadFile(calls)
		t.Errorf("certbot was called without a DOMAIN: %s", b)
	}
}
