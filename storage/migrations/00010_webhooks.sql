-- +goose Up
-- Webhooks: a partner's HTTPS endpoints and the events they receive. The
-- secret signs every delivery (Standard Webhooks); it is shown once, when
-- the webhook is created, and kept here because each delivery needs it.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    partner_key bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[] NOT NULL CHECK (cardinality(events) > 0),
    description text NOT NULL DEFAULT '',
    secret      text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_by_partner ON webhooks (partner_key, created_at, id);

-- The transactional outbox. An event is written in the transaction that
-- makes it true (an operation's Finalize, a blocked cleanup run) together
-- with one delivery per webhook subscribed to it, so an event is never
-- lost and never written twice. body is the exact JSON every delivery of
-- the event sends, byte for byte, on every attempt.
CREATE TABLE webhook_events (
    id          uuid PRIMARY KEY,
    partner_key bigint NOT NULL REFERENCES partners ON DELETE CASCADE,
    type        text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One delivery of an event to one webhook, and what its attempts got.
-- enqueued_at is NULL until the sweeper put its task on the queue.
CREATE TABLE webhook_deliveries (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id     uuid NOT NULL REFERENCES webhook_events ON DELETE CASCADE,
    webhook_id   uuid NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','succeeded','failed')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    last_status  integer,
    enqueued_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (event_id, webhook_id)
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at DESC, id);
-- The sweeper's scan, every second: deliveries whose task was never
-- enqueued. Pending deliveries that wait for a retry are not in it, however
-- many a receiver's outage piles up.
CREATE INDEX webhook_deliveries_to_enqueue ON webhook_deliveries (created_at) WHERE status = 'pending' AND enqueued_at IS NULL;

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhooks;
