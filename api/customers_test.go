package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
)

type customerView struct {
	ID                   string  `json:"id"`
	Name                 string  `json:"name"`
	DefaultUsageLocation *string `json:"default_usage_location"`
	Directory            struct {
		Kind string `json:"kind"`
	} `json:"directory"`
}

func patchCustomer(t *testing.T, c *testapp.Client, id string, body any) customerView {
	t.Helper()
	var out customerView
	c.Must(http.StatusOK, "PATCH", "/v1/customers/"+id, body).JSON(t, &out)
	return out
}

// PATCH /v1/customers/{cid} changes the name and the default usage location
// (null clears it), validated like a new customer, audited, and new
// operations use the new default.
func TestPatchCustomer(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p1", "sales_agent")
	admin := b.Client("p1", "global_admin")
	tn := seedTenant(t, admin, "acme", 2, map[string]int{"E5": 5}) // default usage location PL

	got := patchCustomer(t, c, "acme", map[string]any{"name": "Acme Corp"})
	if got.ID != "acme" || got.Name != "Acme Corp" || got.DefaultUsageLocation == nil || *got.DefaultUsageLocation != "PL" || got.Directory.Kind != "local" {
		t.Fatalf("after a new name: %+v, want the name changed and the rest kept", got)
	}
	got = patchCustomer(t, c, "acme", map[string]any{"default_usage_location": "de"})
	if got.Name != "Acme Corp" || got.DefaultUsageLocation == nil || *got.DefaultUsageLocation != "DE" {
		t.Fatalf("after default de: %+v, want DE and the name kept", got)
	}
	got = patchCustomer(t, c, "acme", `{"default_usage_location": null}`)
	if got.DefaultUsageLocation != nil || got.Name != "Acme Corp" {
		t.Fatalf("after default null: %+v, want no default", got)
	}
	var read customerView
	c.Must(http.StatusOK, "GET", "/v1/customers/acme", nil).JSON(t, &read)
	if read.DefaultUsageLocation != nil || read.Name != "Acme Corp" {
		t.Fatalf("GET after the changes: %+v", read)
	}

	for _, tc := range []struct{ name, body, says string }{
		{"empty", `{}`, "nothing to change"},
		{"empty name", `{"name": ""}`, "name"},
		{"long name", `{"name": "` + strings.Repeat("n", 257) + `"}`, "name"},
		{"name null", `{"name": null}`, "nothing to change"},
		{"bad country", `{"default_usage_location": "UK"}`, "ISO 3166"},
		{"country number", `{"default_usage_location": 48}`, "default_usage_location"},
		{"id", `{"id": "other"}`, `"id"`},
		{"directory", `{"directory": {"kind": "msgraph", "tenant_id": "t"}}`, `"directory"`},
		{"case", `{"Name": "x"}`, "case-sensitive"},
	} {
		r := c.Do("PATCH", "/v1/customers/acme", tc.body)
		if r.Status != http.StatusBadRequest || r.ErrorCode() != "InvalidRequest" || !strings.Contains(errorMessage(t, r), tc.says) {
			t.Errorf("%s: %d %s, want 400 InvalidRequest mentioning %s", tc.name, r.Status, r.Body, tc.says)
		}
	}
	if r := c.Do("PATCH", "/v1/customers/nobody", map[string]any{"name": "x"}); r.Status != http.StatusNotFound {
		t.Errorf("unknown customer: %d %s, want 404", r.Status, r.Body)
	}
	if r := b.Client("p2", "global_admin").Do("PATCH", "/v1/customers/acme", map[string]any{"name": "Mine"}); r.Status != http.StatusNotFound {
		t.Errorf("another partner's customer: %d %s, want 404", r.Status, r.Body)
	}
	if r := b.Client("p1", "reader").Do("PATCH", "/v1/customers/acme", map[string]any{"name": "x"}); r.Status != http.StatusForbidden {
		t.Errorf("reader: %d %s, want 403", r.Status, r.Body)
	}

	// Creating an existing customer points to PATCH.
	r := c.Do("POST", "/v1/customers", map[string]any{"id": "acme", "name": "Again"})
	if r.Status != http.StatusConflict || !strings.Contains(errorMessage(t, r), "PATCH /v1/customers/acme") {
		t.Errorf("existing customer: %d %s, want 409 naming PATCH /v1/customers/acme", r.Status, r.Body)
	}

	// Audited, newest first: the last change cleared the default.
	var page auditPage
	admin.Must(http.StatusOK, "GET", "/v1/audit?page_size=3", nil).JSON(t, &page)
	if len(page.Entries) == 0 {
		t.Fatal("no audit entries")
	}
	e := page.Entries[0]
	if e.Action != "customer.update" || e.Role != "sales_agent" || e.ObjectID != "acme" || e.CustomerID == nil || *e.CustomerID != "acme" ||
		compactJSON(t, e.Details) != `{"changed":["default_usage_location"],"default_usage_location":null,"name":"Acme Corp"}` {
		t.Errorf("newest audit entry = %+v details %s", e, e.Details)
	}

	// Without a default, a user without a usage location cannot get a
	// license; with one again, it can.
	var acc struct{ ID string }
	admin.Must(http.StatusAccepted, "POST", "/v1/customers/acme/license-operations",
		map[string]any{"user_ids": tn.users[:1], "assign": []string{"E5"}}).JSON(t, &acc)
	admin.WaitOperation(acc.ID, 30*time.Second)
	var rep report
	admin.Must(http.StatusOK, "GET", "/v1/operations/"+acc.ID+"/report", nil).JSON(t, &rep)
	if len(rep.Results) != 1 || rep.Results[0].Error == nil || rep.Results[0].Error.Code != "UsageLocationMissing" {
		t.Fatalf("assign without a default usage location: %+v, want UsageLocationMissing", rep.Results)
	}
	patchCustomer(t, c, "acme", map[string]any{"default_usage_location": "PL"})
	admin.Must(http.StatusAccepted, "POST", "/v1/customers/acme/license-operations",
		map[string]any{"user_ids": tn.users[:1], "assign": []string{"E5"}}).JSON(t, &acc)
	if op := admin.WaitOperation(acc.ID, 30*time.Second); op.Succeeded != 1 {
		t.Fatalf("assign with the default PL again: %+v, want it to succeed", op)
	}
}
