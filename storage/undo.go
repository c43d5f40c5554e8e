package storage

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// ItemChange is one user's own change in an operation (an undo gives each
// user back what that user had), and the state the user must still be in
// for it to apply.
type ItemChange struct {
	Assign, Revoke []string
	// Location is the usage location to set ("" keeps the user's).
	Location string
	// ExpectLicenses is the set of licenses the user must hold (nil: any).
	ExpectLicenses []string
	// ExpectLocation is the usage location the user must have (nil: any).
	ExpectLocation *string
	// Plans are the plans to switch off by SKU the user holds or gets
	// back (an undo puts back what the user had off before); nil changes
	// no plan.
	Plans map[string][]string
	// ExpectPlans are the plans the user's licenses must have off, by
	// SKU (nil: any).
	ExpectPlans map[string][]string
	// ChangedSince fails the item at intake: a later operation changed the
	// user already.
	ChangedSince bool
}

// NewUndo is what intake needs to undo an operation.
type NewUndo struct {
	PartnerKey int64
	// Customer is the original operation's customer.
	Customer     licensing.Customer
	OperationID  string
	AllowPartial bool
	CreatedBy    string
	// QueueFor picks the queue for an undo of that many users.
	QueueFor    func(users int) string
	Idempotency *IdempotencyKey
	Audit       *licensing.AuditEntry
}

// Undo is an undo created by CreateUndo: the operation and its users.
type Undo struct {
	Operation licensing.Operation
	UserIDs   []string
}

// CreateUndo creates the operation that reverses operation req.OperationID
// of the partner: for each user it changed (a succeeded item that assigned,
// revoked, moved the usage location or changed the plans of held
// licenses), it revokes what was assigned, assigns back what was revoked,
// puts back the usage location the user had, if the user had one, and the
// plans the changed licenses had off (those the original recorded:
// plans_before). Each item expects the user as the original left it (its
// licenses and, where it changed them, its location and those licenses'
// plans), else it fails ChangedSince; a user that a later operation
// changed fails ChangedSince at once. Seats are granted as for any operation, so an
// undo short of seats is a *ShortageError unless req.AllowPartial.
//
// Only a finished operation that is not a dry run can be undone, and not
// while another undo of it runs: those are Conflict errors, as is an
// operation that changed nobody.
func (s *Store) CreateUndo(ctx context.Context, req NewUndo) (Undo, error) {
	var u Undo
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := lockUndoable(ctx, tx, req.PartnerKey, req.OperationID); err != nil {
			return err
		}
		users, items, err := undoItems(ctx, tx, req.Customer.Key, req.OperationID)
		if err != nil {
			return err
		}
		if len(users) == 0 {
			return licensing.Errorf(licensing.CodeConflict,
				"operation %s changed no user that still exists (every user failed, was cancelled, already had the change or was deleted since), "+
					"so there is nothing to undo; to change these users, start a new license operation", req.OperationID)
		}
		assign, revoke := unionOfChanges(items)
		newOp := NewOperation{
			PartnerKey: req.PartnerKey, Customer: req.Customer, UserIDs: users, Assign: assign, Revoke: revoke,
			AllowPartial: req.AllowPartial, Source: licensing.SourceUndo, CreatedBy: req.CreatedBy, Queue: req.QueueFor(len(users)),
			Items: items, UndoOf: req.OperationID, Idempotency: req.Idempotency, Audit: req.Audit,
		}
		u.UserIDs = users
		return s.createOperationTx(ctx, tx, newOp, &u.Operation)
	})
	if err != nil {
		return Undo{}, err
	}
	return u, nil
}

// lockUndoable locks the operation to undo, so that two undos of it are
// taken one after the other, and refuses one that cannot be undone.
func lockUndoable(ctx context.Context, tx *sqlx.Tx, partnerKey int64, opID string) error {
	if _, err := uuid.Parse(opID); err != nil {
		return notFound("operation", opID)
	}
	var (
		status  string
		dryRun  bool
		running *string
	)
	err := tx.QueryRowContext(ctx, `
		SELECT o.status, o.dry_run,
			(SELECT u.id::text FROM operations u WHERE u.undo_of = o.id AND u.finished_at IS NULL LIMIT 1)
		FROM operations o WHERE o.id = $1 AND o.partner_key = $2 FOR UPDATE OF o`, opID, partnerKey).Scan(&status, &dryRun, &running)
	switch {
	case isNoRows(err):
		return notFound("operation", opID)
	case err != nil:
		return err
	case dryRun:
		return licensing.Errorf(licensing.CodeConflict,
			"operation %s is a dry run, which changed nobody, so there is nothing to undo; a dry run needs no undo", opID)
	case !licensing.Finished(status):
		return licensing.Errorf(licensing.CodeConflict,
			"operation %s is %s; wait until it has finished, or cancel it first, then undo it", opID, status)
	case running != nil:
		return licensing.Errorf(licensing.CodeConflict,
			"operation %s is being undone by operation %s; wait until that one has finished", opID, *running)
	}
	return nil
}

// undoItems reads the users operation opID changed that still exist, and
// builds each one's change back (in user ID order). A later operation
// that changed the user (a succeeded item that assigned, revoked, moved
// the location or changed plans, finished after the original's) marks it
// ChangedSince. A user that had no usage location before (an empty
// location_before) cannot get "none" back: the undo leaves the location as
// it is; nor can plans that were not recorded (an item without
// plans_before, written before they were): the undo leaves them too.
func undoItems(ctx context.Context, tx *sqlx.Tx, customerKey int64, opID string) ([]string, []ItemChange, error) {
	rows, err := tx.QueryContext(ctx, `
		WITH later AS MATERIALIZED (
			-- The operations that may have changed a user after the
			-- original did, found once: few, so each user is a lookup by
			-- key in each.
			SELECT l.id FROM operations l, operations o
			WHERE o.id = $1 AND l.customer_key = $2 AND l.id <> $1 AND NOT l.dry_run
			AND (l.finished_at IS NULL OR l.finished_at > o.created_at)
		)
		SELECT i.user_id, i.assigned, i.revoked, COALESCE(i.licenses, '{}'), COALESCE(i.location_before, ''),
			CASE WHEN i.location_before IS NOT NULL THEN i.usage_location END,
			EXISTS (SELECT 1 FROM later JOIN operation_items j ON j.operation_id = later.id AND j.user_id = i.user_id
				WHERE j.status = 'succeeded' AND j.finished_at > i.finished_at
				AND (cardinality(j.assigned) > 0 OR cardinality(j.revoked) > 0 OR j.location_before IS NOT NULL
					OR cardinality(j.plans_changed) > 0)),
			CASE WHEN i.plans_before IS NOT NULL THEN i.plans_changed END, i.plans_before,
			-- The plans the item set: its own (an undo's), else its operation's.
			COALESCE(i.change_plans, o.disabled_plans)
		FROM operation_items i
		JOIN operations o ON o.id = i.operation_id
		JOIN users u ON u.customer_key = $2 AND u.id = i.user_id
		WHERE i.operation_id = $1 AND i.status = 'succeeded'
		AND (cardinality(i.assigned) > 0 OR cardinality(i.revoked) > 0 OR i.location_before <> ''
			OR (cardinality(i.plans_changed) > 0 AND i.plans_before IS NOT NULL))
		ORDER BY i.user_id`, opID, customerKey)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		users []string
		items []ItemChange
	)
	for rows.Next() {
		var (
			user                        string
			assigned, revoked, licenses pq.StringArray
			plansChanged                pq.StringArray
			before, set                 planMap
			c                           ItemChange
		)
		if err := rows.Scan(&user, &assigned, &revoked, &licenses, &c.Location, &c.ExpectLocation, &c.ChangedSince,
			&plansChanged, &before, &set); err != nil {
			return nil, nil, err
		}
		c.Assign, c.Revoke, c.ExpectLicenses = nonNil(revoked), nonNil(assigned), nonNil(licenses)
		c.Plans, c.ExpectPlans = plansBack(plansChanged, revoked, before, set)
		users, items = append(users, user), append(items, c)
	}
	return users, items, rows.Err()
}

// plansBack is the undo of a change of plans, from the plans the item
// recorded before (before, nil when it recorded none): the held SKUs
// changed get the plans they had off back, expecting those the change
// set (set), and the SKUs revoked are assigned back with the plans they
// had. Both nil when there is nothing to put back.
func plansBack(changed, revoked []string, before, set map[string][]string) (plans, expect map[string][]string) {
	if before == nil {
		return nil, nil
	}
	if len(changed) > 0 {
		plans, expect = plansOf(before, changed), plansOf(set, changed)
	}
	for _, sku := range revoked {
		if p, ok := before[sku]; ok {
			if plans == nil {
				plans = map[string][]string{}
			}
			plans[sku] = nonNil(p)
		}
	}
	return plans, expect
}

// unionOfChanges returns the SKUs the items assign and revoke, sorted: the
// operation's assign, whose positions the items' granted_mask bits use.
func unionOfChanges(items []ItemChange) (assign, revoke []string) {
	for _, c := range items {
		assign, revoke = append(assign, c.Assign...), append(revoke, c.Revoke...)
	}
	slices.Sort(assign)
	slices.Sort(revoke)
	return slices.Compact(assign), slices.Compact(revoke)
}

// insertItemChanges writes items that have a change of their own.
func insertItemChanges(ctx context.Context, tx *sqlx.Tx, opID string, req NewOperation, masks []int32) error {
	n := len(req.Items)
	assign, revoke, locs, expLicenses, expLocs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, c := range req.Items {
		assign[i], revoke[i], locs[i] = arrayLiteral(c.Assign), arrayLiteral(c.Revoke), c.Location
		if c.ExpectLicenses != nil {
			expLicenses[i] = arrayLiteral(c.ExpectLicenses)
		}
		if c.ExpectLocation != nil {
			// Usage locations are country codes, never empty: '' stands for none.
			expLocs[i] = *c.ExpectLocation
		}
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO operation_items (operation_id, user_id, granted_mask, change_assign, change_revoke, change_location,
			expect_licenses, expect_location)
		SELECT $1, x.u, x.m, x.a::text[], x.r::text[], NULLIF(x.l, ''), NULLIF(x.el, '')::text[], NULLIF(x.eloc, '')
		FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS x(u, m, a, r, l, el, eloc)`,
		opID, pq.StringArray(req.UserIDs), pq.Array(masks), pq.StringArray(assign), pq.StringArray(revoke), pq.StringArray(locs),
		pq.StringArray(expLicenses), pq.StringArray(expLocs))
	if err != nil {
		return err
	}
	return insertItemPlans(ctx, tx, opID, req)
}

// insertItemPlans writes the plans of the items that set plans of their
// own, and marks their operation (item_plans) so that its workers read
// and write plans. A second statement, so that an undo that changes no
// plan writes what it wrote before.
func insertItemPlans(ctx context.Context, tx *sqlx.Tx, opID string, req NewOperation) error {
	var users, plans, expect []string
	for i, c := range req.Items {
		if c.Plans == nil {
			continue
		}
		p, err := json.Marshal(c.Plans)
		if err != nil {
			return err
		}
		e, err := json.Marshal(c.ExpectPlans)
		if err != nil {
			return err
		}
		users, plans, expect = append(users, req.UserIDs[i]), append(plans, string(p)), append(expect, string(e))
	}
	if len(users) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `
		WITH op AS (
			UPDATE operations SET item_plans = true WHERE id = $1
		)
		UPDATE operation_items i SET change_plans = x.p::jsonb, expect_plans = NULLIF(x.e, 'null')::jsonb
		FROM unnest($2::text[], $3::text[], $4::text[]) AS x(u, p, e)
		WHERE i.operation_id = $1 AND i.user_id = x.u`,
		opID, pq.StringArray(users), pq.StringArray(plans), pq.StringArray(expect))
	return err
}

// failChangedSince fails, right after they are written, the items whose
// users a later operation changed (failPending). Their licenses stay
// unrecorded, so the report shows what each user holds now.
func failChangedSince(ctx context.Context, tx *sqlx.Tx, op *licensing.Operation, req NewOperation) error {
	var users []string
	for i, c := range req.Items {
		if c.ChangedSince {
			users = append(users, req.UserIDs[i])
		}
	}
	if len(users) == 0 {
		return nil
	}
	return failPending(ctx, tx, op.ID, users, changedSinceError(req.UndoOf))
}

// changedSinceError is the outcome of a user that changed again after
// operation undoOf, which an undo of it leaves alone.
func changedSinceError(undoOf string) *licensing.Error {
	return licensing.Errorf(licensing.CodeChangedSince,
		"the user's licenses, their service plans or usage location changed after operation %s, so the undo left the user as it is now; "+
			"check the user's licenses and change them with a new operation if they still need to go back", undoOf)
}

// limitToItems clears, in bits (a bit per SKU of req.Assign for each
// user), the SKUs a user's own change does not assign, and every SKU of a
// user that fails ChangedSince at intake: they need no seat of them. An
// operation without item changes is left as it is.
func limitToItems(req NewOperation, bits []int32) {
	if req.Items == nil {
		return
	}
	for i, c := range req.Items {
		var own int32
		if !c.ChangedSince {
			for _, sku := range c.Assign {
				own |= int32(1) << slices.Index(req.Assign, sku)
			}
		}
		bits[i] &= own
	}
}

// withItemChanges gives the users intake read (loadIntakeUsers) their own
// changes and expected states, so that the rules see what their items
// will do. Their plans are left out: setting plans takes no seat, which is
// all intake decides, and intake reads no plans of an undo's users.
func withItemChanges(req NewOperation, users []intakeUser) {
	if req.Items == nil {
		return
	}
	for k := range users {
		c, it := req.Items[users[k].index], &users[k].item
		it.ChangeAssign, it.ChangeRevoke, it.ExpectLicenses, it.ExpectLocation = nonNil(c.Assign), nonNil(c.Revoke), c.ExpectLicenses, c.ExpectLocation
		if c.Location != "" {
			it.ChangeLocation = &c.Location
		}
	}
}

// undoChecks are the invariants of items with a change of their own (an
// undo's), for Check.
var undoChecks = []check{
	// A user whose state no longer matched left alone: nothing assigned,
	// revoked, moved or changed in plans by the item that says so.
	{"an undo touched a user marked ChangedSince", `
		SELECT o.id || ' user ' || i.user_id || ' failed ChangedSince but assigned {' || array_to_string(i.assigned, ',')
			|| '}, revoked {' || array_to_string(i.revoked, ',') || '}, location before ' || COALESCE(i.location_before, 'unchanged')
			|| ', plans changed {' || COALESCE(array_to_string(i.plans_changed, ','), '') || '}'
		FROM operations o JOIN operation_items i ON i.operation_id = o.id
		WHERE i.error_code = 'ChangedSince'
		AND (cardinality(i.assigned) > 0 OR cardinality(i.revoked) > 0 OR i.location_before IS NOT NULL
			OR cardinality(i.plans_changed) > 0)
		AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
	// granted_mask bits index the operation's assign, and settlement
	// reads them so: an item's own change must stay within its
	// operation's, and what the item did within its own change.
	{"an item's own change is outside its operation's", `
		SELECT o.id || ' user ' || i.user_id || ' changes +{' || array_to_string(i.change_assign, ',') || '} -{'
			|| array_to_string(i.change_revoke, ',') || '} and did +{' || array_to_string(i.assigned, ',') || '} -{'
			|| array_to_string(i.revoked, ',') || '}; the operation +{' || array_to_string(o.assign, ',') || '} -{'
			|| array_to_string(o.revoke, ',') || '}'
		FROM operations o JOIN operation_items i ON i.operation_id = o.id
		WHERE i.change_assign IS NOT NULL
		AND (NOT i.change_assign <@ o.assign OR NOT COALESCE(i.change_revoke, '{}') <@ o.revoke
			OR NOT COALESCE(i.assigned, '{}') <@ i.change_assign OR NOT COALESCE(i.revoked, '{}') <@ COALESCE(i.change_revoke, '{}'))
		AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
	{"an undo without the operation it reverses, or the reverse", `
		SELECT o.id || ' has source ' || o.source || ' and undo_of ' || COALESCE(o.undo_of::text, 'NULL')
		FROM operations o
		WHERE (o.source = 'undo') <> (o.undo_of IS NOT NULL)
		AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
}
