// Package intake is the one way a license operation comes into being: the
// JSON API's bulk saves, cleanup runs (started by hand through the API or by
// the scheduler in a worker), and any later front end all submit through a
// Service. It checks the request by the domain's rules, picks the queue,
// writes the operation with its items (seats granted, idempotency key
// completed and audit entry recorded in the same transaction), enqueues one
// task per user after commit, and counts what it created. Front ends keep
// only their own concerns: decoding, links, status codes.
package intake

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// Config tunes the intake. Zero values take the defaults of WithDefaults.
type Config struct {
	// InteractiveMax is the largest operation sent to the critical queue.
	InteractiveMax int
	// AggregateMin is the smallest operation on the local directory whose
	// tasks are enqueued in asynq groups, so that workers take them a
	// thousand at a time (jobs.EnqueueGrouped); it costs up to a second
	// (jobs.GroupGracePeriod) before the first user starts. Negative: never.
	AggregateMin int
	// BulkMin is the smallest operation sent to the bulk queue, which
	// shares the workers with default by weight (jobs.QueueWeights).
	BulkMin int
	// MaxUsersPerOperation bounds one operation, in distinct users.
	MaxUsersPerOperation int
	// EnqueueParallelism is the number of concurrent enqueue requests per operation.
	EnqueueParallelism int
	Logger             *slog.Logger
	// Registerer is where the intake's metrics are registered. A process
	// that runs the api and a worker (`licenseops all`) builds one Service
	// and hands it to both, so each metric is registered once.
	Registerer prometheus.Registerer
}

// WithDefaults returns the config with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.InteractiveMax <= 0 {
		c.InteractiveMax = 100
	}
	if c.AggregateMin == 0 {
		c.AggregateMin = 5_000
	}
	if c.BulkMin <= 0 {
		c.BulkMin = 10_000
	}
	if c.MaxUsersPerOperation <= 0 {
		c.MaxUsersPerOperation = 100_000
	}
	if c.EnqueueParallelism <= 0 {
		c.EnqueueParallelism = 16
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

// Service creates operations. It is safe for concurrent use; Close waits
// for the enqueues it runs in the background.
type Service struct {
	cfg      Config
	store    *storage.Store
	enqueuer *jobs.Enqueuer
	log      *slog.Logger
	metrics  *metrics

	// Enqueues run after commit, in the background; Close waits for them.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	mu       sync.Mutex // guards closed and bg.Add against Close
	closed   bool
	bg       sync.WaitGroup
}

// New builds the service and registers its metrics.
func New(cfg Config, store *storage.Store, rdb redis.UniversalClient) (*Service, error) {
	cfg = cfg.WithDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, store: store, log: cfg.Logger, metrics: m,
		enqueuer: &jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(rdb), Parallelism: cfg.EnqueueParallelism},
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	return s, nil
}

// Config returns the service's config, defaults filled in, so that front
// ends can state the same limits (the license summary bounds its
// selection as operations are bounded).
func (s *Service) Config() Config { return s.cfg }

// Close waits for background enqueues; when ctx ends first it cancels them
// (the sweeper enqueues what they left). Operations submitted after Close
// are still created; their tasks are left to the sweeper.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.bgCancel()
		<-done
		err = ctx.Err()
	}
	s.bgCancel()
	return err
}

// Submission is what Submit did: it created Operation, or, when the
// request repeats one already taken under its idempotency key, created
// nothing and returns the answer stored then in Replayed.
type Submission struct {
	Operation licensing.Operation
	Replayed  *storage.StoredResponse
}

// Submit creates an operation: it validates and normalizes req (errors are
// *licensing.Error: InvalidRequest, TooLarge, and from Postgres
// UnknownSkus, UnknownUsers, the idempotency codes), writes the operation
// with one item per user and the seats granted to them, and enqueues its
// tasks in the background. When the assigned SKUs lack seats and
// AllowPartial is false it returns a *storage.ShortageError, which front
// ends render as CountViolation with their own links (the API adds
// buy_more_url). A failed submit releases the idempotency key it claimed,
// so that the request may be retried.
func (s *Service) Submit(ctx context.Context, req Request) (Submission, error) {
	if err := req.validate(s.cfg.MaxUsersPerOperation); err != nil {
		return Submission{}, err
	}
	if err := req.validateKey(); err != nil {
		return Submission{}, err
	}
	newOp, err := s.newOperation(req)
	if err != nil {
		return Submission{}, err
	}
	key := keyed{partnerKey: req.Principal.PartnerKey, key: req.IdempotencyKey, fingerprint: req.fingerprint(), respond: req.Respond}
	sub, err := s.createKeyed(ctx, key, func(k *storage.IdempotencyKey) (licensing.Operation, error) {
		newOp.Idempotency = k
		return s.store.CreateOperation(ctx, newOp)
	})
	if err != nil || sub.Replayed != nil {
		return sub, err
	}
	failpoint("operation-committed") // fault tests: the api dies between commit and enqueue
	s.accepted(sub.Operation, req.UserIDs, s.grouped(req.Customer, len(req.UserIDs)))
	return sub, nil
}

// keyed is the idempotency key of a request that creates an operation
// ("" key: none), with the request's fingerprint and the rendering of its
// answer.
type keyed struct {
	partnerKey  int64
	key         string
	fingerprint []byte
	respond     func(licensing.Operation) storage.StoredResponse
}

// createKeyed runs create under the request's idempotency key: a repeat
// of a request taken before gets its stored answer (Submission.Replayed)
// and creates nothing; create gets the key to complete in the operation's
// own transaction (nil without a key). A failed create releases the key,
// so that the request may be retried.
func (s *Service) createKeyed(ctx context.Context, k keyed, create func(*storage.IdempotencyKey) (licensing.Operation, error)) (Submission, error) {
	var ik *storage.IdempotencyKey
	if k.key != "" {
		stored, err := s.store.ClaimIdempotencyKey(ctx, k.partnerKey, k.key, k.fingerprint)
		if err != nil {
			return Submission{}, err
		}
		if stored != nil {
			return Submission{Replayed: stored}, nil
		}
		ik = &storage.IdempotencyKey{Key: k.key, Respond: k.respond}
	}
	op, err := create(ik)
	if err != nil {
		if ik != nil {
			_ = s.store.ReleaseIdempotencyKey(context.WithoutCancel(ctx), k.partnerKey, k.key)
		}
		return Submission{}, err
	}
	return Submission{Operation: op}, nil
}

// newOperation is the plan of a validated request: what storage writes,
// on the queue its size and source call for.
func (s *Service) newOperation(req Request) (storage.NewOperation, error) {
	p := req.Principal
	newOp := storage.NewOperation{
		PartnerKey: p.PartnerKey, Customer: req.Customer, UserIDs: req.UserIDs, Assign: req.Assign, Revoke: req.Revoke,
		Replace: req.Replace, CopyFrom: req.CopyFrom, Exact: req.Exact, DisabledPlans: req.DisabledPlans,
		AllowPartial: req.AllowPartial, Source: req.Source, CreatedBy: p.TokenName, NotBefore: req.NotBefore,
		Queue: jobs.QueueFor(len(req.UserIDs), req.Source, s.cfg.InteractiveMax, s.cfg.BulkMin),
	}
	if req.UsageLocation != nil {
		newOp.UsageLocation = *req.UsageLocation
	}
	details := map[string]any{
		"users": len(req.UserIDs), "skus": len(req.Assign) + len(req.Revoke), "assign": nonNilStrings(req.Assign), "revoke": nonNilStrings(req.Revoke),
	}
	if len(req.Replace) > 0 {
		// Stored with the pairs' SKUs in assign and revoke (see
		// storage.NewOperation.Replace); audited as asked.
		newOp.Assign = append(slices.Clone(req.Assign), licensing.ReplaceTargets(req.Replace)...)
		newOp.Revoke = append(slices.Clone(req.Revoke), licensing.ReplaceSources(req.Replace)...)
		details["replace"] = req.Replace
		details["skus"] = len(newOp.Assign) + len(newOp.Revoke)
	}
	if req.CopyFrom != "" {
		// The licenses copied are the operation's assign, read when it is created.
		details["copy_from"], details["exact"] = req.CopyFrom, req.Exact
	}
	if len(req.DisabledPlans) > 0 {
		details["disabled_plans"] = req.DisabledPlans
	}
	entry, err := p.Audit(AuditOperationCreate, req.Customer.ID, "", details)
	if err != nil {
		return newOp, err
	}
	newOp.Audit = &entry
	return newOp, nil
}

// AuditOperationCreate is the audit action of a submitted operation,
// recorded in the operation's own transaction.
const AuditOperationCreate = "operation.create"

// RunCleanup runs a cleanup policy once (storage.RunCleanup: the run, and
// the operation revoking the matched users' licenses, in one transaction)
// and enqueues that operation's tasks as Submit does. The queue is the
// intake's choice: req.Queue is ignored.
func (s *Service) RunCleanup(ctx context.Context, req storage.CleanupRunRequest) (storage.CleanupRunResult, error) {
	req.Queue = jobs.QueueFor(0, licensing.SourceCleanup, s.cfg.InteractiveMax, s.cfg.BulkMin)
	res, err := s.store.RunCleanup(ctx, req)
	if err != nil {
		return res, err
	}
	if res.Operation != nil {
		s.accepted(*res.Operation, res.UserIDs, false)
	}
	if res.Run.Status == licensing.RunBlocked {
		s.metrics.cleanupBlocked.Inc()
		s.log.WarnContext(ctx, "cleanup run blocked: it matched more users than its policy allows", "policy_id", res.Policy.ID,
			"customer_id", res.Policy.CustomerID, "matched_users", res.Run.MatchedUsers, "limit", res.Run.Limit)
	}
	return res, nil
}

// grouped reports whether an operation's tasks go into asynq groups: large
// ones on the local directory. An external directory paces each user's
// write as its task comes (worker.Pacer), which a batch of a thousand
// would defeat, and at a few dozen writes a second the queue's cost per
// task does not matter there.
func (s *Service) grouped(c licensing.Customer, users int) bool {
	return s.cfg.AggregateMin > 0 && users >= s.cfg.AggregateMin && c.Directory.Kind == licensing.DirectoryLocal
}

// accepted counts a committed operation and enqueues its tasks in the
// background, unless it is scheduled: StartDue enqueues those when they
// start.
func (s *Service) accepted(op licensing.Operation, users []string, grouped bool) {
	s.metrics.operationsCreated.WithLabelValues(op.Source, op.Queue).Inc()
	s.metrics.operationUsers.Observe(float64(op.Total))
	if op.Status != licensing.StatusScheduled {
		s.enqueueInBackground(op, users, grouped)
	}
}

// enqueueInBackground enqueues the tasks of a committed operation in the
// background.
func (s *Service) enqueueInBackground(op licensing.Operation, users []string, grouped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.log.Warn("operation created while the intake is closing; the sweeper will enqueue it", "operation_id", op.ID)
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.enqueue(s.bgCtx, op, users, grouped)
	}()
}

// enqueue puts an operation's tasks on its queue. The operation is durable
// already: if this fails or the process dies half-way, the sweeper
// enqueues the rest after its grace period.
func (s *Service) enqueue(ctx context.Context, op licensing.Operation, users []string, grouped bool) {
	start := time.Now()
	// Before the first task: every batch of this operation plans with
	// statistics that know its size.
	if err := s.store.AnalyzeItems(ctx, op.Total); err != nil {
		s.log.Warn("could not refresh statistics after a large intake", "operation_id", op.ID, "error", err)
	}
	enqueue := s.enqueuer.EnqueueItems
	if grouped {
		enqueue = s.enqueuer.EnqueueGrouped
	}
	res, err := enqueue(ctx, op.ID, op.Queue, users)
	if err != nil {
		s.metrics.enqueueFailures.Inc()
		s.log.Warn("enqueue of operation incomplete; the sweeper will finish it",
			"operation_id", op.ID, "enqueued", res.Enqueued, "total", len(users), "error", err)
		return
	}
	if err := s.store.MarkEnqueued(context.WithoutCancel(ctx), op.ID); err != nil {
		s.log.Warn("could not mark operation enqueued", "operation_id", op.ID, "error", err)
	}
	s.log.Info("operation accepted and enqueued", "operation_id", op.ID, "customer_id", op.CustomerID, "source", op.Source,
		"queue", op.Queue, "grouped", grouped, "total", op.Total, "tasks", res.Enqueued, "enqueue_duration", time.Since(start))
}

// metrics of the intake, exported by every process that creates operations.
type metrics struct {
	operationsCreated *prometheus.CounterVec
	operationUsers    prometheus.Histogram
	enqueueFailures   prometheus.Counter
	cancels           prometheus.Counter
	scheduledStarts   *prometheus.CounterVec
	cleanupBlocked    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
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
		cancels: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_operation_cancels_total", Help: "Operations cancelled on request (once each, however often the cancel is sent).",
		}),
		scheduledStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "licenseops_scheduled_starts_total", Help: "Scheduled operations started, by result (started; seats_short: every user failed CountViolation).",
		}, []string{"result"}),
		cleanupBlocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "licenseops_cleanup_runs_blocked_total", Help: "Cleanup runs that matched more users than their policy's limits and changed none.",
		}),
	}
	for _, r := range []string{"started", "seats_short"} {
		m.scheduledStarts.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.operationsCreated, m.operationUsers, m.enqueueFailures, m.cancels, m.scheduledStarts, m.cleanupBlocked} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
