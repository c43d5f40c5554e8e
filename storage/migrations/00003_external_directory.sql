-- +goose Up
-- Items of customers whose licenses live in an external directory pass
-- through 'applying': the rules passed, the seats are reserved and the
-- directory is being called. No row lock is held during that call.
ALTER TABLE operation_items DROP CONSTRAINT operation_items_status_check;
ALTER TABLE operation_items ADD CONSTRAINT operation_items_status_check
    CHECK (status IN ('pending','applying','succeeded','failed','would_revoke'));

-- A per-user claim held across the directory call, so that two operations
-- never change the same user at once (the second waits and retries). It is
-- a lease in a column, not a lock: a crashed worker's claim is resumed by
-- the retry of the same item.
ALTER TABLE users ADD COLUMN applying_operation uuid;

-- +goose Down
ALTER TABLE users DROP COLUMN applying_operation;
ALTER TABLE operation_items DROP CONSTRAINT operation_items_status_check;
ALTER TABLE operation_items ADD CONSTRAINT operation_items_status_check
    CHECK (status IN ('pending','succeeded','failed','would_revoke'));
