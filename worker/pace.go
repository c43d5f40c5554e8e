package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// Pacer admits writes to a tenant of an external directory at the
// tenant's pace (and the app's, across tenants), shared by every worker
// process. internal/tenantrate implements it on Redis.
type Pacer interface {
	// Admit asks for the slot of writes writes to tenant for the task
	// whose ID is ticket. A task told to come back later whose slot was
	// reserved redeems it when it asks again with the same ticket.
	Admit(ctx context.Context, tenantID, ticket string, writes int) (Admission, error)
}

// Admission is a Pacer's answer.
type Admission struct {
	// Go: write after sleeping Wait. Otherwise come back after Wait, to a
	// reserved slot when Reserved.
	Go, Reserved bool
	Wait         time.Duration
}

// pacedError sends a task back to the queue until its tenant's write slot.
// It is not a failure (Config.IsFailure): it spends none of the task's
// retries, and the item is untouched, still pending, so the task that comes
// back is an ordinary first delivery of it.
type pacedError struct {
	tenant   string
	wait     time.Duration
	reserved bool
}

func (e *pacedError) Error() string {
	if e.reserved {
		return fmt.Sprintf("tenant %s is at its write pace; the task comes back to its reserved slot in %v", e.tenant, e.wait.Round(time.Millisecond))
	}
	return fmt.Sprintf("tenant %s has more than the pacing horizon queued; the task asks again in %v", e.tenant, e.wait.Round(time.Millisecond))
}

// retryIn is when the task should be handled again: at its slot, or, with
// no slot reserved, after the wait spread by up to a second, so that the
// tasks told to come back later do not all come back at once.
func (e *pacedError) retryIn() time.Duration {
	if e.reserved {
		return e.wait
	}
	return e.wait + time.Duration(rand.Int64N(int64(time.Second))) // #nosec G404 -- spreading retries, not a secret
}

func isPaced(err error) bool {
	var pe *pacedError
	return errors.As(err, &pe)
}

// pace admits the task's change before it enters a batch: for a user on an
// external directory it takes a slot of the tenant's write pace, sleeping
// for it when it is due within the pacer's hold, else returning a
// pacedError that puts the task back on the queue until its slot. It runs
// before the item is claimed or any seat is touched, so a task sent back
// has changed nothing. Dry runs and the local directory write nothing to
// pace.
func (w *Worker) pace(ctx context.Context, plan *storage.Plan, taskID string) error {
	if w.cfg.Pacer == nil || plan.DryRun || plan.Directory.Kind == licensing.DirectoryLocal {
		return nil
	}
	// assignLicense, and a PATCH of the usage location when the operation sets one.
	writes := 1
	if plan.Change.UsageLocation != "" {
		writes = 2
	}
	a, err := w.cfg.Pacer.Admit(ctx, plan.Directory.TenantID, taskID, writes)
	if err != nil {
		return err
	}
	// Without a task ID (a handler called directly) there is no ticket to
	// come back with: wait here.
	if a.Go || taskID == "" {
		t := time.NewTimer(a.Wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	return &pacedError{tenant: plan.Directory.TenantID, wait: a.Wait, reserved: a.Reserved}
}
