package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the API. The route label is the route pattern, never the raw
// path, so its cardinality is the number of routes.
type metrics struct {
	requests          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	operationsCreated *prometheus.CounterVec
	operationUsers    prometheus.Histogram
	enqueueFailures   prometheus.Counter
	rateLimitErrors   prometheus.Counter
	auditFailures     prometheus.Counter
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
		operationsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_operations_created_total", Help: "License operations accepted, by source and queue.",
		}, []string{"source", "queue"}),
		operationUsers: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "licenseops_operation_users", Help: "Users per accepted operation.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		enqueueFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_enqueue_failures_total", Help: "Operations whose tasks could not all be enqueued at intake (the sweeper completes them).",
		}),
		rateLimitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_rate_limit_errors_total", Help: "Requests let through unchecked because Redis could not answer the rate limit check.",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_audit_failures_total", Help: "Changes made through the API whose audit entry could not be written.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.operationsCreated, m.operationUsers, m.enqueueFailures, m.rateLimitErrors, m.auditFailures} {
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
