package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"

	"github.com/jmoiron/sqlx"

	"github.com/licenseops/licenseops/licensing"
)

// tokenPrefix makes leaked licenseops tokens recognisable to secret scanners.
const tokenPrefix = "lops_"

func hashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func (s *Store) ensurePartner(ctx context.Context, q sqlx.QueryerContext, partnerID string) (int64, error) {
	var key int64
	err := sqlx.GetContext(ctx, q, &key, `
		WITH ins AS (
			INSERT INTO partners (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING partner_key
		)
		SELECT partner_key FROM ins UNION ALL SELECT partner_key FROM partners WHERE id = $1
		LIMIT 1`, partnerID)
	return key, err
}

// CreateToken creates the partner if needed and a token for it. The secret
// (32 random bytes) is returned once; only its SHA-256 is stored.
func (s *Store) CreateToken(ctx context.Context, partnerID, name, role string) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		key, err := s.ensurePartner(ctx, tx, partnerID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO tokens (partner_key, name, role, hash) VALUES ($1, $2, $3, $4)`,
			key, name, role, hashToken(secret))
		return err
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// Authenticate resolves a bearer secret to its principal. It returns
// (nil, nil) for an unknown or revoked token. last_used_at is refreshed at
// most once a minute so that authentication stays a read on the hot path.
func (s *Store) Authenticate(ctx context.Context, secret string) (*licensing.Principal, error) {
	var p licensing.Principal
	err := s.db.GetContext(ctx, &p, `
		SELECT t.id AS token_id, t.name AS token_name, t.role, p.partner_key, p.id AS partner_id
		FROM tokens t JOIN partners p USING (partner_key)
		WHERE t.hash = $1 AND t.revoked_at IS NULL`, hashToken(secret))
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	_, err = s.db.ExecContext(ctx, `
		UPDATE tokens SET last_used_at = now()
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, p.TokenID)
	return &p, err
}

// ListTokens lists the tokens of a partner (all partners when partnerID is "").
func (s *Store) ListTokens(ctx context.Context, partnerID string) ([]licensing.TokenInfo, error) {
	var out []licensing.TokenInfo
	err := s.db.SelectContext(ctx, &out, `
		SELECT t.id, p.id AS partner_id, t.name, t.role, t.created_at, t.last_used_at, t.revoked_at
		FROM tokens t JOIN partners p USING (partner_key)
		WHERE $1 = '' OR p.id = $1 ORDER BY t.id`, partnerID)
	return out, err
}

// RevokeToken revokes a token by ID; it is refused at once afterwards.
func (s *Store) RevokeToken(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("token", strconv.FormatInt(id, 10))
	}
	return nil
}
