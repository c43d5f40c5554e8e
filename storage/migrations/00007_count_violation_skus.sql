-- +goose Up
-- The SKUs a user found no seat for when it failed with CountViolation, as
-- the worker decided it (NULL otherwise, and for a directory's own refusal).
-- The checker uses it: no user of an operation fails short of a SKU while
-- the same operation leaves a grant of that SKU unused.
ALTER TABLE operation_items ADD COLUMN short_skus text[];

-- +goose Down
ALTER TABLE operation_items DROP COLUMN short_skus;
