-- +goose Up
-- Service plans: the plans a product bundles (products.service_plans, a
-- JSON array of {"id", "name"}), the plans a user has switched off in each
-- license it holds (assignments.disabled_plans; empty: every plan on), the
-- plans an operation switches off per SKU it assigns (operations.
-- disabled_plans, a JSON object of SKU to plan IDs; NULL: it changes no
-- plan), and the held SKUs whose plans an item changed
-- (operation_items.plans_changed; NULL for operations without plans).
ALTER TABLE products ADD COLUMN service_plans jsonb NOT NULL DEFAULT '[]';
ALTER TABLE assignments ADD COLUMN disabled_plans text[] NOT NULL DEFAULT '{}';
ALTER TABLE operations ADD COLUMN disabled_plans jsonb;
ALTER TABLE operation_items ADD COLUMN plans_changed text[];

-- +goose Down
-- Their items would assign every plan on and change no held license: drop them.
DELETE FROM operation_items WHERE operation_id IN (SELECT id FROM operations WHERE disabled_plans IS NOT NULL);
DELETE FROM operations WHERE disabled_plans IS NOT NULL;
ALTER TABLE operation_items DROP COLUMN plans_changed;
ALTER TABLE operations DROP COLUMN disabled_plans;
ALTER TABLE assignments DROP COLUMN disabled_plans;
ALTER TABLE products DROP COLUMN service_plans;
