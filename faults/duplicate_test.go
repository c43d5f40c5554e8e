//go:build faultinject

package faults

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/jobs"
)

// Every task of a rollout delivered twice at the same moment to two worker
// processes: next to each item's task in the queue lies a copy with the
// same payload under another task ID (asynq refuses a second task with the
// same ID, which is why a redelivery in real life comes from a lease
// recovery or the sweeper rather than from a second enqueue). Each user
// still gets one seat and one outcome: the second delivery finds the item
// done and changes nothing.
func TestSameTaskTwiceAtOnce(t *testing.T) {
	const n, seats = 3000, 2800
	s := newStack(t)
	c := s.client(s.startAPI())
	users := c.seed("twice", n, "E5", seats)
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	op := c.start("twice", operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true})
	enqueueTwice(t, s, insp, op, users)
	w1 := s.startWorker("LICENSEOPS_WORKER_CONCURRENCY=16")
	w2 := s.startWorker("LICENSEOPS_WORKER_CONCURRENCY=16")
	if err := insp.UnpauseQueue(jobs.QueueDefault); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f := s.waitFinished(op, 2*time.Minute)
	t.Logf("%d tasks for %d users handled in %.1fs", 2*n, n, f.At.Sub(start).Seconds())
	s.verifyRollout(c, op, n, "E5", seats)

	// Both copies of every task succeeded, and only one of them changed
	// anything.
	err := waitUntil(30*time.Second, func() (bool, error) {
		info, err := insp.GetQueueInfo(jobs.QueueDefault)
		return err == nil && info.Size == 0 && info.Active == 0, nil
	})
	if err != nil {
		t.Fatalf("queue not empty: %v", err)
	}
	info, err := insp.GetQueueInfo(jobs.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	// Every task and its copy was processed. One run in a few counted two
	// deliveries more, whose source this test does not see (the sweeper's
	// recovery rules enqueue under the task's own ID, which a task or its
	// copy holds); whatever their source they are redeliveries too, and
	// must change nothing either (below).
	if info.ProcessedTotal-info.FailedTotal < 2*n {
		t.Fatalf("asynq processed %d tasks, %d of them failed; want at least %d that succeeded", info.ProcessedTotal, info.FailedTotal, 2*n)
	}
	t.Logf("asynq processed %d tasks for %d users (%d copies)", info.ProcessedTotal, n, 2*n)
	time.Sleep(time.Second) // Postgres' statistics lag
	// A redelivery locks its item although the item is done. Batches short
	// of seats used to settle the operation inside their transaction and
	// deadlocked with such redeliveries, a second lost each time.
	if deadlocks := s.deadlocks(); info.FailedTotal > 0 || deadlocks > 0 {
		t.Fatalf("Postgres resolved %d deadlocks; %d deliveries failed and were retried; want none", deadlocks, info.FailedTotal)
	}
	handled := metric(w1, "licenseops_worker_tasks_total", `type="license:apply"`, `result="ok"`) +
		metric(w2, "licenseops_worker_tasks_total", `type="license:apply"`, `result="ok"`)
	if int(handled) != info.ProcessedTotal-info.FailedTotal {
		t.Fatalf("the workers handled %v tasks successfully, asynq says %d", handled, info.ProcessedTotal-info.FailedTotal)
	}
	// One change per user, as Postgres says (verifyRollout): so must the
	// workers' count of changed items, also when a task and its copy land
	// in the same batch.
	if changed := metric(w1, "licenseops_items_finished_total") + metric(w2, "licenseops_items_finished_total"); changed != n {
		t.Fatalf("licenseops_items_finished_total counts %v items for %d users", changed, n)
	}
}

// enqueueTwice replaces the api's tasks of operation op by pairs: each
// user's task and a copy with the same payload under another task ID,
// side by side in the paused default queue. The caller starts workers
// and unpauses the queue.
func enqueueTwice(t *testing.T, s *stack, insp *asynq.Inspector, op string, users []string) {
	t.Helper()
	err := waitUntil(30*time.Second, func() (bool, error) {
		var enqueued bool
		err := s.db.QueryRow(`SELECT enqueued_at IS NOT NULL FROM operations WHERE id = $1`, op).Scan(&enqueued)
		return enqueued, err
	})
	if err != nil {
		t.Fatalf("the api did not enqueue the operation: %v", err)
	}
	if err := insp.PauseQueue(jobs.QueueDefault); err != nil {
		t.Fatal(err)
	}
	if deleted, err := insp.DeleteAllPendingTasks(jobs.QueueDefault); err != nil || deleted != len(users) {
		t.Fatalf("deleted %d of the api's tasks (%v), want %d", deleted, err, len(users))
	}
	client := asynq.NewClientFromRedisClient(s.rdb)
	ctx := context.Background()
	for _, u := range users {
		task := jobs.NewApplyTask(op, u, jobs.QueueDefault)
		again := asynq.NewTask(task.Type(), task.Payload(), asynq.TaskID(jobs.TaskID(op, u)+":again"),
			asynq.Queue(jobs.QueueDefault), asynq.MaxRetry(jobs.MaxRetry))
		for _, tk := range []*asynq.Task{task, again} {
			if _, err := client.EnqueueContext(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
	}
}
