-- +goose Up
-- Partners own everything below them; every lookup that starts from a client
-- ID is scoped by partner_key, which is how isolation is enforced in SQL.
CREATE TABLE partners (
    partner_key bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tokens are stored as SHA-256 hashes only; the secret is shown once.
CREATE TABLE tokens (
    id           bigserial PRIMARY KEY,
    partner_key  bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('global_admin','admin_agent','user_management_admin','helpdesk_agent','sales_agent','reader')),
    hash         bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE products (
    partner_key          bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    sku_id               text NOT NULL,
    name                 text NOT NULL,
    part_number          text NOT NULL DEFAULT '',
    requires             text[] NOT NULL DEFAULT '{}',
    excludes             text[] NOT NULL DEFAULT '{}',
    allowed_locations    text[],          -- NULL: allowed everywhere
    prohibited_locations text[] NOT NULL DEFAULT '{}',
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_key, sku_id)
);

-- Customer IDs are chosen by clients and only unique within a partner, so
-- children reference the surrogate customer_key: compact, and it can never
-- reveal another partner's customer.
CREATE TABLE customers (
    customer_key           bigserial PRIMARY KEY,
    partner_key            bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    id                     text NOT NULL,
    name                   text NOT NULL,
    default_usage_location text,
    directory_kind         text NOT NULL DEFAULT 'local' CHECK (directory_kind IN ('local','msgraph')),
    directory_tenant_id    text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_key, id)
);

CREATE TABLE users (
    customer_key        bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    id                  text NOT NULL,
    user_principal_name text NOT NULL,
    display_name        text NOT NULL,
    usage_location      text,
    account_enabled     boolean NOT NULL DEFAULT true,
    last_sign_in_at     timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_key, id)
);
-- The user list, summaries and reports all sort by display name, then ID.
CREATE INDEX users_by_display_name ON users (customer_key, display_name, id);

-- Seats. reserved counts seats held by unfinished operations: granted at
-- intake or taken by a worker, and settled into consumed in batches (see
-- storage/seats.go). The CHECK is the last guard against overselling.
CREATE TABLE subscriptions (
    customer_key bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    sku_id       text NOT NULL,
    total        integer NOT NULL CHECK (total >= 0),
    consumed     integer NOT NULL DEFAULT 0 CHECK (consumed >= 0),
    reserved     integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_key, sku_id),
    CONSTRAINT seats_within_total CHECK (consumed + reserved <= total)
);

-- The local license directory, and the mirror of an external one.
-- One assignment per (customer, user, SKU) by the primary key.
CREATE TABLE assignments (
    customer_key bigint NOT NULL,
    user_id      text NOT NULL,
    sku_id       text NOT NULL,
    operation_id uuid,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_key, user_id, sku_id),
    FOREIGN KEY (customer_key, user_id) REFERENCES users ON DELETE CASCADE
);
CREATE INDEX assignments_by_sku ON assignments (customer_key, sku_id);

CREATE TABLE operations (
    id                     uuid PRIMARY KEY,
    partner_key            bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    customer_key           bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    status                 text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued','running','completed','completed_with_errors')),
    source                 text NOT NULL DEFAULT 'api' CHECK (source IN ('api','cleanup')),
    queue                  text NOT NULL,
    assign                 text[] NOT NULL DEFAULT '{}',
    revoke                 text[] NOT NULL DEFAULT '{}',
    usage_location         text,
    allow_partial          boolean NOT NULL DEFAULT false,
    dry_run                boolean NOT NULL DEFAULT false,
    -- The rules in force at intake, so every item of one operation is judged
    -- by the same catalog, and workers can cache it for the operation's life.
    catalog                jsonb NOT NULL DEFAULT '{}',
    default_usage_location text,
    total                  integer NOT NULL,
    succeeded              integer NOT NULL DEFAULT 0,
    failed                 integer NOT NULL DEFAULT 0,
    created_by             text NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    enqueued_at            timestamptz,
    started_at             timestamptz,
    finished_at            timestamptz
);
CREATE INDEX operations_by_customer ON operations (customer_key, created_at DESC, id);
CREATE INDEX operations_unfinished ON operations (created_at) WHERE finished_at IS NULL;

-- One item per user of an operation. granted_mask has bit i set when a seat
-- for assign[i] is reserved for this item (at intake or by the worker).
CREATE TABLE operation_items (
    operation_id   uuid NOT NULL REFERENCES operations ON DELETE CASCADE,
    user_id        text NOT NULL,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','succeeded','failed','would_revoke')),
    granted_mask   integer NOT NULL DEFAULT 0,
    assigned       text[] NOT NULL DEFAULT '{}',
    revoked        text[] NOT NULL DEFAULT '{}',
    licenses       text[],
    usage_location text,
    error_code     text,
    error_message  text,
    settled        boolean NOT NULL DEFAULT false,
    finished_at    timestamptz,
    PRIMARY KEY (operation_id, user_id)
);
-- Seat settlement visits only items not yet settled.
CREATE INDEX operation_items_unsettled ON operation_items (operation_id) WHERE NOT settled;

CREATE TABLE idempotency_keys (
    partner_key     bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    state           text NOT NULL DEFAULT 'in_flight' CHECK (state IN ('in_flight','done')),
    response_status integer,
    response_body   bytea,
    location        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_key, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys, operation_items, operations, assignments, subscriptions, users, customers, products, tokens, partners;
