package worker_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/worker"
)

// A live cleanup that would change more users than its policy allows (by
// default 10 % of the customer's users) changes none: the run is blocked
// with the users it matched, no operation starts, a cleanup.blocked event
// goes out and is counted. {"confirm": true} runs it once anyway.
func TestCleanupBlastRadius(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := testapp.New(t, testapp.Options{APIConfig: api.Config{Registry: reg}})
	b.StartWorker(worker.Config{})
	c := b.Client("p", "admin_agent")
	users := seed(t, c, "big", 20, "E5", 20) // 20 users, 3 of them disabled below
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/big/license-operations", map[string]any{"user_ids": users, "assign": []string{"E5"}}).JSON(t, &acc)
	c.WaitOperation(acc.ID, 30*time.Second)
	for _, u := range users[:3] {
		c.Must(http.StatusOK, "POST", "/v1/customers/big/users/import", map[string]any{"users": []map[string]any{
			{"id": u, "user_principal_name": u + "@big.example", "account_enabled": false}}})
	}
	rcv := newReceiver(t, func(int) int { return http.StatusOK })
	var hook createdHook
	c.Must(http.StatusCreated, "POST", "/v1/webhooks", map[string]any{"url": rcv.srv.URL, "events": []string{"cleanup.blocked", "cleanup.completed"}}).JSON(t, &hook)

	var pol struct {
		ID         string   `json:"id"`
		MaxChanges *int     `json:"max_changes"`
		MaxPercent *float64 `json:"max_percent"`
		Links      struct{ Self, Run, Runs string }
	}
	c.Must(http.StatusCreated, "POST", "/v1/customers/big/cleanup-policies", map[string]any{"name": "disabled", "schedule": "0 2 * * *",
		"rule": map[string]any{"kind": "disabled_accounts"}, "dry_run": false}).JSON(t, &pol)
	if pol.MaxChanges == nil || *pol.MaxChanges != 500 || pol.MaxPercent == nil || *pol.MaxPercent != 10 {
		t.Fatalf("new policy's limits %v and %v, want 500 users and 10 %%", pol.MaxChanges, pol.MaxPercent)
	}

	// 3 of 20 users is more than 10 %: blocked, nothing changes.
	var blocked struct {
		Status       string
		MatchedUsers int `json:"matched_users"`
		Limit        int
		Message      string
		Run          struct {
			ID          string
			Status      string
			OperationID *string `json:"operation_id"`
		}
	}
	c.Must(http.StatusOK, "POST", pol.Links.Run, nil).JSON(t, &blocked)
	if blocked.Status != "blocked" || blocked.MatchedUsers != 3 || blocked.Limit != 2 || blocked.Run.Status != "blocked" ||
		blocked.Run.OperationID != nil || !strings.Contains(blocked.Message, "confirm") {
		t.Fatalf("run over the limit = %+v", blocked)
	}
	if n := cleanupOps(t, b); n != 0 {
		t.Fatalf("a blocked run started %d operations", n)
	}
	if s := seats(t, b, "E5"); s.Assignments != 20 {
		t.Fatalf("a blocked run changed licenses: %+v", s)
	}
	var runs struct {
		Runs []struct {
			ID           string
			Status       string
			MatchedUsers int `json:"matched_users"`
			Limit        *int
			Confirmed    bool
		}
	}
	c.Must(http.StatusOK, "GET", pol.Links.Runs, nil).JSON(t, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].Status != "blocked" || runs.Runs[0].MatchedUsers != 3 || runs.Runs[0].Limit == nil || *runs.Runs[0].Limit != 2 {
		t.Fatalf("runs = %+v", runs.Runs)
	}
	ev := waitEvent(t, rcv, "cleanup.blocked")
	var data struct {
		PolicyID string `json:"policy_id"`
		Run      struct {
			ID           string
			MatchedUsers int `json:"matched_users"`
			Limit        int
			Status       string
		}
	}
	if err := json.Unmarshal(ev, &data); err != nil || data.PolicyID != pol.ID || data.Run.ID != blocked.Run.ID ||
		data.Run.MatchedUsers != 3 || data.Run.Limit != 2 || data.Run.Status != "blocked" {
		t.Fatalf("cleanup.blocked data %s (%v)", ev, err)
	}
	if n := counterValue(t, reg, "licenseops_cleanup_runs_blocked_total", nil); n != 1 {
		t.Fatalf("blocked runs counted %v, want 1", n)
	}

	// Confirmed (through the SDK), the same run goes ahead once.
	started, err := c.RunCleanupPolicyConfirmed(context.Background(), "big", pol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if op := c.WaitOperation(started.ID, 30*time.Second); op.Status != "completed" || op.Succeeded != 3 || !started.Run.Confirmed {
		t.Fatalf("confirmed run: %+v, operation %+v", started, op)
	}
	waitEvent(t, rcv, "cleanup.completed")
}

// PATCH changes the limits; null removes one; values out of range are
// refused with what to send instead.
func TestCleanupLimitsPatch(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "admin_agent")
	seed(t, c, "small", 2, "E5", 2)
	var pol struct {
		Links      struct{ Self string }
		MaxChanges *int     `json:"max_changes"`
		MaxPercent *float64 `json:"max_percent"`
	}
	c.Must(http.StatusCreated, "POST", "/v1/customers/small/cleanup-policies", map[string]any{"name": "n", "schedule": "0 2 * * *",
		"rule": map[string]any{"kind": "disabled_accounts"}, "max_changes": nil, "max_percent": 25.5}).JSON(t, &pol)
	if pol.MaxChanges != nil || pol.MaxPercent == nil || *pol.MaxPercent != 25.5 {
		t.Fatalf("created with null and 25.5: %v, %v", pol.MaxChanges, pol.MaxPercent)
	}
	c.Must(http.StatusOK, "PATCH", pol.Links.Self, map[string]any{"max_changes": 7}).JSON(t, &pol)
	if pol.MaxChanges == nil || *pol.MaxChanges != 7 || pol.MaxPercent == nil || *pol.MaxPercent != 25.5 {
		t.Fatalf("patched max_changes: %v, %v", pol.MaxChanges, pol.MaxPercent)
	}
	c.Must(http.StatusOK, "PATCH", pol.Links.Self, map[string]any{"max_percent": nil}).JSON(t, &pol)
	if pol.MaxChanges == nil || *pol.MaxChanges != 7 || pol.MaxPercent != nil {
		t.Fatalf("patched max_percent to null: %v, %v", pol.MaxChanges, pol.MaxPercent)
	}
	for _, body := range []map[string]any{{"max_changes": 0}, {"max_percent": 0}, {"max_percent": 101}, {"max_changes": -1}} {
		if r := c.Do("PATCH", pol.Links.Self, body); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "null for no limit") {
			t.Errorf("PATCH %v: %d %s", body, r.Status, r.Body)
		}
	}
}

// cleanupOps counts the operations cleanups started.
func cleanupOps(t *testing.T, b *testapp.Bundle) int {
	t.Helper()
	var n int
	if err := b.DB.QueryRow(`SELECT count(*) FROM operations WHERE source = 'cleanup'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitEvent waits for the receiver to get an event of type typ and
// returns its data.
func waitEvent(t *testing.T, rcv *receiver, typ string) json.RawMessage {
	t.Helper()
	var data json.RawMessage
	waitFor(t, func() bool {
		for _, r := range rcv.requests() {
			var body struct {
				Type string
				Data json.RawMessage
			}
			if json.Unmarshal(r.body, &body) == nil && body.Type == typ {
				data = body.Data
				return true
			}
		}
		return false
	})
	return data
}
