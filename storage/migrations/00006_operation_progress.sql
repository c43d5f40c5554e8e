-- +goose Up
-- Progress of running operations, kept as counters so that watching an
-- operation reads a few rows instead of counting its items (a scan of
-- 100,000 rows per poll of a tenant-wide rollout, and the CLI, the console
-- and Grafana poll every second).
--
-- A statement-level trigger folds every change of item statuses into the
-- counters, whichever code path made it (worker batches, external
-- directory calls, the sweeper), in the transaction of the change: the
-- counters are exactly as current as the items. Each connection adds to
-- its own shard (its backend PID modulo 64), so concurrent batches of one
-- operation seldom queue on one counter row, which a batch holds until it
-- commits (with 16 shards, six batches of three workers shared one two
-- times in three); a reader sums the shards.
CREATE TABLE operation_progress (
    operation_id uuid NOT NULL REFERENCES operations ON DELETE CASCADE,
    shard        smallint NOT NULL,
    succeeded    integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (operation_id, shard)
);

-- +goose StatementBegin
CREATE FUNCTION operation_progress_count() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER operation_items_progress AFTER UPDATE ON operation_items
    REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION operation_progress_count();

-- Operations running when this migration runs get their counters now.
INSERT INTO operation_progress (operation_id, shard, succeeded, failed)
SELECT i.operation_id, 0,
       count(*) FILTER (WHERE i.status IN ('succeeded','would_revoke')),
       count(*) FILTER (WHERE i.status = 'failed')
FROM operation_items i JOIN operations o ON o.id = i.operation_id
WHERE o.finished_at IS NULL
GROUP BY i.operation_id;

-- +goose Down
DROP TRIGGER operation_items_progress ON operation_items;
DROP FUNCTION operation_progress_count();
DROP TABLE operation_progress;
