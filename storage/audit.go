package storage

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jmoiron/sqlx"
)

// AuditEntry is one change made through the API: who made it (the token's
// partner, name and role), what it was (an action such as
// "operation.create", the customer and object it touched, and details such
// as counts or old and new values), and when.
type AuditEntry struct {
	ID         int64           `json:"id" db:"id"`
	PartnerKey int64           `json:"-" db:"partner_key"`
	TokenID    *int64          `json:"token_id" db:"token_id"`
	TokenName  string          `json:"token_name" db:"token_name"`
	Role       string          `json:"role" db:"role"`
	Action     string          `json:"action" db:"action"`
	CustomerID *string         `json:"customer_id" db:"customer_id"`
	ObjectID   string          `json:"object_id" db:"object_id"`
	Details    json.RawMessage `json:"details" db:"details"`
	CreatedAt  time.Time       `json:"created_at" db:"created_at"`
}

// Audit starts an audit entry for a change made by p. customerID may be
// "" for changes outside any customer (the catalog, creating a customer).
// details must be JSON-encodable; nil records an empty object.
func (p *Principal) Audit(action, customerID, objectID string, details any) (AuditEntry, error) {
	e := AuditEntry{
		PartnerKey: p.PartnerKey, TokenName: p.TokenName, Role: p.Role,
		Action: action, ObjectID: objectID, Details: json.RawMessage(`{}`),
	}
	if p.TokenID != 0 {
		id := p.TokenID
		e.TokenID = &id
	}
	if customerID != "" {
		e.CustomerID = &customerID
	}
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return e, err
		}
		e.Details = b
	}
	return e, nil
}

// RecordAudit appends e to the audit log.
func (s *Store) RecordAudit(ctx context.Context, e AuditEntry) error {
	return insertAudit(ctx, s.db, e)
}

// insertAudit appends e within q, so that a change and its entry can share
// a transaction.
func insertAudit(ctx context.Context, q sqlx.ExecerContext, e AuditEntry) error {
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
func (s *Store) ListAudit(ctx context.Context, partnerKey int64, limit, offset int) ([]AuditEntry, int, error) {
	var total int
	if err := s.db.GetContext(ctx, &total, `SELECT count(*) FROM audit_log WHERE partner_key = $1`, partnerKey); err != nil {
		return nil, 0, err
	}
	out := []AuditEntry{}
	err := s.db.SelectContext(ctx, &out, `
		SELECT id, partner_key, token_id, token_name, role, action, customer_id, object_id, details, created_at
		FROM audit_log WHERE partner_key = $1
		ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, partnerKey, limit, offset)
	return out, total, err
}
