package worker_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/webhook"
	"github.com/licenseops/licenseops/worker"
)

// receiver is a webhook endpoint of a test: it records every request and
// answers with the status its answer function gives the request's number
// (1-based).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int) int
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	r := &receiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), body})
		n, answer := len(r.got), r.answer
		r.mu.Unlock()
		status := answer(n)
		w.WriteHeader(status)
		if status >= 300 {
			_, _ = io.WriteString(w, "receiver busy, attempt "+strconv.Itoa(n))
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) setAnswer(f func(int) int) { r.mu.Lock(); r.answer = f; r.mu.Unlock() }

// verifyStandardWebhook checks a request's signature by the text of the
// Standard Webhooks scheme, independently of package webhook: the key is
// the base64 after "whsec_", the signed content "{id}.{timestamp}.{body}",
// and webhook-signature a space-separated list of "v1,<base64 HMAC-SHA256>".
func verifyStandardWebhook(t *testing.T, secret string, h http.Header, body []byte) {
	t.Helper()
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		t.Fatalf("missing webhook headers: %v", h)
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		t.Fatalf("webhook-timestamp %q is not unix seconds", ts)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") || len(key) < 24 {
		t.Fatalf("secret %q is not whsec_ and base64 of 24 bytes or more", secret)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && version == "v1" && err == nil && hmac.Equal(got, want) {
			return
		}
	}
	t.Fatalf("no signature in %q verifies for id %s, timestamp %s", sigs, id, ts)
}

type hookSetup struct {
	b     *testapp.Bundle
	c     *testapp.Client
	reg   *prometheus.Registry
	users []string
}

// newHookSetup starts an api and a worker whose webhook retries come at
// once, and a customer "hooks" with users holding no license.
func newHookSetup(t *testing.T, cfg worker.WebhookConfig) *hookSetup {
	t.Helper()
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = []time.Duration{time.Millisecond}
	}
	s := &hookSetup{reg: prometheus.NewRegistry()}
	s.b = testapp.New(t, testapp.Options{})
	s.b.StartWorker(worker.Config{Registerer: s.reg, Webhooks: cfg, RetryCheckInterval: 50 * time.Millisecond})
	s.c = s.b.Client("p", "admin_agent")
	s.users = seed(t, s.c, "hooks", 2, "E5", 10)
	return s
}

type createdHook struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret"`
}

func (s *hookSetup) createHook(t *testing.T, url string, events ...string) createdHook {
	t.Helper()
	var h createdHook
	s.c.Must(http.StatusCreated, "POST", "/v1/webhooks", map[string]any{"url": url, "events": events}).JSON(t, &h)
	return h
}

// assign runs an operation assigning E5 to the users and waits for it.
func (s *hookSetup) assign(t *testing.T) string {
	t.Helper()
	var acc struct{ ID string }
	s.c.Must(http.StatusAccepted, "POST", "/v1/customers/hooks/license-operations",
		map[string]any{"user_ids": s.users, "assign": []string{"E5"}}).JSON(t, &acc)
	s.c.WaitOperation(acc.ID, 30*time.Second)
	return acc.ID
}

func (s *hookSetup) deliveries(t *testing.T, hookID string) []licensing.WebhookDelivery {
	t.Helper()
	var out struct{ Deliveries []licensing.WebhookDelivery }
	s.c.Must(http.StatusOK, "GET", "/v1/webhooks/"+hookID+"/deliveries", nil).JSON(t, &out)
	return out.Deliveries
}

// waitDelivery waits until the webhook's only delivery has status.
func (s *hookSetup) waitDelivery(t *testing.T, hookID, status string) licensing.WebhookDelivery {
	t.Helper()
	var ds []licensing.WebhookDelivery
	waitFor(t, func() bool { ds = s.deliveries(t, hookID); return len(ds) == 1 && ds[0].Status == status })
	return ds[0]
}

// An operation run through the api and a worker is announced to a
// webhook: one signed request whose signature verifies by the scheme's
// text, whose body carries the operation as the API shows it.
func TestWebhookSignedOperationCompleted(t *testing.T) {
	t.Parallel()
	s := newHookSetup(t, worker.WebhookConfig{})
	rcv := newReceiver(t, func(int) int { return http.StatusNoContent })
	h := s.createHook(t, rcv.srv.URL+"/hooks", "operation.completed")
	if !strings.HasPrefix(h.Secret, "whsec_") {
		t.Fatalf("created webhook's secret = %q", h.Secret)
	}
	got := s.c.Must(http.StatusOK, "GET", "/v1/webhooks/"+h.ID, nil)
	if strings.Contains(string(got.Body), "secret") || strings.Contains(string(got.Body), h.Secret[6:]) {
		t.Fatalf("GET shows the secret again: %s", got.Body)
	}

	opID := s.assign(t)
	d := s.waitDelivery(t, h.ID, "succeeded")
	reqs := rcv.requests()
	if len(reqs) != 1 || d.Attempts != 1 || d.EventType != "operation.completed" {
		t.Fatalf("%d requests, delivery %+v; want 1 request and 1 attempt of operation.completed", len(reqs), d)
	}
	r := reqs[0]
	verifyStandardWebhook(t, h.Secret, r.header, r.body)
	if r.header.Get("webhook-id") != d.EventID || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v, want webhook-id %s and JSON", r.header, d.EventID)
	}
	var body struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339, body.Timestamp); err != nil || body.Type != "operation.completed" {
		t.Fatalf("body %s: type and RFC 3339 timestamp expected (%v)", r.body, err)
	}
	var data, op map[string]any
	_ = json.Unmarshal(body.Data, &data)
	s.c.Must(http.StatusOK, "GET", "/v1/operations/"+opID, nil).JSON(t, &op)
	if !reflect.DeepEqual(data, op) || op["status"] != "completed" {
		t.Fatalf("event data %v\nis not the operation as GET shows it %v", data, op)
	}

	// Another partner sees none of it.
	other := s.b.Client("q", "admin_agent")
	if r := other.Do("GET", "/v1/webhooks/"+h.ID, nil); r.Status != http.StatusNotFound {
		t.Fatalf("another partner's GET: %d %s", r.Status, r.Body)
	}
	if r := other.Do("DELETE", "/v1/webhooks/"+h.ID, nil); r.Status != http.StatusNotFound {
		t.Fatalf("another partner's DELETE: %d %s", r.Status, r.Body)
	}
}

// A cancelled operation is announced as operation.cancelled, and only to
// the webhooks subscribed to it.
func TestWebhookOperationCancelled(t *testing.T) {
	t.Parallel()
	s := newHookSetup(t, worker.WebhookConfig{})
	rcv := newReceiver(t, func(int) int { return http.StatusOK })
	cancelled := s.createHook(t, rcv.srv.URL, "operation.cancelled")
	completed := s.createHook(t, rcv.srv.URL, "operation.completed")
	var acc struct{ ID string }
	s.c.Must(http.StatusAccepted, "POST", "/v1/customers/hooks/license-operations", map[string]any{"user_ids": s.users,
		"assign": []string{"E5"}, "not_before": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}).JSON(t, &acc)
	s.c.Must(http.StatusAccepted, "POST", "/v1/operations/"+acc.ID+"/cancel", nil)
	if op := s.c.WaitOperation(acc.ID, 30*time.Second); op.Status != "cancelled" {
		t.Fatalf("operation = %+v, want cancelled", op)
	}
	d := s.waitDelivery(t, cancelled.ID, "succeeded")
	body := waitEvent(t, rcv, "operation.cancelled")
	if d.EventType != "operation.cancelled" || !strings.Contains(string(body), `"status":"cancelled"`) {
		t.Fatalf("delivery %+v, data %s", d, body)
	}
	if ds := s.deliveries(t, completed.ID); len(ds) != 0 {
		t.Fatalf("operation.completed webhook got %+v", ds)
	}
}

// A receiver that fails three times gets the event a fourth time, with the
// same webhook-id; the delivery log shows the four attempts, success, and
// the last failure's error.
func TestWebhookRetriesUntilReceived(t *testing.T) {
	t.Parallel()
	s := newHookSetup(t, worker.WebhookConfig{})
	rcv := newReceiver(t, func(n int) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	h := s.createHook(t, rcv.srv.URL, "operation.completed")
	s.assign(t)
	d := s.waitDelivery(t, h.ID, "succeeded")
	reqs := rcv.requests()
	if len(reqs) != 4 || d.Attempts != 4 {
		t.Fatalf("%d requests, delivery %+v; want 4 of each", len(reqs), d)
	}
	for _, r := range reqs {
		if r.header.Get("webhook-id") != d.EventID {
			t.Fatalf("webhook-id %q, want %q on every attempt", r.header.Get("webhook-id"), d.EventID)
		}
		verifyStandardWebhook(t, h.Secret, r.header, r.body)
	}
	if d.LastError == nil || !strings.Contains(*d.LastError, "500") || !strings.Contains(*d.LastError, "attempt 3") ||
		d.LastStatus == nil || *d.LastStatus != 200 {
		t.Fatalf("delivery %+v: want the third attempt's 500 as last error and 200 as last status", d)
	}
	if n := counterValue(t, s.reg, "licenseops_webhook_deliveries_total", map[string]string{"outcome": "failed_attempt"}); n != 3 {
		t.Fatalf("failed attempts counted %v, want 3", n)
	}
	// Past their retention, delivered events and their log are pruned.
	if n, err := s.b.Store.PruneWebhookEvents(context.Background(), 0); err != nil || n != 1 || len(s.deliveries(t, h.ID)) != 0 {
		t.Fatalf("prune deleted %d events (%v); deliveries left %+v", n, err, s.deliveries(t, h.ID))
	}
}

// A webhook whose name resolves to the metadata address at delivery time
// (DNS rebinding after creation) is never called: every attempt is
// refused before connecting, and after the last retry the delivery is
// failed and counted as exhausted.
func TestWebhookDeliveryRefusesRebindedName(t *testing.T) {
	t.Parallel()
	var lookups sync.Map
	s := newHookSetup(t, worker.WebhookConfig{Sender: webhook.SenderConfig{
		LookupIP: func(_ context.Context, host string) ([]netip.Addr, error) {
			lookups.Store(host, true)
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		},
	}})
	h := s.createHook(t, "https://receiver.example.com/hook", "operation.completed")
	s.assign(t)
	d := s.waitDelivery(t, h.ID, "failed")
	if d.Attempts != 8 || d.LastError == nil || !strings.Contains(*d.LastError, "refused address") || d.LastStatus != nil {
		t.Fatalf("delivery %+v: want 8 refused attempts and no HTTP status", d)
	}
	if _, ok := lookups.Load("receiver.example.com"); !ok {
		t.Fatal("the receiver's name was never resolved")
	}
	if n := counterValue(t, s.reg, "licenseops_webhook_deliveries_total", map[string]string{"outcome": "exhausted"}); n != 1 {
		t.Fatalf("exhausted deliveries counted %v, want 1", n)
	}
}

// The outbox survives the queue: a delivery whose task Redis lost (flushed
// while it waited for its retry) is enqueued again by the sweeper and
// arrives, with the same webhook-id.
func TestWebhookSurvivesQueueLoss(t *testing.T) {
	t.Parallel()
	s := newHookSetup(t, worker.WebhookConfig{RetryDelays: []time.Duration{time.Hour}})
	rcv := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	h := s.createHook(t, rcv.srv.URL, "operation.completed")
	s.assign(t)
	waitFor(t, func() bool { ds := s.deliveries(t, h.ID); return len(ds) == 1 && ds[0].Attempts == 1 })
	if n, err := s.b.Store.PruneWebhookEvents(context.Background(), 0); err != nil || n != 0 {
		t.Fatalf("prune deleted %d events of a pending delivery (%v)", n, err)
	}
	// The retry waits an hour in Redis; the flush loses it.
	rcv.setAnswer(func(int) int { return http.StatusOK })
	if err := s.b.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	d := s.waitDelivery(t, h.ID, "succeeded")
	reqs := rcv.requests()
	if len(reqs) != 2 || d.Attempts != 2 || reqs[0].header.Get("webhook-id") != reqs[1].header.Get("webhook-id") {
		t.Fatalf("%d requests, delivery %+v; want the event twice with one webhook-id", len(reqs), d)
	}
}

// Creating a webhook refuses targets inside the platform, plain http off
// loopback, and unknown events, each with a 422 that says why.
func TestWebhookCreationRefusals(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "admin_agent")
	cases := []struct {
		url, code, mention string
		events             []string
	}{
		{"https://169.254.169.254/latest/meta-data", "WebhookTargetRefused", "link-local", nil},
		{"https://metadata.google.internal/computeMetadata/v1", "WebhookTargetRefused", "metadata", nil},
		{"https://[fe80::1]/hook", "WebhookTargetRefused", "link-local", nil},
		{"https://[fd00:ec2::254]/hook", "WebhookTargetRefused", "metadata", nil},
		{"https://0.0.0.0/hook", "WebhookTargetRefused", "unspecified", nil},
		{"http://hooks.example.com/in", "WebhookTargetRefused", "https", nil},
		{"https://hooks.example.com/in", "UnknownEvents", "operation.started", []string{"operation.completed", "operation.started"}},
	}
	for _, tc := range cases {
		events := tc.events
		if events == nil {
			events = []string{"operation.completed"}
		}
		r := c.Do("POST", "/v1/webhooks", map[string]any{"url": tc.url, "events": events})
		if r.Status != http.StatusUnprocessableEntity || r.ErrorCode() != tc.code || !strings.Contains(string(r.Body), tc.mention) {
			t.Errorf("%s: %d %s, want 422 %s mentioning %q", tc.url, r.Status, r.Body, tc.code, tc.mention)
		}
	}
	for _, body := range []map[string]any{
		{"events": []string{"operation.completed"}},
		{"url": "https://hooks.example.com/in"},
		{"url": "https://user:pw@hooks.example.com/in", "events": []string{"operation.completed"}},
	} {
		if r := c.Do("POST", "/v1/webhooks", body); r.Status != http.StatusBadRequest || r.ErrorCode() != "InvalidRequest" {
			t.Errorf("%v: %d %s, want 400 InvalidRequest", body, r.Status, r.Body)
		}
	}
	if r := b.Client("p", "reader").Do("POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example.com", "events": []string{"cleanup.blocked"}}); r.Status != http.StatusForbidden {
		t.Errorf("a reader created a webhook: %d %s", r.Status, r.Body)
	}
	var list struct{ Webhooks []createdHook }
	c.Must(http.StatusOK, "GET", "/v1/webhooks", nil).JSON(t, &list)
	if len(list.Webhooks) != 0 {
		t.Fatalf("refused webhooks were stored: %+v", list.Webhooks)
	}

	// With the setting of test setups, plain http goes anywhere allowed.
	open := testapp.New(t, testapp.Options{APIConfig: api.Config{WebhookAllowHTTP: true}}).Client("p", "admin_agent")
	open.Must(http.StatusCreated, "POST", "/v1/webhooks", map[string]any{"url": "http://hooks.example.com/in", "events": []string{"cleanup.blocked"}})
	if r := open.Do("POST", "/v1/webhooks", map[string]any{"url": "http://169.254.169.254/", "events": []string{"cleanup.blocked"}}); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("metadata over http with the setting: %d %s", r.Status, r.Body)
	}
}
