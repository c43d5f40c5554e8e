//go:build faultinject

package faults

import (
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// A rollout's size and seats in most tests: fewer seats than users, so
// that both outcomes (a seat, CountViolation) are exercised.
const (
	rolloutUsers = 4000
	rolloutSeats = 3400
)

// busyWorker is the environment of a worker that holds many tasks at once,
// so that killing it strands many of them.
const busyWorker = "LICENSEOPS_WORKER_CONCURRENCY=64"

// A worker killed with SIGKILL mid-rollout leaves its tasks active in
// Redis under a lease nobody extends. asynq hands them out again once the
// lease has expired, 30 s later, and a recoverer (every minute, in every
// worker) sees it: so the rollout finishes about a minute after the kill.
// The killed worker is restarted at once, as a supervisor would; the other
// worker goes on meanwhile.
//
// The rollout goes through asynq groups, so the killed worker holds batches
// of users (license:apply-batch), each under one lease.
func TestWorkerKilled(t *testing.T) {
	s := newStack(t)
	c := s.client(s.startAPI(groupedRollout))
	users := c.seed("killed", rolloutUsers, "E5", rolloutSeats)
	victim := s.startWorker(busyWorker)
	survivor := s.startWorker()
	op := c.start("killed", operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true})
	s.waitDone(op, 0.25)
	victim.Kill()
	killedAt := time.Now()
	restarted := s.startWorker(busyWorker)
	f := s.waitFinished(op, 150*time.Second)
	d := recovery(t, "worker SIGKILL", killedAt, f.At)
	t.Logf("%d items waited %.1fs for asynq's lease recovery (from %.1fs to %.1fs after the kill); sweeper re-enqueued: stalled %v, queue_lost %v",
		rolloutUsers-f.DoneAtStall, f.Stall().Seconds(), f.StallFrom.Sub(killedAt).Seconds(), f.StallTo.Sub(killedAt).Seconds(),
		reenqueued("stalled", survivor, restarted), reenqueued("queue_lost", survivor, restarted))
	if d > 2*time.Minute+10*time.Second {
		t.Errorf("recovery took %v, more than asynq's bound (30 s lease, 30 s slack, a 60 s recoverer tick)", d)
	}
	checkGrouped(t, survivor, restarted)
	s.verifyRollout(c, op, rolloutUsers, "E5", rolloutSeats)
}

// SIGTERM mid-rollout: the worker stops taking tasks, lets the running ones
// finish and hands the rest back, so nothing is left active in Redis and a
// worker started afterwards finishes the rollout at once, with no lease to
// wait for.
func TestWorkerTerminated(t *testing.T) {
	s := newStack(t)
	c := s.client(s.startAPI())
	users := c.seed("terminated", rolloutUsers, "E5", rolloutSeats)
	w := s.startWorker(busyWorker)
	op := c.start("terminated", operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true})
	s.waitDone(op, 0.25)
	w.Signal(syscall.SIGTERM)
	termAt := time.Now()
	code, ok := w.Wait(30 * time.Second)
	if !ok || code != 0 {
		t.Fatalf("worker after SIGTERM: exited %v, code %d; want exit 0 within LICENSEOPS_SHUTDOWN_TIMEOUT", ok, code)
	}
	stopped := time.Since(termAt)
	info, err := asynq.NewInspectorFromRedisClient(s.rdb).GetQueueInfo("default")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.progress(op)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worker exited %.2fs after SIGTERM; %d of %d items done, queue: %d pending, %d active, %d retry",
		stopped.Seconds(), p.Done, p.Total, info.Pending, info.Active, info.Retry)
	if info.Active != 0 {
		t.Fatalf("%d tasks still active after a graceful shutdown: they were not handed back", info.Active)
	}
	if p.Done == p.Total {
		t.Fatalf("the worker finished the rollout before stopping; nothing was handed back")
	}
	if info.Pending+info.Retry+info.Scheduled < p.Total-p.Done {
		t.Fatalf("%d items pending but only %d tasks queued", p.Total-p.Done, info.Pending+info.Retry+info.Scheduled)
	}
	s.startWorker()
	f := s.waitFinished(op, time.Minute)
	d := recovery(t, "worker SIGTERM, then a new worker", termAt, f.At)
	if d > 20*time.Second {
		t.Errorf("recovery took %v: tasks were left to the lease recovery instead of handed back", d)
	}
	s.verifyRollout(c, op, rolloutUsers, "E5", rolloutSeats)
}
