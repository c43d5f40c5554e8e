//go:build faultinject

package faults

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	apiclient "github.com/licenseops/licenseops/client"
)

// A rollout cancelled right after a worker holding many of its batches was
// killed (SIGKILL): the cancel does not wait for the dead worker, the
// operation ends cancelled at once with every user either changed or
// cancelled, and when asynq hands the dead worker's batches out again (a
// minute later, after their lease) they change nobody: seats and licenses
// are the same before and after, and the checker is clean.
func TestCancelDuringWorkerKill(t *testing.T) {
	s := newStack(t)
	// One task per user, so that the killed worker holds many of them.
	c := s.client(s.startAPI())
	users := c.seed("cancelkill", rolloutUsers, "E5", rolloutUsers)
	victim := s.startWorker(busyWorker)
	s.startWorker()
	opID := c.start("cancelkill", operationRequest{UserIDs: users, Assign: []string{"E5"}})
	s.waitDone(opID, 0.2)
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	victim.Kill()
	killedAt := time.Now()
	if q, err := insp.GetQueueInfo("default"); err == nil {
		t.Logf("at the kill %d tasks were active", q.Active)
	}
	op, err := c.CancelOperation(context.Background(), opID)
	c.check("cancel", err)
	t.Logf("cancel answered %.0f ms after the kill: %s, %d succeeded, %d cancelled of %d",
		float64(time.Since(killedAt).Microseconds())/1000, op.Status, op.Succeeded, op.Cancelled, op.Total)
	s.startWorker(busyWorker) // as a supervisor would
	s.waitFinished(opID, time.Minute)

	before := s.verifyCancelled(c, opID)
	// The dead worker's batches come back after their lease (30 s) and the
	// recoverer's tick (up to a minute): wait for the queue to drain, then
	// nothing may have changed.
	err = waitUntil(150*time.Second, func() (bool, error) {
		q, err := insp.GetQueueInfo("default")
		if err != nil {
			return false, nil
		}
		return q.Active+q.Pending+q.Retry+q.Aggregating == 0, nil
	})
	if err != nil {
		t.Fatalf("the killed worker's tasks did not run again: %v", err)
	}
	t.Logf("the killed worker's tasks ran again %.0f s after the kill", time.Since(killedAt).Seconds())
	if after := s.verifyCancelled(c, opID); after != before {
		t.Fatalf("redelivered tasks of a cancelled operation changed it: %+v, then %+v", before, after)
	}
}

// cancelledState is what must not change once an operation is cancelled.
type cancelledState struct {
	Succeeded, Cancelled int
	Seats                seatState
}

// verifyCancelled checks a cancelled operation: every user succeeded or
// was cancelled, seats consumed and assigned equal the users that
// succeeded, none reserved, and the checker is clean.
func (s *stack) verifyCancelled(c *client, opID string) cancelledState {
	s.t.Helper()
	ctx := context.Background()
	op, err := c.GetOperation(ctx, opID)
	c.check("get operation", err)
	if op.Status != apiclient.StatusCancelled || op.Failed != 0 || op.Succeeded+op.Cancelled != op.Total || op.Cancelled == 0 {
		s.t.Fatalf("operation = %+v, want cancelled with every user succeeded or cancelled", op)
	}
	counts := map[string]int{}
	_, err = c.Report(ctx, opID, func(r reportRow) error {
		counts[r.Status]++
		return nil
	})
	c.check("report", err)
	if counts["succeeded"] != op.Succeeded || counts["cancelled"] != op.Cancelled || len(counts) != 2 {
		s.t.Fatalf("report statuses %v, want %d succeeded and %d cancelled", counts, op.Succeeded, op.Cancelled)
	}
	seats := s.seats("E5")
	if seats.Consumed != op.Succeeded || seats.Assignments != op.Succeeded || seats.Reserved != 0 {
		s.t.Fatalf("seats %+v, want %d consumed and assigned, none reserved", seats, op.Succeeded)
	}
	s.check()
	return cancelledState{Succeeded: op.Succeeded, Cancelled: op.Cancelled, Seats: seats}
}
