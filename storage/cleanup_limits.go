package storage

import (
	"context"
	"math"

	"github.com/jmoiron/sqlx"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/webhook"
)

// limitRun applies a policy's blast radius to a run in the run's
// transaction: it records the most users the run may change and, when the
// run matched more than that and was not confirmed, marks it blocked (the
// caller then starts no operation) and records the cleanup.blocked event.
// A dry run changes nothing, so it has no limit and shows everything it
// would do.
func limitRun(ctx context.Context, tx *sqlx.Tx, p licensing.CleanupPolicy, confirm bool, run *licensing.CleanupRun) error {
	if p.DryRun || run.MatchedUsers == 0 || (p.MaxChanges == nil && p.MaxPercent == nil) {
		return nil
	}
	var users int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE customer_key = $1`, p.CustomerKey).Scan(&users); err != nil {
		return err
	}
	limit := blastLimit(p.MaxChanges, p.MaxPercent, users)
	run.Limit, run.Confirmed = &limit, confirm
	blocked := run.MatchedUsers > limit && !confirm
	if blocked {
		run.Status = licensing.RunBlocked
	}
	if _, err := tx.ExecContext(ctx, `UPDATE cleanup_runs SET limit_users = $2, confirmed = $3, blocked = $4, matched_users = $5 WHERE id = $1`,
		run.ID, limit, confirm, blocked, run.MatchedUsers); err != nil {
		return err
	}
	if !blocked {
		return nil
	}
	return insertEvents(ctx, tx, p.PartnerKey, []string{webhook.CleanupBlocked}, func() (any, error) {
		return webhook.CleanupBlockedData{CustomerID: p.CustomerID, PolicyID: p.ID, PolicyName: p.Name, Run: *run}, nil
	})
}

// blastLimit is the most users a run may change: the smaller of maxChanges
// and maxPercent of the customer's users (rounded down), whichever are set.
func blastLimit(maxChanges *int, maxPercent *float64, users int) int {
	limit := math.MaxInt
	if maxChanges != nil {
		limit = *maxChanges
	}
	if maxPercent != nil {
		// The epsilon keeps 10 % of 20 users at 2 where 20*10/100 in
		// floating point lands a hair below it.
		limit = min(limit, int(math.Floor(float64(users)**maxPercent/100+1e-9)))
	}
	return limit
}
