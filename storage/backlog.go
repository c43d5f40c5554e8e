package storage

import (
	"context"
	"time"
)

// QueueBacklog is the unfinished work of one queue: how many operations are
// not finished, how many of their users still wait for their change, and
// how long ago the oldest of them was ready to run (accepted, or started
// when it was scheduled). Scheduled operations that have not started are
// not work yet; they are only counted (Scheduled).
type QueueBacklog struct {
	Queue        string
	Unfinished   int
	ItemsPending int
	OldestAge    time.Duration
	Scheduled    int
}

// Backlog measures the unfinished work per queue in one statement, for the
// sweeper's gauges. Queues without unfinished operations are absent.
// Pending items are never settled, so the count walks the partial index of
// unsettled items, which the sweeper keeps down to about the pending ones;
// the items of scheduled operations are not counted at all.
func (s *Store) Backlog(ctx context.Context) ([]QueueBacklog, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT o.queue, count(*) FILTER (WHERE o.status <> 'scheduled'), COALESCE(sum(p.n), 0),
		       COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(CASE WHEN o.not_before IS NULL THEN o.created_at
		           ELSE COALESCE(o.started_at, o.not_before) END) FILTER (WHERE o.status <> 'scheduled'))::float8, 0),
		       count(*) FILTER (WHERE o.status = 'scheduled')
		FROM operations o
		CROSS JOIN LATERAL (
			SELECT count(*) AS n FROM operation_items i
			WHERE o.status <> 'scheduled' AND i.operation_id = o.id AND NOT i.settled AND i.status IN ('pending','applying')
		) p
		WHERE o.finished_at IS NULL
		GROUP BY o.queue ORDER BY o.queue`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []QueueBacklog
	for rows.Next() {
		var b QueueBacklog
		var age float64
		if err := rows.Scan(&b.Queue, &b.Unfinished, &b.ItemsPending, &age, &b.Scheduled); err != nil {
			return nil, err
		}
		b.OldestAge = time.Duration(max(age, 0) * float64(time.Second))
		out = append(out, b)
	}
	return out, rows.Err()
}
