package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/internal/testapp"
)

// unknownSkus sends an operation (or a cleanup policy) that names SKUs the
// customer has no subscription for and returns the 422's message and the
// offending IDs of its details.
func unknownSkus(t *testing.T, c *testapp.Client, path string, body any) (message string, skuIDs []string) {
	t.Helper()
	r := c.Do("POST", path, body)
	var e struct {
		Error struct {
			Code    string
			Message string
			Details struct {
				SkuIDs []string `json:"sku_ids"`
			}
		}
	}
	r.JSON(t, &e)
	if r.Status != http.StatusUnprocessableEntity || e.Error.Code != "UnknownSkus" {
		t.Fatalf("POST %s: %d %s, want 422 UnknownSkus", path, r.Status, r.Body)
	}
	return e.Error.Message, e.Error.Details.SkuIDs
}

// An UnknownSkus message names only the wrong SKUs, suggests the customer's
// SKU that a wrong one matches case-insensitively, and lists the customer's
// SKUs; details keep the offending IDs.
func TestUnknownSkusMessageSuggestsTheCustomersSKUs(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p1", "global_admin")
	tn := seedTenant(t, c, "acme", 2, map[string]int{"E3": 5, "E5": 5, "O365_E5": 5})

	msg, ids := unknownSkus(t, c, "/v1/customers/acme/license-operations",
		map[string]any{"user_ids": tn.users, "assign": []string{"o365_e5", "E5", "NOPE"}, "revoke": []string{"E3"}})
	if !slices.Equal(ids, []string{"NOPE", "o365_e5"}) {
		t.Errorf("details.sku_ids = %v, want [NOPE o365_e5]", ids)
	}
	wrong, list, ok := strings.Cut(msg, "; its SKUs are ")
	if !ok {
		t.Fatalf("message %q does not list the customer's SKUs", msg)
	}
	if !strings.Contains(wrong, `"o365_e5" (did you mean O365_E5?)`) || !strings.Contains(wrong, `"NOPE"`) ||
		strings.Contains(wrong, `"NOPE" (did you mean`) {
		t.Errorf("message %q should name o365_e5 with the suggestion O365_E5, and NOPE without one", msg)
	}
	if strings.Contains(wrong, "E3") || strings.Contains(wrong, `"E5"`) {
		t.Errorf("message %q names SKUs the customer has as if they were wrong", msg)
	}
	if !strings.HasPrefix(list, "E3, E5, O365_E5.") {
		t.Errorf("message %q should list the customer's SKUs E3, E5, O365_E5", msg)
	}

	// A cleanup rule's SKUs are checked the same way.
	msg, ids = unknownSkus(t, c, "/v1/customers/acme/cleanup-policies", map[string]any{
		"name": "n", "schedule": "0 2 * * *", "rule": map[string]any{"kind": "disabled_accounts", "skus": []string{" e3"}}})
	if !slices.Equal(ids, []string{" e3"}) || !strings.Contains(msg, `" e3" (did you mean E3?)`) {
		t.Errorf("cleanup rule: message %q, details %v; want \" e3\" with the suggestion E3", msg, ids)
	}

	// A customer without subscriptions says so.
	c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": "empty", "name": "Empty"})
	c.Must(http.StatusOK, "POST", "/v1/customers/empty/users/import", map[string]any{"users": []map[string]any{{"id": "u1", "user_principal_name": "u1@example.com"}}})
	if msg, _ := unknownSkus(t, c, "/v1/customers/empty/license-operations", map[string]any{"user_ids": []string{"u1"}, "assign": []string{"E5"}}); !strings.Contains(msg, "no subscriptions yet") {
		t.Errorf("customer without subscriptions: message %q", msg)
	}
}

// The SKUs of replace are checked like those of assign and revoke, in a
// submit and in a dry run; a pair that makes no sense is 400.
func TestReplaceSKUsAreChecked(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p1", "global_admin")
	tn := seedTenant(t, c, "acme", 2, map[string]int{"E3": 5, "E5": 5})
	for _, dry := range []bool{false, true} {
		_, ids := unknownSkus(t, c, "/v1/customers/acme/license-operations", map[string]any{"user_ids": tn.users, "dry_run": dry,
			"replace": []map[string]string{{"from": "E1", "to": "E5"}, {"from": "E3", "to": "E7"}}})
		if !slices.Equal(ids, []string{"E1", "E7"}) {
			t.Errorf("dry run %v: details.sku_ids = %v, want [E1 E7]", dry, ids)
		}
	}
	r := c.Do("POST", "/v1/customers/acme/license-operations", map[string]any{"user_ids": tn.users, "assign": []string{"E5"},
		"replace": []map[string]string{{"from": "E3", "to": "E5"}}})
	if r.Status != http.StatusBadRequest || r.ErrorCode() != "InvalidRequest" || !strings.Contains(string(r.Body), "SKU E5 is in replace and in assign or revoke") {
		t.Fatalf("replace and assign of one SKU: %d %s, want 400 InvalidRequest naming E5", r.Status, r.Body)
	}
}
