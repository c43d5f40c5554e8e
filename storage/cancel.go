package storage

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/licenseops/licenseops/licensing"
)

// Cancel stops an operation of the partner: in one transaction it marks
// every item not yet applied ('pending') cancelled and records the cancel.
// Items already applied stay as they are, and so does an item in flight to
// an external directory ('applying'): its call completes and is recorded
// truthfully. The seats granted to cancelled items return at settlement,
// like any unused grant. The operation becomes 'cancelled' when its last
// item is final (Finalize); the caller finalizes at once, which for a local
// directory is at once.
//
// A worker that receives the task of a cancelled item finds it final and
// changes nothing. Locks are taken in the order batches take them: items
// in user order, then the operation's row (a batch marks its operation
// 'running' after its items). So a cancel and a running batch cannot
// deadlock: the batch's items are either applied before the cancel reaches
// them (and stay) or cancelled before the batch reads them. A scheduled
// operation has no batches; its row is locked first, as the scheduler that
// starts it does.
//
// Cancelling a cancelled operation changes nothing; a finished one is a
// Conflict. first reports whether this call was the first cancel of the
// operation. entry, when set, is audited in the same transaction.
func (s *Store) Cancel(ctx context.Context, partnerKey int64, id, by string, entry *licensing.AuditEntry) (first bool, err error) {
	if _, err := uuid.Parse(id); err != nil {
		return false, notFound("operation", id)
	}
	for attempt := 0; ; attempt++ {
		first, err = s.cancelOnce(ctx, partnerKey, id, by, entry)
		// A deadlock with a transaction outside the orders above (or a
		// scheduler that started the operation meanwhile) is retried.
		if err == nil || !(IsRetryable(err) || errors.Is(err, errStartedMeanwhile)) || attempt == 2 || ctx.Err() != nil {
			return first, err
		}
	}
}

func (s *Store) cancelOnce(ctx context.Context, partnerKey int64, id, by string, entry *licensing.AuditEntry) (first bool, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		first = false
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM operations WHERE id = $1 AND partner_key = $2`, id, partnerKey).Scan(&status)
		if isNoRows(err) {
			return notFound("operation", id)
		}
		if err != nil {
			return err
		}
		if final, err := cancelOfFinal(id, status); final {
			return err
		}
		if status == licensing.StatusScheduled {
			// Lock it as the scheduler does; if it started meanwhile, the
			// next attempt takes the running operation's order.
			var still bool
			if err := tx.QueryRowContext(ctx, `SELECT status = 'scheduled' FROM operations WHERE id = $1 FOR UPDATE`, id).Scan(&still); err != nil {
				return err
			}
			if !still {
				return errStartedMeanwhile
			}
		}
		if _, err := tx.ExecContext(ctx, `
			WITH todo AS (
				SELECT user_id FROM operation_items WHERE operation_id = $1 AND status = 'pending'
				ORDER BY user_id FOR NO KEY UPDATE
			)
			UPDATE operation_items i SET status = 'cancelled', finished_at = clock_timestamp()
			WHERE i.operation_id = $1 AND i.user_id = ANY(ARRAY(SELECT user_id FROM todo)) AND i.status = 'pending'`, id); err != nil {
			return err
		}
		// The operation's row, locked after the items and read as it is
		// now: one that finished while the items were read had none
		// pending and is a Conflict, and of two cancels at once only the
		// one that locks it first finds no cancel recorded.
		var requested bool
		if err := tx.QueryRowContext(ctx, `SELECT status, cancel_requested_at IS NOT NULL FROM operations WHERE id = $1 FOR UPDATE`,
			id).Scan(&status, &requested); err != nil {
			return err
		}
		if final, err := cancelOfFinal(id, status); final {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE operations SET cancel_requested_at = COALESCE(cancel_requested_at, now()), cancelled_by = COALESCE(cancelled_by, $2)
			WHERE id = $1`, id, by); err != nil {
			return err
		}
		first = !requested
		if entry != nil && first {
			e := *entry
			e.ObjectID = id
			return insertAudit(ctx, tx, e)
		}
		return nil
	})
	return first && err == nil, err
}

// errStartedMeanwhile makes Cancel try again when the scheduler started
// the operation between its read and its lock.
var errStartedMeanwhile = errors.New("the scheduled operation started while it was being cancelled")

// cancelOfFinal answers the cancel of an operation whose status is final:
// nothing to do for a cancelled one, a Conflict for a finished one.
func cancelOfFinal(id, status string) (final bool, err error) {
	switch {
	case status == licensing.StatusCancelled:
		return true, nil
	case licensing.Finished(status):
		return true, finishedConflict(id, status)
	}
	return false, nil
}

func finishedConflict(id, status string) error {
	return licensing.Errorf(licensing.CodeConflict,
		"operation %s has finished (%s); there is nothing left to cancel. To reverse what it did, undo it: POST /v1/operations/%s/undo", id, status, id)
}
