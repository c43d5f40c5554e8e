-- +goose Up
-- Cleanup policies: per customer, a schedule (5-field cron in a time zone)
-- and a rule that picks users whose licenses are taken back. The scheduler
-- reads the enabled ones; every run becomes an ordinary license operation.
CREATE TABLE cleanup_policies (
    id               uuid PRIMARY KEY,
    partner_key      bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    customer_key     bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    name             text NOT NULL,
    schedule         text NOT NULL,
    time_zone        text NOT NULL,
    rule_kind        text NOT NULL CHECK (rule_kind IN ('disabled_accounts','inactive')),
    inactive_days    integer CHECK (inactive_days > 0),
    skus             text[],                   -- NULL: every SKU the user holds
    exclude_user_ids text[] NOT NULL DEFAULT '{}',
    dry_run          boolean NOT NULL,
    enabled          boolean NOT NULL,
    -- Ticks before this instant never run: it is reset when the schedule or
    -- time zone changes and when the policy is enabled again, so a tick that
    -- passed before the change (or a stale task of it) cannot fire late.
    schedule_since   timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((rule_kind = 'inactive') = (inactive_days IS NOT NULL))
);
CREATE INDEX cleanup_policies_by_customer ON cleanup_policies (customer_key, created_at, id);
CREATE INDEX cleanup_policies_enabled ON cleanup_policies (id) WHERE enabled;

-- An operation started by a cleanup policy points back at it.
ALTER TABLE operations ADD COLUMN policy_id uuid REFERENCES cleanup_policies ON DELETE SET NULL;

-- One row per run of a policy. The UNIQUE (policy_id, tick) is the guard that
-- makes each scheduled tick run once however many schedulers fire it and
-- however often its task is delivered. Manual runs have no tick (NULL never
-- conflicts). A run that matched nobody has no operation.
CREATE TABLE cleanup_runs (
    id            uuid PRIMARY KEY,
    policy_id     uuid NOT NULL REFERENCES cleanup_policies ON DELETE CASCADE,
    tick          timestamptz,
    trigger       text NOT NULL CHECK (trigger IN ('schedule','manual')),
    dry_run       boolean NOT NULL,
    matched_users integer NOT NULL DEFAULT 0,
    operation_id  uuid REFERENCES operations ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (policy_id, tick),
    CHECK ((trigger = 'schedule') = (tick IS NOT NULL))
);
CREATE INDEX cleanup_runs_by_policy ON cleanup_runs (policy_id, created_at DESC, id);

-- +goose Down
DROP TABLE cleanup_runs;
ALTER TABLE operations DROP COLUMN policy_id;
DROP TABLE cleanup_policies;
