package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/worker"
)

// undoPath is the undo endpoint of operation id.
func undoPath(id string) string { return "/v1/operations/" + id + "/undo" }

// wantConflict posts an undo of id and expects 409 Conflict whose message
// says hint.
func wantConflict(t *testing.T, c *testapp.Client, id, hint string) {
	t.Helper()
	r := c.Must(http.StatusConflict, "POST", undoPath(id), nil)
	if r.ErrorCode() != "Conflict" || !strings.Contains(string(r.Body), hint) {
		t.Fatalf("undo of %s: %s, want Conflict saying %q", id, r.Body, hint)
	}
}

// An undo is refused while its operation runs and for an operation that
// changed nobody; another partner never sees the operation; a reader may
// not undo; a retry with the same Idempotency-Key gets the same undo.
func TestUndoRefusalsAndIdempotency(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	tn := seedTenant(t, c, "und", 3, map[string]int{"E5": 3})
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/und/license-operations",
		map[string]any{"user_ids": tn.users, "assign": []string{"E5"}}).JSON(t, &acc)
	wantConflict(t, c, acc.ID, "wait until it has finished, or cancel it first")

	b.StartWorker(worker.Config{})
	c.WaitOperation(acc.ID, 30*time.Second)
	other := b.Client("q", "global_admin")
	if r := other.Must(http.StatusNotFound, "POST", undoPath(acc.ID), nil); r.ErrorCode() != "NotFound" {
		t.Fatalf("another partner's undo: %s", r.Body)
	}
	if r := b.Client("p", "reader").Must(http.StatusForbidden, "POST", undoPath(acc.ID), nil); r.ErrorCode() != "Forbidden" {
		t.Fatalf("a reader's undo: %s", r.Body)
	}
	if r := c.Must(http.StatusBadRequest, "POST", undoPath(acc.ID), `{"allow_partal": true}`); r.ErrorCode() != "InvalidRequest" {
		t.Fatalf("undo with an unknown field: %s", r.Body)
	}

	helpdesk := b.Client("p", "helpdesk_agent")
	var first, again struct {
		ID     string
		Status string
	}
	r := helpdesk.Must(http.StatusAccepted, "POST", undoPath(acc.ID), map[string]bool{"allow_partial": true}, "Idempotency-Key", "undo-1")
	r.JSON(t, &first)
	if loc := r.Header.Get("Location"); loc != "/v1/operations/"+first.ID {
		t.Fatalf("Location %q", loc)
	}
	helpdesk.Must(http.StatusAccepted, "POST", undoPath(acc.ID), map[string]bool{"allow_partial": true}, "Idempotency-Key", "undo-1").JSON(t, &again)
	if again.ID != first.ID {
		t.Fatalf("a retry with the same key created undo %s, want %s", again.ID, first.ID)
	}
	if r := helpdesk.Do("POST", undoPath(acc.ID), nil, "Idempotency-Key", "undo-1"); r.ErrorCode() != "IdempotencyKeyReused" {
		t.Fatalf("the key with another body: %d %s", r.Status, r.Body)
	}
	undone := c.WaitOperation(first.ID, 30*time.Second)
	if undone.Succeeded != 3 || !undone.AllowPartial {
		t.Fatalf("undo = %+v", undone)
	}
	var audited int
	if err := b.DB.Get(&audited, `SELECT count(*) FROM audit_log WHERE action = 'operation.undo' AND object_id = $1`, first.ID); err != nil || audited != 1 {
		t.Fatalf("%d audit entries of the undo (%v), want 1", audited, err)
	}

	// Assigning what every user holds already changes nobody.
	c.Must(http.StatusAccepted, "POST", "/v1/customers/und/license-operations",
		map[string]any{"user_ids": tn.users, "assign": []string{"E5"}}).JSON(t, &acc)
	c.WaitOperation(acc.ID, 30*time.Second)
	c.Must(http.StatusAccepted, "POST", "/v1/customers/und/license-operations",
		map[string]any{"user_ids": tn.users, "assign": []string{"E5"}}).JSON(t, &acc)
	c.WaitOperation(acc.ID, 30*time.Second)
	wantConflict(t, c, acc.ID, "nothing to undo")
}

// A dry run changed nobody: there is nothing to undo.
func TestUndoDryRun(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "admin_agent")
	cleanupTenant(t, c)
	var pol struct{ ID string }
	c.Must(http.StatusCreated, "POST", "/v1/customers/tidy/cleanup-policies", map[string]any{
		"name": "disabled accounts", "schedule": "0 2 * * *", "time_zone": "Europe/Warsaw",
		"rule": map[string]any{"kind": "disabled_accounts"}, "dry_run": true, "enabled": false,
	}).JSON(t, &pol)
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/tidy/cleanup-policies/"+pol.ID+"/run", nil).JSON(t, &acc)
	if op := c.WaitOperation(acc.ID, 30*time.Second); !op.DryRun {
		t.Fatalf("operation = %+v, want a dry run", op)
	}
	wantConflict(t, c, acc.ID, "dry run")
}
