package licensing

import (
	"encoding/json"
	"time"
)

// Principal is who is calling: the partner a token belongs to and its role.
type Principal struct {
	PartnerKey int64  `db:"partner_key"`
	PartnerID  string `db:"partner_id"`
	TokenID    int64  `db:"token_id"`
	TokenName  string `db:"token_name"`
	Role       string `db:"role"`
}

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	ID         int64      `db:"id" json:"id"`
	PartnerID  string     `db:"partner_id" json:"partner_id"`
	Name       string     `db:"name" json:"name"`
	Role       string     `db:"role" json:"role"`
	CreatedAt  time.Time  `db:"created_at" json:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at" json:"last_used_at"`
	RevokedAt  *time.Time `db:"revoked_at" json:"revoked_at"`
}

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
