package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hitcounter/hitcounter/internal/testdb"
)

// headerRequest is a GET of /healthz whose request line and header fields,
// to the blank line that ends them, are exactly size bytes.
func headerRequest(t *testing.T, size int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("GET /healthz HTTP/1.1\r\nHost: x\r\n")
	for i := 0; ; i++ {
		field := fmt.Sprintf("X-Pad-%d: ", i)
		value := size - b.Len() - len(field) - len("\r\n\r\n") // what the last field's value may take
		if value < 1 {
			t.Fatalf("cannot pad a request to %d bytes", size)
		}
		if value > 1000 {
			value = 900
		}
		b.WriteString(field + strings.Repeat("a", value) + "\r\n")
		if b.Len()+len("\r\n") == size {
			break
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// The request line and header fields may take maxHeaderBytes in
// all, not a byte more: net/http lets 4 KiB more through than its
// MaxHeaderBytes, which the server takes into account. Over the limit is
// 431.
func TestRunHeaderLimit(t *testing.T) {
	base := startRun(t, map[string]string{"DATABASE_URL": testdb.NewMigrated(t)}).base
	addr := strings.TrimPrefix(base, "http://")
	for _, tt := range []struct {
		what   string
		size   int
		status int
	}{
		{"about 15 KB", 15_000, http.StatusOK},
		{"the limit exactly", maxHeaderBytes, http.StatusOK},
		{"a byte over the limit", maxHeaderBytes + 1, http.StatusRequestHeaderFieldsTooLarge},
		{"about 16.5 KB", 16_500, http.StatusRequestHeaderFieldsTooLarge},
		{"about 20 KB", 20_000, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tt.what, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte(headerRequest(t, tt.size))); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%d bytes of request line and headers: %v", tt.size, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("%d bytes of request line and headers: %s, want %d", tt.size, resp.Status, tt.status)
			}
		})
	}
}
