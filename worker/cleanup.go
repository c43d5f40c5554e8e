package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// CleanupConfig tunes the handler of scheduled cleanup runs.
type CleanupConfig struct {
	// Now is the clock; nil means time.Now. Tests drive it.
	Now func() time.Time
	// ClockSkew is how far this process's clock may be behind the
	// scheduler's that fired the task: a task handled up to this long before
	// its tick, by this clock, still runs that tick rather than finding the
	// previous one done. 0 means 2 seconds; a negative value means none.
	ClockSkew time.Duration
	Logger    *slog.Logger
}

// WithDefaults returns the config with every unset field at its default.
func (c CleanupConfig) WithDefaults() CleanupConfig {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = 2 * time.Second
	}
	if c.ClockSkew < 0 {
		c.ClockSkew = 0
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// CleanupRunner handles TypeCleanupRun: it works out which tick of the
// policy is due and runs it through the intake (intake.Service.RunCleanup,
// as the API's manual runs), unless it already ran: storage.RunCleanup's
// UNIQUE (policy_id, tick) guard holds however many schedulers enqueued the
// tick and however often asynq delivers it.
type CleanupRunner struct {
	cfg    CleanupConfig
	intake *intake.Service
	log    *slog.Logger
}

// NewCleanupRunner builds the handler; svc creates and enqueues the
// operations of the runs.
func NewCleanupRunner(cfg CleanupConfig, svc *intake.Service) *CleanupRunner {
	cfg = cfg.WithDefaults()
	return &CleanupRunner{cfg: cfg, intake: svc, log: cfg.Logger}
}

// ProcessTask implements asynq.Handler.
func (r *CleanupRunner) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseCleanupPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	_, err = r.RunScheduled(ctx, p)
	return err
}

// RunScheduled runs the tick of the task's policy that is due by the clock:
// the latest tick of its schedule at or before now (plus ClockSkew). It does
// nothing when that tick already ran, when the policy is gone or disabled,
// when its schedule changed since the task was registered, or when the
// tick is older than the policy's schedule (it predates the policy, its
// last reschedule or its enabling). An error is transient: the task is
// retried, and the retry runs the same tick while it is still the latest.
func (r *CleanupRunner) RunScheduled(ctx context.Context, task jobs.CleanupPayload) (storage.CleanupRunResult, error) {
	now := r.cfg.Now()
	res, err := r.intake.RunCleanup(ctx, storage.CleanupRunRequest{
		PolicyID: task.PolicyID,
		Due:      func(p licensing.CleanupPolicy) (time.Time, string) { return r.due(p, task, now) },
	})
	if licensing.ErrorCode(err) == licensing.CodeNotFound {
		r.log.InfoContext(ctx, "cleanup policy no longer exists; dropping its task", "policy_id", task.PolicyID)
		return res, nil
	}
	if err != nil {
		return res, err
	}
	if res.Skipped != "" {
		r.log.DebugContext(ctx, "cleanup tick not run", "policy_id", task.PolicyID, "reason", res.Skipped)
		return res, nil
	}
	r.log.InfoContext(ctx, "cleanup policy ran", "policy_id", res.Policy.ID, "customer_key", res.Policy.CustomerKey,
		"tick", res.Run.Tick, "matched_users", res.Run.MatchedUsers, "dry_run", res.Run.DryRun, "operation_id", res.Run.OperationID)
	return res, nil
}

// due is the tick a task stands for, judged on the policy as it is now.
func (r *CleanupRunner) due(p licensing.CleanupPolicy, task jobs.CleanupPayload, now time.Time) (time.Time, string) {
	if !p.Enabled {
		return time.Time{}, "the policy is disabled"
	}
	if p.Schedule != task.Schedule || p.TimeZone != task.TimeZone {
		return time.Time{}, "the task is of an earlier schedule of the policy"
	}
	sched, err := storage.ParseSchedule(p.Schedule, p.TimeZone)
	if err != nil {
		return time.Time{}, "the schedule is invalid: " + err.Error()
	}
	tick := sched.Latest(now.Add(r.cfg.ClockSkew))
	if tick.IsZero() || tick.Before(p.ScheduleSince) {
		return time.Time{}, "no tick of the schedule is due"
	}
	return tick, ""
}
