package storage

import (
	"context"
	"time"

	"github.com/lib/pq"
)

// UnfinishedOperation is what the sweeper needs to know about an operation
// that is not completed yet.
type UnfinishedOperation struct {
	ID        string    `db:"id"`
	Queue     string    `db:"queue"`
	CreatedAt time.Time `db:"created_at"`
	// ReadyAt is when its tasks were first to be enqueued: its intake, or
	// the start of a scheduled operation.
	ReadyAt    time.Time  `db:"ready_at"`
	EnqueuedAt *time.Time `db:"enqueued_at"`
}

// UnfinishedOperations lists operations not yet completed, oldest first:
// started ones, and scheduled ones that were cancelled before they started
// (they only need finalizing).
func (s *Store) UnfinishedOperations(ctx context.Context) ([]UnfinishedOperation, error) {
	var out []UnfinishedOperation
	err := s.db.SelectContext(ctx, &out, `
		SELECT id, queue, created_at, enqueued_at,
			CASE WHEN not_before IS NULL THEN created_at ELSE COALESCE(started_at, created_at) END AS ready_at
		FROM operations
		WHERE finished_at IS NULL AND (status <> 'scheduled' OR cancel_requested_at IS NOT NULL) ORDER BY created_at`)
	return out, err
}

// PendingUserIDs lists the users of an operation whose items are not terminal.
func (s *Store) PendingUserIDs(ctx context.Context, opID string) ([]string, error) {
	var out pq.StringArray
	err := s.db.QueryRowContext(ctx, `
		SELECT COALESCE(array_agg(user_id ORDER BY user_id), '{}') FROM operation_items
		WHERE operation_id = $1 AND status IN ('pending','applying')`, opID).Scan(&out)
	return out, err
}

// MarkEnqueued records that every item of an operation has had a task enqueued.
func (s *Store) MarkEnqueued(ctx context.Context, opID string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE operations SET enqueued_at = now() WHERE id = $1`, opID)
	return err
}

// LastProgress returns when an item of the operation last became terminal
// (zero if none has).
func (s *Store) LastProgress(ctx context.Context, opID string) (time.Time, error) {
	var t *time.Time
	err := s.db.QueryRowContext(ctx, `SELECT max(finished_at) FROM operation_items WHERE operation_id = $1`, opID).Scan(&t)
	if t == nil {
		return time.Time{}, err
	}
	return *t, err
}

// TryLock takes a session advisory lock on a dedicated connection, so that
// only one process at a time does a given periodic job. unlock releases it;
// a crashed holder's lock goes with its connection.
func (s *Store) TryLock(ctx context.Context, key int64) (ok bool, unlock func(), err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false, nil, err
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil || !ok {
		_ = conn.Close() // the lock query's error is the one to report
		return false, nil, err
	}
	return true, func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
		_ = conn.Close() // closing the session releases the lock anyway
	}, nil
}
