-- +goose Up
-- Operations that can be stopped, undone and scheduled.
--
-- scheduled: waiting for not_before; its items hold no seats yet (they are
-- granted when it starts). cancelled: the operation ended because it was
-- cancelled; items not yet applied then were not applied.
ALTER TABLE operations DROP CONSTRAINT operations_status_check;
ALTER TABLE operations ADD CONSTRAINT operations_status_check
    CHECK (status IN ('scheduled','queued','running','completed','completed_with_errors','cancelled'));
ALTER TABLE operations DROP CONSTRAINT operations_source_check;
ALTER TABLE operations ADD CONSTRAINT operations_source_check
    CHECK (source IN ('api','cleanup','undo'));
ALTER TABLE operations ADD COLUMN not_before timestamptz;
-- A cancel is recorded at once; the operation becomes 'cancelled' when its
-- last item in flight (an external directory call) has been recorded.
ALTER TABLE operations ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE operations ADD COLUMN cancelled_by text;
ALTER TABLE operations ADD COLUMN cancelled integer NOT NULL DEFAULT 0;
-- The operation an undo reverses. Kept as a plain ID (no foreign key): the
-- undo's own items carry everything it needs, and an undo outlives nothing
-- that deleting its original would break.
ALTER TABLE operations ADD COLUMN undo_of uuid;
-- The scheduler's scan: scheduled operations by start time.
CREATE INDEX operations_scheduled ON operations (not_before) WHERE status = 'scheduled';
-- Finding the undo of an operation (idempotent undo, and "undone by").
CREATE INDEX operations_undo_of ON operations (undo_of) WHERE undo_of IS NOT NULL;

ALTER TABLE operation_items DROP CONSTRAINT operation_items_status_check;
ALTER TABLE operation_items ADD CONSTRAINT operation_items_status_check
    CHECK (status IN ('pending','applying','succeeded','failed','would_revoke','cancelled'));
-- A change of its own for this item, instead of the operation's (NULL):
-- an undo gives each user back what that user had. change_assign is a
-- subset of the operation's assign, whose positions granted_mask uses.
ALTER TABLE operation_items ADD COLUMN change_assign text[];
ALTER TABLE operation_items ADD COLUMN change_revoke text[];
ALTER TABLE operation_items ADD COLUMN change_location text;
-- The state the user must still be in for the item's change to apply (an
-- undo: what the original left); otherwise the item fails ChangedSince.
ALTER TABLE operation_items ADD COLUMN expect_licenses text[];
ALTER TABLE operation_items ADD COLUMN expect_location text;
-- The user's usage location before this item changed it (NULL when the
-- item did not change it), so that an undo can restore it.
ALTER TABLE operation_items ADD COLUMN location_before text;

ALTER TABLE operation_progress ADD COLUMN cancelled integer NOT NULL DEFAULT 0;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION operation_progress_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO operation_progress AS p (operation_id, shard, succeeded, failed, cancelled)
    SELECT operation_id, pg_backend_pid() % 64, sum(succeeded), sum(failed), sum(cancelled)
    FROM (
        SELECT operation_id,
               count(*) FILTER (WHERE status IN ('succeeded','would_revoke')) AS succeeded,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'cancelled') AS cancelled
        FROM new_items GROUP BY operation_id
        UNION ALL
        SELECT operation_id,
               -count(*) FILTER (WHERE status IN ('succeeded','would_revoke')),
               -count(*) FILTER (WHERE status = 'failed'),
               -count(*) FILTER (WHERE status = 'cancelled')
        FROM old_items GROUP BY operation_id
    ) d
    GROUP BY operation_id
    HAVING sum(succeeded) <> 0 OR sum(failed) <> 0 OR sum(cancelled) <> 0
    ON CONFLICT (operation_id, shard) DO UPDATE
        SET succeeded = p.succeeded + excluded.succeeded, failed = p.failed + excluded.failed,
            cancelled = p.cancelled + excluded.cancelled;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION operation_progress_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO operation_progress AS p (operation_id, shard, succeeded, failed)
    SELECT operation_id, pg_backend_pid() % 64, sum(succeeded), sum(failed)
    FROM (
        SELECT operation_id,
               count(*) FILTER (WHERE status IN ('succeeded','would_revoke')) AS succeeded,
               count(*) FILTER (WHERE status = 'failed') AS failed
        FROM new_items GROUP BY operation_id
        UNION ALL
        SELECT operation_id,
               -count(*) FILTER (WHERE status IN ('succeeded','would_revoke')),
               -count(*) FILTER (WHERE status = 'failed')
        FROM old_items GROUP BY operation_id
    ) d
    GROUP BY operation_id
    HAVING sum(succeeded) <> 0 OR sum(failed) <> 0
    ON CONFLICT (operation_id, shard) DO UPDATE
        SET succeeded = p.succeeded + excluded.succeeded, failed = p.failed + excluded.failed;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
ALTER TABLE operation_progress DROP COLUMN cancelled;
ALTER TABLE operation_items DROP COLUMN location_before, DROP COLUMN expect_location, DROP COLUMN expect_licenses,
    DROP COLUMN change_location, DROP COLUMN change_revoke, DROP COLUMN change_assign;
DELETE FROM operation_items WHERE status = 'cancelled';
ALTER TABLE operation_items DROP CONSTRAINT operation_items_status_check;
ALTER TABLE operation_items ADD CONSTRAINT operation_items_status_check
    CHECK (status IN ('pending','applying','succeeded','failed','would_revoke'));
DROP INDEX operations_undo_of;
DROP INDEX operations_scheduled;
ALTER TABLE operations DROP COLUMN undo_of, DROP COLUMN cancelled, DROP COLUMN cancelled_by,
    DROP COLUMN cancel_requested_at, DROP COLUMN not_before;
DELETE FROM operations WHERE status IN ('scheduled','cancelled') OR source = 'undo';
ALTER TABLE operations DROP CONSTRAINT operations_source_check;
ALTER TABLE operations ADD CONSTRAINT operations_source_check CHECK (source IN ('api','cleanup'));
ALTER TABLE operations DROP CONSTRAINT operations_status_check;
ALTER TABLE operations ADD CONSTRAINT operations_status_check
    CHECK (status IN ('queued','running','completed','completed_with_errors'));
