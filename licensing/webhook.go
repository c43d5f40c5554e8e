package licensing

import "time"

// Webhook is a partner's endpoint for events. Its signing secret is never
// part of it: the API shows the secret once, when it creates the webhook.
type Webhook struct {
	ID          string    `json:"id"`
	PartnerKey  int64     `json:"-"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description string    `json:"description"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
}

// Webhook delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is one event's delivery to one webhook and what its
// attempts got.
type WebhookDelivery struct {
	ID        string `json:"id"`
	WebhookID string `json:"webhook_id"`
	// EventID is the webhook-id header of every attempt.
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// Status is pending (being tried), succeeded (a 2xx answer) or failed
	// (every retry spent).
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	// LastError is why the last failed attempt failed (null once none has).
	LastError *string `json:"last_error"`
	// LastStatus is the HTTP status of the last answer (null when none
	// came: no connection, a timeout, a refused address).
	LastStatus  *int       `json:"last_status"`
	CreatedAt   time.Time  `json:"created_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
}
