package storage

import (
	"context"
	"maps"
	"slices"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// Summary is what the Manage-licenses view needs for a selection.
type Summary struct {
	Users         []licensing.SummaryUser
	Subscriptions []licensing.Subscription
	// Holders maps a SKU to the selected users that hold it, sorted by ID.
	Holders map[string][]string
	// Plans maps a SKU to its service plans, each with the number of the
	// selected holders that have it on.
	Plans map[string][]PlanCount
	// Direct and Inherited count, by SKU, the holders that hold it directly
	// and those that inherit it from a group (group licensing); a holder
	// may be both. Without group licensing, every holder is direct.
	Direct, Inherited map[string]int
}

// PlanCount is one service plan of a SKU and how many of the selected
// holders of the SKU have it on.
type PlanCount struct {
	licensing.ServicePlan
	On int `json:"on"`
}

// Summary answers for a selection in a fixed number of queries whatever its size: the
// users, who holds what among them (directly or through groups), the
// subscriptions, and the plans the holders have off with the catalog's
// plans to count them against.
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
	if err != nil {
		return sum, err
	}
	sum.Plans, err = s.planCounts(ctx, partnerKey, customerKey, userIDs, sum.Holders)
	return sum, err
}

// planCounts counts, for each SKU of the catalog with service plans, the
// selected holders that have each plan on: the holders less those with it
// off. A plan switched off but not listed by the product is counted too,
// after the listed ones, without a name.
func (s *Store) planCounts(ctx context.Context, partnerKey, customerKey int64, userIDs []string, holders map[string][]string) (map[string][]PlanCount, error) {
	var off []struct {
		SKU  string `db:"sku_id"`
		Plan string `db:"plan"`
		N    int    `db:"n"`
	}
	if err := s.db.SelectContext(ctx, &off, `
		SELECT a.sku_id, p.plan, count(*) AS n
		FROM assignments a JOIN unnest($2::text[]) AS x(id) ON a.user_id = x.id
		CROSS JOIN LATERAL unnest(a.disabled_plans) AS p(plan)
		WHERE a.customer_key = $1 GROUP BY 1, 2 ORDER BY 1, 2`, customerKey, pq.StringArray(userIDs)); err != nil {
		return nil, err
	}
	offBy := map[string]map[string]int{}
	for _, o := range off {
		if offBy[o.SKU] == nil {
			offBy[o.SKU] = map[string]int{}
		}
		offBy[o.SKU][o.Plan] = o.N
	}
	products, err := s.ListProducts(ctx, partnerKey)
	if err != nil {
		return nil, err
	}
	out := map[string][]PlanCount{}
	for _, p := range products {
		n := len(holders[p.SKU])
		for _, sp := range p.ServicePlans {
			out[p.SKU] = append(out[p.SKU], PlanCount{ServicePlan: sp, On: n - offBy[p.SKU][sp.ID]})
			delete(offBy[p.SKU], sp.ID)
		}
	}
	for sku, plans := range offBy {
		for _, id := range slices.Sorted(maps.Keys(plans)) {
			out[sku] = append(out[sku], PlanCount{ServicePlan: licensing.ServicePlan{ID: id}, On: len(holders[sku]) - plans[id]})
		}
	}
	return out, nil
}
