// Package webhook is what licenseops needs to call a partner's webhooks:
// the event types, the signing secret and signature of the Standard
// Webhooks scheme, the rules for the URLs a webhook may point at, and the
// HTTP sender that enforces those rules on every connection. It knows
// nothing of Postgres or the queue.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/licensing"
)

// Event types a webhook can subscribe to.
const (
	// OperationCompleted: an operation finished completed or
	// completed_with_errors.
	OperationCompleted = "operation.completed"
	// OperationCancelled: an operation finished as cancelled.
	OperationCancelled = "operation.cancelled"
	// CleanupCompleted: the operation of a cleanup run finished (whatever
	// its final status); it is sent besides operation.completed or
	// operation.cancelled, for receivers that follow cleanups only.
	CleanupCompleted = "cleanup.completed"
	// CleanupBlocked: a cleanup run matched more users than its policy's
	// limits and changed none.
	CleanupBlocked = "cleanup.blocked"
)

// Events lists every event type, in the order the documentation gives them.
func Events() []string {
	return []string{OperationCompleted, OperationCancelled, CleanupCompleted, CleanupBlocked}
}

// UnknownEvents returns the names in events that are not event types.
func UnknownEvents(events []string) []string {
	var out []string
	for _, e := range events {
		if !slices.Contains(Events(), e) {
			out = append(out, e)
		}
	}
	return out
}

// eventForStatus is the event of an operation that finished with status,
// "" for a status that is not final.
func eventForStatus(status string) string {
	switch status {
	case licensing.StatusCompleted, licensing.StatusCompletedWithErrors:
		return OperationCompleted
	case licensing.StatusCancelled:
		return OperationCancelled
	}
	return ""
}

// OperationEvents are the events of an operation that just finished with
// status: its own, and cleanup.completed as well when a cleanup started it.
func OperationEvents(status, source string) []string {
	e := eventForStatus(status)
	if e == "" {
		return nil
	}
	if source == licensing.SourceCleanup {
		return []string{e, CleanupCompleted}
	}
	return []string{e}
}

// OperationData is the data of an operation event: the operation as
// GET /v1/operations/{id} returns it.
type OperationData struct {
	licensing.Operation
	Links OperationLinks `json:"links"`
}

// OperationLinks are the links of an operation, as the API gives them.
type OperationLinks struct {
	Self   string `json:"self"`
	Report string `json:"report"`
}

// NewOperationData is the data of an event about op.
func NewOperationData(op licensing.Operation) OperationData {
	self := "/v1/operations/" + op.ID
	return OperationData{Operation: op, Links: OperationLinks{Self: self, Report: self + "/report"}}
}

// Body is the JSON body of a delivery: the event's type, when it happened
// and its data. It is built once, when the event is recorded, so that every
// attempt sends the same bytes.
func Body(eventType string, at time.Time, data any) ([]byte, error) {
	return json.Marshal(struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      any       `json:"data"`
	}{eventType, at.UTC().Truncate(time.Millisecond), data})
}

// secretPrefix marks a signing secret, as Standard Webhooks does.
const secretPrefix = "whsec_"

// secretBytes is the size of a new secret's key: 256 bits, HMAC-SHA256's
// block of security.
const secretBytes = 32

// NewSecret returns a new signing secret: "whsec_" and the base64 of
// random bytes.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// Sign returns the webhook-signature header of a message: "v1," and the
// base64 HMAC-SHA256, keyed with the secret's bytes, of
// "{id}.{timestamp}.{body}".
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return "", errors.New("the webhook's secret is not whsec_ and base64")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// CleanupBlockedData is the data of a cleanup.blocked event: the policy
// and its run, with the users it matched and its limit.
type CleanupBlockedData struct {
	CustomerID string               `json:"customer_id"`
	PolicyID   string               `json:"policy_id"`
	PolicyName string               `json:"policy_name"`
	Run        licensing.CleanupRun `json:"run"`
}
