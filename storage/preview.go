package storage

import (
	"context"
	"database/sql"

	"github.com/licenseops/licenseops/licensing"
)

// Prediction is what an operation would do, worked out by the code that
// does it, with nothing written.
type Prediction struct {
	// Seats has an entry for every SKU of Assign, in its order: the
	// selected users the rules let newly get it (needed, as intake counts them)
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
//   - the seats intake would grant (grantSeats: only to users the rules
//     let newly get the SKU, in report order);
//   - each user's outcome by the workers' decide step: licensing.Evaluate
//     on the licenses the user holds, its usage location and account
//     state, the customer's default usage location and the partner's
//     catalog, as the operation's plan would carry them;
//   - then, as the workers do (reserveSeats), seats left free taken by
//     users without a grant, and CountViolation for users left without a
//     seat.
//
// Seats go in report order (display name, then user ID), the order intake
// grants them in: when a SKU is short and AllowPartial is set, the first
// users of the report that pass the rules and need a seat get one, and the
// rest are predicted CountViolation. The prediction is of the database as
// it is now; changes made until the operation runs are not foreseen, nor a
// directory's own refusals.
//
// Four queries (five for an external directory: the group-inherited
// licenses), each for the whole selection whatever its size.
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
	if err := resolveCopy(ctx, tx, &req); err != nil {
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
	if err := checkServicePlans(req, catalog); err != nil {
		return Prediction{}, err
	}
	plan := intakePlan(req, catalog)
	users, err := loadIntakeUsers(ctx, tx, req)
	if err != nil {
		return Prediction{}, err
	}

	var out Prediction
	available := map[string]int{}
	masks := make([]int32, len(req.UserIDs))
	if len(req.Assign) > 0 && !req.DryRun {
		if available, err = availableSeats(ctx, tx, req, false); err != nil {
			return Prediction{}, err
		}
		var grants map[string]int
		if masks, grants, out.Seats, err = planGrants(req, seatNeeds(plan, users), reportOrder(users), available); err != nil {
			return Prediction{}, err
		}
		for sku, n := range grants {
			available[sku] -= n // what workers could still take
		}
	}

	// As the workers decide, in report order (batches lock in user ID
	// order, but a user waits for a seat an earlier one may leave): every
	// user by the rules, then seats for users without a grant from grants
	// left unused and free seats.
	sources, err := inheritedSources(ctx, tx, req.Customer, req.UserIDs)
	if err != nil {
		return Prediction{}, err
	}
	writes := make([]*itemWrite, len(users))
	groups := make([]*groupPlan, len(users))
	for i := range users {
		users[i].item.Mask = masks[users[i].index]
		w, gp := decideWithGroups(plan, users[i].item, sources[users[i].item.UserID])
		groups[i] = gp
		writes[i] = &w
	}
	if !plan.DryRun && len(req.Assign) > 0 {
		capacity := map[string]int{}
		for _, sku := range req.Assign {
			capacity[sku] = len(batchSpares(plan, writes, sku)) + max(available[sku], 0)
		}
		noWait := func(string) (bool, error) { return false, nil }
		if _, err := allocateSeats(plan, writes, capacity, noWait); err != nil {
			return Prediction{}, err
		}
	}

	out.Rows = make([]licensing.ReportRow, 0, len(users))
	for i := range users {
		row, w, it := users[i].row, writes[i], &users[i].item
		// As writeOutcomes records an item and Report shows it.
		row.Status = w.status
		row.Assigned, row.Revoked, row.Licenses = nonNil(w.result.Assigned), nonNil(w.result.Revoked), nonNil(it.Held)
		row.PlansChanged = nonNil(w.result.PlansChanged)
		row.UsageLocation = it.UsageLocation
		if w.status == licensing.ItemSucceeded {
			row.Licenses = nonNil(w.result.Licenses)
			row.DisabledPlans = reportPlans(plan.Change.DisabledPlans, row.Assigned, row.PlansChanged)
			if loc := w.result.UsageLocation; loc != "" {
				row.UsageLocation = &loc
			}
		}
		if w.code != "" {
			row.Error = &licensing.Error{Code: w.code, Message: w.message}
		}
		if gp := groups[i]; gp != nil {
			inherited := gp.Before
			if w.status == licensing.ItemSucceeded {
				inherited, row.Note = gp.After, gp.Note
			}
			row.LicenseSources = licensing.SourcesFor(row.Licenses, inherited)
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}
