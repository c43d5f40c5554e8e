package storage

import (
	"context"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// Summary is what the Manage-licenses view needs for a selection.
type Summary struct {
	Users         []licensing.SummaryUser
	Subscriptions []licensing.Subscription
	// Holders maps a SKU to the selected users that hold it, sorted by ID.
	Holders map[string][]string
	// Direct and Inherited count, by SKU, the holders that hold it directly
	// and those that inherit it from a group (group licensing); a holder
	// may be both. Without group licensing, every holder is direct.
	Direct, Inherited map[string]int
}

// Summary answers for a selection in three queries whatever its size: the
// users, who holds what among them, and the subscriptions.
func (s *Store) Summary(ctx context.Context, partnerKey, customerKey int64, userIDs []string) (Summary, error) {
	var sum Summary
	if err := checkKnownUsers(ctx, s.db, customerKey, userIDs); err != nil {
		return sum, err
	}
	sum.Users = []licensing.SummaryUser{}
	if err := s.db.SelectContext(ctx, &sum.Users, `
		SELECT u.id, u.display_name, u.user_principal_name, u.usage_location
		FROM users u JOIN unnest($2::text[]) AS x(id) ON u.id = x.id
		WHERE u.customer_key = $1 ORDER BY u.display_name, u.id`, customerKey, pq.StringArray(userIDs)); err != nil {
		return sum, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT a.sku_id, array_agg(a.user_id ORDER BY a.user_id),
			count(*) FILTER (WHERE a.direct), count(*) FILTER (WHERE a.inherited_from <> '{}')
		FROM assignments a JOIN unnest($2::text[]) AS x(id) ON a.user_id = x.id
		WHERE a.customer_key = $1 GROUP BY a.sku_id`, customerKey, pq.StringArray(userIDs))
	if err != nil {
		return sum, err
	}
	defer rows.Close()
	sum.Holders, sum.Direct, sum.Inherited = map[string][]string{}, map[string]int{}, map[string]int{}
	for rows.Next() {
		var sku string
		var users pq.StringArray
		var direct, inherited int
		if err := rows.Scan(&sku, &users, &direct, &inherited); err != nil {
			return sum, err
		}
		sum.Holders[sku], sum.Direct[sku], sum.Inherited[sku] = users, direct, inherited
	}
	if err := rows.Err(); err != nil {
		return sum, err
	}
	sum.Subscriptions, err = s.ListSubscriptions(ctx, partnerKey, customerKey)
	return sum, err
}
