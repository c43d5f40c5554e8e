//go:build faultinject

package faults

import (
	"testing"
	"time"
)

// The reference for the recovery times: the same rollout with no fault.
func TestNoFault(t *testing.T) {
	s := newStack(t)
	api := s.startAPI()
	c := s.client(api)
	const n, seats = rolloutUsers, rolloutSeats
	users := c.seed("nofault", n, "E5", seats)
	s.startWorker()
	s.startWorker()
	start := time.Now()
	op := c.start("nofault", operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true})
	finished := s.waitFinished(op, time.Minute)
	t.Logf("rollout of %d users without a fault: %.1fs", n, finished.At.Sub(start).Seconds())
	s.verifyRollout(c, op, n, "E5", seats)
}
