package storage

import (
	"context"
	"fmt"
)

// Problem is one broken invariant found by Check.
type Problem struct {
	Invariant string `json:"invariant"`
	Detail    string `json:"detail"`
}

func (p Problem) String() string { return p.Invariant + ": " + p.Detail }

// CheckScope limits Check to one customer (by internal key) and/or one
// operation; zero values mean everything.
type CheckScope struct {
	CustomerKey int64
	OperationID string
}

// check is one invariant and the query that lists what breaks it; $1 is
// the customer key (0: all), $2 the operation ID (NULL: all).
type check struct {
	invariant string
	query     string
}

// maxProblemsPerCheck keeps a badly broken database from flooding the output.
const maxProblemsPerCheck = 20

// Check verifies the invariants licenseops promises and returns what is
// broken (nothing when all hold). It is read-only and safe to run at any
// time; checks about finished operations are exact, checks about seats hold
// at any moment because unsettled seats are still counted as reserved.
func (s *Store) Check(ctx context.Context, scope CheckScope) ([]Problem, error) {
	var opID any
	if scope.OperationID != "" {
		opID = scope.OperationID
	}
	checks := []check{
		{"finished operation has a non-final item", `
			SELECT o.id || ' user ' || i.user_id || ' is ' || i.status
			FROM operations o JOIN operation_items i ON i.operation_id = o.id
			WHERE o.finished_at IS NOT NULL AND i.status IN ('pending','applying')
			AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
		{"finished operation holds seats", `
			SELECT o.id || ' user ' || i.user_id || ' has unsettled seats'
			FROM operations o JOIN operation_items i ON i.operation_id = o.id
			WHERE o.finished_at IS NOT NULL AND NOT i.settled
			AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
		{"report does not have one row per user", `
			SELECT o.id || ': total ' || o.total || ', items ' || count(i.user_id)
			FROM operations o LEFT JOIN operation_items i ON i.operation_id = o.id
			WHERE ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)
			GROUP BY o.id, o.total HAVING count(i.user_id) <> o.total`},
		{"finished operation's counts disagree with its items", `
			SELECT o.id || ': succeeded ' || o.succeeded || '/' || count(*) FILTER (WHERE i.status IN ('succeeded','would_revoke'))
				|| ', failed ' || o.failed || '/' || count(*) FILTER (WHERE i.status = 'failed')
				|| ', cancelled ' || o.cancelled || '/' || count(*) FILTER (WHERE i.status = 'cancelled')
			FROM operations o JOIN operation_items i ON i.operation_id = o.id
			WHERE o.finished_at IS NOT NULL AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)
			GROUP BY o.id HAVING o.succeeded <> count(*) FILTER (WHERE i.status IN ('succeeded','would_revoke'))
				OR o.failed <> count(*) FILTER (WHERE i.status = 'failed')
				OR o.cancelled <> count(*) FILTER (WHERE i.status = 'cancelled')`},
		{"progress counters disagree with items", `
			SELECT o.id || ': counters succeeded ' || coalesce(p.s, 0) || '/' || i.s || ', failed ' || coalesce(p.f, 0) || '/' || i.f
				|| ', cancelled ' || coalesce(p.c, 0) || '/' || i.c
			FROM operations o
			CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE status IN ('succeeded','would_revoke')) AS s,
				count(*) FILTER (WHERE status = 'failed') AS f, count(*) FILTER (WHERE status = 'cancelled') AS c
				FROM operation_items WHERE operation_id = o.id) i
			LEFT JOIN LATERAL (SELECT sum(succeeded) AS s, sum(failed) AS f, sum(cancelled) AS c
				FROM operation_progress WHERE operation_id = o.id) p ON true
			WHERE ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)
			AND (coalesce(p.s, 0) <> i.s OR coalesce(p.f, 0) <> i.f OR coalesce(p.c, 0) <> i.c)`},
		// A cancelled item was never applied: it changed nothing, and only
		// a cancel makes one.
		{"cancelled item changed a user", `
			SELECT o.id || ' user ' || i.user_id || ' is cancelled but records assigned {' || array_to_string(i.assigned, ',')
				|| '} revoked {' || array_to_string(i.revoked, ',') || '}'
			FROM operations o JOIN operation_items i ON i.operation_id = o.id
			WHERE i.status = 'cancelled' AND (cardinality(i.assigned) > 0 OR cardinality(i.revoked) > 0 OR i.location_before IS NOT NULL)
			AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
		{"cancelled item of an operation that was not cancelled", `
			SELECT o.id || ' user ' || i.user_id
			FROM operations o JOIN operation_items i ON i.operation_id = o.id
			WHERE i.status = 'cancelled' AND o.cancel_requested_at IS NULL
			AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
		{"seats: consumed differs from assignments", `
			SELECT c.id || ' ' || s.sku_id || ': consumed ' || s.consumed || ', assignments ' || a.n
				|| ', unsettled new assignments ' || coalesce(u.n, 0) || ', unsettled revocations ' || coalesce(r.n, 0)
			FROM subscriptions s JOIN customers c USING (customer_key)
			CROSS JOIN LATERAL (SELECT count(*) AS n FROM assignments a WHERE a.customer_key = s.customer_key AND a.sku_id = s.sku_id) a
			LEFT JOIN LATERAL (
				SELECT count(*) AS n FROM operations o JOIN operation_items i ON i.operation_id = o.id, unnest(i.assigned) x
				WHERE o.customer_key = s.customer_key AND x = s.sku_id AND i.status = 'succeeded' AND NOT i.settled AND NOT o.dry_run) u ON true
			LEFT JOIN LATERAL (
				SELECT count(*) AS n FROM operations o JOIN operation_items i ON i.operation_id = o.id, unnest(i.revoked) x
				WHERE o.customer_key = s.customer_key AND x = s.sku_id AND i.status = 'succeeded' AND NOT i.settled AND NOT o.dry_run) r ON true
			WHERE ($1 = 0 OR s.customer_key = $1) AND $2::uuid IS NULL
			AND s.consumed + coalesce(u.n, 0) - coalesce(r.n, 0) <> a.n`},
		{"seats: more held than bought", `
			SELECT c.id || ' ' || s.sku_id || ': consumed ' || s.consumed || ' + reserved ' || s.reserved || ' > total ' || s.total
			FROM subscriptions s JOIN customers c USING (customer_key)
			WHERE s.consumed + s.reserved > s.total AND ($1 = 0 OR s.customer_key = $1) AND $2::uuid IS NULL`},
		{"seats: reserved with no operation running", `
			SELECT c.id || ' ' || s.sku_id || ': reserved ' || s.reserved
			FROM subscriptions s JOIN customers c USING (customer_key)
			WHERE s.reserved <> 0 AND ($1 = 0 OR s.customer_key = $1) AND $2::uuid IS NULL
			AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.customer_key = s.customer_key AND o.finished_at IS NULL AND o.status <> 'scheduled')`},
		// Fairness: a user of a finished operation failed short of a seat
		// of a SKU (as the worker decided it, short_skus) while another
		// user of the same operation left a grant of that SKU unused.
		{"CountViolation while the operation left a grant unused", `
			SELECT o.id || ' user ' || i.user_id || ' failed CountViolation for ' || x.sku
				|| ' while user ' || g.user_id || ' left a grant of it unused'
			FROM operations o JOIN operation_items i ON i.operation_id = o.id
			CROSS JOIN LATERAL unnest(i.short_skus) AS x(sku)
			JOIN LATERAL (SELECT a.n FROM unnest(o.assign) WITH ORDINALITY AS a(sku, n) WHERE a.sku = x.sku) a ON true
			JOIN LATERAL (SELECT g.user_id FROM operation_items g
				WHERE g.operation_id = o.id AND g.user_id <> i.user_id AND g.granted_mask & (1 << (a.n::int - 1)) <> 0
				AND NOT (g.status = 'succeeded' AND x.sku = ANY(g.assigned)) ORDER BY g.user_id LIMIT 1) g ON true
			WHERE o.finished_at IS NOT NULL AND i.status = 'failed' AND i.error_code = 'CountViolation'
			AND ($1 = 0 OR o.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
		// Items reference their operation without a foreign key (see
		// migration 00008); this is the key's check, for the whole database.
		{"item without an operation", `
			SELECT i.operation_id || ' user ' || i.user_id FROM operation_items i
			WHERE $1 = 0 AND $2::uuid IS NULL AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.id = i.operation_id)`},
		{"user claimed by a finished operation", `
			SELECT c.id || ' user ' || u.id || ' claimed by ' || u.applying_operation
			FROM users u JOIN customers c USING (customer_key) JOIN operations o ON o.id = u.applying_operation
			WHERE o.finished_at IS NOT NULL AND ($1 = 0 OR u.customer_key = $1) AND ($2::uuid IS NULL OR o.id = $2)`},
		// All-or-nothing: the item applied last to a user (by finished_at, not by
		// the operation's creation: concurrent operations finish in any order) must match what the
		// user holds now — all of the change for a success, exactly the
		// licenses before for a failure.
		{"user holds part of a change", `
			WITH latest AS (
				SELECT DISTINCT ON (o.customer_key, i.user_id) o.customer_key, o.id, i.user_id, i.status, i.assigned, i.revoked, i.licenses, o.dry_run
				FROM operations o JOIN operation_items i ON i.operation_id = o.id
				WHERE ($1 = 0 OR o.customer_key = $1) AND i.status <> 'cancelled'
				ORDER BY o.customer_key, i.user_id, i.finished_at DESC NULLS LAST
			)
			SELECT l.id || ' user ' || l.user_id || ' (' || l.status || ') holds {' || array_to_string(h.held, ',') || '}, report says {'
				|| array_to_string(l.licenses, ',') || '}'
			FROM latest l
			CROSS JOIN LATERAL (SELECT coalesce(array_agg(a.sku_id ORDER BY a.sku_id), '{}') AS held
				FROM assignments a WHERE a.customer_key = l.customer_key AND a.user_id = l.user_id) h
			JOIN operations o ON o.id = l.id
			WHERE o.finished_at IS NOT NULL AND NOT l.dry_run AND ($2::uuid IS NULL OR l.id = $2)
			AND l.status IN ('succeeded','failed') AND l.licenses IS NOT NULL
			AND h.held <> (SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM unnest(l.licenses) x)`},
	}
	checks = append(checks, undoChecks...)
	var problems []Problem
	for _, c := range checks {
		var details []string
		if err := s.db.SelectContext(ctx, &details, c.query+fmt.Sprintf(" LIMIT %d", maxProblemsPerCheck), scope.CustomerKey, opID); err != nil {
			return nil, fmt.Errorf("check %q: %w", c.invariant, err)
		}
		for _, d := range details {
			problems = append(problems, Problem{Invariant: c.invariant, Detail: d})
		}
	}
	return problems, nil
}
