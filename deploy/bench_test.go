package deploy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hitcounter/hitcounter/assets"
)

// BenchmarkNginxStaticGzip compares serving the 37 KB htmx file gzipped
// with gzip_static (the .gz twin) against compressing it on every request.
func BenchmarkNginxStaticGzip(b *testing.B) {
	for _, mode := range []struct{ name, directive string }{
		{"gzip_static", "gzip_static on;"},
		{"on_the_fly", "gzip_static off;"},
	} {
		b.Run(mode.name, func(b *testing.B) {
			p := startProxied(b, proxyOptions{
				conf: map[string]string{"gzip_static on;": mode.directive},
				env:  map[string]string{"LOG_LEVEL": "warn"},
			})
			c := p.client("127.0.0.1")
			c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			benchRequests(b, c, "GET", p.httpsURL+"/static/"+assets.HTMX, map[string]string{"Accept-Encoding": "gzip"})
		})
	}
}

func benchRequests(b *testing.B, c *http.Client, method, url string, header map[string]string) {
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(method, url, nil)
			for k, v := range header {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || (strings.Contains(url, "/static/") && resp.Header.Get("Content-Encoding") != "gzip") {
				b.Errorf("%s %s: %d %q", method, url, resp.StatusCode, resp.Header.Get("Content-Encoding"))
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
