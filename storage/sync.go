package storage

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

// DirectoryUser is a user as an external directory reports it.
type DirectoryUser struct {
	ID                string
	UserPrincipalName string
	DisplayName       string
	UsageLocation     string
	AccountEnabled    bool
	LastSignInAt      *time.Time
	Licenses          []string
	// DisabledPlans are the plans switched off in Licenses, by SKU.
	DisabledPlans map[string][]string
	// Sources say how the licenses inherited from groups are held, by SKU;
	// licenses missing from it (all of them when it is nil) are direct.
	Sources map[string]licensing.LicenseSource
	// LicenseErrors are the group licenses the directory failed to give
	// the user; they replace those recorded at the last sync.
	LicenseErrors []licensing.LicenseError
}

// DirectorySKU is a subscribed SKU as an external directory reports it.
type DirectorySKU struct {
	SKU     string
	Enabled int
	// PartNumber and ServicePlans describe the product: a SKU with plans
	// gets them in the partner's catalog (products), its rules untouched.
	PartNumber   string
	ServicePlans []licensing.ServicePlan
}

// SyncResult counts what a directory sync changed.
type SyncResult struct {
	Created, Updated, Subscriptions int
}

// ErrCustomerBusy is ApplyDirectorySync's refusal while the customer has
// unfinished operations.
var ErrCustomerBusy = licensing.Errorf(licensing.CodeConflict, "the customer has operations in progress; the sync runs when they finish")

// CustomerBusy reports whether the customer has unfinished operations, so
// that a sync can wait for them before it reads the whole directory. An
// operation scheduled for later does not count: it holds no seat and
// changes nobody until it starts.
func (s *Store) CustomerBusy(ctx context.Context, customerKey int64) (bool, error) {
	var busy bool
	err := s.db.GetContext(ctx, &busy, `SELECT EXISTS (SELECT 1 FROM operations WHERE customer_key = $1 AND finished_at IS NULL AND status <> 'scheduled')`, customerKey)
	return busy, err
}

// ApplyDirectorySync makes Postgres mirror an external directory for one
// customer: users (with usage location, enabled flag, sign-in time and
// licenses) and subscriptions (seat totals; consumed recomputed from the
// mirrored assignments). It refuses with ErrCustomerBusy while the customer
// has unfinished operations, whose reserved seats and in-flight changes a
// snapshot cannot account for; the caller tries again later.
func (s *Store) ApplyDirectorySync(ctx context.Context, customerKey int64, users []DirectoryUser, skus []DirectorySKU) (SyncResult, error) {
	var res SyncResult
	rows := make([]UserImport, len(users))
	var lu, ls, lp, inherited, eu, es, eg, ee []string
	var direct []bool
	for i, u := range users {
		loc, enabled := u.UsageLocation, u.AccountEnabled
		rows[i] = UserImport{ID: u.ID, UserPrincipalName: u.UserPrincipalName, DisplayName: u.DisplayName,
			AccountEnabled: &enabled, LastSignInAt: u.LastSignInAt}
		if loc != "" {
			rows[i].UsageLocation = &loc
		}
		for _, sku := range u.Licenses {
			src, ok := u.Sources[sku]
			lu, ls, lp = append(lu, u.ID), append(ls, sku), append(lp, arrayLiteral(u.DisabledPlans[sku]))
			direct, inherited = append(direct, !ok || src.Direct), append(inherited, arrayLiteral(src.InheritedFrom))
		}
		for _, e := range u.LicenseErrors {
			eu, es, eg, ee = append(eu, u.ID), append(es, e.SKU), append(eg, e.GroupID), append(ee, e.Error)
		}
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	skuIDs, enabled := make([]string, len(skus)), make([]int64, len(skus))
	for i, k := range skus {
		skuIDs[i], enabled[i] = k.SKU, int64(k.Enabled)
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var busy bool
		if err := tx.QueryRowContext(ctx, `
			SELECT EXISTS (SELECT 1 FROM operations WHERE customer_key = $1 AND finished_at IS NULL AND status <> 'scheduled')
			FROM customers WHERE customer_key = $1 FOR UPDATE`, customerKey).Scan(&busy); err != nil {
			return err
		}
		if busy {
			return ErrCustomerBusy
		}
		var err error
		res.Created, res.Updated, err = importUsers(ctx, tx, customerKey, rows)
		if err != nil {
			return err
		}
		// How a license is held (direct, inherited from groups) is the
		// directory's word too, so a row that stays is updated when that changed.
		if _, err := tx.ExecContext(ctx, `
			WITH want AS (SELECT * FROM unnest($2::text[], $3::text[], $5::bool[], $6::text[], $7::text[]) AS x(u, s, direct, inherited, p)),
			del AS (
				DELETE FROM assignments a WHERE a.customer_key = $1 AND a.user_id = ANY($4::text[])
				AND NOT EXISTS (SELECT 1 FROM want WHERE want.u = a.user_id AND want.s = a.sku_id)
			)
			INSERT INTO assignments AS a (customer_key, user_id, sku_id, direct, inherited_from, disabled_plans)
			SELECT $1, u, s, direct, inherited::text[], p::text[] FROM want
			ON CONFLICT (customer_key, user_id, sku_id) DO UPDATE SET direct = EXCLUDED.direct, inherited_from = EXCLUDED.inherited_from,
				disabled_plans = EXCLUDED.disabled_plans
			WHERE a.direct <> EXCLUDED.direct OR a.inherited_from <> EXCLUDED.inherited_from
				OR a.disabled_plans <> EXCLUDED.disabled_plans`,
			customerKey, pq.StringArray(lu), pq.StringArray(ls), pq.StringArray(ids), pq.BoolArray(direct), pq.StringArray(inherited),
			pq.StringArray(lp)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			WITH want AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS x(u, s, g, e)),
			-- Disjoint from the insert: one statement must not delete and
			-- insert the same row (the insert would not see the delete).
			del AS (
				DELETE FROM user_license_errors x WHERE x.customer_key = $1 AND x.user_id = ANY($2::text[])
				AND NOT EXISTS (SELECT 1 FROM want WHERE want.u = x.user_id AND want.s = x.sku_id AND want.g = x.group_id)
			)
			INSERT INTO user_license_errors AS x (customer_key, user_id, sku_id, group_id, error)
			SELECT $1, u, s, g, e FROM want
			ON CONFLICT (customer_key, user_id, sku_id, group_id) DO UPDATE SET error = EXCLUDED.error WHERE x.error <> EXCLUDED.error`,
			customerKey, pq.StringArray(ids), pq.StringArray(eu), pq.StringArray(es), pq.StringArray(eg), pq.StringArray(ee)); err != nil {
			return err
		}
		// No operation is running, so nothing is reserved: consumed is the
		// count of mirrored assignments, and the directory's total stands
		// (raised if the directory is over-assigned, as Graph can be).
		r, err := tx.ExecContext(ctx, `
			WITH k AS (SELECT * FROM unnest($2::text[], $3::int[]) AS x(sku, enabled)),
			c AS (
				SELECT k.sku, k.enabled, (SELECT count(*) FROM assignments a WHERE a.customer_key = $1 AND a.sku_id = k.sku)::int AS used
				FROM k
			)
			INSERT INTO subscriptions AS s (customer_key, sku_id, total, consumed, reserved)
			SELECT $1, c.sku, GREATEST(c.enabled, c.used), c.used, 0 FROM c
			ON CONFLICT (customer_key, sku_id) DO UPDATE SET total = EXCLUDED.total, consumed = EXCLUDED.consumed,
				reserved = 0, updated_at = now()`,
			customerKey, pq.StringArray(skuIDs), pq.Array(enabled))
		if err != nil {
			return err
		}
		n, _ := r.RowsAffected()
		res.Subscriptions = int(n)
		return syncServicePlans(ctx, tx, customerKey, skus)
	})
	return res, err
}

// SaveGroupNames records the display names of a customer's groups that
// assign licenses, as a sync read them. Names of groups not given are kept:
// a sync that could not read some names does not lose those it had.
func (s *Store) SaveGroupNames(ctx context.Context, customerKey int64, names map[string]string) error {
	if len(names) == 0 {
		return nil
	}
	ids, labels := make([]string, 0, len(names)), make([]string, 0, len(names))
	for id, name := range names {
		ids, labels = append(ids, id), append(labels, name)
	}
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO directory_groups AS g (customer_key, group_id, display_name)
		SELECT $1, id, name FROM unnest($2::text[], $3::text[]) AS x(id, name)
		ON CONFLICT (customer_key, group_id) DO UPDATE SET display_name = EXCLUDED.display_name
		WHERE g.display_name <> EXCLUDED.display_name`, customerKey, pq.StringArray(ids), pq.StringArray(labels))
	return err
}

// ExternalDirectoryCustomers lists the internal keys of customers whose
// licenses live in an external directory, for periodic syncs.
func (s *Store) ExternalDirectoryCustomers(ctx context.Context) ([]int64, error) {
	var keys []int64
	err := s.db.SelectContext(ctx, &keys, `SELECT customer_key FROM customers WHERE directory_kind <> 'local' ORDER BY customer_key`)
	return keys, err
}

// syncServicePlans gives the partner's products the service plans the
// directory reports for them: a product missing from the catalog is
// created without rules (named by its part number), an existing one gets
// its plans replaced and keeps its rules. SKUs reported without plans are
// left alone.
func syncServicePlans(ctx context.Context, tx *sqlx.Tx, customerKey int64, skus []DirectorySKU) error {
	var ids, names, plans []string
	for _, k := range skus {
		if len(k.ServicePlans) == 0 {
			continue
		}
		name := k.PartNumber
		if name == "" {
			name = k.SKU
		}
		b, err := json.Marshal(k.ServicePlans)
		if err != nil {
			return err
		}
		ids, names, plans = append(ids, k.SKU), append(names, name), append(plans, string(b))
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO products AS p (partner_key, sku_id, name, part_number, service_plans)
		SELECT c.partner_key, x.s, x.n, x.n, x.p::jsonb FROM unnest($2::text[], $3::text[], $4::text[]) AS x(s, n, p)
		CROSS JOIN customers c WHERE c.customer_key = $1
		ON CONFLICT (partner_key, sku_id) DO UPDATE SET service_plans = EXCLUDED.service_plans, updated_at = now()
		WHERE p.service_plans IS DISTINCT FROM EXCLUDED.service_plans`,
		customerKey, pq.StringArray(ids), pq.StringArray(names), pq.StringArray(plans))
	return err
}
