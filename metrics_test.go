package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/hitcounter/hitcounter/internal/testdb"
	"github.com/hitcounter/hitcounter/metrics"
)

// The metrics are served on their own address, not the app's, and a
// scrape after some traffic shows it: requests by route and status, hits
// written, batches, the listener, the pool.
func TestMetricsAreScraped(t *testing.T) {
	app := startRun(t, map[string]string{"DATABASE_URL": testdb.NewMigrated(t), "METRICS_ADDR": "127.0.0.1:0"})
	base, metricsURL := app.base, app.metrics
	if metricsURL == "" {
		t.Fatalf("the program printed no metrics address before its own; logs:\n%s", app.logs.String())
	}

	const views = 3
	for range views {
		if status, _ := get(t, base+"/"); status != 200 {
			t.Fatalf("GET /: %d", status)
		}
	}
	req, _ := http.NewRequest("POST", base+"/hit", nil)
	req.Header.Set("HX-Request", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /hit: %v %v", resp, err)
	}
	resp.Body.Close()
	if status, _ := get(t, base+"/metrics"); status != 404 {
		t.Errorf("/metrics on the app's address: %d, want 404 (metrics have their own)", status)
	}

	families := scrape(t, metricsURL)
	if got := counterValue(families, "hitcounter_http_requests_total", map[string]string{"route": "/", "method": "GET", "status": "200"}); got != views {
		t.Errorf("requests to / with 200: %v, want %d", got, views)
	}
	if got := counterValue(families, "hitcounter_http_requests_total", map[string]string{"route": "/hit", "method": "POST", "status": "200"}); got != 1 {
		t.Errorf("POST /hit with 200: %v, want 1", got)
	}
	// The 404 of /metrics above matched no route.
	if got := counterValue(families, "hitcounter_http_requests_total", map[string]string{"route": "unmatched", "method": "GET", "status": "404"}); got != 1 {
		t.Errorf("unmatched GET with 404: %v, want 1", got)
	}
	if got := counterValue(families, "hitcounter_hits_written_total", nil); got != views+1 {
		t.Errorf("hits written: %v, want %d", got, views+1)
	}
	if f := families["hitcounter_batch_size"]; f == nil || f.GetMetric()[0].GetHistogram().GetSampleCount() == 0 {
		t.Error("no batch was observed")
	}
	if got := gaugeValue(families, "hitcounter_db_listener_up"); got != 1 {
		t.Errorf("listener up: %v, want 1", got)
	}
	if got := gaugeValue(families, "hitcounter_db_pool_max_conns"); got < 1 {
		t.Errorf("pool max conns: %v", got)
	}
	// The test server archives nothing: the series are there, at zero.
	if got := counterValue(families, "hitcounter_db_wal_archive_failures_total", nil); got != 0 {
		t.Errorf("WAL archive failures: %v, want 0", got)
	}
	if got := gaugeValue(families, "hitcounter_db_wal_last_archived_timestamp_seconds"); got != 0 {
		t.Errorf("last archived: %v, want 0 (never)", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "hitcounter_http_request_duration_seconds"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// The store's observer reaches the metrics: retries, failures by kind,
// resolutions by outcome.
func TestMetricsObserver(t *testing.T) {
	m := metrics.New()
	m.Retry("increment", "body", "40001")
	m.Failure("increment", "unavailable")
	m.Failure("increment", "unavailable")
	m.Resolved("committed")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	families := parse(t, rec.Body.String())
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hitcounter_db_retries_total", map[string]string{"op": "increment", "phase": "body", "sqlstate": "40001"}, 1},
		{"hitcounter_db_failures_total", map[string]string{"op": "increment", "kind": "unavailable"}, 2},
		{"hitcounter_db_commits_resolved_total", map[string]string{"outcome": "committed"}, 1},
	} {
		if got := counterValue(families, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v: %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %s", resp.StatusCode, b)
	}
	return parse(t, string(b))
}

func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse the metrics: %v", err)
	}
	return families
}

func counterValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		return m.GetCounter().GetValue()
	}
	return -1
}

func gaugeValue(families map[string]*dto.MetricFamily, name string) float64 {
	f := families[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return -1
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

// What the per-request hook costs (make bench compares whole runs with
// metrics on and off).
func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New()
	for b.Loop() {
		m.ObserveRequest("/c/{name}/count", "GET", 200, 3*time.Millisecond)
	}
}
