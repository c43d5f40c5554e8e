package storage

import (
	"context"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/licenseops/licenseops/licensing"
)

// Cancel stops an operation of the partner: in one transaction it records
// the cancel and marks every item not yet applied ('pending') cancelled.
// Items already applied stay as they are, and so does an item in flight to
// an external directory ('applying'): its call completes and is recorded
// truthfully. The seats granted to cancelled items return at settlement,
// like any unused grant. The operation becomes 'cancelled' when its last
// item is final (Finalize); the caller finalizes at once, which for a local
// directory is at once.
//
// A worker that receives the task of a cancelled item finds it final and
// changes nothing. Items are locked in user order, the order batches lock
// them in, so a cancel and a running batch cannot deadlock: the batch's
// items are either applied before the cancel reaches them (and stay) or
// cancelled before the batch reads them.
//
// Cancelling a cancelled operation returns it (idempotent); a finished one
// is a Conflict. first reports whether this call was the first cancel of
// the operation. entry, when set, is audited in the same transaction.
func (s *Store) Cancel(ctx context.Context, partnerKey int64, id, by string, entry *licensing.AuditEntry) (first bool, err error) {
	if _, err := uuid.Parse(id); err != nil {
		return false, notFound("operation", id)
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var status string
		var requested bool
		err := tx.QueryRowContext(ctx, `SELECT status, cancel_requested_at IS NOT NULL FROM operations
			WHERE id = $1 AND partner_key = $2 FOR UPDATE`, id, partnerKey).Scan(&status, &requested)
		if isNoRows(err) {
			return notFound("operation", id)
		}
		if err != nil {
			return err
		}
		switch status {
		case licensing.StatusCancelled:
			return nil
		case licensing.StatusCompleted, licensing.StatusCompletedWithErrors:
			return licensing.Errorf(licensing.CodeConflict,
				"operation %s has finished (%s); there is nothing left to cancel. To reverse what it did, undo it: POST /v1/operations/%s/undo", id, status, id)
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
		first = !requested
		if _, err := tx.ExecContext(ctx, `
			UPDATE operations SET cancel_requested_at = COALESCE(cancel_requested_at, now()), cancelled_by = COALESCE(cancelled_by, $2)
			WHERE id = $1`, id, by); err != nil {
			return err
		}
		if entry != nil {
			e := *entry
			e.ObjectID = id
			return insertAudit(ctx, tx, e)
		}
		return nil
	})
	return first && err == nil, err
}
