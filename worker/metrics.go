package worker

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// metrics of a worker process. Labels are bounded: task type, status,
// outcome code, queue, directory call, never operation, customer or user IDs.
type metrics struct {
	tasks              *prometheus.CounterVec
	taskDuration       *prometheus.HistogramVec
	retries            *prometheus.CounterVec
	itemsFinished      *prometheus.CounterVec
	batchSize          prometheus.Histogram
	batchDuration      prometheus.Histogram
	operationsFinished *prometheus.CounterVec
	sweepReenqueued    *prometheus.CounterVec
	directoryCalls     *prometheus.CounterVec
	directoryDuration  *prometheus.HistogramVec
	directoryRetries   prometheus.Counter
	webhookDeliveries  *prometheus.CounterVec
	backlog            *backlogCollector
}

// directoryCallNames and directoryResults are every value the directory
// metrics take; they are created at zero so that rates and alerts work
// before the first call.
var (
	directoryCallNames = []string{"user_licenses", "set_usage_location", "assign_license"}
	directoryResults   = []string{"ok", "throttled", "transient", "permanent", "error"}
	reenqueueReasons   = []string{"never_enqueued", "queue_lost", "stalled", "archived", "webhook_queue_lost"}
	webhookOutcomes    = []string{"succeeded", "failed_attempt", "exhausted"}
	finishedStatuses   = []string{licensing.StatusCompleted, licensing.StatusCompletedWithErrors, licensing.StatusCancelled}
	taskTypes          = []string{jobs.TypeApplyLicenses, jobs.TypeSyncDirectory, jobs.TypeCleanupRun, jobs.TypeWebhookDelivery}
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_worker_tasks_total", Help: "Tasks handled, by type and result (ok, error, dropped; paced: sent back to the queue until its tenant's write slot).",
		}, []string{"type", "result"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "licenseops_worker_task_duration_seconds", Help: "Time to handle one task.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"type"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_worker_task_retries_total", Help: "Failed attempts of tasks that had been tried before.",
		}, []string{"type"}),
		itemsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_items_finished_total", Help: "Users of operations brought to a final state, by status and outcome code.",
		}, []string{"status", "code"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "licenseops_worker_batch_items", Help: "Items per database transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "licenseops_worker_batch_duration_seconds", Help: "Duration of one batch transaction (seat reservation and apply).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		operationsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_operations_finished_total", Help: "Operations this process brought to a final status (completed, completed_with_errors, cancelled).",
		}, []string{"status"}),
		sweepReenqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_sweeper_reenqueued_total", Help: "Tasks the sweeper put back on the queue, by reason.",
		}, []string{"reason"}),
		directoryCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_directory_calls_total", Help: "Calls to external license directories, by call and result (ok, throttled, transient, permanent, error).",
		}, []string{"call", "result"}),
		directoryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "licenseops_directory_call_duration_seconds", Help: "Duration of calls to external license directories.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"call"}),
		directoryRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_directory_retries_total", Help: "Items handed back to the queue after a throttled or failed directory call.",
		}),
		webhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_webhook_deliveries_total", Help: "Attempts at webhook deliveries, by outcome (succeeded; failed_attempt: will be retried; exhausted: failed on its last retry, the event is not delivered).",
		}, []string{"outcome"}),
		backlog: newBacklogCollector(),
	}
	for _, c := range []prometheus.Collector{m.tasks, m.taskDuration, m.retries, m.itemsFinished, m.batchSize,
		m.batchDuration, m.operationsFinished, m.sweepReenqueued,
		m.directoryCalls, m.directoryDuration, m.directoryRetries, m.webhookDeliveries, m.backlog} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, call := range directoryCallNames {
		m.directoryDuration.WithLabelValues(call)
		for _, r := range directoryResults {
			m.directoryCalls.WithLabelValues(call, r)
		}
	}
	for _, r := range reenqueueReasons {
		m.sweepReenqueued.WithLabelValues(r)
	}
	for _, o := range webhookOutcomes {
		m.webhookDeliveries.WithLabelValues(o)
	}
	for _, s := range finishedStatuses {
		m.operationsFinished.WithLabelValues(s)
	}
	for _, t := range taskTypes {
		m.retries.WithLabelValues(t)
	}
	return m, nil
}

// operationFinished counts an operation this process brought to status
// final. Call it only when the call itself made the transition, so that
// two processes finalizing the same operation count it once.
func (m *metrics) operationFinished(final string) {
	m.operationsFinished.WithLabelValues(final).Inc()
}

// backlogCollector exports what the sweeper measured on its last pass: the
// unfinished operations per queue, their pending items and the age of the
// oldest one. Every worker runs a sweeper but only the holder of the sweep
// lock measures, so a process exports the values only while they are fresh
// (measured within staleAfter); a process that has not swept lately exports
// nothing instead of old numbers. Dashboards take max over instances.
type backlogCollector struct {
	unfinished, pending, oldest, scheduled *prometheus.Desc

	mu         sync.Mutex
	staleAfter time.Duration
	measuredAt time.Time
	byQueue    map[string]storage.QueueBacklog
}

func newBacklogCollector() *backlogCollector {
	return &backlogCollector{
		unfinished: prometheus.NewDesc("licenseops_operations_unfinished",
			"Operations started and not finished yet, by queue, as of the last sweep (scheduled ones are licenseops_operations_scheduled).", []string{"queue"}, nil),
		pending: prometheus.NewDesc("licenseops_items_pending",
			"Users of unfinished operations still waiting for their change, by queue, as of the last sweep.", []string{"queue"}, nil),
		oldest: prometheus.NewDesc("licenseops_operation_oldest_unfinished_age_seconds",
			"Age of the oldest unfinished operation, by queue (0 when there is none); a scheduled one counts from its start.", []string{"queue"}, nil),
		scheduled: prometheus.NewDesc("licenseops_operations_scheduled",
			"Scheduled operations waiting for their time, by queue, as of the last sweep.", []string{"queue"}, nil),
		staleAfter: 30 * time.Second,
	}
}

// set records one sweep's measurement; queues without unfinished operations
// are exported as zero. interval is the sweep interval: values older than a
// few intervals (at least 30 s) are stale.
func (c *backlogCollector) set(backlog []storage.QueueBacklog, interval time.Duration) {
	byQueue := make(map[string]storage.QueueBacklog, len(jobs.QueueWeights)+len(backlog))
	for q := range jobs.QueueWeights {
		byQueue[q] = storage.QueueBacklog{Queue: q}
	}
	for _, b := range backlog {
		byQueue[b.Queue] = b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byQueue, c.measuredAt = byQueue, time.Now()
	c.staleAfter = max(30*time.Second, 5*interval)
}

// Describe implements prometheus.Collector.
func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.unfinished
	ch <- c.pending
	ch <- c.oldest
	ch <- c.scheduled
}

// Collect implements prometheus.Collector.
func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	since := time.Since(c.measuredAt)
	if c.byQueue == nil || since > c.staleAfter {
		return
	}
	for q, b := range c.byQueue {
		ch <- prometheus.MustNewConstMetric(c.unfinished, prometheus.GaugeValue, float64(b.Unfinished), q)
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(b.ItemsPending), q)
		age := 0.0
		if b.Unfinished > 0 {
			// The age keeps growing between sweeps, measured on this clock.
			age = b.OldestAge.Seconds() + since.Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, q)
		ch <- prometheus.MustNewConstMetric(c.scheduled, prometheus.GaugeValue, float64(b.Scheduled), q)
	}
}
