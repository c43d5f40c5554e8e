package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the API. The route label is the route pattern, never the raw
// path, so its cardinality is the number of routes. The metrics of the
// operations it creates are the intake service's.
type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	rateLimitErrors prometheus.Counter
	auditFailures   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "licenseops_http_request_duration_seconds", Help: "HTTP request duration by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"route"}),
		rateLimitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_rate_limit_errors_total", Help: "Requests let through unchecked because Redis could not answer the rate limit check.",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_audit_failures_total", Help: "Changes made through the API whose audit entry could not be written.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.rateLimitErrors, m.auditFailures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// QueueMetricsCollector exports the state of the asynq queues, read from
// Redis at each scrape, so queue depth and latency have one scrape target
// (the api) however many workers run. It exports the metrics of asynq's
// x/metrics collector under the same names (those asynqmon's Metrics page
// queries), except the two gauges asynq names like counters, which break the
// Prometheus naming rules (promtool check metrics):
//
//	asynq_tasks_enqueued_total{queue,state}  → asynq_queue_tasks{queue,state}
//	asynq_queue_paused_total{queue}          → asynq_queue_paused{queue}
type QueueMetricsCollector struct {
	inspector *asynq.Inspector

	up, tasks, size, latency, memory, processed, failed, paused *prometheus.Desc
}

// NewQueueMetricsCollector returns a collector of every queue the inspector sees.
func NewQueueMetricsCollector(inspector *asynq.Inspector) *QueueMetricsCollector {
	q := []string{"queue"}
	return &QueueMetricsCollector{
		inspector: inspector,
		up: prometheus.NewDesc("licenseops_queue_metrics_up",
			"1 when the asynq queues could be read from Redis at this scrape, else 0 (and no asynq_* metrics).", nil, nil),
		tasks: prometheus.NewDesc("asynq_queue_tasks",
			"Tasks in a queue by state (pending, active, scheduled, retry, archived, completed, aggregating).", []string{"queue", "state"}, nil),
		size: prometheus.NewDesc("asynq_queue_size",
			"Tasks in a queue, in any state.", q, nil),
		latency: prometheus.NewDesc("asynq_queue_latency_seconds",
			"How long the oldest pending task of a queue has waited.", q, nil),
		memory: prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
			"Redis memory used by a queue (approximated by sampling).", q, nil),
		processed: prometheus.NewDesc("asynq_tasks_processed_total",
			"Task attempts processed, successful or not, by queue.", q, nil),
		failed: prometheus.NewDesc("asynq_tasks_failed_total",
			"Task attempts that failed, by queue.", q, nil),
		paused: prometheus.NewDesc("asynq_queue_paused",
			"1 when the queue is paused (asynqmon or asynq CLI), else 0.", q, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueMetricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.tasks, c.size, c.latency, c.memory, c.processed, c.failed, c.paused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A Redis error does not fail the
// scrape (the HTTP metrics of the api matter most when Redis is in trouble):
// it sets licenseops_queue_metrics_up to 0.
func (c *QueueMetricsCollector) Collect(ch chan<- prometheus.Metric) {
	infos, err := c.queueInfos()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, qi := range infos {
		q := qi.Queue
		for state, n := range map[string]int{"pending": qi.Pending, "active": qi.Active, "scheduled": qi.Scheduled,
			"retry": qi.Retry, "archived": qi.Archived, "completed": qi.Completed, "aggregating": qi.Aggregating} {
			gauge(c.tasks, float64(n), q, state)
		}
		gauge(c.size, float64(qi.Size), q)
		gauge(c.latency, qi.Latency.Seconds(), q)
		gauge(c.memory, float64(qi.MemoryUsage), q)
		paused := 0.0
		if qi.Paused {
			paused = 1
		}
		gauge(c.paused, paused, q)
		ch <- prometheus.MustNewConstMetric(c.processed, prometheus.CounterValue, float64(qi.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(qi.FailedTotal), q)
	}
}

func (c *QueueMetricsCollector) queueInfos() ([]*asynq.QueueInfo, error) {
	queues, err := c.inspector.Queues()
	if err != nil {
		return nil, err
	}
	infos := make([]*asynq.QueueInfo, 0, len(queues))
	for _, q := range queues {
		qi, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			return nil, err
		}
		infos = append(infos, qi)
	}
	return infos, nil
}
