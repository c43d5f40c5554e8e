package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/storage"
)

// SweepConfig tunes the sweeper.
type SweepConfig struct {
	// Interval between sweeps. It bounds how long a large operation waits to
	// be marked completed after its last item.
	Interval time.Duration
	// EnqueueGrace is how long after intake an operation whose tasks were not
	// all enqueued (the api died after commit) is enqueued by the sweeper.
	EnqueueGrace time.Duration
	// StallAfter is how long an operation may make no progress before its
	// pending items are enqueued again (their tasks may have been lost) and
	// their archived tasks are run again.
	StallAfter time.Duration
}

// WithDefaults returns the config with every unset field at its default.
func (c SweepConfig) WithDefaults() SweepConfig {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.EnqueueGrace <= 0 {
		c.EnqueueGrace = 30 * time.Second
	}
	if c.StallAfter <= 0 {
		c.StallAfter = 5 * time.Minute
	}
	return c
}

// EpochKey is a Redis key that exists as long as Redis keeps its data. When
// the sweeper finds it missing, Redis lost the queue (restarted without
// persistence, flushed, failed over to an empty replica) and every pending
// item is enqueued again. A sweeper sets it on its first sweep, so tools
// that start a worker on an empty Redis wait for it before they measure.
const EpochKey = "licenseops:queue-epoch"

// sweeperLockKey is the advisory lock that lets one sweeper run at a time.
const sweeperLockKey = 0x6c6f7073 // "lops"

// Sweeper starts scheduled operations when they are due, finalizes
// finished operations, settles seats of running ones, and puts back on the
// queue any pending item whose task was never enqueued or was lost. Every worker process runs one; an advisory lock lets one sweep
// at a time, and every step is idempotent, so overlap is harmless anyway.
type Sweeper struct {
	cfg     SweepConfig
	store   *storage.Store
	rdb     redis.UniversalClient
	enq     *jobs.Enqueuer
	insp    *asynq.Inspector
	log     *slog.Logger
	metrics *metrics
	// scheduler starts the scheduled operations that are due, when set.
	scheduler interface {
		StartDue(ctx context.Context) (int, error)
	}
	stop chan struct{}
	wg   sync.WaitGroup
}

// NewSweeper builds a sweeper; Start runs it in the background.
func NewSweeper(cfg SweepConfig, store *storage.Store, rdb redis.UniversalClient, log *slog.Logger, m *metrics) *Sweeper {
	return &Sweeper{
		cfg: cfg.WithDefaults(), store: store, rdb: rdb, log: log, metrics: m,
		enq:  &jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(rdb)},
		insp: asynq.NewInspectorFromRedisClient(rdb),
		stop: make(chan struct{}),
	}
}

// Start runs sweeps every Interval until Stop.
func (s *Sweeper) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				if err := s.Sweep(ctx); err != nil {
					s.log.Warn("sweep failed; will try again", "error", err)
				}
				cancel()
			}
		}
	}()
}

// Stop stops the background sweeps and waits for the one in progress.
func (s *Sweeper) Stop() {
	close(s.stop)
	s.wg.Wait()
}

// Sweep does one pass. It is exported so tests and the demo can drive it.
func (s *Sweeper) Sweep(ctx context.Context) (err error) {
	ok, unlock, err := s.store.TryLock(ctx, sweeperLockKey)
	if err != nil || !ok {
		return err
	}
	defer unlock()
	// Measured after the pass (operations it finished no longer count), and
	// after a failed pass too, so the gauges stay fresh while it fails.
	defer func() { err = errors.Join(err, s.measureBacklog(ctx)) }()
	lost, err := s.queueLost(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.dispatchWebhooks(ctx, lost)) }() // after this sweep's finalizations
	if lost {
		// asynq clients remember which queues they registered; after a loss
		// a fresh client registers them again, so asynqmon sees them.
		s.enq.Client = asynq.NewClientFromRedisClient(s.rdb)
	}
	if s.scheduler != nil {
		// Postgres holds the schedule: a lost queue or a restarted worker
		// delays a start by a sweep at most.
		if _, err := s.scheduler.StartDue(ctx); err != nil {
			return fmt.Errorf("start scheduled operations: %w", err)
		}
	}
	ops, err := s.store.UnfinishedOperations(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, op := range ops {
		f, err := s.store.Finalize(ctx, op.ID)
		if err != nil {
			return err
		}
		if f.Status != "" {
			if s.metrics != nil {
				s.metrics.operationFinished(f.Status)
			}
			s.log.Info("operation finished", "operation_id", op.ID, "status", f.Status, "succeeded", f.Succeeded, "failed", f.Failed,
				"queue", op.Queue, "duration", time.Since(op.CreatedAt).Round(time.Millisecond))
		}
		if f.Done {
			continue
		}
		if err := s.store.Settle(ctx, op.ID); err != nil {
			return err
		}
		reason := ""
		switch {
		case op.EnqueuedAt == nil && now.Sub(op.ReadyAt) > s.cfg.EnqueueGrace:
			reason = "never_enqueued"
		case op.EnqueuedAt != nil && lost:
			reason = "queue_lost"
		case op.EnqueuedAt != nil && now.Sub(*op.EnqueuedAt) > s.cfg.StallAfter:
			last, err := s.store.LastProgress(ctx, op.ID)
			if err != nil {
				return err
			}
			if now.Sub(last) > s.cfg.StallAfter {
				reason = "stalled"
			}
		}
		if reason != "" {
			if err := s.reenqueue(ctx, op, reason); err != nil {
				return err
			}
		}
	}
	return nil
}

// measureBacklog sets the backlog gauges (unfinished operations, pending
// items, oldest unfinished age) from one query.
func (s *Sweeper) measureBacklog(ctx context.Context) error {
	if s.metrics == nil {
		return nil
	}
	backlog, err := s.store.Backlog(ctx)
	if err != nil {
		return fmt.Errorf("measure backlog: %w", err)
	}
	s.metrics.backlog.set(backlog, s.cfg.Interval)
	return nil
}

// queueLost reports whether Redis lost its data since the last sweep, by the
// disappearance of the epoch key (set again at once).
func (s *Sweeper) queueLost(ctx context.Context) (bool, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	created, err := s.rdb.SetNX(ctx, EpochKey, hex.EncodeToString(b), 0).Result()
	return created, err
}

func (s *Sweeper) reenqueue(ctx context.Context, op storage.UnfinishedOperation, reason string) error {
	users, err := s.store.PendingUserIDs(ctx, op.ID)
	if err != nil {
		return err
	}
	res, err := s.enq.EnqueueItems(ctx, op.ID, op.Queue, users)
	if err != nil {
		return err
	}
	if s.metrics != nil {
		s.metrics.sweepReenqueued.WithLabelValues(reason).Add(float64(res.Enqueued))
	}
	if res.Enqueued > 0 {
		s.log.Info("re-enqueued pending items", "operation_id", op.ID, "reason", reason, "enqueued", res.Enqueued, "already_queued", res.Existing)
	}
	if reason == "stalled" && res.Existing > 0 {
		if err := s.runArchived(ctx, op); err != nil {
			return err
		}
		// Tasks asynq reclaimed into a group it no longer lists.
		if n, err := jobs.ReviveGroups(ctx, s.rdb, op.Queue, op.ID); err != nil {
			return err
		} else if n > 0 {
			s.log.Info("listed the operation's asynq groups again", "operation_id", op.ID, "groups", n)
		}
	}
	return s.store.MarkEnqueued(ctx, op.ID)
}

// archivedPage is how many archived tasks runArchived reads per round trip.
const archivedPage = 1000

// runArchived runs again the archived tasks of a stalled operation. asynq
// archives a task after its last retry (a Postgres outage longer than the
// retries, a directory down for as long); its item is still pending, and
// the task's ID keeps a new task for the item off the queue, so without this
// the operation would wait for an operator forever.
func (s *Sweeper) runArchived(ctx context.Context, op storage.UnfinishedOperation) error {
	prefix := jobs.TaskID(op.ID, "")
	var ids []string
	for page := 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		tasks, err := s.insp.ListArchivedTasks(op.Queue, asynq.Page(page), asynq.PageSize(archivedPage))
		if err != nil {
			return fmt.Errorf("list archived tasks of %s: %w", op.Queue, err)
		}
		for _, t := range tasks {
			if strings.HasPrefix(t.ID, prefix) {
				ids = append(ids, t.ID)
			}
		}
		if len(tasks) < archivedPage {
			break
		}
	}
	ran := 0
	for _, id := range ids {
		err := s.insp.RunTask(op.Queue, id)
		switch {
		case err == nil:
			ran++
		case errors.Is(err, asynq.ErrTaskNotFound): // run or deleted meanwhile
		default:
			return fmt.Errorf("run archived task %s: %w", id, err)
		}
	}
	if s.metrics != nil {
		s.metrics.sweepReenqueued.WithLabelValues("archived").Add(float64(ran))
	}
	if ran > 0 {
		s.log.Warn("ran archived tasks of a stalled operation again", "operation_id", op.ID, "tasks", ran)
	}
	return nil
}
