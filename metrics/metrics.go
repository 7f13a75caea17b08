// Package metrics is the process's Prometheus metrics, served at /metrics
// on their own listener (METRICS_ADDR): an operator's view, not proxied by
// nginx nor published by compose. web and db know nothing of Prometheus:
// web calls a hook per request (ObserveRequest), db an Observer (this
// Metrics), and the store's running totals and pool are read at scrape
// time. main wires it.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hitcounter/hitcounter/db"
)

// Metrics are the Prometheus metrics of one process.
type Metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	batch    prometheus.Histogram
	retries  *prometheus.CounterVec
	failures *prometheus.CounterVec
	resolved *prometheus.CounterVec
}

// New makes the metrics, with Go's and the process's own.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hitcounter_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hitcounter_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hitcounter_batch_size",
			Help:    "Hits counted by one write (coalesced increments).",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hitcounter_db_retries_total",
			Help: "Database attempts that failed and were tried again, by operation, phase and SQLSTATE.",
		}, []string{"op", "phase", "sqlstate"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hitcounter_db_failures_total",
			Help: "Database operations that failed for good, by operation and kind (unavailable, outcome_unknown, not_found, invalid, exists, canceled, other).",
		}, []string{"op", "kind"}),
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hitcounter_db_commits_resolved_total",
			Help: "COMMITs whose answer was lost, looked up by their commit marker, by outcome (committed, aborted, unknown; late_committed, late_aborted, late_unknown: found after the caller was told unknown).",
		}, []string{"outcome"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.batch, m.retries, m.failures, m.resolved,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRequest is web's per-request hook.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// The db.Observer.

func (m *Metrics) Batch(size int) { m.batch.Observe(float64(size)) }
func (m *Metrics) Retry(op, phase, sqlstate string) {
	m.retries.WithLabelValues(op, phase, sqlstate).Inc()
}
func (m *Metrics) Failure(op, kind string) { m.failures.WithLabelValues(op, kind).Inc() }
func (m *Metrics) Resolved(outcome string) { m.resolved.WithLabelValues(outcome).Inc() }

// WatchStore adds the store's running totals, its listener and its pool,
// read at every scrape.
func (m *Metrics) WatchStore(store *db.Store) {
	m.reg.MustRegister(storeCollector{store})
}

// WatchShed adds the connections closed at MAX_CONNS, read from shed at
// every scrape: the one sign that the limit is reached, and that clients
// reconnect more than they would.
func (m *Metrics) WatchShed(shed func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hitcounter_http_conns_shed_total",
		Help: "Idle client connections closed to make room for a new one at MAX_CONNS.",
	}, func() float64 { return float64(shed()) }))
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Server serves /metrics, on a listener of its own. A scrape is short, so
// are its timeouts.
func (m *Metrics) Server() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
}

type storeCollector struct{ store *db.Store }

var (
	descWrites        = prometheus.NewDesc("hitcounter_writes_total", "Writes (statements) that counted hits.", nil, nil)
	descIncrements    = prometheus.NewDesc("hitcounter_hits_written_total", "Hits the writes counted: views, bots and filtered views.", nil, nil)
	descMemoryReads   = prometheus.NewDesc("hitcounter_memory_reads_total", "Counts answered from memory.", nil, nil)
	descDatabaseReads = prometheus.NewDesc("hitcounter_database_reads_total", "Counts read from the database (the listener was down).", nil, nil)
	descListenerUp    = prometheus.NewDesc("hitcounter_db_listener_up", "1 while the LISTEN connection is up and counts are served from memory.", nil, nil)
	descPoolAcquired  = prometheus.NewDesc("hitcounter_db_pool_acquired_conns", "Pool connections in use.", nil, nil)
	descPoolIdle      = prometheus.NewDesc("hitcounter_db_pool_idle_conns", "Pool connections idle.", nil, nil)
	descPoolTotal     = prometheus.NewDesc("hitcounter_db_pool_conns", "Pool connections open.", nil, nil)
	descPoolMax       = prometheus.NewDesc("hitcounter_db_pool_max_conns", "The pool's limit.", nil, nil)
	descPoolAcquires  = prometheus.NewDesc("hitcounter_db_pool_acquires_total", "Connections taken from the pool.", nil, nil)
	descPoolWaits     = prometheus.NewDesc("hitcounter_db_pool_empty_acquires_total", "Takes that had to wait for a connection.", nil, nil)
	descPoolWaitTime  = prometheus.NewDesc("hitcounter_db_pool_acquire_wait_seconds_total", "Time spent waiting for a pool connection.", nil, nil)
	// pg_stat_archiver, read at every scrape; left out when the database
	// does not answer within archiverTimeout.
	descWALArchived     = prometheus.NewDesc("hitcounter_db_wal_archived_total", "WAL segments the database archived (pg_stat_archiver; reset with its statistics).", nil, nil)
	descWALFailed       = prometheus.NewDesc("hitcounter_db_wal_archive_failures_total", "Failed attempts to archive a WAL segment (pg_stat_archiver).", nil, nil)
	descWALLastArchived = prometheus.NewDesc("hitcounter_db_wal_last_archived_timestamp_seconds", "When the last WAL segment was archived, Unix time; 0: never (archiving off).", nil, nil)
	descWALLastFailed   = prometheus.NewDesc("hitcounter_db_wal_last_archive_failure_timestamp_seconds", "When archiving last failed, Unix time; 0: never.", nil, nil)
)

// archiverTimeout bounds the scrape's read of pg_stat_archiver.
const archiverTimeout = time.Second

func (storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWrites, descIncrements, descMemoryReads, descDatabaseReads, descListenerUp,
		descPoolAcquired, descPoolIdle, descPoolTotal, descPoolMax, descPoolAcquires, descPoolWaits, descPoolWaitTime,
		descWALArchived, descWALFailed, descWALLastArchived, descWALLastFailed} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.store.Stats()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter(descWrites, float64(st.Writes))
	counter(descIncrements, float64(st.Increments))
	counter(descMemoryReads, float64(st.MemoryReads))
	counter(descDatabaseReads, float64(st.DatabaseReads))
	up := 0.0
	if st.Listening {
		up = 1
	}
	gauge(descListenerUp, up)
	p := c.store.PoolStats()
	gauge(descPoolAcquired, float64(p.Acquired))
	gauge(descPoolIdle, float64(p.Idle))
	gauge(descPoolTotal, float64(p.Total))
	gauge(descPoolMax, float64(p.Max))
	counter(descPoolAcquires, float64(p.Acquires))
	counter(descPoolWaits, float64(p.EmptyAcquires))
	counter(descPoolWaitTime, p.AcquireWait.Seconds())

	ctx, cancel := context.WithTimeout(context.Background(), archiverTimeout)
	defer cancel()
	if a, err := c.store.Archiver(ctx); err == nil {
		unix := func(t time.Time) float64 {
			if t.IsZero() {
				return 0
			}
			return float64(t.UnixNano()) / 1e9
		}
		counter(descWALArchived, float64(a.Archived))
		counter(descWALFailed, float64(a.Failed))
		gauge(descWALLastArchived, unix(a.LastArchived))
		gauge(descWALLastFailed, unix(a.LastFailed))
	}
}
