// Package nginx runs the system's nginx with the repository's nginx.conf in
// front of app instances on loopback, for tests and `make bench`: the
// production topology on one machine.
//
// The configuration is nginx.conf as it is, with only listen ports, file
// paths and the pid file replaced, and the include of the app's address
// pointing at the on-one-host file (deploy/nginx-upstream-local.conf) with
// the test's app instances in place of 127.0.0.1:8000. Each replaced text
// must occur exactly once, so a change that this would no longer cover
// fails loudly.
package nginx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hitcounter/hitcounter/internal/testkit"
)

// Options say what to put nginx in front of.
type Options struct {
	Conf      string   // path of the repository's nginx.conf
	Upstream  string   // path of deploy/nginx-upstream-local.conf
	Assets    string   // the assets folder nginx serves /static/ from
	Upstreams []string // host:port of each app instance, in place of 127.0.0.1:8000 (none: the file as it is)
	// Replace holds more replacements in nginx.conf (each text once); they
	// win over the package's own.
	Replace map[string]string
}

// Server is a running nginx.
type Server struct {
	HTTPURL  string // the port-80 server
	HTTPSURL string // the port-443 server
	CA       *x509.CertPool
	Webroot  string // the ACME challenge folder
	Logs     *testkit.Buffer
	Process  *os.Process
	ConfPath string // the configuration it runs

	dirs   []string
	exited chan error
}

// Binary finds nginx.
func Binary() (string, error) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", errors.New("nginx not found: install it (Debian: apt-get install nginx); `make test` does so when run as root")
}

// Start writes the configuration, checks it with nginx -t and starts nginx
// in the foreground. Ports are the kernel's free ones at the time; if
// another process takes one before nginx binds it, Start tries again with
// new ones.
func Start(opts Options) (_ *Server, err error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{Logs: &testkit.Buffer{}}
	defer func() {
		if err != nil {
			s.Stop() // removes the folders made so far
		}
	}()
	dir, err := s.dir()
	if err != nil {
		return nil, err
	}
	certDir, err := s.dir()
	if err != nil {
		return nil, err
	}
	if s.Webroot, err = s.dir(); err != nil {
		return nil, err
	}
	if s.CA, err = selfSignedCert(certDir); err != nil {
		return nil, err
	}
	assets, err := filepath.Abs(opts.Assets)
	if err != nil {
		return nil, err
	}
	var servers strings.Builder
	for i, u := range opts.Upstreams {
		if i > 0 {
			servers.WriteString("\n    ")
		}
		servers.WriteString("server " + u + ";")
	}
	repl := map[string]string{}
	if len(opts.Upstreams) > 0 {
		repl["server 127.0.0.1:8000;"] = servers.String()
	}
	upstream, err := Conf(opts.Upstream, repl)
	if err != nil {
		return nil, err
	}
	upstreamPath := filepath.Join(dir, "hitcounter-upstream.conf")
	if err := os.WriteFile(upstreamPath, []byte(upstream), 0o644); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		httpPort, httpsPort, err := twoFreePorts()
		if err != nil {
			return nil, err
		}
		repl := map[string]string{
			"listen 80 default_server;":                      fmt.Sprintf("listen 127.0.0.1:%d default_server;", httpPort),
			"listen [::]:80 default_server;":                 fmt.Sprintf("listen [::1]:%d default_server;", httpPort),
			"listen 443 ssl http2 default_server;":           fmt.Sprintf("listen 127.0.0.1:%d ssl http2 default_server;", httpsPort),
			"listen [::]:443 ssl http2 default_server;":      fmt.Sprintf("listen [::1]:%d ssl http2 default_server;", httpsPort),
			"include /etc/nginx/hitcounter-upstream.conf;":   "include " + upstreamPath + ";",
			"/srv/hitcounter/assets/":                        assets + "/",
			"/var/www/certbot":                               s.Webroot,
			"/etc/letsencrypt/live/hitcounter/fullchain.pem": filepath.Join(certDir, "fullchain.pem"),
			"/etc/letsencrypt/live/hitcounter/privkey.pem":   filepath.Join(certDir, "privkey.pem"),
			"pid /var/run/nginx.pid;":                        "pid " + filepath.Join(dir, "nginx.pid") + ";",
			"access_log /var/log/nginx/access.log;":          "access_log /dev/stdout;", // into Logs
		}
		maps.Copy(repl, opts.Replace)
		conf, err := Conf(opts.Conf, repl)
		if err != nil {
			return nil, err
		}
		confPath := filepath.Join(dir, "nginx.conf")
		s.ConfPath = confPath
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		if out, err := exec.Command(bin, "-t", "-q", "-e", "stderr", "-c", confPath).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("nginx -t: %w\n%s", err, out)
		}
		s.HTTPURL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
		s.HTTPSURL = fmt.Sprintf("https://127.0.0.1:%d", httpsPort)
		err = s.start(bin, confPath, httpsPort)
		if err == nil {
			return s, nil
		}
		if attempt == 5 || !strings.Contains(s.Logs.String(), "Address already in use") {
			return nil, err
		}
		s.Logs.Reset()
	}
}

func (s *Server) start(bin, confPath string, httpsPort int) error {
	cmd := exec.Command(bin, "-e", "stderr", "-c", confPath, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = s.Logs, s.Logs
	if err := cmd.Start(); err != nil {
		return err
	}
	s.Process = cmd.Process
	s.exited = make(chan error, 1)
	go func() { s.exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-s.exited:
			s.Process = nil
			return fmt.Errorf("nginx exited at start: %v\n%s", err, s.Logs.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not listen within 10s:\n%s", s.Logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends nginx gracefully (SIGQUIT), killing it after 10s, and removes
// its files.
func (s *Server) Stop() {
	if s.Process != nil {
		_ = s.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.Process.Kill()
			<-s.exited
		}
		s.Process = nil
	}
	for _, d := range s.dirs {
		os.RemoveAll(d)
	}
}

// dir makes a temporary folder nginx's unprivileged workers can read (the
// parent of a test's TempDir is private to its user).
func (s *Server) dir() (string, error) {
	d, err := os.MkdirTemp("", "hitcounter-nginx-")
	if err != nil {
		return "", err
	}
	s.dirs = append(s.dirs, d)
	return d, os.Chmod(d, 0o755)
}

// Conf is the configuration file at path with each key of repl, which must occur
// exactly once, replaced by its value.
func Conf(path string, repl map[string]string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	conf := string(b)
	for old, new := range repl {
		if n := strings.Count(conf, old); n != 1 {
			return "", fmt.Errorf("%s has %q %d times, expected once", path, old, n)
		}
		conf = strings.Replace(conf, old, new, 1)
	}
	return conf, nil
}

func twoFreePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		defer ln.Close()
	}
	return ports[0], ports[1], nil
}

// selfSignedCert writes a certificate pair for localhost, 127.0.0.1 and ::1,
// named as certbot names them, and returns a pool that trusts it.
func selfSignedCert(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	for name, block := range map[string]*pem.Block{
		"fullchain.pem": {Type: "CERTIFICATE", Bytes: der},
		"privkey.pem":   {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, err
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}
