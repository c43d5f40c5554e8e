package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// Plan is the immutable part of an operation that workers need for every
// item. It never changes after intake, so workers cache it per operation.
type Plan struct {
	ID              string
	PartnerKey      int64
	CustomerKey     int64
	CustomerID      string // the customer's public ID, for log lines
	Change          licensing.Change
	DryRun          bool
	Catalog         licensing.Catalog
	DefaultLocation string
	Total           int
	Source          string
	// UndoOf is the operation an undo reverses ("" for other operations).
	UndoOf string
	// ItemPlans means its items carry plans of their own to set (an undo
	// of a change of plans puts back each user's), so it reads and writes
	// plans like an operation with DisabledPlans.
	ItemPlans bool
	// Directory is where the customer's licenses live: "local" (Postgres)
	// or "msgraph" with its tenant.
	Directory licensing.Directory
}

// LoadPlan reads an operation's plan. A missing operation is NotFound (it
// was deleted with its customer: the task has nothing left to do).
func (s *Store) LoadPlan(ctx context.Context, opID string) (*Plan, error) {
	var (
		p                      Plan
		assign, revoke         pq.StringArray
		replaceFrom, replaceTo pq.StringArray
		loc, defaultLocation   *string
		undoOf                 *string
		catalog                []byte
		plans                  planMap
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT o.id, o.partner_key, o.customer_key, c.id, o.assign, o.revoke, o.usage_location, o.dry_run, o.catalog,
			o.default_usage_location, o.total, o.source, c.directory_kind, COALESCE(c.directory_tenant_id, ''), o.undo_of::text,
			o.replace_from, o.replace_to, o.exact, o.disabled_plans, o.item_plans
		FROM operations o JOIN customers c USING (customer_key) WHERE o.id = $1`, opID).
		Scan(&p.ID, &p.PartnerKey, &p.CustomerKey, &p.CustomerID, &assign, &revoke, &loc, &p.DryRun, &catalog, &defaultLocation, &p.Total, &p.Source,
			&p.Directory.Kind, &p.Directory.TenantID, &undoOf, &replaceFrom, &replaceTo, &p.Change.Exact, &plans, &p.ItemPlans)
	if isNoRows(err) {
		return nil, notFound("operation", opID)
	}
	if err != nil {
		return nil, err
	}
	p.Change.Assign, p.Change.Revoke, p.Change.Replace = assign, revoke, joinReplace(replaceFrom, replaceTo)
	if len(plans) > 0 {
		p.Change.DisabledPlans = plans
	}
	if loc != nil {
		p.Change.UsageLocation = *loc
	}
	if defaultLocation != nil {
		p.DefaultLocation = *defaultLocation
	}
	if undoOf != nil {
		p.UndoOf = *undoOf
	}
	if err := json.Unmarshal(catalog, &p.Catalog); err != nil {
		return nil, fmt.Errorf("operation %s: decode catalog: %w", opID, err)
	}
	return &p, nil
}

// ItemOutcome is what happened to one user of an operation.
type ItemOutcome struct {
	UserID  string
	Status  string
	Code    licensing.Code
	Message string
	// Changed is false when the item was already terminal (a redelivery).
	Changed bool
	// Wait means the item stays pending: it is short of a seat that an
	// unfinished item of its operation holds and may leave unused. Retry
	// it shortly; waiting is not a failure.
	Wait bool
}

type lockedItem struct {
	UserID         string         `db:"user_id"`
	Status         string         `db:"status"`
	Mask           int32          `db:"granted_mask"`
	ErrorCode      *string        `db:"error_code"`
	ErrorMessage   *string        `db:"error_message"`
	UsageLocation  *string        `db:"usage_location"`
	AccountEnabled bool           `db:"account_enabled"`
	Held           pq.StringArray `db:"held"`
	// The plan of an item in 'applying', and the user's claim.
	Assigned     pq.StringArray `db:"assigned"`
	Revoked      pq.StringArray `db:"revoked"`
	Licenses     pq.StringArray `db:"licenses"`
	ItemLocation *string        `db:"item_location"`
	Claim        *string        `db:"applying_operation"`
	// LocationBefore is the user's usage location before the item changed
	// it (recorded when an external item starts applying).
	LocationBefore *string `db:"location_before"`
	// The item's own change and the state it expects (an undo's); see
	// change and changedSince.
	ChangeAssign   pq.StringArray `db:"change_assign"`
	ChangeRevoke   pq.StringArray `db:"change_revoke"`
	ChangeLocation *string        `db:"change_location"`
	ExpectLicenses pq.StringArray `db:"expect_licenses"`
	ExpectLocation *string        `db:"expect_location"`
	// Read only for an operation that changes plans (Plan.changesPlans):
	// the plan of an item in 'applying' (its held SKUs whose plans
	// change, and the plans they had off before), the item's own plans
	// to set and those it expects (an undo's), and the disabled plans of
	// the user's licenses by SKU.
	PlansChanged pq.StringArray `db:"plans_changed"`
	PlansBefore  planMap        `db:"plans_before"`
	ChangePlans  planMap        `db:"change_plans"`
	ExpectPlans  planMap        `db:"expect_plans"`
	HeldPlans    map[string][]string
	// KeptByGroups are SKUs the change revokes that the user inherits
	// from a group (decideWithGroups): it keeps them whatever the
	// directory does with a direct assignment, so the rules judge the
	// change with them held.
	KeptByGroups []string `db:"-"`
}

// changesPlans reports whether the operation sets disabled plans, its
// own or its items'.
func (p *Plan) changesPlans() bool { return len(p.Change.DisabledPlans) > 0 || p.ItemPlans }

// change is the change to make for the item: its own when it has one
// (change_assign is never NULL then), else its operation's.
func (it *lockedItem) change(plan *Plan) licensing.Change {
	if it.ChangeAssign == nil {
		return plan.Change
	}
	c := licensing.Change{Assign: it.ChangeAssign, Revoke: it.ChangeRevoke}
	if it.ChangeLocation != nil {
		c.UsageLocation = *it.ChangeLocation
	}
	if len(it.ChangePlans) > 0 {
		c = withPlansOf(c, it.Held, it.ChangePlans)
	}
	return c
}

// withPlansOf adds to c the plans of an undo's change_plans: a SKU c
// assigns gets its plans; a held SKU assigned with its plans is a change
// of its plans (Result.PlansChanged), which takes no seat. Any other SKU
// (one the user no longer holds, or that c revokes) is left out, so that
// setting plans never assigns a license.
func withPlansOf(c licensing.Change, held []string, plans map[string][]string) licensing.Change {
	assign := slices.Clone(c.Assign)
	c.DisabledPlans = make(map[string][]string, len(plans))
	for sku, p := range plans {
		switch {
		case slices.Contains(c.Assign, sku):
			c.DisabledPlans[sku] = nonNil(p)
		case slices.Contains(held, sku) && !slices.Contains(c.Revoke, sku):
			assign, c.DisabledPlans[sku] = append(assign, sku), nonNil(p)
		}
	}
	c.Assign = assign
	return c
}

// changedSince fails an item whose user is no longer in the state the item
// expects (an undo's user changed again after the operation it reverses):
// its change would overwrite the later one. loc is the user's usage
// location now. Read under the user's lock, so no change can slip between
// the check and the write.
func changedSince(plan *Plan, it *lockedItem, loc string) *licensing.Error {
	licensesMoved := it.ExpectLicenses != nil && !licensing.SameSet(it.Held, it.ExpectLicenses)
	locationMoved := it.ExpectLocation != nil && *it.ExpectLocation != loc
	if !licensesMoved && !locationMoved && !plansMoved(it) {
		return nil
	}
	return changedSinceError(plan.UndoOf)
}

// plansMoved reports whether a license of the user has other plans off
// than the item expects (expect_plans; a SKU without an entry in the
// user's held plans has every plan on).
func plansMoved(it *lockedItem) bool {
	for sku, want := range it.ExpectPlans {
		if !licensing.SameSet(it.HeldPlans[sku], want) {
			return true
		}
	}
	return false
}

// lockItems locks the items of a batch and their users, in user ID order so
// that concurrent batches of overlapping operations cannot deadlock, and
// reads what the decision needs. Each user is two index lookups driven by
// the batch's IDs (LATERAL), whatever the statistics say: left to the
// planner, a users table not analyzed since a bulk import (a customer's
// 20,000 users estimated at 52) made Postgres walk every user of the
// customer for each batch, 170 ms for 256 users. The IDs are sorted by
// Postgres, in the column's collation, the order settlement locks in.
//
// The licenses the users hold are read by a second statement, after the
// locks are taken: under READ COMMITTED a statement reads with the snapshot
// it started with, so licenses read by the locking statement itself could
// predate a batch of another operation that held one of these users and
// committed while this one waited for its lock (the user's row is returned
// as it is now, the assignments as they were).
func lockItems(ctx context.Context, tx *sqlx.Tx, plan *Plan, userIDs []string) ([]lockedItem, error) {
	var items []lockedItem
	query := lockItemsQuery
	if plan.changesPlans() {
		query = lockItemsPlansQuery
	}
	err := tx.SelectContext(ctx, &items, query, plan.ID, plan.CustomerKey, pq.StringArray(userIDs))
	if err != nil || len(items) == 0 {
		return items, err
	}
	locked := make([]string, len(items))
	for i, it := range items {
		locked[i] = it.UserID
	}
	var held []struct {
		UserID string         `db:"user_id"`
		SKUs   pq.StringArray `db:"skus"`
	}
	if err := tx.SelectContext(ctx, &held, `
		SELECT x.id AS user_id,
			ARRAY(SELECT sku_id FROM assignments WHERE customer_key = $1 AND user_id = x.id ORDER BY sku_id) AS skus
		FROM unnest($2::text[]) AS x(id)`, plan.CustomerKey, pq.StringArray(locked)); err != nil {
		return nil, err
	}
	byUser := make(map[string]pq.StringArray, len(held))
	for _, h := range held {
		byUser[h.UserID] = h.SKUs
	}
	for i := range items {
		items[i].Held = byUser[items[i].UserID]
	}
	if !plan.changesPlans() {
		return items, nil
	}
	plans, err := heldPlans(ctx, tx, plan.CustomerKey, locked)
	if err != nil {
		return nil, err
	}
	for i := range items {
		items[i].HeldPlans = plans[items[i].UserID]
	}
	return items, nil
}

// lockItemsQuery is lockItems' statement; lockItemsPlansQuery also reads
// the items' plans, for operations that change plans.
var (
	lockItemsQuery      = fmt.Sprintf(lockItemsSQL, "")
	lockItemsPlansQuery = fmt.Sprintf(lockItemsSQL, ", plans_changed, plans_before, change_plans, expect_plans")
)

const lockItemsSQL = `
		SELECT i.user_id, i.status, i.granted_mask, i.error_code, i.error_message,
			u.usage_location, u.account_enabled, u.applying_operation::text AS applying_operation,
			i.assigned, i.revoked, i.licenses, i.item_location, '{}'::text[] AS held, i.location_before,
			i.change_assign, i.change_revoke, i.change_location, i.expect_licenses, i.expect_location%[1]s
		FROM (SELECT DISTINCT id FROM unnest($3::text[]) AS id ORDER BY id) x
		CROSS JOIN LATERAL (
			SELECT user_id, status, granted_mask, error_code, error_message, assigned, revoked, licenses,
				usage_location AS item_location, location_before,
				change_assign, change_revoke, change_location, expect_licenses, expect_location%[1]s
			FROM operation_items WHERE operation_id = $1 AND user_id = x.id FOR NO KEY UPDATE) i
		CROSS JOIN LATERAL (
			SELECT usage_location, account_enabled, applying_operation
			FROM users WHERE customer_key = $2 AND id = x.id FOR NO KEY UPDATE) u
		ORDER BY x.id`

// itemWrite is the decided outcome of one pending item.
type itemWrite struct {
	userID   string
	held     []string // what the user holds before the change
	status   string
	mask     int32
	result   licensing.Result
	code     licensing.Code
	message  string
	location string // set when the user's usage location changes
	// locationBefore is the user's usage location before the change, set
	// with location ("" when the user had none), so that an undo can put
	// it back.
	locationBefore *string
	// wait: short of a seat another item may leave; the item stays pending.
	wait bool
	// short: the SKUs a CountViolation found no seat for.
	short []string
	// plans are the disabled plans the change sets by SKU (the item's or
	// the operation's), and plansBefore those the SKUs of
	// result.PlansChanged and result.Revoked had off before it: only for
	// operations that change plans.
	plans, plansBefore map[string][]string
}

// ApplyLocal processes a batch of items of one operation against the local
// directory (Postgres) in one transaction: lock the items and their users,
// evaluate the rules per user, find a seat for every user that newly gets a
// SKU without one granted at intake (reserveSeats), then write assignments,
// users and outcomes in a single statement. Batching is what lets one
// worker process keep up with the queue: the round trips are per batch,
// not per user.
//
// Users are locked in ID order so that concurrent batches of overlapping
// operations cannot deadlock. An item that is already terminal is reported
// with its recorded outcome and not touched (at-least-once delivery). An
// item that must wait for a seat (ItemOutcome.Wait) stays pending.
func (s *Store) ApplyLocal(ctx context.Context, plan *Plan, userIDs []string) ([]ItemOutcome, error) {
	var out []ItemOutcome
	err := s.inBatchTx(ctx, func(tx *sqlx.Tx) error {
		items, err := lockItems(ctx, tx, plan, userIDs)
		if err != nil {
			return err
		}
		out = make([]ItemOutcome, 0, len(items))
		writes := make([]*itemWrite, 0, len(items))
		for _, it := range items {
			if it.Status != licensing.ItemPending {
				out = append(out, recordedOutcome(it))
				continue
			}
			w := decide(plan, it)
			writes = append(writes, &w)
		}
		if len(writes) == 0 {
			return nil
		}
		if err := reserveSeats(ctx, tx, plan, writes, userIDs); err != nil {
			return err
		}
		var done []itemWrite
		for _, w := range writes {
			if w.wait {
				out = append(out, ItemOutcome{UserID: w.userID, Status: licensing.ItemPending, Wait: true})
				continue
			}
			done = append(done, *w)
			out = append(out, ItemOutcome{UserID: w.userID, Status: w.status, Code: w.code, Message: w.message, Changed: true})
		}
		if len(done) == 0 {
			return nil
		}
		return writeOutcomes(ctx, tx, plan, done)
	})
	return out, err
}

// inBatchTx runs a batch of an operation in a transaction. Every statement
// of a batch touches its few hundred items, users and assignments by key,
// so the transaction turns off hash and merge joins: a hash join reads
// every item of the operation for each batch, which the planner prefers for
// an operation of a few ten thousand items (measured: 86 ms instead of 2 ms
// for 256 users of 20,000) and whenever its statistics lag a bulk import.
func (s *Store) inBatchTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off`); err != nil {
			return err
		}
		return fn(tx)
	})
}

func recordedOutcome(it lockedItem) ItemOutcome {
	o := ItemOutcome{UserID: it.UserID, Status: it.Status}
	if it.ErrorCode != nil {
		o.Code = licensing.Code(*it.ErrorCode)
	}
	if it.ErrorMessage != nil {
		o.Message = *it.ErrorMessage
	}
	return o
}

// decide evaluates the item's change for one user: first whether the user
// is still as the item expects (changedSince), then the product rules.
func decide(plan *Plan, it lockedItem) itemWrite {
	loc := ""
	if it.UsageLocation != nil {
		loc = *it.UsageLocation
	}
	w := itemWrite{userID: it.UserID, mask: it.Mask, held: it.Held}
	change := it.change(plan)
	if len(it.KeptByGroups) > 0 {
		// This user's own change (a replace and an exact copy decided on
		// what it holds), without the revokes the rules must see as kept.
		change = change.ForHeld(it.Held)
		change.Replace, change.Exact = nil, false
		change.Revoke = slices.DeleteFunc(slices.Clone(change.Revoke), func(s string) bool { return slices.Contains(it.KeptByGroups, s) })
	}
	lerr := changedSince(plan, &it, loc)
	var res licensing.Result
	if lerr == nil {
		res, lerr = licensing.Evaluate(licensing.UserState{Held: it.Held, UsageLocation: loc, AccountEnabled: it.AccountEnabled, DisabledPlans: it.HeldPlans},
			change, plan.DefaultLocation, plan.Catalog)
	}
	if lerr != nil {
		w.status, w.code, w.message = licensing.ItemFailed, lerr.Code, lerr.Message
		return w
	}
	if len(it.KeptByGroups) > 0 {
		// Revoked as the change asked, for decideGroups to decide how.
		res.Revoked = slices.Sorted(slices.Values(append(res.Revoked, it.KeptByGroups...)))
	}
	w.result, w.status, w.plans = res, licensing.ItemSucceeded, change.DisabledPlans
	if plan.changesPlans() && (len(res.PlansChanged) > 0 || len(res.Revoked) > 0) {
		w.plansBefore = plansOf(it.HeldPlans, slices.Concat(res.PlansChanged, res.Revoked))
	}
	if plan.DryRun {
		w.status = licensing.ItemWouldRevoke
	}
	if change.UsageLocation != "" && change.UsageLocation != loc {
		w.location, w.locationBefore = change.UsageLocation, &loc
	}
	return w
}

// usesSeat reports whether w, as decided, newly assigns sku.
func (w *itemWrite) usesSeat(sku string) bool {
	return w.status == licensing.ItemSucceeded && slices.Contains(w.result.Assigned, sku)
}

// reserveSeats finds a seat for every succeeding user of writes (a batch,
// in user ID order) that newly gets a SKU not granted to it at intake: the
// user lost the SKU since intake, or seats were short at intake and a
// grant went unused. Seats come, in this order, from
//
//  1. grants of the batch's own users that will not use them (they fail a
//     rule, or hold the SKU already): the seat moves from one mask to
//     another;
//  2. unused grants of the operation's finished, unsettled items (a hand
//     over: the grant moves to this user's mask; items another
//     transaction holds are skipped, never waited for);
//  3. the subscription's free seats, with a conditional update that cannot
//     go below zero: the only place a worker touches the hot row, and only
//     for exceptions.
//
// A user still short of a seat waits (w.wait: the item stays pending and
// the task is retried) while another unfinished item of the operation
// holds a grant of that SKU it might not use; otherwise it fails with
// CountViolation. So no user fails CountViolation while a seat of the
// operation could still be its. A waiting user gives back the seats it was
// offered in this attempt and keeps only its intake grants, which follow
// report order: a pending item waits only for items before it in that
// order, so waits cannot form a cycle.
//
// Unused grants stay with the operation until it finishes (settle keeps
// them for running operations), which is what lets them be handed over.
func reserveSeats(ctx context.Context, tx *sqlx.Tx, plan *Plan, writes []*itemWrite, batch []string) error {
	if plan.DryRun {
		return nil
	}
	need := map[string]int{}
	for _, w := range writes {
		if w.status != licensing.ItemSucceeded {
			continue
		}
		for _, sku := range w.result.Assigned {
			if w.mask&skuBit(plan, sku) == 0 {
				need[sku]++
			}
		}
	}
	if len(need) == 0 {
		return nil
	}
	skus := slices.Sorted(maps.Keys(need))
	spares := map[string][]*itemWrite{}
	donors := map[string][]string{}
	free := map[string]int{}
	for _, sku := range skus {
		spares[sku] = batchSpares(plan, writes, sku)
		n := need[sku] - len(spares[sku])
		if n <= 0 {
			continue
		}
		d, err := lockDonors(ctx, tx, plan, sku, n, batch)
		if err != nil {
			return err
		}
		donors[sku] = d
		if n -= len(d); n > 0 {
			if free[sku], err = freeSeats(ctx, tx, plan.CustomerKey, sku); err != nil {
				return err
			}
		}
	}
	capacity := map[string]int{}
	for _, sku := range skus {
		capacity[sku] = len(spares[sku]) + len(donors[sku]) + free[sku]
	}
	outstanding := map[string]bool{}
	waitFor := func(sku string) (bool, error) {
		if v, ok := outstanding[sku]; ok {
			return v, nil
		}
		v, err := grantsOutstanding(ctx, tx, plan, sku, batch, len(donors[sku]))
		outstanding[sku] = v
		return v, err
	}
	used, err := allocateSeats(plan, writes, capacity, waitFor)
	if err != nil {
		return err
	}
	for _, sku := range skus {
		n := used[sku]
		bit := skuBit(plan, sku)
		recipients := make([]*itemWrite, 0, n)
		for _, w := range writes {
			if !w.wait && w.usesSeat(sku) && w.mask&bit == 0 {
				recipients = append(recipients, w)
			}
		}
		for _, w := range recipients {
			w.mask |= bit
		}
		k := min(n, len(spares[sku]))
		for _, sp := range spares[sku][:k] {
			sp.mask &^= bit
		}
		n -= k
		k = min(n, len(donors[sku]))
		if k > 0 {
			if _, err := tx.ExecContext(ctx, `
				UPDATE operation_items SET granted_mask = granted_mask & ~$2::int
				WHERE operation_id = $1 AND user_id = ANY($3)`, plan.ID, bit, pq.StringArray(donors[sku][:k])); err != nil {
				return err
			}
		}
		n -= k
		if n > 0 {
			got, err := takeSeats(ctx, tx, plan.CustomerKey, sku, n)
			if err != nil {
				return err
			}
			if got != n {
				return fmt.Errorf("storage: took %d of %d free seats of %s under lock", got, n, sku)
			}
		}
	}
	return nil
}

// batchSpares returns the writes holding a grant of sku they will not use.
func batchSpares(plan *Plan, writes []*itemWrite, sku string) []*itemWrite {
	bit := skuBit(plan, sku)
	var spare []*itemWrite
	for _, w := range writes {
		if w.mask&bit != 0 && !w.usesSeat(sku) {
			spare = append(spare, w)
		}
	}
	return spare
}

// unusedGrant is the condition, on operation_items i, that the item holds a
// grant of the SKU with bit $bit and name $sku that it has not used and
// still may not: pending or applying, or finished without newly assigning
// the SKU.
const unusedGrant = `i.granted_mask & %[1]s <> 0 AND NOT (i.status = 'succeeded' AND %[2]s = ANY(i.assigned))`

// lockDonors locks up to n finished, unsettled items of the operation
// outside the batch that hold an unused grant of sku, skipping items that
// another transaction holds, and returns their users.
func lockDonors(ctx context.Context, tx *sqlx.Tx, plan *Plan, sku string, n int, batch []string) ([]string, error) {
	var users []string
	err := tx.SelectContext(ctx, &users, `
		SELECT i.user_id FROM operation_items i
		WHERE i.operation_id = $1 AND NOT i.settled AND i.status NOT IN ('pending','applying')
		AND `+fmt.Sprintf(unusedGrant, "$2::int", "$3")+` AND i.user_id <> ALL($4)
		ORDER BY i.user_id LIMIT $5 FOR NO KEY UPDATE SKIP LOCKED`,
		plan.ID, skuBit(plan, sku), sku, pq.StringArray(batch), n)
	return users, err
}

// grantsOutstanding reports whether items of the operation outside the
// batch, other than the donors locked already, hold a grant of sku they
// have not used: pending or applying items (they may fail and leave it),
// or finished ones that another transaction held. A user short of sku
// waits for them rather than fail.
func grantsOutstanding(ctx context.Context, tx *sqlx.Tx, plan *Plan, sku string, batch []string, donors int) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `
		SELECT count(*) FROM (SELECT 1 FROM operation_items i
			WHERE i.operation_id = $1 AND NOT i.settled AND `+fmt.Sprintf(unusedGrant, "$2::int", "$3")+`
			AND i.user_id <> ALL($4) LIMIT $5) x`,
		plan.ID, skuBit(plan, sku), sku, pq.StringArray(batch), donors+1).Scan(&n)
	return n > donors, err
}

// allocateSeats decides, in the order of writes, which succeeding users
// that newly get a SKU without a seat of it get one of capacity[sku]
// seats, and returns how many of each SKU were given. A user short of some
// SKU gives back what it was given; it waits (w.wait) when waitFor says
// seats of a SKU it lacks may still come, else it fails with
// CountViolation, its seats short recorded in w.short.
func allocateSeats(plan *Plan, writes []*itemWrite, capacity map[string]int, waitFor func(sku string) (bool, error)) (map[string]int, error) {
	used := map[string]int{}
	for _, w := range writes {
		if w.status != licensing.ItemSucceeded {
			continue
		}
		var got, short []string
		for _, sku := range w.result.Assigned {
			if w.mask&skuBit(plan, sku) != 0 {
				continue
			}
			if capacity[sku] > 0 {
				capacity[sku]--
				got = append(got, sku)
			} else {
				short = append(short, sku)
			}
		}
		if len(short) == 0 {
			for _, sku := range got {
				used[sku]++
			}
			continue
		}
		for _, sku := range got {
			capacity[sku]++
		}
		for _, sku := range short {
			wait, err := waitFor(sku)
			if err != nil {
				return nil, err
			}
			if wait {
				w.wait = true
				break
			}
		}
		if !w.wait {
			w.status, w.code = licensing.ItemFailed, licensing.CodeCountViolation
			w.message = fmt.Sprintf("no seat is left for %s; buy more seats or revoke the license from another user, then run the change again for this user",
				strings.Join(short, ", "))
			w.short = short
			w.result, w.location, w.locationBefore = licensing.Result{}, "", nil
		}
	}
	return used, nil
}

// freeSeats locks a subscription row and returns its free seats.
func freeSeats(ctx context.Context, tx *sqlx.Tx, customerKey int64, sku string) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT total - consumed - reserved FROM subscriptions
		WHERE customer_key = $1 AND sku_id = $2 FOR UPDATE`, customerKey, sku).Scan(&n)
	if isNoRows(err) {
		return 0, nil
	}
	return max(n, 0), err
}

// takeSeats reserves up to n free seats of a subscription and returns how many it got.
func takeSeats(ctx context.Context, tx *sqlx.Tx, customerKey int64, sku string, n int) (int, error) {
	var got int
	err := tx.QueryRowContext(ctx, `
		WITH cur AS (
			SELECT total - consumed - reserved AS avail FROM subscriptions
			WHERE customer_key = $1 AND sku_id = $2 FOR UPDATE
		)
		UPDATE subscriptions s SET reserved = s.reserved + LEAST($3, cur.avail), updated_at = now()
		FROM cur WHERE s.customer_key = $1 AND s.sku_id = $2 AND cur.avail > 0
		RETURNING LEAST($3, cur.avail)`, customerKey, sku, n).Scan(&got)
	if isNoRows(err) {
		return 0, nil
	}
	return got, err
}

func skuBit(plan *Plan, sku string) int32 {
	for i, s := range plan.Change.Assign {
		if s == sku {
			return 1 << i
		}
	}
	return 0
}

// writeOutcomes applies every decided item in one statement: new
// assignments, removed assignments, changed usage locations, the items'
// outcomes, and the operation's first start. finished_at is the clock at
// the write, not the transaction's start: the users are locked by then, so
// of two changes to one user the one applied last has the later stamp,
// which is what the checker's all-or-nothing rule relies on.
func writeOutcomes(ctx context.Context, tx *sqlx.Tx, plan *Plan, writes []itemWrite) error {
	var insUsers, insSKUs, delUsers, delSKUs, locUsers, locs []string
	n := len(writes)
	users, statuses, assigned, revoked, licenses, codes, messages, itemLocs, shorts :=
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n)
	masks := make([]int32, n)
	befores, movedLoc := make([]string, n), make([]bool, n)
	for i, w := range writes {
		users[i], statuses[i], masks[i], codes[i], messages[i] = w.userID, w.status, w.mask, string(w.code), w.message
		assigned[i], revoked[i] = arrayLiteral(w.result.Assigned), arrayLiteral(w.result.Revoked)
		if len(w.short) > 0 {
			shorts[i] = arrayLiteral(w.short)
		}
		// A failed user keeps what it held: that is what it holds "after".
		// So does every user of a dry run; revoked says what it would lose.
		licenses[i] = arrayLiteral(w.held)
		if w.status == licensing.ItemSucceeded {
			licenses[i] = arrayLiteral(w.result.Licenses)
			itemLocs[i] = w.result.UsageLocation
		}
		if w.status != licensing.ItemSucceeded {
			continue
		}
		for _, sku := range w.result.Assigned {
			insUsers, insSKUs = append(insUsers, w.userID), append(insSKUs, sku)
		}
		for _, sku := range w.result.Revoked {
			delUsers, delSKUs = append(delUsers, w.userID), append(delSKUs, sku)
		}
		if w.location != "" {
			locUsers, locs = append(locUsers, w.userID), append(locs, w.location)
		}
		if w.locationBefore != nil {
			befores[i], movedLoc[i] = *w.locationBefore, true
		}
	}
	_, err := tx.ExecContext(ctx, `
		WITH ins AS (
			INSERT INTO assignments (customer_key, user_id, sku_id, operation_id)
			SELECT $2, x.u, x.s, $1 FROM unnest($3::text[], $4::text[]) AS x(u, s)
			ON CONFLICT DO NOTHING
		), del AS (
			-- Each license looked up by its key (LATERAL), then deleted by
			-- row address. Joined directly, a customer whose assignments
			-- grew since they were analyzed (a rollout that is running)
			-- is estimated at a row or two, and Postgres walked all of them
			-- for each batch, even with nothing to delete: 44 ms a batch
			-- at 77,000 assignments.
			DELETE FROM assignments WHERE ctid = ANY(ARRAY(
				SELECT a.ctid FROM unnest($5::text[], $6::text[]) AS x(u, s)
				CROSS JOIN LATERAL (SELECT ctid FROM assignments
					WHERE customer_key = $2 AND user_id = x.u AND sku_id = x.s) a))
		), loc AS (
			-- Releases the claim of the users it moves too: one statement
			-- must not update a row twice (of two updates, one is lost),
			-- so unclaim leaves these users to it.
			UPDATE users u SET usage_location = x.l, updated_at = now(),
				applying_operation = NULLIF(u.applying_operation, $1)
			FROM unnest($7::text[], $8::text[]) AS x(u, l)
			WHERE u.customer_key = $2 AND u.id = x.u
		), started AS (
			UPDATE operations SET status = 'running', started_at = COALESCE(started_at, now()) WHERE id = $1 AND status = 'queued'
		), unclaim AS (
			UPDATE users SET applying_operation = NULL
			WHERE customer_key = $2 AND id = ANY($9::text[]) AND id <> ALL($7::text[]) AND applying_operation = $1
		)
		UPDATE operation_items i SET status = x.status, granted_mask = x.mask,
			assigned = x.assigned::text[], revoked = x.revoked::text[], licenses = NULLIF(x.licenses, '')::text[],
			usage_location = NULLIF(x.loc, ''), error_code = NULLIF(x.code, ''), error_message = NULLIF(x.msg, ''),
			short_skus = NULLIF(x.short, '')::text[], finished_at = clock_timestamp(),
			location_before = CASE WHEN x.moved THEN x.before END
		FROM unnest($9::text[], $10::text[], $11::int[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
			$19::text[], $20::bool[])
			AS x(u, status, mask, assigned, revoked, licenses, loc, code, msg, short, before, moved)
		WHERE i.operation_id = $1 AND i.user_id = x.u`,
		plan.ID, plan.CustomerKey,
		pq.StringArray(insUsers), pq.StringArray(insSKUs), pq.StringArray(delUsers), pq.StringArray(delSKUs),
		// Empty rather than NULL: unclaim's <> ALL of NULL would match nobody.
		pq.StringArray(nonNil(locUsers)), pq.StringArray(locs),
		pq.StringArray(users), pq.StringArray(statuses), pq.Array(masks), pq.StringArray(assigned), pq.StringArray(revoked),
		pq.StringArray(licenses), pq.StringArray(itemLocs), pq.StringArray(codes), pq.StringArray(messages), pq.StringArray(shorts),
		pq.StringArray(befores), pq.BoolArray(movedLoc))
	if err != nil {
		return err
	}
	return writePlans(ctx, tx, plan, writes)
}

// arrayLiteral renders a Postgres text[] literal, so that per-row arrays can
// travel inside one unnest() parameter.
func arrayLiteral(s []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range v {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
