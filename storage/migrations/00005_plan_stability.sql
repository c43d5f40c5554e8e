-- +goose Up
-- Every per-user lookup of assignments is by (customer, user), which the
-- primary key serves. The SKU index tempted the planner into reading a
-- customer's whole set of assignments per user whenever its statistics
-- were older than a large rollout.
DROP INDEX assignments_by_sku;

-- +goose Down
CREATE INDEX assignments_by_sku ON assignments (customer_key, sku_id);
