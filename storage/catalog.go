package storage

import (
	"context"
	"encoding/json"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
)

type productRow struct {
	SKU                 string         `db:"sku_id"`
	Name                string         `db:"name"`
	PartNumber          string         `db:"part_number"`
	Requires            pq.StringArray `db:"requires"`
	Excludes            pq.StringArray `db:"excludes"`
	AllowedLocations    pq.StringArray `db:"allowed_locations"`
	ProhibitedLocations pq.StringArray `db:"prohibited_locations"`
	ServicePlans        servicePlans   `db:"service_plans"`
}

func (r productRow) product() licensing.Product {
	p := licensing.Product{
		SKU: r.SKU, Name: r.Name, PartNumber: r.PartNumber,
		Requires: nonNil(r.Requires), Excludes: nonNil(r.Excludes),
		ProhibitedLocations: nonNil(r.ProhibitedLocations),
		ServicePlans:        r.ServicePlans,
	}
	if p.ServicePlans == nil {
		p.ServicePlans = []licensing.ServicePlan{}
	}
	// NULL means "anywhere"; an empty array would mean "nowhere".
	if r.AllowedLocations != nil {
		p.AllowedLocations = nonNil(r.AllowedLocations)
	}
	return p
}

// nullableArray keeps the NULL/empty distinction of allowed_locations.
func nullableArray(s []string) any {
	if s == nil {
		return nil
	}
	return pq.StringArray(s)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// PutProduct creates or replaces a product in the partner's catalog. Its
// service plans are replaced only when p.ServicePlans is non-nil, so that
// a change of rules keeps the plans a directory sync imported.
func (s *Store) PutProduct(ctx context.Context, partnerKey int64, p licensing.Product) (licensing.Product, error) {
	plans, err := plansJSON(p.ServicePlans)
	if err != nil {
		return licensing.Product{}, err
	}
	var r productRow
	err = s.db.GetContext(ctx, &r, `
		INSERT INTO products (partner_key, sku_id, name, part_number, requires, excludes, allowed_locations, prohibited_locations, service_plans)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9::jsonb, '[]'))
		ON CONFLICT (partner_key, sku_id) DO UPDATE SET
			name = EXCLUDED.name, part_number = EXCLUDED.part_number, requires = EXCLUDED.requires,
			excludes = EXCLUDED.excludes, allowed_locations = EXCLUDED.allowed_locations,
			prohibited_locations = EXCLUDED.prohibited_locations,
			service_plans = COALESCE($9::jsonb, products.service_plans), updated_at = now()
		RETURNING sku_id, name, part_number, requires, excludes, allowed_locations, prohibited_locations, service_plans`,
		partnerKey, p.SKU, p.Name, p.PartNumber, pq.StringArray(nonNil(p.Requires)), pq.StringArray(nonNil(p.Excludes)),
		nullableArray(p.AllowedLocations), pq.StringArray(nonNil(p.ProhibitedLocations)), plans)
	if err != nil {
		return licensing.Product{}, err
	}
	return r.product(), nil
}

// ListProducts returns the partner's catalog sorted by SKU.
func (s *Store) ListProducts(ctx context.Context, partnerKey int64) ([]licensing.Product, error) {
	var rows []productRow
	if err := s.db.SelectContext(ctx, &rows, `
		SELECT sku_id, name, part_number, requires, excludes, allowed_locations, prohibited_locations, service_plans
		FROM products WHERE partner_key = $1 ORDER BY sku_id`, partnerKey); err != nil {
		return nil, err
	}
	out := make([]licensing.Product, len(rows))
	for i, r := range rows {
		out[i] = r.product()
	}
	return out, nil
}

// Catalog returns the partner's catalog as a map for rule evaluation.
func (s *Store) Catalog(ctx context.Context, partnerKey int64) (licensing.Catalog, error) {
	products, err := s.ListProducts(ctx, partnerKey)
	if err != nil {
		return nil, err
	}
	c := make(licensing.Catalog, len(products))
	for _, p := range products {
		c[p.SKU] = p
	}
	return c, nil
}

// operationCatalogJSON is the catalog an operation keeps for its workers'
// rules: the products without their service plans. Only intake checks
// plans (checkServicePlans), and a synced Microsoft 365 catalog lists
// dozens of named plans per product, which every operation's row would
// otherwise carry and every worker decode.
func operationCatalogJSON(c licensing.Catalog) ([]byte, error) {
	rules := make(licensing.Catalog, len(c))
	for sku, p := range c {
		p.ServicePlans = nil
		rules[sku] = p
	}
	return json.Marshal(rules)
}

// plansJSON is a product's service plans as a jsonb parameter, NULL for nil.
func plansJSON(plans []licensing.ServicePlan) (any, error) {
	if plans == nil {
		return nil, nil
	}
	b, err := json.Marshal(plans)
	return string(b), err
}
