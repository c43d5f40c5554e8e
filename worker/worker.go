// Package worker processes license operations: one asynq task per user,
// batched into few Postgres transactions, plus the sweeper that makes sure
// every pending item has a task and every finished operation is completed.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/webhook"
)

// Config tunes a worker process. Zero values take the defaults of WithDefaults.
type Config struct {
	// Concurrency is the number of tasks handled at once (asynq handlers).
	Concurrency int
	// Flushers is the number of database transactions in flight at once.
	Flushers int
	// MaxBatch is the most items one transaction processes.
	MaxBatch int
	// TaskCheckInterval is how long an idle worker waits before polling the
	// queues again; small, so that a helpdesk change starts at once.
	TaskCheckInterval time.Duration
	// RetryBase and RetryMax bound the exponential backoff of a failed task
	// that got no Retry-After from the directory.
	RetryBase, RetryMax time.Duration
	// RetryCheckInterval is how often scheduled retries are moved back to
	// their queue; it adds to every retry's delay (asynq's default is 5 s).
	RetryCheckInterval time.Duration
	// ShutdownTimeout is how long a stopping worker lets handlers finish
	// before handing their tasks back to the queue.
	ShutdownTimeout time.Duration
	// InteractiveMax is the size up to which an operation is finalized by the
	// worker that finishes its last item, instead of by the next sweep.
	InteractiveMax int
	// Sweeper settings.
	Sweep SweepConfig
	// Webhooks tunes the delivery of webhook events.
	Webhooks WebhookConfig
	// DisableSweeper turns the sweeper off in this process (tests).
	DisableSweeper bool
	// Directories are the external license directories by kind ("msgraph").
	// The local directory (Postgres) needs none.
	Directories map[string]provider.Directory
	// Pacer, when set, admits the changes of users on external directories
	// at their tenant's write pace before they take a place in a batch; a
	// task whose tenant is over its pace goes back to the queue until its
	// slot instead of holding a worker slot (see pace.go). Without it the
	// directory client paces its own writes, waiting in the handler.
	Pacer      Pacer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Intake creates the operations of scheduled cleanup runs. A process
	// that also runs the api passes the api's; nil builds one of this
	// worker's own, registered with Registerer and closed by Shutdown.
	Intake *intake.Service
}

// WithDefaults returns the config with every unset field at its default.
func (c Config) WithDefaults() Config {
	// Measured on 2 cores: a batch transaction costs about the same for 5
	// or 50 items, so throughput comes from large batches, which need many
	// tasks in flight and few flushers. A batch task of a large operation
	// brings a thousand users at once: batches of up to 1,000 rather than
	// 256 made a 100,000-user rollout about 7 % faster.
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.Flushers <= 0 {
		c.Flushers = 2
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.TaskCheckInterval <= 0 {
		c.TaskCheckInterval = 20 * time.Millisecond
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.RetryCheckInterval <= 0 {
		c.RetryCheckInterval = time.Second
	}
	if c.InteractiveMax <= 0 {
		c.InteractiveMax = 100
	}
	c.Sweep = c.Sweep.WithDefaults()
	c.Webhooks = c.Webhooks.WithDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

func (c Config) validate() error {
	if c.MaxBatch > 1000 {
		return fmt.Errorf("worker: MaxBatch %d is above 1000", c.MaxBatch)
	}
	return nil
}

// Worker is one worker process's machinery. Any number of them may run
// against the same Redis and Postgres, on any hosts.
type Worker struct {
	cfg     Config
	store   *storage.Store
	server  *asynq.Server
	batcher *batcher
	plans   *planCache
	sweeper *Sweeper
	cleanup *CleanupRunner
	hooks   *webhookDeliverer
	client  *asynq.Client   // enqueues deferred syncs
	intake  *intake.Service // set when the worker built its own and closes it
	metrics *metrics
	log     *slog.Logger
}

// New builds a worker; Start starts it.
func New(cfg Config, store *storage.Store, rdb redis.UniversalClient) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:     cfg,
		store:   store,
		batcher: newBatcher(store, cfg.Flushers, cfg.MaxBatch),
		plans:   newPlanCache(store, 4096),
		metrics: m,
		log:     cfg.Logger,
	}
	w.batcher.afterBatch = w.finalizeSmall
	w.batcher.apply = func(ctx context.Context, plan *storage.Plan, reqs []*itemRequest) map[string]itemResult {
		if plan.Directory.Kind == licensing.DirectoryLocal {
			return w.batcher.applyLocal(ctx, plan, reqs)
		}
		return w.applyExternal(ctx, plan, reqs)
	}
	w.batcher.observe = func(n int, d time.Duration) {
		m.batchSize.Observe(float64(n))
		m.batchDuration.Observe(d.Seconds())
	}
	w.server = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   jobs.QueueWeights,
		TaskCheckInterval:        cfg.TaskCheckInterval,
		DelayedTaskCheckInterval: cfg.RetryCheckInterval,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		Logger:                   asynqLogger{cfg.Logger},
		LogLevel:                 asynq.WarnLevel,
		RetryDelayFunc:           w.retryDelay,
		GroupAggregator:          asynq.GroupAggregatorFunc(jobs.AggregateApply),
		GroupGracePeriod:         jobs.GroupGracePeriod,
		GroupMaxDelay:            jobs.GroupMaxDelay,
		GroupMaxSize:             jobs.GroupMaxSize,
		// Waiting for a tenant's write slot or for a seat is not a
		// failure: it spends none of the task's retries (isFailure).
		IsFailure: isFailure,
	})
	w.client = asynq.NewClientFromRedisClient(rdb)
	svc := cfg.Intake
	if svc == nil {
		if svc, err = intake.New(intake.Config{Logger: cfg.Logger, Registerer: cfg.Registerer}, store, rdb); err != nil {
			return nil, err
		}
		w.intake = svc
	}
	if !cfg.DisableSweeper {
		w.sweeper = NewSweeper(cfg.Sweep, store, rdb, cfg.Logger, m)
		w.sweeper.scheduler = svc
	}
	w.cleanup = NewCleanupRunner(CleanupConfig{Logger: cfg.Logger}, svc)
	w.hooks = &webhookDeliverer{store: store, sender: webhook.NewSender(cfg.Webhooks.Sender), metrics: m, log: cfg.Logger, now: time.Now}
	return w, nil
}

// Handler returns the worker's task handler with its middleware.
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.Use(w.recoverer, w.observer)
	mux.HandleFunc(jobs.TypeApplyLicenses, w.handleApply)
	mux.HandleFunc(jobs.TypeApplyBatch, w.handleApplyBatch)
	mux.HandleFunc(jobs.TypeSyncDirectory, w.handleSync)
	mux.Handle(jobs.TypeCleanupRun, w.cleanup)
	mux.Handle(jobs.TypeWebhookDelivery, w.hooks)
	return mux
}

// Start starts processing tasks and sweeping.
func (w *Worker) Start() error {
	if err := w.server.Start(w.Handler()); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	if w.sweeper != nil {
		w.sweeper.Start()
	}
	return nil
}

// Shutdown stops taking tasks, lets running ones finish (or hands them back
// to the queue after ShutdownTimeout), then stops the batcher and sweeper.
func (w *Worker) Shutdown() {
	w.server.Shutdown()
	w.batcher.Close()
	if w.sweeper != nil {
		w.sweeper.Stop()
	}
	if w.intake != nil {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
		defer cancel()
		_ = w.intake.Close(ctx) // what it leaves, the sweeper enqueues
	}
}

// Run starts the worker and blocks until ctx is done, then shuts down.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Shutdown()
	return nil
}

// Sweeper returns the process's sweeper (nil when disabled).
func (w *Worker) Sweeper() *Sweeper { return w.sweeper }

func (w *Worker) handleApply(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseApplyPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	return w.apply(ctx, p.OperationID, []string{p.UserID})
}

// handleApplyBatch handles the batch asynq aggregated from the grouped
// tasks of a large operation: every user goes to the batcher at once, so
// its transactions fill up, and the task succeeds when every user's change
// is recorded. A transient error fails the task, and its retry finds the
// recorded users terminal and does the rest.
func (w *Worker) handleApplyBatch(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseApplyBatchPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	users := make(map[string][]string, 1) // by operation; one, as grouped
	for _, it := range p.Items {
		users[it.OperationID] = append(users[it.OperationID], it.UserID)
	}
	var errs []error
	for opID, ids := range users {
		errs = append(errs, w.apply(ctx, opID, ids))
	}
	return errors.Join(errs...)
}

// apply processes users of one operation through the batcher and records
// their outcomes.
func (w *Worker) apply(ctx context.Context, opID string, users []string) error {
	taskID, _ := asynq.GetTaskID(ctx)
	plan, err := w.plans.Get(ctx, opID)
	if licensing.ErrorCode(err) == licensing.CodeNotFound {
		w.log.WarnContext(ctx, "operation no longer exists; dropping task", "operation_id", opID, "users", len(users),
			"task_id", taskID)
		return nil
	}
	if err != nil {
		return err
	}
	if err := w.pace(ctx, plan, taskID); err != nil {
		return err
	}
	// A batch task whose users wait for a seat (errWaitForSeat) tries them
	// again here a few times before the task goes back to the queue: the
	// queue would bring the whole batch back only after a second or two,
	// and the users it waits for are usually in batches running now.
	for attempt := 0; ; attempt++ {
		waiting, err := w.record(ctx, plan, taskID, users, w.batcher.DoMany(ctx, plan, users))
		if len(waiting) == 0 || attempt == batchWaitRetries {
			return err
		}
		users = waiting
		select {
		case <-ctx.Done():
			return err
		case <-time.After(batchWaitPause):
		}
	}
}

// A batch task tries the users that wait for a seat batchWaitRetries more
// times, batchWaitPause apart, before it goes back to the queue.
const (
	batchWaitRetries = 10
	batchWaitPause   = 200 * time.Millisecond
)

// record counts and logs the outcomes of users (results in their order)
// and returns the task's error: a real failure before a wait for a seat,
// so that a batch with both counts as failed (isFailure) and spends a
// retry. Of a batch task that only waits for seats, it also returns the
// users that wait.
func (w *Worker) record(ctx context.Context, plan *storage.Plan, taskID string, users []string, results []itemResult) (waiting []string, err error) {
	for i, r := range results {
		if r.err != nil {
			if errors.Is(r.err, errWaitForSeat) {
				waiting = append(waiting, users[i])
			}
			if err == nil || errors.Is(err, errWaitForSeat) && !errors.Is(r.err, errWaitForSeat) {
				err = r.err
			}
			continue
		}
		outcome := r.outcome
		if outcome.Changed {
			w.metrics.itemsFinished.WithLabelValues(outcome.Status, string(outcome.Code)).Inc()
		}
		if outcome.Status == licensing.ItemFailed && outcome.Changed {
			w.log.InfoContext(ctx, "user change failed", "operation_id", plan.ID, "customer_id", plan.CustomerID,
				"user_id", outcome.UserID, "task_id", taskID, "code", outcome.Code)
		}
	}
	if len(users) == 1 || !errors.Is(err, errWaitForSeat) {
		// A single task goes back to the queue to wait; another error
		// fails the batch, and the queue brings all of it back.
		waiting = nil
	}
	return waiting, err
}

// finalizeSmall completes interactive operations as soon as their last item
// is recorded, so a helpdesk agent's report is ready in milliseconds. Large
// operations are finalized by the sweeper, which keeps the per-user path free
// of a count over all items.
func (w *Worker) finalizeSmall(ctx context.Context, plan *storage.Plan) {
	if plan.Total > w.cfg.InteractiveMax {
		return
	}
	f, err := w.store.Finalize(ctx, plan.ID)
	if err != nil {
		w.log.Warn("finalize failed; the sweeper will retry", "operation_id", plan.ID, "customer_id", plan.CustomerID, "error", err)
		return
	}
	if f.Status != "" {
		w.metrics.operationFinished(f.Status)
		w.log.InfoContext(ctx, "operation finished", "operation_id", plan.ID, "customer_id", plan.CustomerID,
			"status", f.Status, "succeeded", f.Succeeded, "failed", f.Failed)
	}
}

func (w *Worker) recoverer(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
		defer func() {
			if r := recover(); r != nil {
				w.log.ErrorContext(ctx, "task handler panicked", append(w.taskAttrs(ctx, t), "panic", r)...)
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next.ProcessTask(ctx, t)
	})
}

func (w *Worker) observer(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		result := "ok"
		if isPaced(err) {
			// Expected while a tenant has a backlog: not a failure, and
			// not worth a line per user.
			w.metrics.tasks.WithLabelValues(t.Type(), "paced").Inc()
			return err
		}
		if err != nil {
			result = "error"
			switch {
			case errors.Is(err, asynq.SkipRetry):
				result = "dropped"
			case errors.Is(err, errWaitForSeat):
				result = "waiting"
			}
			retried, _ := asynq.GetRetryCount(ctx)
			if retried > 0 {
				w.metrics.retries.WithLabelValues(t.Type()).Inc()
			}
			msg, level := "task failed; asynq will retry it", slog.LevelWarn
			var derr *provider.Error
			switch {
			case result == "dropped":
				msg = "task failed and is dropped"
			case result == "waiting":
				msg, level = "the user waits for a seat another user of its operation may leave; asynq will retry it", slog.LevelDebug
			case isLastAttempt(ctx):
				msg = "task failed on its last attempt; asynq archives it"
			case errors.As(err, &derr) && derr.Kind == provider.Throttled:
				// Expected under load: a throttled rollout would log a
				// line per user. licenseops_directory_calls_total counts them.
				msg, level = "the directory throttled the task; asynq will retry it", slog.LevelDebug
			}
			w.log.Log(ctx, level, msg, append(w.taskAttrs(ctx, t), "retried", retried, "error", err)...)
		}
		w.metrics.tasks.WithLabelValues(t.Type(), result).Inc()
		w.metrics.taskDuration.WithLabelValues(t.Type()).Observe(time.Since(start).Seconds())
		return err
	})
}

// taskAttrs are the log attributes that identify a task: its ID and type,
// and for a license task its operation, customer (when the operation's plan
// is cached, as it is once any of its items ran here) and user.
func (w *Worker) taskAttrs(ctx context.Context, t *asynq.Task) []any {
	taskID, _ := asynq.GetTaskID(ctx)
	attrs := []any{"task_id", taskID, "type", t.Type()}
	if t.Type() == jobs.TypeApplyLicenses {
		if p, err := jobs.ParseApplyPayload(t.Payload()); err == nil {
			attrs = append(attrs, "operation_id", p.OperationID)
			if plan := w.plans.Cached(p.OperationID); plan != nil {
				attrs = append(attrs, "customer_id", plan.CustomerID)
			}
			attrs = append(attrs, "user_id", p.UserID)
		}
	}
	return attrs
}

// asynqLogger routes asynq's own logs through slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
