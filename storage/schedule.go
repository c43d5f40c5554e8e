package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// StartedOperation is a scheduled operation that StartScheduled started.
type StartedOperation struct {
	Operation licensing.Operation
	Customer  licensing.Customer
	UserIDs   []string
	// Short is set when seats were short at the start and the operation did
	// not allow partial success: every user failed CountViolation, nothing
	// is to be enqueued, and the operation only needs finalizing.
	Short []licensing.SeatShortage
}

// StartScheduled starts the scheduled operation that is due first (its
// not_before has passed), if there is one, in one transaction: it grants
// its items' seats by the rules in force now (grantSeats, as an intake
// does) and makes it 'queued'. The caller enqueues its tasks after commit;
// an enqueue lost with the process is completed by the sweeper, as for any
// operation. It returns nil when nothing is due.
//
// The operation's row is taken FOR UPDATE SKIP LOCKED and must still be
// 'scheduled' and not cancelled, so however many schedulers run at once
// (and however often one of them retries after a crash) an operation
// starts exactly once. A cancel locks the same row, so a cancel and a start
// are one before the other.
//
// When seats are short and the operation does not allow partial success,
// no seat is granted and every user fails CountViolation: at intake that
// request would have been refused, and at the start there is nobody to
// refuse it to.
func (s *Store) StartScheduled(ctx context.Context) (*StartedOperation, error) {
	var started *StartedOperation
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		started = nil
		req, op, err := lockDueOperation(ctx, tx)
		if err != nil || req == nil {
			return err
		}
		catalog, err := s.catalogTx(ctx, tx, req.PartnerKey)
		if err != nil {
			return err
		}
		catalogJSON, err := operationCatalogJSON(catalog)
		if err != nil {
			return err
		}
		st := &StartedOperation{Customer: req.Customer, UserIDs: req.UserIDs}
		masks, grants, err := grantSeats(ctx, tx, *req, catalog)
		var short *ShortageError
		switch {
		case errors.As(err, &short):
			st.Short = short.Shortages
			if err := failShort(ctx, tx, op.ID, short.Shortages); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if err := setGrants(ctx, tx, op.ID, req.UserIDs, masks); err != nil {
				return err
			}
			if err := reserveGrants(ctx, tx, req.Customer.Key, grants); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE operations SET status = 'queued', started_at = now(), catalog = $2 WHERE id = $1`,
			op.ID, catalogJSON); err != nil {
			return err
		}
		op.Status = licensing.StatusQueued
		st.Operation = op
		started = st
		return nil
	})
	return started, err
}

// lockDueOperation locks the scheduled operation due first, skipping any
// another scheduler holds, and returns what grantSeats needs of it with the
// operation itself (nil, nil when none is due).
func lockDueOperation(ctx context.Context, tx *sqlx.Tx) (*NewOperation, licensing.Operation, error) {
	var (
		req           NewOperation
		op            licensing.Operation
		defaultLoc    *string
		loc           *string
		assign, revok pq.StringArray
		from, to      pq.StringArray
		plans         planMap
	)
	err := tx.QueryRowContext(ctx, `
		SELECT o.id, o.partner_key, c.customer_key, c.id, c.default_usage_location, c.directory_kind, COALESCE(c.directory_tenant_id, ''),
			o.assign, o.revoke, o.usage_location, o.allow_partial, o.source, o.created_by, o.queue, o.total, o.created_at, o.not_before,
			o.replace_from, o.replace_to, COALESCE(o.copy_from, ''), o.exact, o.disabled_plans
		FROM operations o JOIN customers c USING (customer_key)
		WHERE o.status = 'scheduled' AND o.cancel_requested_at IS NULL AND o.not_before <= now()
		ORDER BY o.not_before, o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED`).Scan(
		&op.ID, &req.PartnerKey, &req.Customer.Key, &req.Customer.ID, &defaultLoc, &req.Customer.Directory.Kind, &req.Customer.Directory.TenantID,
		&assign, &revok, &loc, &req.AllowPartial, &req.Source, &req.CreatedBy, &req.Queue, &op.Total, &op.CreatedAt, &op.NotBefore, &from, &to, &req.CopyFrom, &req.Exact, &plans)
	if isNoRows(err) {
		return nil, op, nil
	}
	if err != nil {
		return nil, op, err
	}
	req.Customer.PartnerKey, req.Customer.DefaultUsageLocation = req.PartnerKey, defaultLoc
	req.Assign, req.Revoke, req.Replace = nonNil(assign), nonNil(revok), joinReplace(from, to)
	if len(plans) > 0 {
		req.DisabledPlans = plans
	}
	if loc != nil {
		req.UsageLocation = *loc
	}
	if err := tx.SelectContext(ctx, &req.UserIDs, `
		SELECT user_id FROM operation_items WHERE operation_id = $1 ORDER BY user_id`, op.ID); err != nil {
		return nil, op, err
	}
	fillOperation(&op, op.ID, req)
	return &req, op, nil
}

// setGrants stores the seats granted at the start of a scheduled
// operation: the items that got any.
func setGrants(ctx context.Context, tx *sqlx.Tx, opID string, users []string, masks []int32) error {
	var ids []string
	var granted []int32
	for i, m := range masks {
		if m != 0 {
			ids, granted = append(ids, users[i]), append(granted, m)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `
		UPDATE operation_items i SET granted_mask = x.m
		FROM unnest($2::text[], $3::int[]) AS x(u, m)
		WHERE i.operation_id = $1 AND i.user_id = x.u`, opID, pq.StringArray(ids), pq.Array(granted))
	return err
}

// failShort fails every user of a scheduled operation that found seats
// short when it started and did not allow partial success.
func failShort(ctx context.Context, tx *sqlx.Tx, opID string, shortages []licensing.SeatShortage) error {
	names := make([]string, len(shortages))
	for i, sh := range shortages {
		names[i] = fmt.Sprintf("%s (needs %d, %d available)", sh.SKU, sh.Needed, sh.Available)
	}
	msg := fmt.Sprintf("when the scheduled operation started, seats were short for %s and it did not allow partial success, so no user was changed; "+
		"buy more seats and submit the change again, or schedule it with allow_partial: true", strings.Join(names, ", "))
	return failPending(ctx, tx, opID, nil, licensing.Errorf(licensing.CodeCountViolation, "%s", msg))
}

// failPending fails with e the pending items of an operation that no
// worker has seen: those of users, or every one when users is nil. An
// update, not a status given at insert, so that the progress counters
// (kept by a trigger on updates) count them.
func failPending(ctx context.Context, tx *sqlx.Tx, opID string, users []string, e *licensing.Error) error {
	_, err := tx.ExecContext(ctx, `
		UPDATE operation_items SET status = 'failed', error_code = $2, error_message = $3, finished_at = clock_timestamp()
		WHERE operation_id = $1 AND status = 'pending' AND ($4::text[] IS NULL OR user_id = ANY($4))`,
		opID, string(e.Code), e.Message, pq.StringArray(users))
	return err
}
