-- +goose Up
-- Blast radius of a cleanup policy: a real run that would change more users
-- than max_changes, or more than max_percent of the customer's users,
-- changes none and is recorded as blocked. NULL means no limit of that
-- kind. Policies that exist already keep running as they did (no limit);
-- the API gives new policies 500 users and 10 %.
ALTER TABLE cleanup_policies ADD COLUMN max_changes integer CHECK (max_changes > 0);
ALTER TABLE cleanup_policies ADD COLUMN max_percent double precision CHECK (max_percent > 0 AND max_percent <= 100);

-- blocked: the run matched more users than its limit (limit_users, the
-- smaller of the policy's two limits for the customer's size then) and
-- started no operation. confirmed: a manual run told to go over the limit.
ALTER TABLE cleanup_runs ADD COLUMN blocked boolean NOT NULL DEFAULT false;
ALTER TABLE cleanup_runs ADD COLUMN limit_users integer;
ALTER TABLE cleanup_runs ADD COLUMN confirmed boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE cleanup_runs DROP COLUMN confirmed, DROP COLUMN limit_users, DROP COLUMN blocked;
ALTER TABLE cleanup_policies DROP COLUMN max_percent, DROP COLUMN max_changes;
