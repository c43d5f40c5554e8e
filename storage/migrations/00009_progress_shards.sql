-- +goose Up
-- Progress counters in 64 shards per operation instead of 16. Each batch
-- adds to the shard of its connection (backend PID modulo the shards) and
-- holds that row until it commits; with three worker processes, six
-- batches of one operation are in flight, and among 16 shards two of them
-- shared one two times in three, the second waiting for the first's commit.
-- A reader sums at most 64 rows.
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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION operation_progress_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO operation_progress AS p (operation_id, shard, succeeded, failed)
    SELECT operation_id, pg_backend_pid() % 16, sum(succeeded), sum(failed)
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
