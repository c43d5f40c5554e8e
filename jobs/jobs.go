// Package jobs names the asynq tasks of licenseops and builds them. The
// api enqueues them, the worker handles them; neither imports the other, so
// this small package is their contract.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/licensing"
)

// TypeApplyLicenses applies one operation's change to one user.
const TypeApplyLicenses = "license:apply"

// Queues, strongest first. Interactive operations (a helpdesk agent changing
// two users) go to critical so they never wait behind a tenant-wide rollout;
// rollouts of at least the bulk size go to bulk, which shares the workers
// with default by weight, so that a customer's rollout of a thousand users
// started during another customer's rollout of a hundred thousand gets
// half of the workers instead of waiting for all of it (one queue is a
// FIFO list); scheduled cleanups yield to all of them.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueBulk     = "bulk"
	QueueLow      = "low"
)

// QueueWeights are the asynq priorities of the queues. asynq orders the
// queues at random by weight for each task it takes and takes from the
// first that has one: while default and bulk both hold tasks, each gets
// half of them; alone, either gets all the workers. Each further queue
// costs an empty look (a Redis round trip) per task taken, which is why
// customers do not get a queue each.
var QueueWeights = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueBulk: 3, QueueLow: 1}

// QueueFor picks the queue of an operation from its size and source:
// critical up to interactiveMax users, bulk from bulkMin users (never,
// when bulkMin is 0), default between.
func QueueFor(total int, source string, interactiveMax, bulkMin int) string {
	switch {
	case source == licensing.SourceCleanup:
		return QueueLow
	case total <= interactiveMax:
		return QueueCritical
	case bulkMin > 0 && total >= bulkMin:
		return QueueBulk
	default:
		return QueueDefault
	}
}

// ApplyPayload identifies one item: the operation and the user. Everything
// else is read from Postgres, so a task can never carry a stale decision.
type ApplyPayload struct {
	OperationID string `json:"o"`
	UserID      string `json:"u"`
}

// TaskID is the asynq task ID of an item. It makes enqueueing idempotent:
// while a task for the item exists, enqueueing it again is a no-op, which is
// what lets the sweeper re-enqueue pending items without creating duplicates.
func TaskID(operationID, userID string) string { return operationID + ":" + userID }

// MaxRetry is how often an item is retried after a transient failure
// (database or directory unavailable) before it is archived.
const MaxRetry = 25

// NewApplyTask builds the task of one item, with further options (a group).
func NewApplyTask(operationID, userID, queue string, opts ...asynq.Option) *asynq.Task {
	payload, _ := json.Marshal(ApplyPayload{OperationID: operationID, UserID: userID})
	opts = append([]asynq.Option{asynq.TaskID(TaskID(operationID, userID)), asynq.Queue(queue), asynq.MaxRetry(MaxRetry),
		asynq.Timeout(5 * time.Minute)}, opts...)
	return asynq.NewTask(TypeApplyLicenses, payload, opts...)
}

// TypeApplyBatch applies one operation's change to many users at once. The
// api never enqueues it: asynq's aggregator builds it from the grouped
// TypeApplyLicenses tasks of a large operation (EnqueueGrouped), so that a
// worker dequeues and acknowledges a thousand users in one round trip
// instead of one each, which is what the queue costs per task. Each user
// is still enqueued as its own task under its TaskID, so enqueueing stays
// idempotent and asynqmon shows every user until its group is aggregated.
const TypeApplyBatch = "license:apply-batch"

// Aggregation of grouped tasks (asynq.Config's Group settings). asynq
// checks the groups every GroupGracePeriod (a second at least) and makes at
// most one batch of up to GroupMaxSize tasks per group per check, so an
// operation is spread over several groups (GroupsFor) to move more than
// GroupMaxSize users a second.
const (
	GroupMaxSize     = 1000
	GroupGracePeriod = time.Second
	GroupMaxDelay    = 3 * time.Second
	// usersPerGroup sizes GroupsFor: 100,000 users are 25 groups, up to
	// 25,000 users a second out of the aggregator of each worker process.
	usersPerGroup = 4000
	maxGroups     = 32
)

// GroupsFor is the number of asynq groups of an operation of n users.
func GroupsFor(n int) int { return min(max((n+usersPerGroup-1)/usersPerGroup, 1), maxGroups) }

// GroupKey names the shard-th group of an operation.
func GroupKey(operationID string, shard int) string { return operationID + "#" + strconv.Itoa(shard) }

// ApplyBatchPayload is the items of a TypeApplyBatch task.
type ApplyBatchPayload struct {
	Items []ApplyPayload `json:"i"`
}

// AggregateApply is the asynq GroupAggregator of grouped TypeApplyLicenses
// tasks. The batch gets a TaskID under its operation's prefix, so that the
// sweeper finds it among the archived tasks of a stalled operation.
func AggregateApply(group string, tasks []*asynq.Task) *asynq.Task {
	p := ApplyBatchPayload{Items: make([]ApplyPayload, 0, len(tasks))}
	for _, t := range tasks {
		if it, err := ParseApplyPayload(t.Payload()); err == nil {
			p.Items = append(p.Items, it)
		}
	}
	opID, _, _ := strings.Cut(group, "#")
	payload, _ := json.Marshal(p)
	return asynq.NewTask(TypeApplyBatch, payload, asynq.TaskID(TaskID(opID, "batch-"+uuid.NewString())),
		asynq.MaxRetry(MaxRetry), asynq.Timeout(5*time.Minute))
}

// ParseApplyBatchPayload decodes an ApplyBatchPayload.
func ParseApplyBatchPayload(b []byte) (ApplyBatchPayload, error) {
	var p ApplyBatchPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %w", TypeApplyBatch, err)
	}
	for _, it := range p.Items {
		if it.OperationID == "" || it.UserID == "" {
			return p, fmt.Errorf("decode %s payload: operation and user are required", TypeApplyBatch)
		}
	}
	return p, nil
}

// ParseApplyPayload decodes an ApplyPayload.
func ParseApplyPayload(b []byte) (ApplyPayload, error) {
	var p ApplyPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %w", TypeApplyLicenses, err)
	}
	if p.OperationID == "" || p.UserID == "" {
		return p, fmt.Errorf("decode %s payload: operation and user are required", TypeApplyLicenses)
	}
	return p, nil
}

// Enqueuer puts the items of an operation on the queue with several
// requests in flight, since asynq enqueues one task per round trip.
type Enqueuer struct {
	Client *asynq.Client
	// Parallelism is the number of concurrent enqueue requests (default 16).
	Parallelism int
}

// EnqueueResult counts what EnqueueItems did.
type EnqueueResult struct {
	Enqueued int // new tasks
	Existing int // tasks already on the queue (TaskID conflict)
}

// EnqueueItems enqueues one task per user. A task that already exists is
// counted, not an error. It stops at the first other error.
func (e *Enqueuer) EnqueueItems(ctx context.Context, operationID, queue string, userIDs []string) (EnqueueResult, error) {
	return e.enqueue(ctx, operationID, userIDs, func(_ int, u string) *asynq.Task { return NewApplyTask(operationID, u, queue) })
}

// EnqueueGrouped enqueues one task per user, as EnqueueItems does, in the
// asynq groups of the operation (GroupsFor), so that workers dequeue them
// GroupMaxSize at a time as TypeApplyBatch tasks.
func (e *Enqueuer) EnqueueGrouped(ctx context.Context, operationID, queue string, userIDs []string) (EnqueueResult, error) {
	groups := GroupsFor(len(userIDs))
	return e.enqueue(ctx, operationID, userIDs, func(i int, u string) *asynq.Task {
		return NewApplyTask(operationID, u, queue, asynq.Group(GroupKey(operationID, i%groups)))
	})
}

func (e *Enqueuer) enqueue(ctx context.Context, operationID string, userIDs []string, task func(i int, userID string) *asynq.Task) (EnqueueResult, error) {
	par := e.Parallelism
	if par <= 0 {
		par = 16
	}
	par = min(par, max(len(userIDs), 1))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		res      EnqueueResult
		firstErr error
		wg       sync.WaitGroup
	)
	type item struct {
		i int
		u string
	}
	next := make(chan item, par*4)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var enq, existing int
			for it := range next {
				_, err := e.Client.EnqueueContext(ctx, task(it.i, it.u))
				switch {
				case err == nil:
					enq++
				case errors.Is(err, asynq.ErrTaskIDConflict):
					existing++
				default:
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("enqueue %s: %w", TaskID(operationID, it.u), err)
					}
					mu.Unlock()
					cancel()
				}
			}
			mu.Lock()
			res.Enqueued += enq
			res.Existing += existing
			mu.Unlock()
		}()
	}
feed:
	for i, u := range userIDs {
		select {
		case next <- item{i, u}:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return res, firstErr
}

// TypeSyncDirectory imports a customer's users, licenses and subscriptions
// from its external directory.
const TypeSyncDirectory = "directory:sync"

// SyncPayload names the customer to sync by its internal key.
type SyncPayload struct {
	CustomerKey int64 `json:"c"`
}

// SyncMaxRetry is how often a sync is retried after a failure of the
// directory or the database before it is archived. Waiting for a busy
// customer is not a failure and spends none of them (see NewDeferredSyncTask).
const SyncMaxRetry = 10

// SyncWait is how long a sync that found the customer busy (operations
// running) waits before it looks again.
const SyncWait = 30 * time.Second

// SyncTaskID is the TaskID of a requested sync of a customer (by the api or
// the scheduler): while that task exists, requesting another is a no-op.
func SyncTaskID(customerKey int64) string { return fmt.Sprintf("sync:%d", customerKey) }

// NewSyncTask builds the requested sync of a customer. Its TaskID makes a
// second request while one is queued or running a no-op.
func NewSyncTask(customerKey int64) *asynq.Task {
	return newSyncTask(customerKey, SyncTaskID(customerKey))
}

// newSyncTask builds a sync task of a customer with its TaskID and options.
func newSyncTask(customerKey int64, taskID string, opts ...asynq.Option) *asynq.Task {
	payload, _ := json.Marshal(SyncPayload{CustomerKey: customerKey})
	opts = append([]asynq.Option{asynq.TaskID(taskID), asynq.Queue(QueueLow), asynq.MaxRetry(SyncMaxRetry),
		asynq.Timeout(30 * time.Minute)}, opts...)
	return asynq.NewTask(TypeSyncDirectory, payload, opts...)
}

// DeferredSyncTaskID is the TaskID of the customer's sync deferred to at.
func DeferredSyncTaskID(customerKey int64, at time.Time) string {
	return fmt.Sprintf("%s:at:%d", SyncTaskID(customerKey), at.Unix())
}

// NewDeferredSyncTask builds the sync a worker queues, to run at at, when a
// sync finds the customer busy; the finished sync then leaves the queue, so
// waiting spends no retries, however long the customer's operations run.
// Its TaskID names at, which callers round to a multiple of SyncWait: every
// sync of the customer that waits until the same time is one task.
func NewDeferredSyncTask(customerKey int64, at time.Time) *asynq.Task {
	return newSyncTask(customerKey, DeferredSyncTaskID(customerKey, at), asynq.ProcessAt(at))
}

// ParseSyncPayload decodes a SyncPayload.
func ParseSyncPayload(b []byte) (SyncPayload, error) {
	var p SyncPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %w", TypeSyncDirectory, err)
	}
	if p.CustomerKey <= 0 {
		return p, fmt.Errorf("decode %s payload: customer is required", TypeSyncDirectory)
	}
	return p, nil
}

// SyncRequest says what EnqueueSync found.
type SyncRequest int

// What EnqueueSync did.
const (
	// SyncQueued: a new sync task was queued.
	SyncQueued SyncRequest = iota + 1
	// SyncAlreadyQueued: the customer's sync task was already pending,
	// scheduled, retrying or running; it will run (or is running).
	SyncAlreadyQueued
	// SyncRequeued: the customer's sync task had been archived (it failed
	// on every retry) and was run again.
	SyncRequeued
)

// String returns the name used in logs.
func (r SyncRequest) String() string {
	switch r {
	case SyncQueued:
		return "queued"
	case SyncAlreadyQueued:
		return "already_queued"
	case SyncRequeued:
		return "requeued"
	default:
		return "unknown"
	}
}

// EnqueueSync requests a sync of the customer so that one will run. An
// existing task with the sync's TaskID is looked at rather than trusted: an
// archived one (or a completed one, kept for retention) would absorb every
// later request without ever running, so it is run again (or replaced).
func EnqueueSync(ctx context.Context, client *asynq.Client, insp *asynq.Inspector, customerKey int64) (SyncRequest, error) {
	id := SyncTaskID(customerKey)
	var lastErr error
	// The task may change state between the calls (finish, be run again by
	// another caller); a few rounds settle it.
	for range 5 {
		_, err := client.EnqueueContext(ctx, NewSyncTask(customerKey))
		if err == nil {
			return SyncQueued, nil
		}
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return 0, fmt.Errorf("enqueue %s: %w", id, err)
		}
		info, err := insp.GetTaskInfo(QueueLow, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound):
			lastErr = err
			continue // gone since: enqueue again
		case err != nil:
			return 0, fmt.Errorf("inspect %s: %w", id, err)
		}
		switch info.State {
		case asynq.TaskStateArchived:
			if lastErr = insp.RunTask(QueueLow, id); lastErr == nil {
				return SyncRequeued, nil
			}
		case asynq.TaskStateCompleted:
			if lastErr = insp.DeleteTask(QueueLow, id); lastErr != nil {
				continue
			}
		default: // pending, scheduled, retry, active, aggregating
			return SyncAlreadyQueued, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("enqueue %s: the task kept changing state: %w", id, lastErr)
}

// RunArchivedSync runs the customer's requested sync again if it is
// archived, and reports whether it did. The scheduler calls it before each
// periodic sync, whose fixed TaskID would otherwise conflict with the
// archived task for as long as asynq keeps it (90 days).
func RunArchivedSync(insp *asynq.Inspector, customerKey int64) (bool, error) {
	id := SyncTaskID(customerKey)
	info, err := insp.GetTaskInfo(QueueLow, id)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return false, nil
	}
	if err != nil || info.State != asynq.TaskStateArchived {
		return false, err
	}
	if err := insp.RunTask(QueueLow, id); err != nil {
		return false, fmt.Errorf("run archived %s again: %w", id, err)
	}
	return true, nil
}

// TypeCleanupRun runs one scheduled tick of a cleanup policy. The
// scheduler's periodic tasks enqueue it at every tick of every enabled
// policy, from as many scheduler processes as run; the handler makes each
// tick run once (a database guard, not this task's uniqueness).
const TypeCleanupRun = "cleanup:run"

// CleanupPayload names the policy and the schedule the task was registered
// with. asynq's periodic tasks carry a fixed payload, so the tick itself is
// computed by the handler; the schedule lets it recognise a task of a
// schedule that has changed since (a scheduler not synced yet) and drop it.
type CleanupPayload struct {
	PolicyID string `json:"p"`
	Schedule string `json:"s"`
	TimeZone string `json:"z"`
}

// CleanupRunRetries is how often a cleanup run is retried after a
// transient failure; a retry runs the same tick while it is still the
// latest.
const CleanupRunRetries = 5

// NewCleanupRunTask builds the periodic task of a policy.
func NewCleanupRunTask(policyID, schedule, timeZone string) *asynq.Task {
	payload, _ := json.Marshal(CleanupPayload{PolicyID: policyID, Schedule: schedule, TimeZone: timeZone})
	return asynq.NewTask(TypeCleanupRun, payload,
		asynq.Queue(QueueLow), asynq.MaxRetry(CleanupRunRetries), asynq.Timeout(10*time.Minute))
}

// ParseCleanupPayload decodes a CleanupPayload.
func ParseCleanupPayload(b []byte) (CleanupPayload, error) {
	var p CleanupPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %w", TypeCleanupRun, err)
	}
	if p.PolicyID == "" || p.Schedule == "" || p.TimeZone == "" {
		return p, fmt.Errorf("decode %s payload: policy, schedule and time zone are required", TypeCleanupRun)
	}
	return p, nil
}

// TypeWebhookDelivery makes one attempt at delivering an event to a
// webhook; asynq's retries are the delivery's retries.
const TypeWebhookDelivery = "webhook:deliver"

// WebhookPayload names the delivery (a row of webhook_deliveries); the
// event, URL and secret are read from Postgres at each attempt.
type WebhookPayload struct {
	DeliveryID string `json:"d"`
}

// WebhookMaxRetry is how often a delivery is retried after its first
// attempt: with the worker's default delays (5 s, 5 min, 30 min, 2 h, 5 h,
// 10 h, 10 h, the schedule of Standard Webhooks) a receiver can be down
// for more than a day without missing an event.
const WebhookMaxRetry = 7

// WebhookTaskID is the TaskID of a delivery: while its task exists,
// enqueueing it again (the sweeper after a loss of the queue) is a no-op.
func WebhookTaskID(deliveryID string) string { return "webhook:" + deliveryID }

// NewWebhookTask builds the task of a delivery. It goes to the default
// queue: a delivery is one short HTTP call, and a receiver waiting for the
// end of a cleanup should not wait behind the low queue.
func NewWebhookTask(deliveryID string) *asynq.Task {
	payload, _ := json.Marshal(WebhookPayload{DeliveryID: deliveryID})
	return asynq.NewTask(TypeWebhookDelivery, payload, asynq.TaskID(WebhookTaskID(deliveryID)), asynq.Queue(QueueDefault),
		asynq.MaxRetry(WebhookMaxRetry), asynq.Timeout(time.Minute))
}

// ParseWebhookPayload decodes a WebhookPayload.
func ParseWebhookPayload(b []byte) (WebhookPayload, error) {
	var p WebhookPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %w", TypeWebhookDelivery, err)
	}
	if p.DeliveryID == "" {
		return p, fmt.Errorf("decode %s payload: delivery is required", TypeWebhookDelivery)
	}
	return p, nil
}
