package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// Directory is where the customer's licenses live: "local" (Postgres)
	// or "msgraph" with its tenant.
	Directory licensing.Directory
}

// LoadPlan reads an operation's plan. A missing operation is NotFound (it
// was deleted with its customer: the task has nothing left to do).
func (s *Store) LoadPlan(ctx context.Context, opID string) (*Plan, error) {
	var (
		p                    Plan
		assign, revoke       pq.StringArray
		loc, defaultLocation *string
		catalog              []byte
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT o.id, o.partner_key, o.customer_key, c.id, o.assign, o.revoke, o.usage_location, o.dry_run, o.catalog,
			o.default_usage_location, o.total, o.source, c.directory_kind, COALESCE(c.directory_tenant_id, '')
		FROM operations o JOIN customers c USING (customer_key) WHERE o.id = $1`, opID).
		Scan(&p.ID, &p.PartnerKey, &p.CustomerKey, &p.CustomerID, &assign, &revoke, &loc, &p.DryRun, &catalog, &defaultLocation, &p.Total, &p.Source,
			&p.Directory.Kind, &p.Directory.TenantID)
	if isNoRows(err) {
		return nil, notFound("operation", opID)
	}
	if err != nil {
		return nil, err
	}
	p.Change = licensing.Change{Assign: assign, Revoke: revoke}
	if loc != nil {
		p.Change.UsageLocation = *loc
	}
	if defaultLocation != nil {
		p.DefaultLocation = *defaultLocation
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
}

// lockItems locks the items of a batch and their users, in user ID order so
// that concurrent batches of overlapping operations cannot deadlock, and
// reads what the decision needs. Each user is two index lookups driven by
// the batch's sorted IDs (LATERAL), whatever the statistics say: left to
// the planner, a users table not analyzed since a bulk import (a customer's
// 20,000 users estimated at 52) made Postgres walk every user of the
// customer for each batch, 170 ms for 256 users.
func lockItems(ctx context.Context, tx *sqlx.Tx, plan *Plan, userIDs []string) ([]lockedItem, error) {
	sorted := append([]string(nil), userIDs...)
	sortStrings(sorted)
	var items []lockedItem
	err := tx.SelectContext(ctx, &items, `
		SELECT i.user_id, i.status, i.granted_mask, i.error_code, i.error_message,
			u.usage_location, u.account_enabled, u.applying_operation::text AS applying_operation,
			i.assigned, i.revoked, i.licenses, i.item_location,
			ARRAY(SELECT a.sku_id FROM assignments a WHERE a.customer_key = $2 AND a.user_id = x.id ORDER BY a.sku_id) AS held
		FROM unnest($3::text[]) WITH ORDINALITY AS x(id, n)
		CROSS JOIN LATERAL (
			SELECT user_id, status, granted_mask, error_code, error_message, assigned, revoked, licenses,
				usage_location AS item_location
			FROM operation_items WHERE operation_id = $1 AND user_id = x.id FOR NO KEY UPDATE) i
		CROSS JOIN LATERAL (
			SELECT usage_location, account_enabled, applying_operation
			FROM users WHERE customer_key = $2 AND id = x.id FOR NO KEY UPDATE) u
		ORDER BY x.n`, plan.ID, plan.CustomerKey, pq.StringArray(sorted))
	return items, err
}

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
}

// ApplyLocal processes a batch of items of one operation against the local
// directory (Postgres) in one transaction: lock the items and their users,
// evaluate the rules per user, take any seat not granted at intake, then
// write assignments, users and outcomes in a single statement. Batching is
// what lets one worker process keep up with the queue: the round trips are
// per batch, not per user.
//
// Users are locked in ID order so that concurrent batches of overlapping
// operations cannot deadlock. An item that is already terminal is reported
// with its recorded outcome and not touched (at-least-once delivery).
func (s *Store) ApplyLocal(ctx context.Context, plan *Plan, userIDs []string) ([]ItemOutcome, error) {
	var out []ItemOutcome
	err := s.inBatchTx(ctx, plan.ID, func(tx *sqlx.Tx, settled bool) error {
		items, err := lockItems(ctx, tx, plan, userIDs)
		if err != nil {
			return err
		}
		out = make([]ItemOutcome, 0, len(items))
		writes := make([]itemWrite, 0, len(items))
		for _, it := range items {
			if it.Status != licensing.ItemPending {
				out = append(out, recordedOutcome(it))
				continue
			}
			writes = append(writes, decide(plan, it))
		}
		if len(writes) == 0 {
			return nil
		}
		ptrs := make([]*itemWrite, len(writes))
		for i := range writes {
			ptrs[i] = &writes[i]
		}
		passOnGrants(plan, ptrs)
		if err := reserveMissingSeats(ctx, tx, plan, writes, settled); err != nil {
			return err
		}
		if err := writeOutcomes(ctx, tx, plan, writes); err != nil {
			return err
		}
		for _, w := range writes {
			out = append(out, ItemOutcome{UserID: w.userID, Status: w.status, Code: w.code, Message: w.message, Changed: true})
		}
		return nil
	})
	return out, err
}

// errSettleFirst asks inBatchTx to settle the operation and run the batch again.
var errSettleFirst = errors.New("storage: settle the operation, then run the batch again")

// inBatchTx runs a batch of an operation in a transaction. When the batch
// ran short of seats that settling the operation would free, it rolls back,
// settles in a transaction of its own and runs the batch once more with
// settled set. Settling inside the batch's transaction deadlocked with
// redelivered batches: those hold the finished items settlement updates
// while they wait for the pending items the batch holds.
//
// Every statement of a batch touches its few hundred items, users and
// assignments by key, so the transaction turns off hash and merge joins: a
// hash join reads every item of the operation for each batch, which the
// planner prefers for an operation of a few ten thousand items (measured:
// 86 ms instead of 2 ms for 256 users of 20,000) and whenever its
// statistics lag a bulk import.
func (s *Store) inBatchTx(ctx context.Context, opID string, fn func(tx *sqlx.Tx, settled bool) error) error {
	run := func(settled bool) error {
		return s.inTx(ctx, func(tx *sqlx.Tx) error {
			if _, err := tx.ExecContext(ctx, `SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off`); err != nil {
				return err
			}
			return fn(tx, settled)
		})
	}
	err := run(false)
	if !errors.Is(err, errSettleFirst) {
		return err
	}
	if err := settle(ctx, s.db, opID, false); err != nil {
		return err
	}
	return run(true)
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

// decide evaluates the product rules for one user.
func decide(plan *Plan, it lockedItem) itemWrite {
	loc := ""
	if it.UsageLocation != nil {
		loc = *it.UsageLocation
	}
	w := itemWrite{userID: it.UserID, mask: it.Mask, held: it.Held}
	res, lerr := licensing.Evaluate(licensing.UserState{Held: it.Held, UsageLocation: loc, AccountEnabled: it.AccountEnabled},
		plan.Change, plan.DefaultLocation, plan.Catalog)
	if lerr != nil {
		w.status, w.code, w.message = licensing.ItemFailed, lerr.Code, lerr.Message
		return w
	}
	w.result, w.status = res, licensing.ItemSucceeded
	if plan.DryRun {
		w.status = licensing.ItemWouldRevoke
	}
	if plan.Change.UsageLocation != "" && plan.Change.UsageLocation != loc {
		w.location = plan.Change.UsageLocation
	}
	return w
}

// passOnGrants moves seats granted at intake within a batch: from users who
// will not use them (they fail a rule, or already hold the SKU) to users of
// the same batch who need one and got none (the grants ran out at intake, in
// list order). Without it such users fail with CountViolation although a
// seat of their batch goes unused, since the unused grant comes back only at
// settlement. Totals do not change: a seat moves from one item's mask to
// another's.
func passOnGrants(plan *Plan, items []*itemWrite) {
	if plan.DryRun {
		return
	}
	for _, sku := range plan.Change.Assign {
		bit := skuBit(plan, sku)
		var spare []*itemWrite
		for _, w := range items {
			if w.mask&bit != 0 && !(w.status == licensing.ItemSucceeded && slices.Contains(w.result.Assigned, sku)) {
				spare = append(spare, w)
			}
		}
		for _, w := range items {
			if len(spare) == 0 {
				break
			}
			if w.status == licensing.ItemSucceeded && w.mask&bit == 0 && slices.Contains(w.result.Assigned, sku) {
				spare[0].mask &^= bit
				w.mask |= bit
				spare = spare[1:]
			}
		}
	}
}

// reserveMissingSeats takes, from the subscription, a seat for every SKU a
// succeeding user newly gets but was not granted at intake (the user lost
// the SKU since, or the operation was partial and seats were freed). This is
// the only place a worker touches the hot subscription row, and only for
// exceptions. Users left without a seat fail with CountViolation, unless
// settling the operation could free one and settled is false: then it
// returns errSettleFirst (see inBatchTx).
func reserveMissingSeats(ctx context.Context, tx *sqlx.Tx, plan *Plan, writes []itemWrite, settled bool) error {
	if plan.DryRun {
		return nil
	}
	need := map[string]int{}
	for i := range writes {
		w := &writes[i]
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
	skus := make([]string, 0, len(need))
	for sku := range need {
		skus = append(skus, sku)
	}
	sortStrings(skus)
	got := map[string]int{}
	for _, sku := range skus {
		n, err := takeSeats(ctx, tx, plan.CustomerKey, sku, need[sku])
		if err != nil {
			return err
		}
		if n < need[sku] && !settled {
			// Seats granted at intake to users that then failed a rule are
			// free, but come back only at settlement. Settle and run the
			// batch again rather than fail a user while a seat sits unused;
			// but not inside this transaction, which holds item, user and
			// subscription locks that settlement would have to take in
			// another order.
			ok, err := settleWouldFree(ctx, tx, plan, sku)
			if err != nil {
				return err
			}
			if ok {
				return errSettleFirst
			}
		}
		got[sku] = n
	}
	useTakenSeats(plan, writes, got)
	return nil
}

// useTakenSeats gives the seats taken from the subscriptions, got by SKU,
// to the succeeding users that newly get a SKU without a seat of it, in
// the order of writes. Users left without one fail with CountViolation.
func useTakenSeats(plan *Plan, writes []itemWrite, got map[string]int) {
	for i := range writes {
		w := &writes[i]
		if w.status != licensing.ItemSucceeded {
			continue
		}
		var short []string
		for _, sku := range w.result.Assigned {
			bit := skuBit(plan, sku)
			if w.mask&bit != 0 {
				continue
			}
			if got[sku] > 0 {
				got[sku]--
				w.mask |= bit
			} else {
				short = append(short, sku)
			}
		}
		if len(short) > 0 {
			// Seats this user did get stay in its mask and are released at settlement.
			w.status, w.code = licensing.ItemFailed, licensing.CodeCountViolation
			w.message = fmt.Sprintf("no seat is left for %s; buy more seats or revoke the license from another user, then run the change again for this user",
				strings.Join(short, ", "))
			w.result, w.location = licensing.Result{}, ""
		}
	}
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
	users, statuses, assigned, revoked, licenses, codes, messages, itemLocs :=
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	masks := make([]int32, n)
	for i, w := range writes {
		users[i], statuses[i], masks[i], codes[i], messages[i] = w.userID, w.status, w.mask, string(w.code), w.message
		assigned[i], revoked[i] = arrayLiteral(w.result.Assigned), arrayLiteral(w.result.Revoked)
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
	}
	_, err := tx.ExecContext(ctx, `
		WITH ins AS (
			INSERT INTO assignments (customer_key, user_id, sku_id, operation_id)
			SELECT $2, x.u, x.s, $1 FROM unnest($3::text[], $4::text[]) AS x(u, s)
			ON CONFLICT DO NOTHING
		), del AS (
			DELETE FROM assignments a USING unnest($5::text[], $6::text[]) AS x(u, s)
			WHERE a.customer_key = $2 AND a.user_id = x.u AND a.sku_id = x.s
		), loc AS (
			UPDATE users u SET usage_location = x.l, updated_at = now()
			FROM unnest($7::text[], $8::text[]) AS x(u, l)
			WHERE u.customer_key = $2 AND u.id = x.u
		), started AS (
			UPDATE operations SET status = 'running', started_at = now() WHERE id = $1 AND status = 'queued'
		), unclaim AS (
			UPDATE users SET applying_operation = NULL
			WHERE customer_key = $2 AND id = ANY($9::text[]) AND applying_operation = $1
		)
		UPDATE operation_items i SET status = x.status, granted_mask = x.mask,
			assigned = x.assigned::text[], revoked = x.revoked::text[], licenses = NULLIF(x.licenses, '')::text[],
			usage_location = NULLIF(x.loc, ''), error_code = NULLIF(x.code, ''), error_message = NULLIF(x.msg, ''),
			finished_at = clock_timestamp()
		FROM unnest($9::text[], $10::text[], $11::int[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[])
			AS x(u, status, mask, assigned, revoked, licenses, loc, code, msg)
		WHERE i.operation_id = $1 AND i.user_id = x.u`,
		plan.ID, plan.CustomerKey,
		pq.StringArray(insUsers), pq.StringArray(insSKUs), pq.StringArray(delUsers), pq.StringArray(delSKUs),
		pq.StringArray(locUsers), pq.StringArray(locs),
		pq.StringArray(users), pq.StringArray(statuses), pq.Array(masks), pq.StringArray(assigned), pq.StringArray(revoked),
		pq.StringArray(licenses), pq.StringArray(itemLocs), pq.StringArray(codes), pq.StringArray(messages))
	return err
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
