package intake

import (
	"context"

	"github.com/licenseops/licenseops/storage"
)

// maxStartsPerCall bounds how many due operations one StartDue starts, so
// that a backlog of due operations (schedulers down for a while) cannot
// hold one sweep for long; the next sweep starts the rest.
const maxStartsPerCall = 50

// StartDue starts the scheduled operations whose time has come
// (storage.StartScheduled, exactly once each however many processes call
// it) and enqueues their tasks in the background. An operation that found
// seats short, and did not allow partial success, failed every user and is
// finalized at once. It returns how many it started.
func (s *Service) StartDue(ctx context.Context) (int, error) {
	n := 0
	for n < maxStartsPerCall {
		st, err := s.store.StartScheduled(ctx)
		if err != nil || st == nil {
			return n, err
		}
		n++
		s.started(ctx, st)
	}
	return n, nil
}

func (s *Service) started(ctx context.Context, st *storage.StartedOperation) {
	op := st.Operation
	if len(st.Short) > 0 {
		s.metrics.scheduledStarts.WithLabelValues("seats_short").Inc()
		s.log.Warn("scheduled operation started without enough seats; every user failed CountViolation",
			"operation_id", op.ID, "customer_id", op.CustomerID, "shortages", st.Short)
		if _, err := s.store.Finalize(ctx, op.ID); err != nil {
			s.log.Warn("could not finalize a scheduled operation; the sweeper will", "operation_id", op.ID, "error", err)
		}
		return
	}
	s.metrics.scheduledStarts.WithLabelValues("started").Inc()
	s.log.Info("scheduled operation started", "operation_id", op.ID, "customer_id", op.CustomerID, "not_before", op.NotBefore, "total", op.Total)
	s.enqueueInBackground(op, st.UserIDs, s.grouped(st.Customer, len(st.UserIDs)))
}
