package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// operationCount is the number of operations of a customer, as its partner sees it.
func operationCount(t *testing.T, c *testapp.Client, customer string) int {
	t.Helper()
	var ops struct{ Total int }
	c.Must(http.StatusOK, "GET", "/v1/customers/"+customer+"/operations", nil).JSON(t, &ops)
	return ops.Total
}

func TestIdempotencyReplayAndMismatch(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "helpdesk_agent")
	admin := b.Client("p", "global_admin")
	seedTenant(t, admin, "idem", 3, map[string]int{"E5": 10, "E3": 1})
	path := "/v1/customers/idem/license-operations"
	body := `{"user_ids":["u00000","u00001"],"assign":["E5"]}`

	first := c.Must(http.StatusAccepted, "POST", path, body, "Idempotency-Key", "key-1")
	// The same request, spelled differently (order, spacing, a duplicate
	// user, a default written out): a retry, not a new request.
	respelled := `{ "assign": ["E5"], "user_ids": ["u00000", "u00001", "u00000"], "allow_partial": false }`
	for _, again := range []string{body, respelled} {
		r := c.Must(http.StatusAccepted, "POST", path, again, "Idempotency-Key", "key-1")
		if !bytes.Equal(r.Body, first.Body) || r.Header.Get("Location") != first.Header.Get("Location") || r.Header.Get("Location") == "" {
			t.Fatalf("replay = %s Location %q, want %s Location %q", r.Body, r.Header.Get("Location"), first.Body, first.Header.Get("Location"))
		}
	}
	if n := operationCount(t, c, "idem"); n != 1 {
		t.Fatalf("%d operations after a request and its replays, want 1", n)
	}
	// The same key with another body is refused, and creates nothing.
	for _, other := range []string{
		`{"user_ids":["u00000"],"assign":["E5"]}`,
		`{"user_ids":["u00000","u00001"],"assign":["E5"],"allow_partial":true}`,
	} {
		r := c.Do("POST", path, other, "Idempotency-Key", "key-1")
		if r.Status != http.StatusUnprocessableEntity || r.ErrorCode() != "IdempotencyKeyReused" || !strings.Contains(string(r.Body), "key-1") {
			t.Errorf("same key, other body: %d %s, want 422 IdempotencyKeyReused naming the key", r.Status, r.Body)
		}
	}
	// A refused request frees its key: after buying seats, the retry with
	// the same key goes through.
	short := `{"user_ids":["u00000","u00001","u00002"],"assign":["E3"]}`
	if r := c.Do("POST", path, short, "Idempotency-Key", "key-2"); r.Status != http.StatusConflict || r.ErrorCode() != "CountViolation" {
		t.Fatalf("short of seats: %d %s", r.Status, r.Body)
	}
	admin.Must(http.StatusOK, "PUT", "/v1/customers/idem/subscriptions/E3", map[string]int{"total": 3})
	c.Must(http.StatusAccepted, "POST", path, short, "Idempotency-Key", "key-2")
	if n := operationCount(t, c, "idem"); n != 2 {
		t.Fatalf("%d operations, want 2", n)
	}
	if r := c.Do("POST", path, body, "Idempotency-Key", strings.Repeat("k", 256)); r.Status != http.StatusBadRequest || r.ErrorCode() != "InvalidRequest" {
		t.Fatalf("256-character key: %d %s, want 400", r.Status, r.Body)
	}
}

// rawResponse is an answer read without the test helpers, which may only
// fail the test from the test's goroutine.
type rawResponse struct {
	status int
	body   []byte
	err    error
}

func rawPost(base, path, token, key, body string) rawResponse {
	resp, err := client.New(base, token).Do(context.Background(), http.MethodPost, path, strings.NewReader(body),
		http.Header{"Idempotency-Key": {key}})
	if err != nil {
		return rawResponse{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, body: raw, err: err}
}

// Eight copies of one request with one key race each other: one operation
// is created; every other copy gets its answer replayed or 409 IdempotencyKeyInUse.
func TestIdempotencyConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	// Enough users that intake takes a while, so the copies overlap.
	tn := seedTenant(t, c, "race", 3000, map[string]int{"E5": 3000})
	body := `{"user_ids":["` + strings.Join(tn.users, `","`) + `"],"assign":["E5"]}`
	base, path := b.API.URL(), "/v1/customers/race/license-operations"

	const copies = 8
	results := make([]rawResponse, copies)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = rawPost(base, path, c.Token, "race-key", body)
		}()
	}
	close(start)
	wg.Wait()

	var accepted []byte
	inUse := 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("copy %d: %v", i, r.err)
		}
		switch r.status {
		case http.StatusAccepted:
			if accepted != nil && !bytes.Equal(r.body, accepted) {
				t.Errorf("copy %d answered %s, another %s: two operations for one key", i, r.body, accepted)
			}
			accepted = r.body
		case http.StatusConflict:
			inUse++
			if !strings.Contains(string(r.body), `"IdempotencyKeyInUse"`) {
				t.Errorf("copy %d: 409 %s, want IdempotencyKeyInUse", i, r.body)
			}
		default:
			t.Errorf("copy %d: %d %s, want 202 or 409", i, r.status, r.body)
		}
	}
	if accepted == nil {
		t.Fatal("no copy was accepted")
	}
	t.Logf("%d copies got 409 IdempotencyKeyInUse, %d got 202", inUse, copies-inUse)
	if n := operationCount(t, c, "race"); n != 1 {
		t.Fatalf("%d operations for one key, want 1", n)
	}
	// Once taken, every copy gets the replay.
	if r := rawPost(base, path, c.Token, "race-key", body); r.status != http.StatusAccepted || !bytes.Equal(r.body, accepted) {
		t.Fatalf("after the race: %d %s, want the replay %s", r.status, r.body, accepted)
	}
}

// Keys belong to a partner: another partner's identical key and body is a
// new request of its own.
func TestIdempotencyKeyScopedPerPartner(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	a := b.Client("partner-a", "global_admin")
	other := b.Client("partner-b", "global_admin")
	seedTenant(t, a, "same-id", 2, map[string]int{"E5": 5})
	seedTenant(t, other, "same-id", 2, map[string]int{"E5": 5})
	path := "/v1/customers/same-id/license-operations"
	body := `{"user_ids":["u00000"],"assign":["E5"]}`
	ra := a.Must(http.StatusAccepted, "POST", path, body, "Idempotency-Key", "same-key")
	rb := other.Must(http.StatusAccepted, "POST", path, body, "Idempotency-Key", "same-key")
	if bytes.Equal(ra.Body, rb.Body) || ra.Header.Get("Location") == rb.Header.Get("Location") {
		t.Fatalf("partner-b got partner-a's answer: %s", rb.Body)
	}
	if again := other.Must(http.StatusAccepted, "POST", path, body, "Idempotency-Key", "same-key"); !bytes.Equal(again.Body, rb.Body) {
		t.Fatalf("partner-b's replay = %s, want %s", again.Body, rb.Body)
	}
	// partner-b using the key with another body conflicts only with its own use.
	if r := other.Do("POST", path, `{"user_ids":["u00001"],"assign":["E5"]}`, "Idempotency-Key", "same-key"); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("partner-b reusing its key: %d %s", r.Status, r.Body)
	}
	if na, nb := operationCount(t, a, "same-id"), operationCount(t, other, "same-id"); na != 1 || nb != 1 {
		t.Fatalf("operations: partner-a %d, partner-b %d; want 1 each", na, nb)
	}
}

// The api prunes keys older than 24 hours in the background; a pruned key
// is free for a new request.
func TestIdempotencyKeysPruned(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{APIConfig: api.Config{PruneInterval: 20 * time.Millisecond}})
	c := b.Client("p", "global_admin")
	seedTenant(t, c, "prune", 2, map[string]int{"E5": 5})
	path := "/v1/customers/prune/license-operations"
	c.Must(http.StatusAccepted, "POST", path, `{"user_ids":["u00000"],"assign":["E5"]}`, "Idempotency-Key", "old")
	c.Must(http.StatusAccepted, "POST", path, `{"user_ids":["u00000"],"assign":["E5"]}`, "Idempotency-Key", "fresh")
	db := b.DB
	if _, err := db.Exec(`UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute' WHERE key = 'old'`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var keys []string
		if err := db.Select(&keys, `SELECT key FROM idempotency_keys ORDER BY key`); err != nil {
			t.Fatal(err)
		}
		if len(keys) == 1 && keys[0] == "fresh" {
			break
		}
		if !slices.Contains(keys, "fresh") {
			t.Fatalf("keys %v: the fresh key was pruned", keys)
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys %v: the expired key was not pruned", keys)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Must(http.StatusAccepted, "POST", path, `{"user_ids":["u00001"],"assign":["E5"]}`, "Idempotency-Key", "old")
	if r := c.Do("POST", path, `{"user_ids":["u00001"],"assign":["E5"]}`, "Idempotency-Key", "fresh"); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("the fresh key with another body: %d %s, want 422", r.Status, r.Body)
	}
}

// While the first request with a key is still being taken, the key answers
// 409 IdempotencyKeyInUse. The in-flight claim is made here directly in
// Postgres, as a request that is slow (or whose process died) leaves it. A
// claim abandoned for over a minute is taken over by a retry of the same
// request, and never by another request.
func TestIdempotencyKeyInFlight(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "helpdesk_agent")
	seedTenant(t, b.Client("p", "global_admin"), "flight", 2, map[string]int{"E5": 10})
	path := "/v1/customers/flight/license-operations"
	body := `{"user_ids":["u00000"],"assign":["E5"]}`
	other := `{"user_ids":["u00001"],"assign":["E5"]}`
	db := b.DB

	// The request's fingerprint comes from a finished use of the same body
	// under another key; the claim of "k" copies it, still in flight.
	c.Must(http.StatusAccepted, "POST", path, body, "Idempotency-Key", "template")
	if _, err := db.Exec(`
		INSERT INTO idempotency_keys (partner_key, key, request_hash)
		SELECT partner_key, 'k', request_hash FROM idempotency_keys WHERE key = 'template'`); err != nil {
		t.Fatal(err)
	}
	inUse := func(when string) {
		t.Helper()
		r := c.Do("POST", path, body, "Idempotency-Key", "k")
		if r.Status != http.StatusConflict || r.ErrorCode() != "IdempotencyKeyInUse" || !strings.Contains(string(r.Body), `\"k\"`) {
			t.Fatalf("%s: %d %s, want 409 IdempotencyKeyInUse naming the key", when, r.Status, r.Body)
		}
	}
	reused := func(when string) {
		t.Helper()
		if r := c.Do("POST", path, other, "Idempotency-Key", "k"); r.Status != http.StatusUnprocessableEntity || r.ErrorCode() != "IdempotencyKeyReused" {
			t.Fatalf("%s, another body: %d %s, want 422 IdempotencyKeyReused", when, r.Status, r.Body)
		}
	}
	age := func(interval string) {
		t.Helper()
		if _, err := db.Exec(`UPDATE idempotency_keys SET created_at = now() - $1::interval WHERE key = 'k'`, interval); err != nil {
			t.Fatal(err)
		}
	}
	inUse("in flight")
	reused("in flight")
	age("50 seconds")
	inUse("in flight for 50 seconds")
	if n := operationCount(t, c, "flight"); n != 1 {
		t.Fatalf("%d operations while the key was in flight, want only the template's", n)
	}

	// Abandoned for two minutes: another body still may not take the key,
	// and the refusal leaves the claim as it was.
	age("2 minutes")
	reused("abandoned")
	var state string
	var stale bool
	if err := db.QueryRow(`SELECT state, created_at < now() - interval '1 minute' FROM idempotency_keys WHERE key = 'k'`).Scan(&state, &stale); err != nil {
		t.Fatal(err)
	}
	if state != "in_flight" || !stale {
		t.Fatalf("after a refused takeover: state %q, stale %v; want the abandoned claim untouched", state, stale)
	}
	// The same request takes it over, and from then on is replayed.
	first := c.Must(http.StatusAccepted, "POST", path, body, "Idempotency-Key", "k")
	if again := c.Must(http.StatusAccepted, "POST", path, body, "Idempotency-Key", "k"); !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("after the takeover: %s, want the replay %s", again.Body, first.Body)
	}
	if err := db.QueryRow(`SELECT state FROM idempotency_keys WHERE key = 'k'`).Scan(&state); err != nil || state != "done" {
		t.Fatalf("key state %q (%v) after the takeover, want done", state, err)
	}
	if n := operationCount(t, c, "flight"); n != 2 {
		t.Fatalf("%d operations, want 2: the template's and the takeover's", n)
	}

	// The slow original request finally commits, after its retry took the
	// claim over and answered: it must not create a second operation.
	var partnerKey int64
	if err := db.Get(&partnerKey, `SELECT partner_key FROM customers WHERE id = 'flight'`); err != nil {
		t.Fatal(err)
	}
	cust, err := b.Store.GetCustomer(context.Background(), partnerKey, "flight")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Store.CreateOperation(context.Background(), storage.NewOperation{
		PartnerKey: cust.PartnerKey, Customer: cust, UserIDs: []string{"u00000"}, Assign: []string{"E5"},
		Source: "api", CreatedBy: "test", Queue: "critical",
		Idempotency: &storage.IdempotencyKey{Key: "k", Respond: func(licensing.Operation) storage.StoredResponse {
			return storage.StoredResponse{Status: http.StatusAccepted, Body: []byte(`{}`)}
		}},
	})
	if licensing.ErrorCode(err) != licensing.CodeIdempotencyKeyInUse {
		t.Fatalf("the slow original's commit after the takeover: %v, want IdempotencyKeyInUse", err)
	}
	if n := operationCount(t, c, "flight"); n != 2 {
		t.Fatalf("%d operations, want still 2: one per key", n)
	}
	if again := c.Must(http.StatusAccepted, "POST", path, body, "Idempotency-Key", "k"); !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("after the late commit: %s, want the takeover's answer %s", again.Body, first.Body)
	}
}
