package storage

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// servicePlans is products.service_plans (jsonb, never NULL).
type servicePlans []licensing.ServicePlan

// Scan implements sql.Scanner.
func (p *servicePlans) Scan(src any) error { return scanJSON(src, p) }

// planMap is a JSON object of SKU to disabled plan IDs: operations.
// disabled_plans, where NULL (nil) means the operation changes no plan.
type planMap map[string][]string

// Scan implements sql.Scanner.
func (m *planMap) Scan(src any) error { return scanJSON(src, m) }

// Value implements driver.Valuer: NULL for an empty map.
func (m planMap) Value() (driver.Value, error) {
	if len(m) == 0 {
		return nil, nil
	}
	return json.Marshal(map[string][]string(m))
}

func scanJSON(src, dst any) error {
	switch v := src.(type) {
	case nil:
		return nil
	case []byte:
		return json.Unmarshal(v, dst)
	case string:
		return json.Unmarshal([]byte(v), dst)
	default:
		return fmt.Errorf("storage: cannot scan %T as JSON", src)
	}
}

// checkServicePlans refuses disabled plans that the products of catalog
// do not list (UnknownServicePlans). A copy's plans are not checked: they
// are the reference user's, as the directory has them.
func checkServicePlans(req NewOperation, catalog licensing.Catalog) error {
	if len(req.DisabledPlans) == 0 || req.CopyFrom != "" {
		return nil
	}
	if e := licensing.UnknownServicePlans(catalog, req.DisabledPlans); e != nil {
		return e
	}
	return nil
}

// heldPlans reads, for each of userIDs, the disabled plans of the licenses
// it holds with any switched off (SKU to plan IDs). Only operations that
// change plans read them, so that the others run the queries they ran
// before plans existed.
func heldPlans(ctx context.Context, q sqlx.QueryerContext, customerKey int64, userIDs []string) (map[string]map[string][]string, error) {
	var rows []struct {
		UserID string         `db:"user_id"`
		SKU    string         `db:"sku_id"`
		Plans  pq.StringArray `db:"disabled_plans"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT a.user_id, a.sku_id, a.disabled_plans FROM unnest($2::text[]) AS x(id)
		JOIN assignments a ON a.customer_key = $1 AND a.user_id = x.id
		WHERE cardinality(a.disabled_plans) > 0`, customerKey, pq.StringArray(userIDs)); err != nil {
		return nil, err
	}
	out := make(map[string]map[string][]string)
	for _, r := range rows {
		if out[r.UserID] == nil {
			out[r.UserID] = map[string][]string{}
		}
		out[r.UserID][r.SKU] = r.Plans
	}
	return out, nil
}

// planWrites are the licenses whose disabled plans a batch sets: every
// SKU a succeeding user newly gets or whose plans change that its change
// gives disabled plans for.
func planWrites(writes []itemWrite) (users, skus, plans []string) {
	for _, w := range writes {
		if w.status != licensing.ItemSucceeded {
			continue
		}
		for _, sku := range append(slices.Clone(w.result.Assigned), w.result.PlansChanged...) {
			p, ok := w.plans[sku]
			if !ok {
				continue
			}
			users, skus, plans = append(users, w.userID), append(skus, sku), append(plans, arrayLiteral(p))
		}
	}
	return users, skus, plans
}

// writePlans records what writeOutcomes does not for an operation that
// changes plans: the disabled plans of the licenses it assigned or
// updated, and each item's plans_changed with the plans they had before
// (plans_before, which an undo puts back). A second statement, so that
// operations without plans run the one they ran before.
func writePlans(ctx context.Context, tx *sqlx.Tx, plan *Plan, writes []itemWrite) error {
	if !plan.changesPlans() {
		return nil
	}
	users, skus, plans := planWrites(writes)
	items, changed, befores, err := itemPlans(writes)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `
		WITH pl AS (
			UPDATE assignments a SET disabled_plans = x.p::text[]
			FROM unnest($3::text[], $4::text[], $5::text[]) AS x(u, s, p)
			WHERE a.customer_key = $2 AND a.user_id = x.u AND a.sku_id = x.s
		)
		UPDATE operation_items i SET plans_changed = x.c::text[], plans_before = NULLIF(x.b, '')::jsonb
		FROM unnest($6::text[], $7::text[], $8::text[]) AS x(u, c, b)
		WHERE i.operation_id = $1 AND i.user_id = x.u`,
		plan.ID, plan.CustomerKey, pq.StringArray(nonNil(users)), pq.StringArray(nonNil(skus)), pq.StringArray(nonNil(plans)),
		pq.StringArray(items), pq.StringArray(changed), pq.StringArray(befores))
	return err
}

// itemPlans are the plans_changed (text[] literals) and plans_before
// (JSON, "" for NULL) of each of writes, by user.
func itemPlans(writes []itemWrite) (users, changed, befores []string, err error) {
	n := len(writes)
	users, changed, befores = make([]string, n), make([]string, n), make([]string, n)
	for i, w := range writes {
		users[i], changed[i] = w.userID, arrayLiteral(w.result.PlansChanged)
		if befores[i], err = plansBeforeJSON(w); err != nil {
			return nil, nil, nil, err
		}
	}
	return users, changed, befores, nil
}

// plansBeforeJSON is w's plans_before: the plans the SKUs whose plans it
// changes or that it revokes had off before, as JSON, or "" (NULL) when
// it changed or revoked none, or they are unknown (an item that started
// applying before they were recorded; sqlx reads a NULL into an empty
// map, hence len).
func plansBeforeJSON(w itemWrite) (string, error) {
	if w.status != licensing.ItemSucceeded || len(w.plansBefore) == 0 ||
		(len(w.result.PlansChanged) == 0 && len(w.result.Revoked) == 0) {
		return "", nil
	}
	b, err := json.Marshal(w.plansBefore)
	return string(b), err
}

// plansOf returns the plans held (by SKU; a SKU without an entry has
// every plan on) has off in each of skus, never nil.
func plansOf(held map[string][]string, skus []string) map[string][]string {
	out := make(map[string][]string, len(skus))
	for _, sku := range skus {
		out[sku] = nonNil(held[sku])
	}
	return out
}
