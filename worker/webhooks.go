package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/webhook"
)

// WebhookConfig tunes the delivery of webhook events.
type WebhookConfig struct {
	// RetryDelays are the waits before the 1st, 2nd, … retry of a delivery
	// (jobs.WebhookMaxRetry of them); the last one repeats when the list
	// is shorter. Empty means DefaultWebhookRetryDelays.
	RetryDelays []time.Duration
	// Sender is the HTTP sender's part (timeout, the resolver of tests).
	Sender webhook.SenderConfig
}

// DefaultWebhookRetryDelays is the retry schedule of Standard Webhooks:
// after the first attempt, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h,
// so the last attempt comes about 27.5 hours after the event.
var DefaultWebhookRetryDelays = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// WithDefaults returns the config with every unset field at its default.
func (c WebhookConfig) WithDefaults() WebhookConfig {
	if len(c.RetryDelays) == 0 {
		c.RetryDelays = DefaultWebhookRetryDelays
	}
	return c
}

// retryDelay is the wait before retry n (1-based as asynq counts) with up
// to 10 % jitter, so that the retries of one receiver's outage spread out.
func (c WebhookConfig) retryDelay(n int) time.Duration {
	d := c.RetryDelays[min(max(n-1, 0), len(c.RetryDelays)-1)]
	return d + time.Duration(rand.Int64N(int64(d/10)+1)) // #nosec G404 -- retry jitter, not a secret
}

// webhookDeliverer handles TypeWebhookDelivery: one attempt at a delivery,
// recorded in Postgres whatever it got.
type webhookDeliverer struct {
	store   *storage.Store
	sender  *webhook.Sender
	metrics *metrics
	log     *slog.Logger
	now     func() time.Time
}

// ProcessTask implements asynq.Handler. A failed attempt returns an error
// so that asynq retries it after the webhook's delay (retryDelay); the
// last one marks the delivery failed and ends the task.
func (d *webhookDeliverer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseWebhookPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	del, ok, err := d.store.PendingDeliveryByID(ctx, p.DeliveryID)
	if err != nil || !ok {
		return err // !ok: delivered or failed already, or its webhook was deleted
	}
	res := d.sender.Send(ctx, webhook.Message{ID: del.EventID, URL: del.URL, Secret: del.Secret, Body: del.Body}, d.now())
	if res.Err == nil {
		d.metrics.webhookDeliveries.WithLabelValues("succeeded").Inc()
		return d.store.RecordDeliveryAttempt(ctx, del.ID, licensing.DeliverySucceeded, res.Status, "")
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	status, outcome := licensing.DeliveryPending, "failed_attempt"
	if retried >= maxRetry {
		status, outcome = licensing.DeliveryFailed, "exhausted"
	}
	msg := licensing.Truncate(res.Err.Error(), 500)
	if err := d.store.RecordDeliveryAttempt(ctx, del.ID, status, res.Status, msg); err != nil {
		return err
	}
	d.metrics.webhookDeliveries.WithLabelValues(outcome).Inc()
	if status == licensing.DeliveryFailed {
		d.log.WarnContext(ctx, "webhook delivery failed on its last attempt; it will not be retried",
			"delivery_id", del.ID, "event_id", del.EventID, "attempts", retried+1, "error", msg)
		return nil // recorded as failed: an archived task would add nothing
	}
	return fmt.Errorf("webhook delivery %s: %w", del.ID, res.Err) // retried after retryDelay, by its task type
}

// webhookDispatchBatch bounds the deliveries a sweep enqueues.
const webhookDispatchBatch = 1000

// dispatchWebhooks enqueues the tasks of deliveries that have none. New
// deliveries are the outbox's (Finalize records them); the sweeper is their
// only enqueuer, so there is no other enqueuer's grace period to wait out.
// When the queue lost its data, every pending delivery is first marked as
// never enqueued, in Postgres, so that a sweep that fails half-way (or
// more deliveries than one batch) still gets them all back on the queue.
// The task ID makes enqueueing a task that exists a no-op.
func (s *Sweeper) dispatchWebhooks(ctx context.Context, lost bool) error {
	if lost {
		n, err := s.store.ForgetDeliveryTasks(ctx)
		if err != nil {
			return err
		}
		if s.metrics != nil {
			s.metrics.sweepReenqueued.WithLabelValues("webhook_queue_lost").Add(float64(n))
		}
	}
	ids, err := s.store.DeliveriesToEnqueue(ctx, webhookDispatchBatch)
	if err != nil || len(ids) == 0 {
		return err
	}
	for i, id := range ids {
		if _, err := s.enq.Client.EnqueueContext(ctx, jobs.NewWebhookTask(id)); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return errors.Join(fmt.Errorf("enqueue webhook delivery %s: %w", id, err), s.store.MarkDeliveriesEnqueued(ctx, ids[:i]))
		}
	}
	return s.store.MarkDeliveriesEnqueued(ctx, ids)
}
