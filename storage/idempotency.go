package storage

import (
	"bytes"
	"context"
	"errors"

	"github.com/jmoiron/sqlx"

	"github.com/licenseops/licenseops/licensing"
)

// StoredResponse is the first answer to an idempotent request, replayed to
// every retry with the same key and body.
type StoredResponse struct {
	Status   int    `db:"response_status"`
	Body     []byte `db:"response_body"`
	Location string `db:"location"`
}

// IdempotencyKey ties an operation's creation to the caller's key: the
// response is stored in the same transaction as the operation, so a key
// can never stand for two operations, nor for one that was rolled back.
type IdempotencyKey struct {
	Key string
	// Respond renders the response of the created operation.
	Respond func(licensing.Operation) StoredResponse
}

// ClaimIdempotencyKey claims key for a request whose fingerprint is hash.
// It returns the stored response when the same request was answered before,
// (nil, nil) when the caller now owns the key, IdempotencyKeyReused when the
// key was used with another body, and IdempotencyKeyInUse while the first
// request is still being taken. Keys live 24 hours; a claim abandoned by a
// crashed process for a minute may be taken over by a retry.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, partnerKey int64, key string, hash []byte) (*StoredResponse, error) {
	var claimed bool
	err := s.db.QueryRowContext(ctx, `
		INSERT INTO idempotency_keys AS k (partner_key, key, request_hash) VALUES ($1, $2, $3)
		ON CONFLICT (partner_key, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, created_at = now(),
			state = 'in_flight', response_status = NULL, response_body = NULL, location = NULL
		WHERE k.created_at < now() - interval '24 hours'
		   OR (k.state = 'in_flight' AND k.created_at < now() - interval '1 minute' AND k.request_hash = EXCLUDED.request_hash)
		RETURNING true`, partnerKey, key, hash).Scan(&claimed)
	if err == nil {
		return nil, nil
	}
	if !isNoRows(err) {
		return nil, err
	}
	var row struct {
		State string `db:"state"`
		Hash  []byte `db:"request_hash"`
		StoredResponse
	}
	if err := s.db.GetContext(ctx, &row, `
		SELECT state, request_hash, COALESCE(response_status, 0) AS response_status,
			COALESCE(response_body, ''::bytea) AS response_body, COALESCE(location, '') AS location
		FROM idempotency_keys WHERE partner_key = $1 AND key = $2`, partnerKey, key); err != nil {
		if isNoRows(err) { // pruned between the two statements: try once more
			return s.ClaimIdempotencyKey(ctx, partnerKey, key, hash)
		}
		return nil, err
	}
	switch {
	case !bytes.Equal(row.Hash, hash):
		return nil, licensing.Errorf(licensing.CodeIdempotencyKeyReused,
			"Idempotency-Key %q was already used with a different request body; use a new key for a new request", key)
	case row.State == "in_flight":
		return nil, licensing.Errorf(licensing.CodeIdempotencyKeyInUse,
			"a request with Idempotency-Key %q is still being processed; retry in a few seconds", key)
	default:
		return &row.StoredResponse, nil
	}
}

// ReleaseIdempotencyKey forgets a claimed key whose request failed, so that
// the client may retry it (for example after buying seats).
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, partnerKey int64, key string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE partner_key = $1 AND key = $2 AND state = 'in_flight'`, partnerKey, key)
	return err
}

// completeIdempotencyKey stores the response in the transaction that
// created the operation. Only a claim still in flight can be completed: a
// request slow enough for a retry to take its claim over (a minute) must not
// create a second operation when it finally gets here after the retry did,
// so it fails and its transaction rolls back; a retry then gets the stored
// answer.
func completeIdempotencyKey(ctx context.Context, tx *sqlx.Tx, partnerKey int64, key string, resp StoredResponse) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE idempotency_keys SET state = 'done', response_status = $3, response_body = $4, location = $5
		WHERE partner_key = $1 AND key = $2 AND state = 'in_flight'`, partnerKey, key, resp.Status, resp.Body, resp.Location)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(err, licensing.Errorf(licensing.CodeIdempotencyKeyInUse,
			"another request with Idempotency-Key %q was completed first; retry to get its answer", key))
	}
	return nil
}

// PruneIdempotencyKeys deletes keys older than 24 hours and reports how many.
func (s *Store) PruneIdempotencyKeys(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'`)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
