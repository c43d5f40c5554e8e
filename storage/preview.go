package storage

import (
	"context"
	"database/sql"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// Prediction is what an operation would do, worked out by the code that
// does it, with nothing written.
type Prediction struct {
	// Seats has an entry for every SKU of Assign, in its order: the
	// selected users that do not hold it (needed, as intake counts them)
	// and the seats free now (available).
	Seats []licensing.SeatShortage
	// Rows are the users' lines of the report as it would read once the
	// operation finished, in its order (display name, then user ID), each
	// with status succeeded or failed.
	Rows []licensing.ReportRow
}

// PredictOperation works out what CreateOperation and then the workers
// would make of req, in one read-only transaction, writing nothing:
//
//   - the checks and errors of CreateOperation, in its order: UnknownSkus,
//     UnknownUsers, and a *ShortageError when seats are short and
//     req.AllowPartial is false;
//   - the seats intake would grant (planGrants, on the same counts);
//   - each user's outcome by the workers' decide step: licensing.Evaluate
//     on the licenses the user holds, its usage location and account
//     state, the customer's default usage location and the partner's
//     catalog, as the operation's plan would carry them;
//   - then, as the workers do, seats granted to users that would not use
//     them passed on to users that need one (passOnGrants), the seats left
//     in the subscriptions taken (useTakenSeats), and CountViolation for
//     users left without a seat.
//
// Seats go in the order of req.UserIDs, the order intake grants them in:
// when a SKU is short and AllowPartial is set, the first users of the list
// that need a seat and pass the rules get one, and the rest are predicted
// CountViolation. Workers pass an unused grant on within a batch, or take
// it back at settlement for a later batch, so the outcome differs from the
// prediction only when a user granted a seat at intake fails a rule after
// the users it would have gone to were processed. The prediction is of
// the database as it is now; changes made until the operation runs are
// not foreseen, nor a directory's own refusals.
//
// Five queries, each for the whole selection whatever its size.
func (s *Store) PredictOperation(ctx context.Context, req NewOperation) (Prediction, error) {
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return Prediction{}, err
	}
	defer func() { _ = tx.Rollback() }()
	// The planner prices the per-user subquery of a large selection high
	// enough to compile it (JIT), which costs more than the query itself;
	// the sort of the selection fits in memory.
	if _, err := tx.ExecContext(ctx, `SET LOCAL jit = off; SET LOCAL work_mem = '64MB'`); err != nil {
		return Prediction{}, err
	}
	skus := append(append([]string{}, req.Assign...), req.Revoke...)
	if err := checkKnownSKUs(ctx, tx, req.Customer.Key, skus); err != nil {
		return Prediction{}, err
	}
	if err := checkKnownUsers(ctx, tx, req.Customer.Key, req.UserIDs); err != nil {
		return Prediction{}, err
	}
	catalog, err := s.catalogTx(ctx, tx, req.PartnerKey)
	if err != nil {
		return Prediction{}, err
	}
	plan := &Plan{
		PartnerKey: req.PartnerKey, CustomerKey: req.Customer.Key, CustomerID: req.Customer.ID,
		Change: licensing.Change{Assign: nonNil(req.Assign), Revoke: nonNil(req.Revoke), UsageLocation: req.UsageLocation},
		DryRun: req.DryRun, Catalog: catalog, Total: len(req.UserIDs), Source: req.Source, Directory: req.Customer.Directory,
	}
	if req.Customer.DefaultUsageLocation != nil {
		plan.DefaultLocation = *req.Customer.DefaultUsageLocation
	}

	// The users, with what decide reads of them (lockItems' columns), in
	// report order; i is the user's index in req.UserIDs.
	type user struct {
		row  licensing.ReportRow
		item lockedItem
	}
	users := make([]user, len(req.UserIDs))
	order := make([]int, 0, len(req.UserIDs))
	rows, err := tx.QueryContext(ctx, `
		SELECT x.n - 1, u.display_name, u.user_principal_name, u.usage_location, u.account_enabled,
			ARRAY(SELECT a.sku_id FROM assignments a WHERE a.customer_key = $1 AND a.user_id = u.id ORDER BY a.sku_id)
		FROM unnest($2::text[]) WITH ORDINALITY AS x(id, n)
		JOIN users u ON u.customer_key = $1 AND u.id = x.id
		ORDER BY u.display_name, u.id`, req.Customer.Key, pq.StringArray(req.UserIDs))
	if err != nil {
		return Prediction{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			i    int
			u    user
			held pq.StringArray
		)
		if err := rows.Scan(&i, &u.row.DisplayName, &u.row.UserPrincipalName, &u.item.UsageLocation, &u.item.AccountEnabled, &held); err != nil {
			return Prediction{}, err
		}
		u.row.UserID, u.item.UserID, u.item.Status, u.item.Held = req.UserIDs[i], req.UserIDs[i], licensing.ItemPending, held
		users[i] = u
		order = append(order, i)
	}
	if err := rows.Err(); err != nil {
		return Prediction{}, err
	}

	var out Prediction
	var available map[string]int
	if len(req.Assign) > 0 && !req.DryRun {
		var seats []struct {
			SKU       string `db:"sku_id"`
			Available int    `db:"available"`
		}
		if err := tx.SelectContext(ctx, &seats, `
			SELECT sku_id, total - consumed - reserved AS available FROM subscriptions
			WHERE customer_key = $1 AND sku_id = ANY($2)`, req.Customer.Key, pq.StringArray(req.Assign)); err != nil {
			return Prediction{}, err
		}
		available = make(map[string]int, len(seats))
		for _, r := range seats {
			available[r.SKU] = r.Available
		}
		held := make([]int32, len(users))
		for i, u := range users {
			for _, sku := range u.item.Held {
				held[i] |= skuBit(plan, sku)
			}
		}
		masks, grants, needs, err := planGrants(req, held, available)
		if err != nil {
			return Prediction{}, err
		}
		out.Seats = needs
		for i := range users {
			users[i].item.Mask = masks[i]
		}
		for sku, n := range grants {
			available[sku] -= n // what workers could still take
		}
	}

	writes := make([]itemWrite, len(users))
	ptrs := make([]*itemWrite, len(users))
	for i, u := range users {
		writes[i] = decide(plan, u.item)
		ptrs[i] = &writes[i]
	}
	passOnGrants(plan, ptrs)
	got := make(map[string]int, len(available))
	for sku, n := range available {
		got[sku] = max(n, 0)
	}
	if !plan.DryRun {
		useTakenSeats(plan, writes, got)
	}

	out.Rows = make([]licensing.ReportRow, 0, len(order))
	for _, i := range order {
		row, w, it := users[i].row, &writes[i], &users[i].item
		// As writeOutcomes records an item and Report shows it.
		row.Status = w.status
		row.Assigned, row.Revoked, row.Licenses = nonNil(w.result.Assigned), nonNil(w.result.Revoked), nonNil(it.Held)
		row.UsageLocation = it.UsageLocation
		if w.status == licensing.ItemSucceeded {
			row.Licenses = nonNil(w.result.Licenses)
			if loc := w.result.UsageLocation; loc != "" {
				row.UsageLocation = &loc
			}
		}
		if w.code != "" {
			row.Error = &licensing.Error{Code: w.code, Message: w.message}
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}
