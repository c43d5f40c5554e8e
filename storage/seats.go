package storage

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/licenseops/licenseops/licensing"
)

// settle folds the seat effects of an operation's finished items into the
// subscription counters in one statement: each new assignment moves a seat
// from reserved to consumed, each revocation frees a consumed seat, and every
// other granted seat (unused, or of a failed user) goes back. Items are
// marked settled in the same statement, so settlement happens exactly once
// per item however often it runs. Deferring this is always on the safe side:
// until settled, a seat counts as reserved or consumed, never as free.
//
// final is for an operation whose items are all finished (Finalize): it
// waits for item locks and settles every item. Otherwise (the periodic
// settlement of a running operation) items another transaction holds (a
// redelivered batch reading its recorded outcomes) are skipped rather than
// waited for, and so are items holding a grant they did not use: that seat
// stays with the operation, for a user of it short of one (reserveSeats
// hands it over), until the operation finishes.
//
// Items are locked in user order and subscriptions in SKU order, the orders
// batches use, so settlement cannot deadlock with them as long as it does
// not run inside a batch's transaction.
func settle(ctx context.Context, q sqlx.ExecerContext, opID string, final bool) error {
	query := settleRunning
	if final {
		query = settleFinal
	}
	_, err := q.ExecContext(ctx, query, opID)
	return err
}

var (
	settleFinal   = settleQuery("", "")
	settleRunning = settleQuery("SKIP LOCKED", `AND NOT EXISTS (
				SELECT 1 FROM unnest(op.assign) WITH ORDINALITY AS a(sku, n)
				WHERE `+fmt.Sprintf(unusedGrant, "(1 << (a.n::int - 1))", "a.sku")+`)`)
)

func settleQuery(lockMode, keep string) string {
	return `
		WITH op AS (
			SELECT customer_key, assign, dry_run FROM operations WHERE id = $1
		), todo AS (
			SELECT i.user_id FROM operation_items i, op
			WHERE i.operation_id = $1 AND NOT i.settled AND i.status NOT IN ('pending','applying') ` + keep + `
			ORDER BY i.user_id FOR NO KEY UPDATE OF i ` + lockMode + `
		), done AS (
			-- By key, through the primary key: joined to todo, the planner
			-- hashes every item of the operation on each sweep (a scan of
			-- 100,000 rows a second during a rollout, 0.2-0.6 s each).
			UPDATE operation_items i SET settled = true
			WHERE i.operation_id = $1 AND i.user_id = ANY(ARRAY(SELECT user_id FROM todo))
			RETURNING i.status, i.assigned, i.revoked, i.granted_mask
		), delta AS (
			SELECT sku, sum(dc)::int AS dc, sum(dr)::int AS dr FROM (
				SELECT unnest(d.assigned) AS sku, 1 AS dc, 0 AS dr FROM done d, op WHERE d.status = 'succeeded' AND NOT op.dry_run
				UNION ALL
				SELECT unnest(d.revoked), -1, 0 FROM done d, op WHERE d.status = 'succeeded' AND NOT op.dry_run
				UNION ALL
				SELECT a.sku, 0, 1 FROM done d, op, unnest(op.assign) WITH ORDINALITY AS a(sku, n)
				WHERE d.granted_mask & (1 << (a.n::int - 1)) <> 0
			) x GROUP BY sku
		), locked AS (
			SELECT s.sku_id FROM subscriptions s, op
			WHERE s.customer_key = op.customer_key AND s.sku_id IN (SELECT sku FROM delta)
			ORDER BY s.sku_id FOR NO KEY UPDATE OF s
		)
		UPDATE subscriptions s SET consumed = s.consumed + delta.dc, reserved = s.reserved - delta.dr, updated_at = now()
		FROM delta, op, locked
		WHERE s.customer_key = op.customer_key AND s.sku_id = delta.sku AND locked.sku_id = delta.sku`
}

// Settle folds the seats of an operation's finished items into the
// subscription counters, so that revoked seats come back while a long
// operation still runs. Grants its items left unused stay with the
// operation until it finishes (see settle).
func (s *Store) Settle(ctx context.Context, opID string) error {
	return settle(ctx, s.db, opID, false)
}

// FinalizeIfDone completes an operation whose items are all terminal: seats
// settled, final counts stored, status and finished_at set. It reports
// whether the operation is finished (now or before). It is safe to call from
// any number of processes at once.
func (s *Store) FinalizeIfDone(ctx context.Context, opID string) (bool, error) {
	f, err := s.Finalize(ctx, opID)
	return f.Done, err
}

// Finalized is what a Finalize call found and did.
type Finalized struct {
	// Done reports whether the operation is finished: by this call, before
	// it, or deleted.
	Done bool
	// Status is the final status this call set (StatusCompleted,
	// StatusCompletedWithErrors or StatusCancelled), "" when this call did
	// not finish the operation; so of any number of concurrent calls exactly
	// one reports the completion, and metrics and logs count it once.
	Status                       string
	Succeeded, Failed, Cancelled int
}

// finalStatus is the status an operation ends with. A cancelled operation
// ends 'cancelled' whatever its items did before the cancel: its counts say
// how many succeeded, failed and were cancelled.
func finalStatus(cancelRequested bool, failed int) string {
	switch {
	case cancelRequested:
		return licensing.StatusCancelled
	case failed > 0:
		return licensing.StatusCompletedWithErrors
	default:
		return licensing.StatusCompleted
	}
}

// Finalize is FinalizeIfDone that also says whether this call finished the
// operation, with its final status and counts.
func (s *Store) Finalize(ctx context.Context, opID string) (Finalized, error) {
	var f Finalized
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		f = Finalized{}
		var status string
		var total, finished int
		var cancelRequested bool
		if err := tx.QueryRowContext(ctx, `
			SELECT status, total, cancel_requested_at IS NOT NULL,
				(SELECT COALESCE(sum(succeeded + failed + cancelled), 0) FROM operation_progress WHERE operation_id = $1)
			FROM operations WHERE id = $1 FOR UPDATE OF operations`, opID).Scan(&status, &total, &cancelRequested, &finished); err != nil {
			if isNoRows(err) {
				f.Done = true
				return nil
			}
			return err
		}
		if licensing.Finished(status) {
			f.Done = true
			return nil
		}
		if status == licensing.StatusScheduled && !cancelRequested {
			return nil // it has not started; the scheduler starts it
		}
		if finished < total {
			// The counters are as current as the items (see
			// operation_progress): items are still pending, and counting
			// them would read every item of a large operation per call.
			return nil
		}
		var ok, failed, cancelled, pending int
		if err := tx.QueryRowContext(ctx, `
			SELECT count(*) FILTER (WHERE status IN ('succeeded','would_revoke')),
			       count(*) FILTER (WHERE status = 'failed'),
			       count(*) FILTER (WHERE status = 'cancelled'),
			       count(*) FILTER (WHERE status IN ('pending','applying'))
			FROM operation_items WHERE operation_id = $1`, opID).Scan(&ok, &failed, &cancelled, &pending); err != nil {
			return err
		}
		if pending > 0 {
			return nil
		}
		if err := settle(ctx, tx, opID, true); err != nil {
			return err
		}
		final := finalStatus(cancelRequested, failed)
		if _, err := tx.ExecContext(ctx, `
			UPDATE operations SET status = $2, succeeded = $3, failed = $4, cancelled = $5, finished_at = now(),
				started_at = COALESCE(started_at, now())
			WHERE id = $1`, opID, final, ok, failed, cancelled); err != nil {
			return err
		}
		if err := insertOperationEvents(ctx, tx, opID, final); err != nil {
			return err
		}
		f = Finalized{Done: true, Status: final, Succeeded: ok, Failed: failed, Cancelled: cancelled}
		return nil
	})
	if err != nil {
		return Finalized{}, err
	}
	return f, nil
}
