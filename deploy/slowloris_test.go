package deploy

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/internal/testkit"
)

// Slow clients (slowloris) cannot starve the others through nginx: with
// 200 connections sending their headers a byte at a time, other clients'
// pages, polls and clicks are answered, clicks counted exactly, and nginx
// closes every slow connection at its header timeout. Straight to the
// app: the root package's TestSlowClientsDoNotStarveOthers.
func TestSlowClientsDoNotStarveOthersBehindNginx(t *testing.T) {
	p := startProxied(t, proxyOptions{})
	addr := strings.TrimPrefix(p.httpsURL, "https://")
	// From another loopback address than the visitor's, as an attacker
	// would be: nginx's per-address limits are not the test.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}
	dial := func() (net.Conn, error) {
		return tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: p.ca, NextProtos: []string{"http/1.1"}})
	}
	testkit.Slowloris(t, dial, p.client("127.0.0.2"), p.httpsURL, func() int64 { return testdb.Hits(t, p.dbURL, "main") })
}
