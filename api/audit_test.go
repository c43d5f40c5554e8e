package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
)

type auditEntry struct {
	ID         int64           `json:"id"`
	TokenID    *int64          `json:"token_id"`
	TokenName  string          `json:"token_name"`
	Role       string          `json:"role"`
	Action     string          `json:"action"`
	CustomerID *string         `json:"customer_id"`
	ObjectID   string          `json:"object_id"`
	Details    json.RawMessage `json:"details"`
	CreatedAt  time.Time       `json:"created_at"`
}

type auditPage struct {
	Entries    []auditEntry `json:"entries"`
	Page       int          `json:"page"`
	PageSize   int          `json:"page_size"`
	Total      int          `json:"total"`
	TotalPages int          `json:"total_pages"`
	Links      struct {
		First, Last string
		Prev, Next  *string
	} `json:"links"`
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	admin := b.Client("p", "global_admin")
	sales := b.Client("p", "sales_agent")
	helpdesk := b.Client("p", "helpdesk_agent")
	auditor := b.Client("p", "admin_agent")

	admin.Must(http.StatusOK, "PUT", "/v1/products/E5", map[string]any{"name": "Office 365 E5", "prohibited_locations": []string{"CN"}})
	sales.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": "audited", "name": "Audited"})
	users := []map[string]any{{"id": "u1", "user_principal_name": "u1@x"}, {"id": "u2", "user_principal_name": "u2@x"}}
	admin.Must(http.StatusOK, "POST", "/v1/customers/audited/users/import", map[string]any{"users": users})
	admin.Must(http.StatusOK, "POST", "/v1/customers/audited/users/import", map[string]any{"users": append(users, map[string]any{"id": "u3", "user_principal_name": "u3@x"})})
	admin.Must(http.StatusOK, "PATCH", "/v1/customers/audited/users/u1", map[string]any{"usage_location": "pl"})
	sales.Must(http.StatusOK, "PUT", "/v1/customers/audited/subscriptions/E5", map[string]int{"total": 1})
	sales.Must(http.StatusOK, "PUT", "/v1/customers/audited/subscriptions/E5", map[string]int{"total": 2})
	var acc struct{ ID string }
	op := map[string]any{"user_ids": []string{"u1", "u2", "u1"}, "assign": []string{"E5"}}
	helpdesk.Must(http.StatusAccepted, "POST", "/v1/customers/audited/license-operations", op, "Idempotency-Key", "k").JSON(t, &acc)
	// Neither a replay nor a refused change is a change.
	helpdesk.Must(http.StatusAccepted, "POST", "/v1/customers/audited/license-operations", op, "Idempotency-Key", "k")
	helpdesk.Must(http.StatusConflict, "POST", "/v1/customers/audited/license-operations",
		map[string]any{"user_ids": []string{"u2", "u3"}, "assign": []string{"E5"}, "usage_location": "US"})
	sales.Must(http.StatusConflict, "POST", "/v1/customers", map[string]any{"id": "audited", "name": "Again"})
	admin.Must(http.StatusBadRequest, "PATCH", "/v1/customers/audited/users/u1", map[string]any{"usage_location": "UK"})

	var page auditPage
	auditor.Must(http.StatusOK, "GET", "/v1/audit", nil).JSON(t, &page)
	want := []struct {
		action, who, customer, object, details string
	}{
		{"operation.create", "helpdesk_agent", "audited", acc.ID, `{"assign":["E5"],"revoke":[],"skus":1,"users":2}`},
		{"subscription.set_total", "sales_agent", "audited", "E5", `{"new_total":2,"old_total":1}`},
		{"subscription.set_total", "sales_agent", "audited", "E5", `{"new_total":1,"old_total":null}`},
		{"user.set_usage_location", "global_admin", "audited", "u1", `{"usage_location":"PL"}`},
		{"users.import", "global_admin", "audited", "", `{"created":1,"rows":3,"updated":2}`},
		{"users.import", "global_admin", "audited", "", `{"created":2,"rows":2,"updated":0}`},
		{"customer.create", "sales_agent", "audited", "audited", `{"directory":"local","name":"Audited"}`},
		{"product.put", "global_admin", "", "E5", ""},
	}
	if page.Total != len(want) || len(page.Entries) != len(want) {
		t.Fatalf("audit log has %d entries (%d on the page), want %d: %+v", page.Total, len(page.Entries), len(want), page.Entries)
	}
	for i, w := range want {
		e := page.Entries[i]
		customer := ""
		if e.CustomerID != nil {
			customer = *e.CustomerID
		}
		if e.Action != w.action || e.Role != w.who || e.TokenName != w.who+"-token" || e.TokenID == nil ||
			customer != w.customer || e.ObjectID != w.object || e.CreatedAt.IsZero() {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
		if w.details != "" && compactJSON(t, e.Details) != w.details {
			t.Errorf("entry %d (%s) details %s, want %s", i, e.Action, e.Details, w.details)
		}
		if i > 0 && e.CreatedAt.After(page.Entries[i-1].CreatedAt) {
			t.Errorf("entry %d is newer than entry %d: not newest first", i, i-1)
		}
	}
	var product struct {
		SKU                 string   `json:"sku_id"`
		Name                string   `json:"name"`
		ProhibitedLocations []string `json:"prohibited_locations"`
	}
	if err := json.Unmarshal(page.Entries[len(want)-1].Details, &product); err != nil || product.Name != "Office 365 E5" || len(product.ProhibitedLocations) != 1 {
		t.Errorf("product.put details = %s, want the product as stored", page.Entries[len(want)-1].Details)
	}

	// Paged like the user list.
	var seen []int64
	path := "/v1/audit?page_size=3"
	for n := 1; ; n++ {
		var p auditPage
		auditor.Must(http.StatusOK, "GET", path, nil).JSON(t, &p)
		if p.Page != n || p.PageSize != 3 || p.Total != len(want) || p.TotalPages != 3 || (p.Links.Prev == nil) != (n == 1) {
			t.Fatalf("page %d = %+v", n, p)
		}
		for _, e := range p.Entries {
			seen = append(seen, e.ID)
		}
		if p.Links.Next == nil {
			break
		}
		path = *p.Links.Next
	}
	if len(seen) != len(want) {
		t.Fatalf("paged through %d entries, want %d", len(seen), len(want))
	}
	for i, e := range page.Entries {
		if seen[i] != e.ID {
			t.Fatalf("paging order %v differs from the full list at %d", seen, i)
		}
	}
}

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("details %s: %v", raw, err)
	}
	b, _ := json.Marshal(v) // maps marshal with sorted keys
	return string(b)
}
