package storage

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

const cleanupPolicyColumns = `p.id, p.partner_key, p.customer_key, c.id, p.name, p.schedule, p.time_zone, p.rule_kind,
	p.inactive_days, p.skus, p.exclude_user_ids, p.dry_run, p.enabled, p.schedule_since, p.created_by, p.created_at, p.updated_at,
	p.max_changes, p.max_percent`

func scanCleanupPolicy(row interface{ Scan(...any) error }) (licensing.CleanupPolicy, error) {
	var p licensing.CleanupPolicy
	var days *int
	var skus, exclude pq.StringArray
	err := row.Scan(&p.ID, &p.PartnerKey, &p.CustomerKey, &p.CustomerID, &p.Name, &p.Schedule, &p.TimeZone, &p.Rule.Kind,
		&days, &skus, &exclude, &p.DryRun, &p.Enabled, &p.ScheduleSince, &p.CreatedBy, &p.CreatedAt, &p.UpdatedAt,
		&p.MaxChanges, &p.MaxPercent)
	p.Rule.Days, p.Rule.ExcludeUserIDs = days, nonNil(exclude)
	if skus != nil {
		p.Rule.SKUs = skus
	}
	return p, err
}

// skusParam is a policy's SKU list as a query parameter: NULL for "every SKU".
func skusParam(skus []string) any {
	if skus == nil {
		return nil
	}
	return pq.StringArray(skus)
}

// CreateCleanupPolicy stores a new policy of a customer; p is validated by
// the caller except for its SKUs, which must be subscriptions of the
// customer (UnknownSkus otherwise).
func (s *Store) CreateCleanupPolicy(ctx context.Context, p licensing.CleanupPolicy) (licensing.CleanupPolicy, error) {
	var out licensing.CleanupPolicy
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := checkKnownSKUs(ctx, tx, p.CustomerKey, p.Rule.SKUs); err != nil {
			return err
		}
		var err error
		out, err = scanCleanupPolicy(tx.QueryRowContext(ctx, `
			WITH p AS (
				INSERT INTO cleanup_policies (id, partner_key, customer_key, name, schedule, time_zone, rule_kind, inactive_days,
					skus, exclude_user_ids, dry_run, enabled, created_by, max_changes, max_percent)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
				RETURNING *
			)
			SELECT `+cleanupPolicyColumns+` FROM p JOIN customers c USING (customer_key)`,
			uuid.New(), p.PartnerKey, p.CustomerKey, p.Name, p.Schedule, p.TimeZone, p.Rule.Kind, p.Rule.Days,
			skusParam(p.Rule.SKUs), pq.StringArray(nonNil(p.Rule.ExcludeUserIDs)), p.DryRun, p.Enabled, p.CreatedBy,
			p.MaxChanges, p.MaxPercent))
		return err
	})
	return out, err
}

// GetCleanupPolicy finds a policy of the customer; a policy of another
// customer or partner is NotFound.
func (s *Store) GetCleanupPolicy(ctx context.Context, partnerKey, customerKey int64, id string) (licensing.CleanupPolicy, error) {
	return getCleanupPolicy(ctx, s.db, partnerKey, customerKey, id, "")
}

// getCleanupPolicy reads a policy, scoped to a partner and customer unless
// both are 0 (the scheduler acts for every partner), with an optional
// locking clause.
func getCleanupPolicy(ctx context.Context, q sqlx.QueryerContext, partnerKey, customerKey int64, id, lock string) (licensing.CleanupPolicy, error) {
	if _, err := uuid.Parse(id); err != nil {
		return licensing.CleanupPolicy{}, notFound("cleanup policy", id)
	}
	p, err := scanCleanupPolicy(q.QueryRowxContext(ctx, `
		SELECT `+cleanupPolicyColumns+` FROM cleanup_policies p JOIN customers c USING (customer_key)
		WHERE p.id = $1 AND (($2::bigint = 0 AND $3::bigint = 0) OR (p.partner_key = $2 AND p.customer_key = $3)) `+lock,
		id, partnerKey, customerKey))
	if isNoRows(err) {
		return p, notFound("cleanup policy", id)
	}
	return p, err
}

// ListCleanupPolicies lists a customer's policies, oldest first.
func (s *Store) ListCleanupPolicies(ctx context.Context, customerKey int64) ([]licensing.CleanupPolicy, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+cleanupPolicyColumns+` FROM cleanup_policies p JOIN customers c USING (customer_key)
		WHERE p.customer_key = $1 ORDER BY p.created_at, p.id`, customerKey)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []licensing.CleanupPolicy{}
	for rows.Next() {
		p, err := scanCleanupPolicy(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// UpdateCleanupPolicy changes a policy in one transaction: the policy is
// locked, change edits it (and may refuse with an error), its SKUs are
// checked, and it is written back. Changing the schedule or time zone, or
// enabling the policy, moves ScheduleSince to now, so that no tick from
// before the change runs.
func (s *Store) UpdateCleanupPolicy(ctx context.Context, partnerKey, customerKey int64, id string, change func(p *licensing.CleanupPolicy) error) (licensing.CleanupPolicy, error) {
	var out licensing.CleanupPolicy
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		old, err := getCleanupPolicy(ctx, tx, partnerKey, customerKey, id, "FOR UPDATE OF p")
		if err != nil {
			return err
		}
		p := old
		p.Rule.SKUs = append([]string(nil), old.Rule.SKUs...)
		p.Rule.ExcludeUserIDs = append([]string{}, old.Rule.ExcludeUserIDs...)
		if err := change(&p); err != nil {
			return err
		}
		if err := checkKnownSKUs(ctx, tx, p.CustomerKey, p.Rule.SKUs); err != nil {
			return err
		}
		rescheduled := p.Schedule != old.Schedule || p.TimeZone != old.TimeZone || (p.Enabled && !old.Enabled)
		out, err = scanCleanupPolicy(tx.QueryRowContext(ctx, `
			WITH p AS (
				UPDATE cleanup_policies SET name = $2, schedule = $3, time_zone = $4, rule_kind = $5, inactive_days = $6,
					skus = $7, exclude_user_ids = $8, dry_run = $9, enabled = $10, max_changes = $12, max_percent = $13,
					schedule_since = CASE WHEN $11 THEN now() ELSE schedule_since END, updated_at = now()
				WHERE id = $1
				RETURNING *
			)
			SELECT `+cleanupPolicyColumns+` FROM p JOIN customers c USING (customer_key)`,
			id, p.Name, p.Schedule, p.TimeZone, p.Rule.Kind, p.Rule.Days, skusParam(p.Rule.SKUs),
			pq.StringArray(nonNil(p.Rule.ExcludeUserIDs)), p.DryRun, p.Enabled, rescheduled, p.MaxChanges, p.MaxPercent))
		return err
	})
	return out, err
}

// DeleteCleanupPolicy deletes a policy and its runs; the operations its runs
// started stay, as every operation does.
func (s *Store) DeleteCleanupPolicy(ctx context.Context, partnerKey, customerKey int64, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return notFound("cleanup policy", id)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM cleanup_policies WHERE id = $1 AND partner_key = $2 AND customer_key = $3`,
		id, partnerKey, customerKey)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("cleanup policy", id)
	}
	return nil
}

// ScheduledPolicy is what the scheduler needs of an enabled policy.
type ScheduledPolicy struct {
	ID       string `db:"id"`
	Schedule string `db:"schedule"`
	TimeZone string `db:"time_zone"`
}

// EnabledCleanupPolicies lists every enabled policy of every partner, for
// the scheduler.
func (s *Store) EnabledCleanupPolicies(ctx context.Context) ([]ScheduledPolicy, error) {
	out := []ScheduledPolicy{}
	err := s.db.SelectContext(ctx, &out, `SELECT id, schedule, time_zone FROM cleanup_policies WHERE enabled ORDER BY id`)
	return out, err
}

// CleanupRunRequest asks RunCleanup to run a policy once.
type CleanupRunRequest struct {
	PolicyID string
	// PartnerKey and CustomerKey scope the policy (the API); the scheduler,
	// which acts for every partner, leaves both 0.
	PartnerKey, CustomerKey int64
	// Due makes the run a scheduled one: judged on the policy as locked in
	// the run's transaction, it returns the tick the run is for, or a reason
	// to skip it. Nil means a manual run.
	Due func(p licensing.CleanupPolicy) (tick time.Time, skip string)
	// At is when a manual run happens; "inactive" is measured from it.
	// Scheduled runs measure from their tick.
	At time.Time
	// CreatedBy is who started the run; "" (the scheduler) records
	// "cleanup policy: <name>".
	CreatedBy string
	Queue     string
	// Confirm lets a manual run change more users than the policy's
	// limits allow.
	Confirm bool
	// Audit, when set, is recorded in the run's transaction with the policy
	// as its object and the run as its details.
	Audit *licensing.AuditEntry
}

// CleanupRunResult is what RunCleanup did.
type CleanupRunResult struct {
	Policy licensing.CleanupPolicy
	// Skipped says why nothing ran ("" when a run was recorded); a
	// scheduled tick that already ran is skipped with "already ran".
	Skipped string
	Run     licensing.CleanupRun
	// Operation and UserIDs are the operation the run started and its
	// users, for the caller to enqueue; nil when nobody matched.
	Operation *licensing.Operation
	UserIDs   []string
}

// SkipAlreadyRan is the Skipped reason of a tick that has its run already.
const SkipAlreadyRan = "already ran"

// RunCleanup runs a policy once, in one transaction: it records the run
// (for a scheduled tick at most once: UNIQUE (policy_id, tick) makes any
// concurrent or later attempt at the same tick a no-op), selects the users
// the rule matches now, and creates an ordinary license operation with
// source "cleanup" that revokes their licenses, or none when nobody
// matched. Enqueueing the operation's tasks is the caller's job after
// commit; if it dies first, the sweeper enqueues them after its grace period.
func (s *Store) RunCleanup(ctx context.Context, req CleanupRunRequest) (CleanupRunResult, error) {
	var res CleanupRunResult
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res = CleanupRunResult{}
		p, err := getCleanupPolicy(ctx, tx, req.PartnerKey, req.CustomerKey, req.PolicyID, "FOR SHARE OF p")
		if err != nil {
			return err
		}
		res.Policy = p
		run := licensing.CleanupRun{ID: uuid.NewString(), PolicyID: p.ID, Trigger: licensing.TriggerManual, DryRun: p.DryRun, Status: licensing.RunNothingMatched}
		at := req.At
		if at.IsZero() {
			at = time.Now()
		}
		if req.Due != nil {
			tick, skip := req.Due(p)
			if skip != "" {
				res.Skipped = skip
				return nil
			}
			tick = tick.UTC().Truncate(time.Minute)
			run.Trigger, run.Tick, at = licensing.TriggerSchedule, &tick, tick
		}
		// The guard: a second insert of the same tick waits for the first
		// transaction and then inserts nothing.
		err = tx.QueryRowContext(ctx, `
			INSERT INTO cleanup_runs (id, policy_id, tick, trigger, dry_run) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (policy_id, tick) DO NOTHING
			RETURNING created_at`, run.ID, p.ID, run.Tick, run.Trigger, run.DryRun).Scan(&run.CreatedAt)
		if isNoRows(err) {
			res.Skipped = SkipAlreadyRan
			return nil
		}
		if err != nil {
			return err
		}
		users, skus, err := matchCleanupUsers(ctx, tx, p, at)
		if err != nil {
			return err
		}
		run.MatchedUsers = len(users)
		if err := limitRun(ctx, tx, p, req.Confirm, &run); err != nil {
			return err
		}
		if len(users) > 0 && run.Status != licensing.RunBlocked {
			customer, err := scanCustomer(tx.QueryRowContext(ctx, `SELECT `+customerColumns+` FROM customers WHERE customer_key = $1`, p.CustomerKey))
			if err != nil {
				return err
			}
			createdBy := req.CreatedBy
			if createdBy == "" {
				createdBy = "cleanup policy: " + p.Name
			}
			var op licensing.Operation
			if err := s.createOperationTx(ctx, tx, NewOperation{
				PartnerKey: p.PartnerKey, Customer: customer, UserIDs: users, Revoke: skus, DryRun: p.DryRun,
				Source: licensing.SourceCleanup, CreatedBy: createdBy, Queue: req.Queue, PolicyID: p.ID,
			}, &op); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE cleanup_runs SET matched_users = $2, operation_id = $3 WHERE id = $1`,
				run.ID, len(users), op.ID); err != nil {
				return err
			}
			run.OperationID, run.Status = &op.ID, op.Status
			res.Operation, res.UserIDs = &op, users
		}
		if req.Audit != nil {
			e := *req.Audit
			e.ObjectID = p.ID
			if e.Details, err = json.Marshal(map[string]any{
				"run_id": run.ID, "trigger": run.Trigger, "dry_run": run.DryRun, "matched_users": run.MatchedUsers,
				"operation_id": run.OperationID, "revoke": nonNil(skus), "status": run.Status, "limit": run.Limit,
				"confirmed": run.Confirmed,
			}); err != nil {
				return err
			}
			if err := insertAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		res.Run = run
		return nil
	})
	return res, err
}

// matchCleanupUsers returns the users a policy's rule matches at the
// instant at, sorted, and the SKUs to take back from them: the policy's
// SKUs, or every SKU they hold, in either case only SKUs some of them hold
// and the customer has a subscription of (so the operation never names a
// SKU it does not know).
//
// disabled_accounts matches account_enabled = false. inactive matches users
// whose last_sign_in_at is older than the days, and users who never signed
// in whose row in licenseops (created_at, the first import or sync) is.
func matchCleanupUsers(ctx context.Context, tx *sqlx.Tx, p licensing.CleanupPolicy, at time.Time) (users, skus []string, err error) {
	cutoff := at
	if p.Rule.Kind == licensing.RuleInactive && p.Rule.Days != nil {
		cutoff = at.Add(-time.Duration(*p.Rule.Days) * 24 * time.Hour)
	}
	var ids pq.StringArray
	if err := tx.QueryRowContext(ctx, `
		SELECT COALESCE(array_agg(u.id ORDER BY u.id), '{}') FROM users u
		WHERE u.customer_key = $1
		AND CASE WHEN $2 = 'disabled_accounts' THEN NOT u.account_enabled
			ELSE COALESCE(u.last_sign_in_at, u.created_at) < $3 END
		AND NOT (u.id = ANY($4::text[]))
		AND EXISTS (
			SELECT 1 FROM assignments a JOIN subscriptions s ON s.customer_key = a.customer_key AND s.sku_id = a.sku_id
			WHERE a.customer_key = u.customer_key AND a.user_id = u.id AND ($5::text[] IS NULL OR a.sku_id = ANY($5::text[])))`,
		p.CustomerKey, p.Rule.Kind, cutoff, pq.StringArray(nonNil(p.Rule.ExcludeUserIDs)), skusParam(p.Rule.SKUs)).Scan(&ids); err != nil {
		return nil, nil, err
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	var held pq.StringArray
	if err := tx.QueryRowContext(ctx, `
		SELECT COALESCE(array_agg(DISTINCT a.sku_id ORDER BY a.sku_id), '{}')
		FROM assignments a JOIN subscriptions s ON s.customer_key = a.customer_key AND s.sku_id = a.sku_id
		WHERE a.customer_key = $1 AND a.user_id = ANY($2::text[]) AND ($3::text[] IS NULL OR a.sku_id = ANY($3::text[]))`,
		p.CustomerKey, ids, skusParam(p.Rule.SKUs)).Scan(&held); err != nil {
		return nil, nil, err
	}
	return ids, held, nil
}

// ListCleanupRuns pages a policy's runs, newest first, with the progress of
// their operations, and the number of runs in all.
func (s *Store) ListCleanupRuns(ctx context.Context, policyID string, limit, offset int) ([]licensing.CleanupRun, int, error) {
	var total int
	if err := s.db.GetContext(ctx, &total, `SELECT count(*) FROM cleanup_runs WHERE policy_id = $1`, policyID); err != nil {
		return nil, 0, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT r.id, r.policy_id, r.trigger, r.tick, r.dry_run, r.matched_users, r.operation_id::text, r.created_at,
			CASE WHEN r.blocked THEN 'blocked' ELSE COALESCE(o.status, $4) END, o.finished_at, r.limit_users, r.confirmed,
			COALESCE(x.reclaimed, 0), COALESCE(x.would_users, 0), COALESCE(x.would_seats, 0), COALESCE(x.failed, 0)
		FROM cleanup_runs r
		LEFT JOIN operations o ON o.id = r.operation_id
		LEFT JOIN LATERAL (
			SELECT sum(cardinality(i.revoked)) FILTER (WHERE i.status = 'succeeded') AS reclaimed,
				count(*) FILTER (WHERE i.status = 'would_revoke') AS would_users,
				sum(cardinality(i.revoked)) FILTER (WHERE i.status = 'would_revoke') AS would_seats,
				count(*) FILTER (WHERE i.status = 'failed') AS failed
			FROM operation_items i WHERE i.operation_id = r.operation_id
		) x ON true
		WHERE r.policy_id = $1
		ORDER BY r.created_at DESC, r.id DESC LIMIT $2 OFFSET $3`, policyID, limit, offset, licensing.RunNothingMatched)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []licensing.CleanupRun{}
	for rows.Next() {
		var r licensing.CleanupRun
		if err := rows.Scan(&r.ID, &r.PolicyID, &r.Trigger, &r.Tick, &r.DryRun, &r.MatchedUsers, &r.OperationID, &r.CreatedAt,
			&r.Status, &r.FinishedAt, &r.Limit, &r.Confirmed, &r.ReclaimedSeats, &r.WouldRevokeUsers, &r.WouldReclaimSeats, &r.FailedUsers); err != nil {
			return nil, 0, err
		}
		if r.Tick != nil {
			t := r.Tick.UTC()
			r.Tick = &t
		}
		out = append(out, r)
	}
	return out, total, rows.Err()
}
