package worker

import "github.com/prometheus/client_golang/prometheus"

// metrics of a worker process. Labels are bounded: task type, status,
// outcome code, never operation or user IDs.
type metrics struct {
	tasks               *prometheus.CounterVec
	taskDuration        *prometheus.HistogramVec
	retries             *prometheus.CounterVec
	itemsFinished       *prometheus.CounterVec
	batchSize           prometheus.Histogram
	batchDuration       prometheus.Histogram
	operationsFinalized prometheus.Counter
	sweepReenqueued     *prometheus.CounterVec
	directoryCalls      *prometheus.CounterVec
	directoryDuration   *prometheus.HistogramVec
	directoryRetries    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_worker_tasks_total", Help: "Tasks handled, by type and result (ok, error, dropped).",
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
		operationsFinalized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_operations_finalized_total", Help: "Operations brought to completed or completed_with_errors by this process.",
		}),
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
	}
	for _, c := range []prometheus.Collector{m.tasks, m.taskDuration, m.retries, m.itemsFinished, m.batchSize,
		m.batchDuration, m.operationsFinalized, m.sweepReenqueued,
		m.directoryCalls, m.directoryDuration, m.directoryRetries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
