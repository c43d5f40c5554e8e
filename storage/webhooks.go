package storage

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/webhook"
)

const webhookColumns = `id, partner_key, url, events, description, created_by, created_at`

func scanWebhook(row interface{ Scan(...any) error }) (licensing.Webhook, error) {
	var h licensing.Webhook
	var events pq.StringArray
	err := row.Scan(&h.ID, &h.PartnerKey, &h.URL, &events, &h.Description, &h.CreatedBy, &h.CreatedAt)
	h.Events = nonNil(events)
	return h, err
}

// CreateWebhook stores a partner's webhook with its signing secret; h is
// validated by the caller.
func (s *Store) CreateWebhook(ctx context.Context, h licensing.Webhook, secret string) (licensing.Webhook, error) {
	return scanWebhook(s.db.QueryRowContext(ctx, `
		INSERT INTO webhooks (id, partner_key, url, events, description, secret, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+webhookColumns,
		uuid.New(), h.PartnerKey, h.URL, pq.StringArray(h.Events), h.Description, secret, h.CreatedBy))
}

// ListWebhooks lists a partner's webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, partnerKey int64) ([]licensing.Webhook, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE partner_key = $1 ORDER BY created_at, id`, partnerKey)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []licensing.Webhook{}
	for rows.Next() {
		h, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// GetWebhook finds a webhook of the partner; another partner's is NotFound.
func (s *Store) GetWebhook(ctx context.Context, partnerKey int64, id string) (licensing.Webhook, error) {
	if _, err := uuid.Parse(id); err != nil {
		return licensing.Webhook{}, notFound("webhook", id)
	}
	h, err := scanWebhook(s.db.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1 AND partner_key = $2`, id, partnerKey))
	if isNoRows(err) {
		return h, notFound("webhook", id)
	}
	return h, err
}

// DeleteWebhook deletes a partner's webhook and its deliveries; deliveries
// queued for it are dropped by their tasks.
func (s *Store) DeleteWebhook(ctx context.Context, partnerKey int64, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return notFound("webhook", id)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM webhooks WHERE id = $1 AND partner_key = $2`, id, partnerKey)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("webhook", id)
	}
	return nil
}

const deliveryColumns = `d.id, d.webhook_id, d.event_id, e.type, d.status, d.attempts, d.last_error, d.last_status, d.created_at, d.delivered_at`

func scanDelivery(row interface{ Scan(...any) error }) (licensing.WebhookDelivery, error) {
	var d licensing.WebhookDelivery
	err := row.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.LastError, &d.LastStatus,
		&d.CreatedAt, &d.DeliveredAt)
	return d, err
}

// ListWebhookDeliveries pages a webhook's deliveries, newest first, and
// counts them all.
func (s *Store) ListWebhookDeliveries(ctx context.Context, webhookID string, limit, offset int) ([]licensing.WebhookDelivery, int, error) {
	var total int
	if err := s.db.GetContext(ctx, &total, `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1`, webhookID); err != nil {
		return nil, 0, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
		WHERE d.webhook_id = $1 ORDER BY d.created_at DESC, d.id LIMIT $2 OFFSET $3`, webhookID, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []licensing.WebhookDelivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, total, rows.Err()
}

// insertEvents is the outbox's write, made inside the transaction that
// makes the events true: for each of types that some webhook of the
// partner subscribes to, an event with the body of data and a delivery per
// subscribed webhook. data is read only when someone subscribes, so an
// event nobody receives costs one indexed query.
func insertEvents(ctx context.Context, tx *sqlx.Tx, partnerKey int64, types []string, data func() (any, error)) error {
	var subscribed pq.StringArray
	if err := tx.QueryRowContext(ctx, `
		SELECT ARRAY(SELECT DISTINCT e FROM webhooks, unnest(events) e WHERE partner_key = $1 AND e = ANY($2::text[]))`,
		partnerKey, pq.StringArray(types)).Scan(&subscribed); err != nil || len(subscribed) == 0 {
		return err
	}
	d, err := data()
	if err != nil {
		return err
	}
	now := time.Now()
	for _, typ := range subscribed {
		body, err := webhook.Body(typ, now, d)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `
			WITH ev AS (
				INSERT INTO webhook_events (id, partner_key, type, body) VALUES ($1, $2, $3, $4) RETURNING id
			)
			INSERT INTO webhook_deliveries (event_id, webhook_id)
			SELECT ev.id, h.id FROM ev, webhooks h WHERE h.partner_key = $2 AND $3 = ANY(h.events)`,
			uuid.New(), partnerKey, typ, string(body)); err != nil {
			return err
		}
	}
	return nil
}

// insertOperationEvents records the events of an operation this
// transaction just finished with status final (Finalize).
func insertOperationEvents(ctx context.Context, tx *sqlx.Tx, opID, final string) error {
	var partnerKey int64
	var source string
	if err := tx.QueryRowContext(ctx, `SELECT partner_key, source FROM operations WHERE id = $1`, opID).Scan(&partnerKey, &source); err != nil {
		return err
	}
	return insertEvents(ctx, tx, partnerKey, webhook.OperationEvents(final, source), func() (any, error) {
		op, err := scanOperation(tx.QueryRowContext(ctx, `
			SELECT `+operationColumns+` FROM operations o JOIN customers c USING (customer_key) WHERE o.id = $1`, opID))
		return webhook.NewOperationData(op), err
	})
}

// DeliveriesToEnqueue returns up to limit pending deliveries, oldest
// first, whose task was never enqueued.
func (s *Store) DeliveriesToEnqueue(ctx context.Context, limit int) ([]string, error) {
	ids := []string{}
	err := s.db.SelectContext(ctx, &ids, `
		SELECT id::text FROM webhook_deliveries WHERE status = 'pending' AND enqueued_at IS NULL
		ORDER BY created_at LIMIT $1`, limit)
	return ids, err
}

// ForgetDeliveryTasks marks every pending delivery as never enqueued (the
// queue lost their tasks) and returns how many there are.
func (s *Store) ForgetDeliveryTasks(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE webhook_deliveries SET enqueued_at = NULL WHERE status = 'pending' AND enqueued_at IS NOT NULL`)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// MarkDeliveriesEnqueued records that the deliveries' tasks are on the queue.
func (s *Store) MarkDeliveriesEnqueued(ctx context.Context, ids []string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE webhook_deliveries SET enqueued_at = now() WHERE id = ANY($1::uuid[])`, pq.StringArray(ids))
	return err
}

// PendingDelivery is what an attempt at a delivery needs.
type PendingDelivery struct {
	ID, EventID, URL, Secret string
	Body                     []byte
}

// PendingDeliveryByID returns a delivery that is still pending, and false
// when it is not (delivered, failed, or deleted with its webhook).
func (s *Store) PendingDeliveryByID(ctx context.Context, id string) (PendingDelivery, bool, error) {
	var d PendingDelivery
	var body string
	err := s.db.QueryRowContext(ctx, `
		SELECT d.id, d.event_id, h.url, h.secret, e.body
		FROM webhook_deliveries d JOIN webhooks h ON h.id = d.webhook_id JOIN webhook_events e ON e.id = d.event_id
		WHERE d.id = $1 AND d.status = 'pending'`, id).Scan(&d.ID, &d.EventID, &d.URL, &d.Secret, &body)
	if isNoRows(err) {
		return d, false, nil
	}
	d.Body = []byte(body)
	return d, err == nil, err
}

// RecordDeliveryAttempt counts an attempt of a pending delivery and what it
// got: status is the delivery's new status (pending while retries are
// left), httpStatus the answer's (0: none), errMsg why it failed ("" on
// success, which keeps the last failure's message).
func (s *Store) RecordDeliveryAttempt(ctx context.Context, id, status string, httpStatus int, errMsg string) error {
	_, err := s.db.ExecContext(ctx, `
		UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2,
			last_status = COALESCE(NULLIF($3, 0), last_status),
			last_error = COALESCE(NULLIF($4, ''), last_error),
			delivered_at = CASE WHEN $2 = 'succeeded' THEN now() END
		WHERE id = $1 AND status = 'pending'`, id, status, httpStatus, errMsg)
	return err
}

// PruneWebhookEvents deletes events older than retention with their
// deliveries, unless a delivery is still being tried, so that the outbox
// holds about retention of history however long the service runs.
func (s *Store) PruneWebhookEvents(ctx context.Context, retention time.Duration) (int64, error) {
	res, err := s.db.ExecContext(ctx, `
		DELETE FROM webhook_events e WHERE e.created_at < now() - make_interval(secs => $1)
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')`, retention.Seconds())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
