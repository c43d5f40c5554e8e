package worker

import (
	"context"
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

// SchedulerConfig tunes a scheduler process.
type SchedulerConfig struct {
	// SyncInterval is how often the enabled policies are read again, so a
	// new, edited, disabled or deleted policy applies without a restart.
	SyncInterval time.Duration
	// HeartbeatInterval is how often the scheduler publishes its entries
	// (asynqmon's Schedulers view); 0 keeps asynq's default.
	HeartbeatInterval time.Duration
	// QueryTimeout bounds one read of the policies.
	QueryTimeout time.Duration
	// DirectorySyncEvery is how often every customer on an external
	// directory is synced from it; negative turns periodic syncs off.
	DirectorySyncEvery time.Duration
	Logger             *slog.Logger
}

// WithDefaults returns the config with every unset field at its default.
func (c SchedulerConfig) WithDefaults() SchedulerConfig {
	if c.SyncInterval <= 0 {
		c.SyncInterval = 10 * time.Second
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = 10 * time.Second
	}
	if c.DirectorySyncEvery == 0 {
		c.DirectorySyncEvery = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// PolicyConfigProvider is the asynq.PeriodicTaskConfigProvider of cleanup
// policies: every enabled policy becomes a periodic TypeCleanupRun task on
// "CRON_TZ=<time_zone> <schedule>".
type PolicyConfigProvider struct {
	store   *storage.Store
	timeout time.Duration
	log     *slog.Logger
	// syncEvery, when positive, also schedules a directory sync of every
	// customer on an external directory.
	syncEvery time.Duration
}

// NewPolicyConfigProvider builds the provider.
func NewPolicyConfigProvider(store *storage.Store, timeout time.Duration, log *slog.Logger) *PolicyConfigProvider {
	return &PolicyConfigProvider{store: store, timeout: timeout, log: log}
}

// SyncDirectoriesEvery makes the provider also schedule a directory sync of
// every customer on an external directory at this interval (0: none).
func (p *PolicyConfigProvider) SyncDirectoriesEvery(d time.Duration) *PolicyConfigProvider {
	p.syncEvery = d
	return p
}

// GetConfigs reads the enabled policies. A policy whose schedule no longer
// parses (the API validates them, so only a newer tz database could do
// that) is left out and logged rather than failing the whole sync.
func (p *PolicyConfigProvider) GetConfigs() ([]*asynq.PeriodicTaskConfig, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	policies, err := p.store.EnabledCleanupPolicies(ctx)
	if err != nil {
		return nil, fmt.Errorf("read cleanup policies: %w", err)
	}
	configs := make([]*asynq.PeriodicTaskConfig, 0, len(policies))
	for _, pol := range policies {
		if _, err := storage.ParseSchedule(pol.Schedule, pol.TimeZone); err != nil {
			p.log.Warn("cleanup policy has an invalid schedule; not scheduling it", "policy_id", pol.ID, "error", err)
			continue
		}
		configs = append(configs, &asynq.PeriodicTaskConfig{
			Cronspec: storage.Cronspec(pol.Schedule, pol.TimeZone),
			Task:     jobs.NewCleanupRunTask(pol.ID, pol.Schedule, pol.TimeZone),
		})
	}
	if p.syncEvery > 0 {
		keys, err := p.store.ExternalDirectoryCustomers(ctx)
		if err != nil {
			return nil, fmt.Errorf("read customers on external directories: %w", err)
		}
		for _, k := range keys {
			// The sync task's ID makes a sync already queued, waiting or
			// running absorb the next one (an archived one is run again
			// before each tick, in NewScheduler's PreEnqueueFunc).
			configs = append(configs, &asynq.PeriodicTaskConfig{Cronspec: "@every " + p.syncEvery.String(), Task: jobs.NewSyncTask(k)})
		}
	}
	return configs, nil
}

// Scheduler enqueues a TypeCleanupRun task at every tick of every enabled
// cleanup policy: asynq's PeriodicTaskManager fed by PolicyConfigProvider.
// Any number of schedulers may run (for availability); each enqueues every
// tick, and the run handler's database guard makes each tick run once.
type Scheduler struct {
	mgr  *asynq.PeriodicTaskManager
	log  *slog.Logger
	stop sync.Once
}

// NewScheduler builds a scheduler; Start starts it.
func NewScheduler(cfg SchedulerConfig, store *storage.Store, rdb redis.UniversalClient) (*Scheduler, error) {
	cfg = cfg.WithDefaults()
	log := cfg.Logger
	insp := asynq.NewInspectorFromRedisClient(rdb)
	mgr, err := asynq.NewPeriodicTaskManager(asynq.PeriodicTaskManagerOpts{
		PeriodicTaskConfigProvider: NewPolicyConfigProvider(store, cfg.QueryTimeout, log).SyncDirectoriesEvery(cfg.DirectorySyncEvery),
		RedisUniversalClient:       rdb,
		SyncInterval:               cfg.SyncInterval,
		SchedulerOpts: &asynq.SchedulerOpts{
			Logger:            schedulerLogger{asynqLogger{log}},
			LogLevel:          asynq.WarnLevel,
			HeartbeatInterval: cfg.HeartbeatInterval,
			PreEnqueueFunc: func(task *asynq.Task, _ []asynq.Option) {
				if task.Type() == jobs.TypeSyncDirectory {
					runArchivedSync(insp, task, log)
				}
			},
			PostEnqueueFunc: func(info *asynq.TaskInfo, err error) {
				switch {
				case errors.Is(err, asynq.ErrTaskIDConflict):
					// Only syncs have a TaskID: the customer's sync is
					// already queued, waiting or running.
				case err != nil:
					log.Warn("scheduler could not enqueue a cleanup tick or sync; another scheduler may have", "error", err)
				}
			},
		},
	})
	if err != nil {
		return nil, err
	}
	return &Scheduler{mgr: mgr, log: log}, nil
}

// Start reads the policies once (an error here fails the start) and starts
// scheduling and syncing.
func (s *Scheduler) Start() error { return s.mgr.Start() }

// Shutdown stops syncing and scheduling; safe to call more than once.
func (s *Scheduler) Shutdown() { s.stop.Do(s.mgr.Shutdown) }

// Run starts the scheduler and blocks until ctx is done, then shuts down.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	s.Shutdown()
	return nil
}

// runArchivedSync runs the customer's sync task again if it was archived
// (it failed on every retry): its TaskID would otherwise absorb this and
// every later periodic sync without anything running.
func runArchivedSync(insp *asynq.Inspector, task *asynq.Task, log *slog.Logger) {
	p, err := jobs.ParseSyncPayload(task.Payload())
	if err != nil {
		log.Warn("periodic sync task has a bad payload", "error", err)
		return
	}
	ran, err := jobs.RunArchivedSync(insp, p.CustomerKey)
	switch {
	case err != nil:
		log.Warn("could not check the customer's archived sync task; the periodic sync may be absorbed by it", "customer_key", p.CustomerKey, "error", err)
	case ran:
		log.Info("customer's sync had been archived; running it again", "customer_key", p.CustomerKey)
	}
}

// schedulerLogger quiets the one error asynq's scheduler always logs when
// it stops: it may not close a Redis client it was given, which is right.
type schedulerLogger struct{ asynqLogger }

func (l schedulerLogger) Error(args ...any) {
	if msg := fmt.Sprint(args...); strings.Contains(msg, "connection is shared") {
		l.l.Debug(msg, "component", "asynq")
		return
	}
	l.asynqLogger.Error(args...)
}
