package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// NewOperation is what intake needs to create an operation.
type NewOperation struct {
	PartnerKey    int64
	Customer      licensing.Customer
	UserIDs       []string // distinct
	Assign        []string
	Revoke        []string
	UsageLocation string
	AllowPartial  bool
	DryRun        bool
	Source        string
	CreatedBy     string
	Queue         string
	// PolicyID is the cleanup policy that started the operation ("" for none).
	PolicyID string
	// NotBefore, when set, schedules the operation: it is 'scheduled' until
	// then, its seats are checked now and granted when it starts
	// (StartScheduled), and nothing is enqueued now.
	NotBefore *time.Time
	// Items, when set, gives each user of UserIDs (in the same order) a
	// change of its own instead of the operation's (an undo; see
	// ItemChange). Assign and Revoke are then the union of the items'.
	Items []ItemChange
	// UndoOf is the operation an undo reverses ("" for others).
	UndoOf string
	// Replace swaps licenses where held. Assign must include every To and
	// Revoke every From (licensing.Change.Replace): the grants' bits index
	// Assign, and the worker drops a To for a user without its From.
	Replace []licensing.Replacement
	// CopyFrom, when set, is a user whose licenses become Assign (which
	// must be empty, as Revoke and Replace must be) when the operation is
	// created (resolveCopy); Exact also revokes from each user, when its
	// item is applied, every license not in Assign.
	CopyFrom string
	Exact    bool
	// DisabledPlans, by SKU of Assign (or a Replace's To), are the service
	// plans to switch off (licensing.Change.DisabledPlans), lists sorted;
	// nil changes no plan. A copy fills it from the reference user.
	DisabledPlans map[string][]string
	// Idempotency, when set, completes the caller's idempotency key in the
	// operation's own transaction.
	Idempotency *IdempotencyKey
	// Audit, when set, is recorded in the operation's own transaction with
	// the new operation's ID as its object, so the log never misses an
	// operation nor shows one that was rolled back.
	Audit *licensing.AuditEntry
}

// ShortageError is returned by CreateOperation when seats are missing and
// partial operations were not allowed. The API turns it into CountViolation.
type ShortageError struct{ Shortages []licensing.SeatShortage }

func (e *ShortageError) Error() string { return "not enough seats" }

// CreateOperation is the intake: in one transaction it checks IDs and seats,
// grants a seat to every item that could use one by the rules (so workers
// never touch the hot subscription row; see grantSeats), and writes the operation with one item per user. It
// returns the operation; enqueueing is the caller's job after commit.
func (s *Store) CreateOperation(ctx context.Context, req NewOperation) (licensing.Operation, error) {
	var op licensing.Operation
	err := s.inTx(ctx, func(tx *sqlx.Tx) error { return s.createOperationTx(ctx, tx, req, &op) })
	if err != nil {
		return licensing.Operation{}, err
	}
	return op, nil
}

// createOperationTx is CreateOperation within tx, so that a cleanup run can
// record itself and its operation in one transaction.
func (s *Store) createOperationTx(ctx context.Context, tx *sqlx.Tx, req NewOperation, op *licensing.Operation) error {
	id := uuid.New()
	if err := resolveCopy(ctx, tx, &req); err != nil {
		return err
	}
	skus := append(append([]string{}, req.Assign...), req.Revoke...)
	if err := checkKnownSKUs(ctx, tx, req.Customer.Key, skus); err != nil {
		return err
	}
	if err := checkKnownUsers(ctx, tx, req.Customer.Key, req.UserIDs); err != nil {
		return err
	}
	catalog, err := s.catalogTx(ctx, tx, req.PartnerKey)
	if err != nil {
		return err
	}
	if err := checkServicePlans(req, catalog); err != nil {
		return err
	}
	masks, grants, err := grantSeats(ctx, tx, req, catalog)
	if err != nil {
		return err
	}
	status := licensing.StatusQueued
	if req.NotBefore != nil {
		// Checked, not granted: the seats are taken when it starts.
		status, masks, grants = licensing.StatusScheduled, make([]int32, len(req.UserIDs)), nil
	}
	catalogJSON, err := operationCatalogJSON(catalog)
	if err != nil {
		return err
	}
	replaceFrom, replaceTo := splitReplace(req.Replace)
	row := tx.QueryRowxContext(ctx, `
		INSERT INTO operations (id, partner_key, customer_key, source, queue, assign, revoke, usage_location,
			allow_partial, dry_run, catalog, default_usage_location, total, created_by, policy_id, status, not_before, undo_of,
			replace_from, replace_to, copy_from, exact, disabled_plans)
		VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, ''), $9, $10, $11, $12, $13, $14, NULLIF($15, '')::uuid, $16, $17, NULLIF($18, '')::uuid,
			$19, $20, NULLIF($21, ''), $22, $23)
		RETURNING created_at`,
		id, req.PartnerKey, req.Customer.Key, req.Source, req.Queue, pq.StringArray(nonNil(req.Assign)), pq.StringArray(nonNil(req.Revoke)),
		req.UsageLocation, req.AllowPartial, req.DryRun, catalogJSON, req.Customer.DefaultUsageLocation, len(req.UserIDs), req.CreatedBy, req.PolicyID,
		status, req.NotBefore, req.UndoOf, replaceFrom, replaceTo, req.CopyFrom, req.Exact, planMap(req.DisabledPlans))
	if err := row.Scan(&op.CreatedAt); err != nil {
		return err
	}
	if err := insertItems(ctx, tx, id.String(), req, masks); err != nil {
		return err
	}
	if err := reserveGrants(ctx, tx, req.Customer.Key, grants); err != nil {
		return err
	}
	fillOperation(op, id.String(), req)
	if err := failChangedSince(ctx, tx, op, req); err != nil {
		return err
	}
	if req.Audit != nil {
		e := *req.Audit
		e.ObjectID = op.ID
		if err := insertAudit(ctx, tx, e); err != nil {
			return err
		}
	}
	if req.Idempotency != nil {
		return completeIdempotencyKey(ctx, tx, req.PartnerKey, req.Idempotency.Key, req.Idempotency.Respond(*op))
	}
	return nil
}

// reserveGrants adds the seats granted to an operation's items at intake
// (grantSeats) to their subscriptions' reserved seats.
func reserveGrants(ctx context.Context, tx *sqlx.Tx, customerKey int64, grants map[string]int) error {
	if len(grants) == 0 {
		return nil
	}
	grantSKUs, grantN := make([]string, 0, len(grants)), make([]int64, 0, len(grants))
	for sku, n := range grants {
		grantSKUs, grantN = append(grantSKUs, sku), append(grantN, int64(n))
	}
	_, err := tx.ExecContext(ctx, `
		UPDATE subscriptions s SET reserved = s.reserved + x.n, updated_at = now()
		FROM unnest($2::text[], $3::int[]) AS x(sku, n)
		WHERE s.customer_key = $1 AND s.sku_id = x.sku`,
		customerKey, pq.StringArray(grantSKUs), pq.Array(grantN))
	return err
}

func fillOperation(op *licensing.Operation, id string, req NewOperation) {
	loc := req.UsageLocation
	op.ID, op.CustomerID, op.Status, op.Total, op.Pending = id, req.Customer.ID, licensing.StatusQueued, len(req.UserIDs), len(req.UserIDs)
	op.CreatedBy, op.Source, op.AllowPartial, op.DryRun, op.Queue = req.CreatedBy, req.Source, req.AllowPartial, req.DryRun, req.Queue
	showChange(op, req.Assign, req.Revoke, req.Replace)
	if req.CopyFrom != "" {
		op.CopyFrom, op.Exact = &req.CopyFrom, req.Exact
	}
	op.DisabledPlans = req.DisabledPlans
	if loc != "" {
		op.UsageLocation = &loc
	}
	if req.NotBefore != nil {
		op.Status, op.NotBefore = licensing.StatusScheduled, req.NotBefore
	}
	if req.UndoOf != "" {
		undoOf := req.UndoOf
		op.UndoOf = &undoOf
	}
}

// resolveCopy turns a copy of a user's licenses into an ordinary change:
// the reference user's licenses, as they are now, become req.Assign, and
// the plans switched off in them req.DisabledPlans (every copied license,
// so that a copy also switches on in held licenses what the reference has
// on). A
// reference that is not a user of the customer is UnknownUsers; one that
// holds nothing leaves nothing to copy.
func resolveCopy(ctx context.Context, q sqlx.QueryerContext, req *NewOperation) error {
	if req.CopyFrom == "" {
		return nil
	}
	var (
		licenses pq.StringArray
		plans    planMap
	)
	err := q.QueryRowxContext(ctx, `
		SELECT ARRAY(SELECT sku_id FROM assignments a WHERE a.customer_key = u.customer_key AND a.user_id = u.id ORDER BY sku_id),
			(SELECT jsonb_object_agg(sku_id, disabled_plans) FROM assignments a WHERE a.customer_key = u.customer_key AND a.user_id = u.id)
		FROM users u WHERE u.customer_key = $1 AND u.id = $2`, req.Customer.Key, req.CopyFrom).Scan(&licenses, &plans)
	if isNoRows(err) {
		e := licensing.Errorf(licensing.CodeUnknownUsers,
			"copy_from %q is not a user of this customer; give the ID of the user whose licenses to copy", req.CopyFrom)
		e.Details = map[string]any{"user_ids": []string{req.CopyFrom}, "count": 1}
		return e
	}
	if err != nil {
		return err
	}
	switch {
	case len(licenses) == 0:
		return licensing.Errorf(licensing.CodeInvalidRequest,
			"user %s holds no licenses, so there is nothing to copy; to take licenses away, revoke them", req.CopyFrom)
	case len(licenses) > licensing.MaxSKUsPerOperation:
		return licensing.Errorf(licensing.CodeTooLarge,
			"user %s holds %d licenses; an operation copies up to %d, assign them in parts instead", req.CopyFrom, len(licenses), licensing.MaxSKUsPerOperation)
	}
	req.Assign, req.DisabledPlans = licenses, plans
	return nil
}

// showChange sets the change of op as its caller gave it: assign and
// revoke without the SKUs of replace, which the stored lists include.
func showChange(op *licensing.Operation, assign, revoke []string, replace []licensing.Replacement) {
	op.Assign = nonNil(licensing.WithoutReplaceTargets(assign, replace))
	op.Revoke = nonNil(licensing.WithoutReplaced(revoke, replace))
	op.Replace = replace
}

// splitReplace and joinReplace convert replace pairs to and from the
// columns replace_from and replace_to (never NULL).
func splitReplace(replace []licensing.Replacement) (from, to pq.StringArray) {
	from, to = make(pq.StringArray, len(replace)), make(pq.StringArray, len(replace))
	for i, r := range replace {
		from[i], to[i] = r.From, r.To
	}
	return from, to
}

func joinReplace(from, to []string) []licensing.Replacement {
	if len(from) == 0 {
		return nil
	}
	replace := make([]licensing.Replacement, len(from))
	for i := range from {
		replace[i] = licensing.Replacement{From: from[i], To: to[i]}
	}
	return replace
}

// insertItems writes the operation's items, pending, with their grants.
func insertItems(ctx context.Context, tx *sqlx.Tx, opID string, req NewOperation, masks []int32) error {
	if req.Items != nil {
		return insertItemChanges(ctx, tx, opID, req, masks)
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO operation_items (operation_id, user_id, granted_mask)
		SELECT $1, x.u, x.m FROM unnest($2::text[], $3::int[]) AS x(u, m)`,
		opID, pq.StringArray(req.UserIDs), pq.Array(masks))
	return err
}

func (s *Store) catalogTx(ctx context.Context, q sqlx.QueryerContext, partnerKey int64) (licensing.Catalog, error) {
	var rows []productRow
	if err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT sku_id, name, part_number, requires, excludes, allowed_locations, prohibited_locations, service_plans
		FROM products WHERE partner_key = $1`, partnerKey); err != nil {
		return nil, err
	}
	c := make(licensing.Catalog, len(rows))
	for _, r := range rows {
		c[r.SKU] = r.product()
	}
	return c, nil
}

// maxReportedIDs caps the offending IDs echoed back in an error's details.
const maxReportedIDs = 100

func checkKnownSKUs(ctx context.Context, q sqlx.QueryerContext, customerKey int64, skus []string) error {
	var unknown []string
	if err := sqlx.SelectContext(ctx, q, &unknown, `
		SELECT x.sku FROM unnest($2::text[]) AS x(sku)
		WHERE NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.customer_key = $1 AND s.sku_id = x.sku)
		ORDER BY 1`, customerKey, pq.StringArray(skus)); err != nil {
		return err
	}
	if len(unknown) == 0 {
		return nil
	}
	var held []string
	if err := sqlx.SelectContext(ctx, q, &held,
		`SELECT sku_id FROM subscriptions WHERE customer_key = $1 ORDER BY sku_id`, customerKey); err != nil {
		return err
	}
	e := licensing.Errorf(licensing.CodeUnknownSkus, "%s", unknownSKUsMessage(unknown, held))
	e.Details = map[string]any{"sku_ids": unknown}
	return e
}

// maxListedSKUs caps the customer's SKUs listed in an UnknownSkus message.
const maxListedSKUs = 50

// unknownSKUsMessage names every SKU of a change that the customer has no
// subscription for, suggests the customer's SKUs that differ from one only
// in case or surrounding spaces ("did you mean O365_E5?"), and lists the
// customer's SKUs, so that a typo can be fixed without another request.
func unknownSKUsMessage(unknown, held []string) string {
	var b strings.Builder
	b.WriteString("the customer has no subscription for ")
	for i, sku := range unknown {
		switch {
		case i == 0:
		case i == len(unknown)-1:
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", sku)
		var alike []string
		for _, h := range held {
			if strings.EqualFold(strings.TrimSpace(sku), h) {
				alike = append(alike, h)
			}
		}
		if len(alike) > 0 {
			fmt.Fprintf(&b, " (did you mean %s?)", strings.Join(alike, " or "))
		}
	}
	switch {
	case len(held) == 0:
		b.WriteString("; it has no subscriptions yet")
	case len(held) <= maxListedSKUs:
		fmt.Fprintf(&b, "; its SKUs are %s", strings.Join(held, ", "))
	default:
		fmt.Fprintf(&b, "; its SKUs are %s and %d more (see its subscriptions)", strings.Join(held[:maxListedSKUs], ", "), len(held)-maxListedSKUs)
	}
	b.WriteString(". Correct the SKU IDs, or buy a subscription first, or remove them from the change")
	return b.String()
}

func checkKnownUsers(ctx context.Context, q sqlx.QueryerContext, customerKey int64, userIDs []string) error {
	var unknown []string
	if err := sqlx.SelectContext(ctx, q, &unknown, `
		SELECT x.id FROM unnest($2::text[]) AS x(id)
		WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.customer_key = $1 AND u.id = x.id)`,
		customerKey, pq.StringArray(userIDs)); err != nil {
		return err
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	shown := unknown
	if len(shown) > maxReportedIDs {
		shown = shown[:maxReportedIDs]
	}
	e := licensing.Errorf(licensing.CodeUnknownUsers,
		"%d of the selected users do not exist in this customer (first: %q); import them or remove them from the selection", len(unknown), unknown[0])
	e.Details = map[string]any{"user_ids": shown, "count": len(unknown)}
	return e
}

// grantSeats decides, per item, which assigned SKUs get a seat reserved now.
// It locks the subscriptions of the assigned SKUs for the rest of the
// transaction, so concurrent intakes cannot both spend the same seats.
//
// Seats go only to users who could use them: each user's change is
// evaluated by the static rules (licensing.Evaluate on the user's account,
// usage location and licenses as they are now), and a user needs a seat of
// a SKU only when the change would newly assign it. Where seats are short,
// the users who need one get them in report order (display name, then user
// ID), whatever the order of the selection; workers keep that order
// (reserveSeats).
//
// When the free seats suffice for every selected user that lacks an
// assigned SKU, nobody has to be chosen: each of them gets a seat without
// its rules being read (a user who then fails a rule leaves its grant to
// the operation's other users, and it returns when the operation ends).
// That spares a 100,000-user rollout the 250–350 ms of reading every user
// with its licenses in report order, the largest part of its intake.
func grantSeats(ctx context.Context, tx *sqlx.Tx, req NewOperation, catalog licensing.Catalog) (masks []int32, grants map[string]int, err error) {
	if len(req.Assign) == 0 || req.DryRun {
		return make([]int32, len(req.UserIDs)), nil, nil
	}
	lacking, err := lackingSKUs(ctx, tx, req)
	if err != nil {
		return nil, nil, err
	}
	limitToItems(req, lacking)
	available, err := availableSeats(ctx, tx, req, true)
	if err != nil {
		return nil, nil, err
	}
	if seatsForAll(req, lacking, available) {
		order := make([]int, len(req.UserIDs))
		for i := range order {
			order[i] = i
		}
		masks, grants, _, err = planGrants(req, lacking, order, available)
		return masks, grants, err
	}
	users, err := loadIntakeUsers(ctx, tx, req)
	if err != nil {
		return nil, nil, err
	}
	withItemChanges(req, users)
	needs := seatNeeds(intakePlan(req, catalog), users)
	limitToItems(req, needs)
	masks, grants, _, err = planGrants(req, needs, reportOrder(users), available)
	return masks, grants, err
}

// lackingSKUs returns, for each user of req.UserIDs, a bit per SKU of
// req.Assign (1 << index) that the user does not hold (a replace target:
// nor does it hold one of its sources): the most seats it could need. It reads the holders of those SKUs by the SKU index, not the
// selection's users one by one.
func lackingSKUs(ctx context.Context, tx *sqlx.Tx, req NewOperation) ([]int32, error) {
	index := make(map[string]int, len(req.UserIDs))
	for i, u := range req.UserIDs {
		index[u] = i
	}
	all := int32(1)<<len(req.Assign) - 1
	lacking := make([]int32, len(req.UserIDs))
	for i := range lacking {
		lacking[i] = all
	}
	// A replace target is lacked only by users who hold one of its
	// sources: targets holds, per user, the bits of the targets it may get.
	skus, targets, targetBits := req.Assign, []int32(nil), replaceTargetBits(req)
	if targetBits != 0 {
		skus, targets = slices.Clone(req.Assign), make([]int32, len(req.UserIDs))
		for _, r := range req.Replace {
			skus = append(skus, r.From)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT user_id, sku_id FROM assignments WHERE customer_key = $1 AND sku_id = ANY($2)`,
		req.Customer.Key, pq.StringArray(skus))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var u, sku string
		if err := rows.Scan(&u, &sku); err != nil {
			return nil, err
		}
		i, ok := index[u]
		if !ok {
			continue
		}
		if k := slices.Index(req.Assign, sku); k >= 0 {
			lacking[i] &^= int32(1) << k
		}
		if targets != nil {
			targets[i] |= replaceBitsOf(req, sku)
		}
	}
	for i := range targets {
		lacking[i] &^= targetBits &^ targets[i]
	}
	return lacking, rows.Err()
}

// replaceTargetBits has a bit per SKU of req.Assign (1 << index) that is
// the target of a replace pair.
func replaceTargetBits(req NewOperation) int32 {
	var bits int32
	for _, r := range req.Replace {
		bits |= int32(1) << slices.Index(req.Assign, r.To)
	}
	return bits
}

// replaceBitsOf has a bit per SKU of req.Assign (1 << index) that replaces
// from.
func replaceBitsOf(req NewOperation, from string) int32 {
	var bits int32
	for _, r := range req.Replace {
		if r.From == from {
			bits |= int32(1) << slices.Index(req.Assign, r.To)
		}
	}
	return bits
}

// seatsForAll reports whether every SKU of req.Assign has a free seat for
// each user that lacks it.
func seatsForAll(req NewOperation, lacking []int32, available map[string]int) bool {
	for i, sku := range req.Assign {
		bit, n := int32(1)<<i, 0
		for _, l := range lacking {
			if l&bit != 0 {
				n++
			}
		}
		if n > available[sku] {
			return false
		}
	}
	return true
}

// availableSeats reads the free seats of the SKUs to assign; lock takes the
// subscription rows for the rest of the transaction.
func availableSeats(ctx context.Context, tx *sqlx.Tx, req NewOperation, lock bool) (map[string]int, error) {
	query := `SELECT sku_id, total - consumed - reserved AS available FROM subscriptions
		WHERE customer_key = $1 AND sku_id = ANY($2) ORDER BY sku_id`
	if lock {
		query += ` FOR UPDATE`
	}
	var seats []struct {
		SKU       string `db:"sku_id"`
		Available int    `db:"available"`
	}
	if err := tx.SelectContext(ctx, &seats, query, req.Customer.Key, pq.StringArray(req.Assign)); err != nil {
		return nil, err
	}
	available := make(map[string]int, len(seats))
	for _, r := range seats {
		available[r.SKU] = r.Available
	}
	return available, nil
}

// intakeUser is a selected user as intake reads it: what the rules need
// (lockedItem's columns) and its report line's names.
type intakeUser struct {
	index int // in req.UserIDs
	row   licensing.ReportRow
	item  lockedItem
}

// loadIntakeUsers reads the selected users in report order (display name,
// then user ID), each with its account state, usage location and every
// license it holds: one query for the whole selection.
func loadIntakeUsers(ctx context.Context, tx *sqlx.Tx, req NewOperation) ([]intakeUser, error) {
	users := make([]intakeUser, 0, len(req.UserIDs))
	rows, err := tx.QueryContext(ctx, `
		SELECT x.n - 1, u.display_name, u.user_principal_name, u.usage_location, u.account_enabled,
			ARRAY(SELECT a.sku_id FROM assignments a WHERE a.customer_key = $1 AND a.user_id = u.id ORDER BY a.sku_id)
		FROM unnest($2::text[]) WITH ORDINALITY AS x(id, n)
		JOIN users u ON u.customer_key = $1 AND u.id = x.id
		ORDER BY u.display_name, u.id`, req.Customer.Key, pq.StringArray(req.UserIDs))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			u    intakeUser
			held pq.StringArray
		)
		if err := rows.Scan(&u.index, &u.row.DisplayName, &u.row.UserPrincipalName, &u.item.UsageLocation, &u.item.AccountEnabled, &held); err != nil {
			return nil, err
		}
		id := req.UserIDs[u.index]
		u.row.UserID, u.item.UserID, u.item.Status, u.item.Held = id, id, licensing.ItemPending, held
		users = append(users, u)
	}
	if err := rows.Err(); err != nil || len(req.DisabledPlans) == 0 {
		return users, err
	}
	plans, err := heldPlans(ctx, tx, req.Customer.Key, req.UserIDs)
	if err != nil {
		return nil, err
	}
	for i := range users {
		users[i].item.HeldPlans = plans[users[i].item.UserID]
	}
	return users, nil
}

// intakePlan is the plan an operation of req will carry, as far as the
// rules need it.
func intakePlan(req NewOperation, catalog licensing.Catalog) *Plan {
	plan := &Plan{
		PartnerKey: req.PartnerKey, CustomerKey: req.Customer.Key, CustomerID: req.Customer.ID,
		Change: licensing.Change{Assign: nonNil(req.Assign), Revoke: nonNil(req.Revoke), UsageLocation: req.UsageLocation,
			Replace: req.Replace, Exact: req.Exact, DisabledPlans: req.DisabledPlans},
		DryRun: req.DryRun, Catalog: catalog, Total: len(req.UserIDs), Source: req.Source, Directory: req.Customer.Directory,
	}
	if req.Customer.DefaultUsageLocation != nil {
		plan.DefaultLocation = *req.Customer.DefaultUsageLocation
	}
	return plan
}

// seatNeeds returns, for each user of req.UserIDs, a bit per SKU of
// plan.Change.Assign (1 << index) that the change would newly assign it by
// the rules: the seats the user could use. A user that fails a rule needs
// none, since each user's change is all-or-nothing.
func seatNeeds(plan *Plan, users []intakeUser) []int32 {
	needs := make([]int32, plan.Total)
	for _, u := range users {
		w := decide(plan, u.item)
		if w.status != licensing.ItemSucceeded && w.status != licensing.ItemWouldRevoke {
			continue
		}
		for _, sku := range w.result.Assigned {
			needs[u.index] |= skuBit(plan, sku)
		}
	}
	return needs
}

// reportOrder returns the indexes (in req.UserIDs) of users, which are in
// report order.
func reportOrder(users []intakeUser) []int {
	order := make([]int, len(users))
	for i, u := range users {
		order[i] = u.index
	}
	return order
}

// planGrants is grantSeats' decision on what it read: needs has a bit per
// SKU of req.Assign (1 << index) for each user, in the order of
// req.UserIDs, set when the user could use a seat of it (seatNeeds);
// order is the order to grant in (report order); available the free seats
// by SKU. The first users in order that need a SKU get a seat of it while
// seats last. It also returns, for every SKU of req.Assign in its order,
// the seats needed and available, and a *ShortageError when a SKU lacks
// seats and req.AllowPartial is false.
func planGrants(req NewOperation, needs []int32, order []int, available map[string]int) (masks []int32, grants map[string]int, seats []licensing.SeatShortage, err error) {
	masks = make([]int32, len(req.UserIDs))
	var shortages []licensing.SeatShortage
	grants = make(map[string]int, len(req.Assign))
	for i, sku := range req.Assign {
		bit := int32(1) << i
		needed := 0
		for _, h := range needs {
			if h&bit != 0 {
				needed++
			}
		}
		avail := max(available[sku], 0)
		seats = append(seats, licensing.SeatShortage{SKU: sku, Needed: needed, Available: avail})
		if needed > avail && !req.AllowPartial {
			shortages = append(shortages, licensing.SeatShortage{SKU: sku, Needed: needed, Available: avail})
			continue
		}
		n := min(needed, avail)
		grants[sku] = n
		for _, j := range order {
			if n == 0 {
				break
			}
			if needs[j]&bit != 0 {
				masks[j] |= bit
				n--
			}
		}
	}
	if len(shortages) > 0 {
		return nil, nil, seats, &ShortageError{Shortages: shortages}
	}
	for sku, n := range grants {
		if n == 0 {
			delete(grants, sku)
		}
	}
	return masks, grants, seats, nil
}

const operationColumns = `o.id, c.id AS customer_id, o.status, o.total, o.succeeded, o.failed, o.created_at, o.finished_at,
	o.created_by, o.source, o.assign, o.revoke, o.usage_location, o.allow_partial, o.dry_run, o.queue,
	o.cancelled, o.not_before, o.undo_of::text, o.cancel_requested_at, o.replace_from, o.replace_to, o.copy_from, o.exact, o.disabled_plans`

func scanOperation(row interface{ Scan(...any) error }) (licensing.Operation, error) {
	var op licensing.Operation
	var assign, revoke, replaceFrom, replaceTo pq.StringArray
	var plans planMap
	err := row.Scan(&op.ID, &op.CustomerID, &op.Status, &op.Total, &op.Succeeded, &op.Failed, &op.CreatedAt, &op.FinishedAt,
		&op.CreatedBy, &op.Source, &assign, &revoke, &op.UsageLocation, &op.AllowPartial, &op.DryRun, &op.Queue,
		&op.Cancelled, &op.NotBefore, &op.UndoOf, &op.CancelRequestedAt, &replaceFrom, &replaceTo, &op.CopyFrom, &op.Exact, &plans)
	if len(plans) > 0 {
		op.DisabledPlans = plans
	}
	showChange(&op, assign, revoke, joinReplace(replaceFrom, replaceTo))
	return op, err
}

// GetOperation returns an operation of the partner with live progress counts.
func (s *Store) GetOperation(ctx context.Context, partnerKey int64, id string) (licensing.Operation, error) {
	if _, err := uuid.Parse(id); err != nil {
		return licensing.Operation{}, notFound("operation", id)
	}
	op, err := scanOperation(s.db.QueryRowContext(ctx, `
		SELECT `+operationColumns+` FROM operations o JOIN customers c USING (customer_key)
		WHERE o.id = $1 AND o.partner_key = $2`, id, partnerKey))
	if isNoRows(err) {
		return op, notFound("operation", id)
	}
	if err != nil {
		return op, err
	}
	return op, s.fillProgress(ctx, &op)
}

// fillProgress sets the progress of a running operation from its counters
// (operation_progress, kept by a trigger on item statuses): a sum of at most
// 64 rows, however large the operation. A finished one carries its final
// counts, taken from its items when it finished.
func (s *Store) fillProgress(ctx context.Context, op *licensing.Operation) error {
	if op.FinishedAt != nil {
		op.Pending = 0
		return nil
	}
	if err := s.db.QueryRowContext(ctx, `
		SELECT COALESCE(sum(succeeded), 0), COALESCE(sum(failed), 0), COALESCE(sum(cancelled), 0)
		FROM operation_progress WHERE operation_id = $1`, op.ID).Scan(&op.Succeeded, &op.Failed, &op.Cancelled); err != nil {
		return err
	}
	op.Pending = op.Total - op.Succeeded - op.Failed - op.Cancelled
	return nil
}

// ListOperations returns a page of a customer's operations, newest first.
func (s *Store) ListOperations(ctx context.Context, customerKey int64, limit, offset int) ([]licensing.Operation, int, error) {
	var total int
	if err := s.db.GetContext(ctx, &total, `SELECT count(*) FROM operations WHERE customer_key = $1`, customerKey); err != nil {
		return nil, 0, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+operationColumns+` FROM operations o JOIN customers c USING (customer_key)
		WHERE o.customer_key = $1 ORDER BY o.created_at DESC, o.id LIMIT $2 OFFSET $3`, customerKey, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []licensing.Operation{}
	for rows.Next() {
		op, err := scanOperation(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, op)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	for i := range out {
		if err := s.fillProgress(ctx, &out[i]); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// Report streams the report rows of an operation sorted like the user list,
// calling fn for each, so that a 100,000-row report never sits in memory.
func (s *Store) Report(ctx context.Context, opID string, fn func(*licensing.ReportRow) error) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT i.user_id, COALESCE(u.display_name, ''), COALESCE(u.user_principal_name, ''),
			CASE i.status WHEN 'applying' THEN 'pending' ELSE i.status END, i.assigned, i.revoked,
			-- Until an item is final, the report shows what the user holds now.
			CASE WHEN i.status IN ('pending','applying') OR i.licenses IS NULL THEN ARRAY(SELECT a.sku_id FROM assignments a
				WHERE a.customer_key = o.customer_key AND a.user_id = i.user_id ORDER BY a.sku_id) ELSE i.licenses END,
			COALESCE(i.usage_location, u.usage_location), COALESCE(i.error_code, ''), COALESCE(i.error_message, ''),
			COALESCE(i.plans_changed, '{}'),
			-- Group-inherited licenses: as recorded for a final item
			-- (after the change if it succeeded), as mirrored now for the others.
			CASE WHEN i.status IN ('pending','applying') OR i.licenses IS NULL THEN
				(SELECT jsonb_agg(`+sourceJSON+` ORDER BY a.sku_id)
				FROM assignments a WHERE a.customer_key = o.customer_key AND a.user_id = i.user_id AND a.inherited_from <> '{}')
			WHEN i.status IN ('succeeded','would_revoke') THEN i.group_licenses->'after' ELSE i.group_licenses->'before' END,
			CASE WHEN i.status IN ('succeeded','would_revoke') THEN COALESCE(i.group_licenses->>'note', '') ELSE '' END,
			-- The plans the change set (the item's own, an undo's, else the
			-- operation's); reportPlans keeps those of the SKUs it assigned or updated.
			CASE WHEN i.status = 'succeeded' THEN COALESCE(i.change_plans, o.disabled_plans) END
		FROM operation_items i
		JOIN operations o ON o.id = i.operation_id
		LEFT JOIN users u ON u.customer_key = o.customer_key AND u.id = i.user_id
		WHERE i.operation_id = $1
		ORDER BY u.display_name, i.user_id`, opID)
	if err != nil {
		return err
	}
	defer rows.Close()
	var r licensing.ReportRow
	for rows.Next() {
		var assigned, revoked, licenses, changed pq.StringArray
		var code, msg string
		var inherited []byte
		var plans planMap
		if err := rows.Scan(&r.UserID, &r.DisplayName, &r.UserPrincipalName, &r.Status, &assigned, &revoked, &licenses,
			&r.UsageLocation, &code, &msg, &changed, &inherited, &r.Note, &plans); err != nil {
			return err
		}
		r.Assigned, r.Revoked, r.Licenses, r.Error = nonNil(assigned), nonNil(revoked), nonNil(licenses), nil
		r.PlansChanged = nonNil(changed)
		r.DisabledPlans = reportPlans(plans, r.Assigned, r.PlansChanged)
		r.LicenseSources = nil
		if inherited != nil {
			var list []licensing.LicenseSource
			if err := json.Unmarshal(inherited, &list); err != nil {
				return err
			}
			r.LicenseSources = licensing.SourcesFor(r.Licenses, list)
		}
		if code != "" {
			r.Error = &licensing.Error{Code: licensing.Code(code), Message: msg}
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// reportPlans is what a succeeded user's report row shows of the plans its
// change set: those of the SKUs it assigned or whose plans it updated
// (an empty list: every plan on), nil when it set none.
func reportPlans(set map[string][]string, assigned, plansChanged []string) map[string][]string {
	var out map[string][]string
	for sku, plans := range set {
		if !slices.Contains(assigned, sku) && !slices.Contains(plansChanged, sku) {
			continue
		}
		if out == nil {
			out = make(map[string][]string, len(set))
		}
		out[sku] = nonNil(plans)
	}
	return out
}

// analyzeThreshold is the size from which an intake refreshes the planner's
// statistics of operation items.
const analyzeThreshold = 1000

// AnalyzeItems refreshes the planner's statistics before the batches of a
// large operation run: those of operation_items, which just got the
// operation's items, and those of users and assignments when enough of
// them changed since their last analysis (autovacuum's own rule, which
// autovacuum applies only once a minute). Batches look up each item, user
// and license by key; with statistics from before a bulk import, a
// rollout or the intake, Postgres believes a customer has a few dozen rows
// and reads all of them for every batch instead — measured at 3× slower on
// a 100,000-user rollout, and 150 ms instead of 1 ms per batch of a revoke
// right after a rollout of 20,000.
func (s *Store) AnalyzeItems(ctx context.Context, total int) error {
	if total < analyzeThreshold {
		return nil
	}
	var stale pq.StringArray
	if err := s.db.QueryRowContext(ctx, `
		SELECT ARRAY(SELECT quote_ident(relname) FROM pg_stat_user_tables
		WHERE schemaname = current_schema() AND relname IN ('users', 'assignments')
		AND n_mod_since_analyze > 50 + 0.1 * n_live_tup)`).Scan(&stale); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `ANALYZE `+strings.Join(append([]string{"operation_items"}, stale...), ", "))
	return err
}
