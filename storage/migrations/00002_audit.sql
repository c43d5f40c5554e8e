-- +goose Up
-- The audit log: who changed what through the API, and when. Who is copied
-- (token name and role) rather than only referenced, so an entry still reads
-- right after its token is revoked or renamed; customer_id is the client's ID
-- for the same reason. Entries are never updated.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    partner_key bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    token_id    bigint REFERENCES tokens ON DELETE SET NULL,
    token_name  text NOT NULL,
    role        text NOT NULL,
    action      text NOT NULL,
    customer_id text,
    object_id   text NOT NULL DEFAULT '',
    details     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- GET /v1/audit pages a partner's entries newest first.
CREATE INDEX audit_log_by_partner ON audit_log (partner_key, created_at DESC, id DESC);

-- +goose Down
DROP TABLE audit_log;
