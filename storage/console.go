package storage

import (
	"context"
	"time"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// The queries of the web console that the JSON API has no use for: a
// session's token looked up by ID (so that revoking the token ends its
// sessions), whole search results as IDs (select all matching users), one
// page of a selection, and what a cleanup could reclaim per subscription.

// PrincipalByTokenID returns the principal of a token that is not revoked,
// or (nil, nil) when it is revoked or unknown.
func (s *Store) PrincipalByTokenID(ctx context.Context, tokenID int64) (*licensing.Principal, error) {
	var p licensing.Principal
	err := s.db.GetContext(ctx, &p, `
		SELECT t.id AS token_id, t.name AS token_name, t.role, p.partner_key, p.id AS partner_id
		FROM tokens t JOIN partners p USING (partner_key)
		WHERE t.id = $1 AND t.revoked_at IS NULL`, tokenID)
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// MatchingUserIDs returns the IDs of the users that ListUsers with q would
// page through, in its order, at most limit of them.
func (s *Store) MatchingUserIDs(ctx context.Context, customerKey int64, q string, limit int) ([]string, error) {
	var ids []string
	err := s.db.SelectContext(ctx, &ids, `
		SELECT id FROM users WHERE customer_key = $1
		AND ($2 = '' OR display_name ILIKE $2 OR user_principal_name ILIKE $2)
		ORDER BY display_name, id LIMIT $3`, customerKey, likePattern(q), limit)
	return ids, err
}

// ExistingUserIDs returns those of ids that are users of the customer, in
// no particular order.
func (s *Store) ExistingUserIDs(ctx context.Context, customerKey int64, ids []string) ([]string, error) {
	var out []string
	err := s.db.SelectContext(ctx, &out, `
		SELECT u.id FROM users u JOIN unnest($2::text[]) AS x(id) ON u.id = x.id
		WHERE u.customer_key = $1`, customerKey, pq.StringArray(ids))
	return out, err
}

// ReclaimableSeats counts, for a SKU, the seats held by disabled accounts
// and by enabled accounts without a sign-in for the inactivity period (a
// user that never signed in counts from its import, as the cleanup rule
// `inactive` counts).
type ReclaimableSeats struct {
	SKU      string `db:"sku_id"`
	Disabled int    `db:"disabled"`
	Inactive int    `db:"inactive"`
}

// Reclaimable returns the ReclaimableSeats of every SKU the customer's
// users hold, keyed by SKU.
func (s *Store) Reclaimable(ctx context.Context, customerKey int64, inactiveFor time.Duration, now time.Time) (map[string]ReclaimableSeats, error) {
	var rows []ReclaimableSeats
	err := s.db.SelectContext(ctx, &rows, `
		SELECT a.sku_id,
			count(*) FILTER (WHERE NOT u.account_enabled) AS disabled,
			count(*) FILTER (WHERE u.account_enabled AND COALESCE(u.last_sign_in_at, u.created_at) < $2) AS inactive
		FROM assignments a JOIN users u ON u.customer_key = a.customer_key AND u.id = a.user_id
		WHERE a.customer_key = $1 GROUP BY a.sku_id`, customerKey, now.Add(-inactiveFor))
	out := make(map[string]ReclaimableSeats, len(rows))
	for _, r := range rows {
		out[r.SKU] = r
	}
	return out, err
}
