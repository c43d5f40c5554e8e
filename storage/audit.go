package storage

import (
	"context"
	"encoding/json"

	"github.com/jmoiron/sqlx"

	"github.com/licenseops/licenseops/licensing"
)

// RecordAudit appends e to the audit log.
func (s *Store) RecordAudit(ctx context.Context, e licensing.AuditEntry) error {
	return insertAudit(ctx, s.db, e)
}

// insertAudit appends e within q, so that a change and its entry can share
// a transaction.
func insertAudit(ctx context.Context, q sqlx.ExecerContext, e licensing.AuditEntry) error {
	details := e.Details
	if len(details) == 0 {
		details = json.RawMessage(`{}`)
	}
	_, err := q.ExecContext(ctx, `
		INSERT INTO audit_log (partner_key, token_id, token_name, role, action, customer_id, object_id, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		e.PartnerKey, e.TokenID, e.TokenName, e.Role, e.Action, e.CustomerID, e.ObjectID, []byte(details))
	return err
}

// ListAudit returns one page of a partner's audit log, newest first, and the
// number of entries in all.
func (s *Store) ListAudit(ctx context.Context, partnerKey int64, limit, offset int) ([]licensing.AuditEntry, int, error) {
	var total int
	if err := s.db.GetContext(ctx, &total, `SELECT count(*) FROM audit_log WHERE partner_key = $1`, partnerKey); err != nil {
		return nil, 0, err
	}
	out := []licensing.AuditEntry{}
	err := s.db.SelectContext(ctx, &out, `
		SELECT id, partner_key, token_id, token_name, role, action, customer_id, object_id, details, created_at
		FROM audit_log WHERE partner_key = $1
		ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, partnerKey, limit, offset)
	return out, total, err
}
