package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
)

type previewSKU struct {
	SKU        string `json:"sku_id"`
	Needed     int    `json:"needed"`
	Available  int    `json:"available"`
	BuyMoreURL string `json:"buy_more_url"`
}

type previewRow struct {
	UserID            string   `json:"user_id"`
	DisplayName       string   `json:"display_name"`
	UserPrincipalName string   `json:"user_principal_name"`
	Status            string   `json:"status"`
	Assigned          []string `json:"assigned"`
	Revoked           []string `json:"revoked"`
	Licenses          []string `json:"licenses"`
	UsageLocation     *string  `json:"usage_location"`
	Error             *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type preview struct {
	DryRun       bool         `json:"dry_run"`
	CustomerID   string       `json:"customer_id"`
	Total        int          `json:"total"`
	WouldSucceed int          `json:"would_succeed"`
	WouldFail    int          `json:"would_fail"`
	SKUs         []previewSKU `json:"skus"`
	Results      []previewRow `json:"results"`
}

// dbState is what a dry run must leave as it was: operations, items,
// seats, assignments, users' locations, the audit log and idempotency keys.
func dbState(t *testing.T, b *testapp.Bundle) string {
	t.Helper()
	var s string
	if err := b.DB.Get(&s, `
		SELECT concat_ws(' | ',
			(SELECT count(*) FROM operations), (SELECT count(*) FROM operation_items),
			(SELECT string_agg(sku_id || ':' || total || '/' || consumed || '/' || reserved, ',' ORDER BY sku_id) FROM subscriptions),
			(SELECT string_agg(user_id || ':' || sku_id, ',' ORDER BY user_id, sku_id) FROM assignments),
			(SELECT string_agg(id || ':' || COALESCE(usage_location, '-'), ',' ORDER BY id) FROM users),
			(SELECT count(*) FROM audit_log), (SELECT count(*) FROM idempotency_keys))`); err != nil {
		t.Fatal(err)
	}
	return s
}

// previewTenant is customer "mixed" (no default usage location) of a
// catalog where E3 excludes E5 and VISIO requires P1, with these users,
// listed in the order the tests select them, their display names sorting
// otherwise:
//
//	ok1, ok2     enabled, in PL, hold nothing
//	ok3          the same, but "Aaron": first in the report
//	disabled     a disabled account
//	noloc        no usage location
//	excl         holds E3
//	dep          holds P1 and VISIO
//	holder       holds E5 and P1
//
// E5 has 3 seats, one of them holder's: 2 are free.
func previewTenant(t *testing.T, b *testapp.Bundle, c *testapp.Client) []string {
	t.Helper()
	c.Must(http.StatusOK, "PUT", "/v1/products/E5", map[string]any{"name": "E5", "prohibited_locations": []string{"CN"}})
	c.Must(http.StatusOK, "PUT", "/v1/products/E3", map[string]any{"name": "E3", "excludes": []string{"E5"}})
	c.Must(http.StatusOK, "PUT", "/v1/products/P1", map[string]any{"name": "Plan 1"})
	c.Must(http.StatusOK, "PUT", "/v1/products/VISIO", map[string]any{"name": "Visio", "requires": []string{"P1"}})
	c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": "mixed", "name": "Mixed"})
	names := map[string]string{"ok1": "Maria", "ok2": "Zoe", "ok3": "Aaron", "disabled": "Dora", "noloc": "Nora",
		"excl": "Ellis", "dep": "Dana", "holder": "Hugo"}
	order := []string{"ok1", "ok2", "ok3", "disabled", "noloc", "excl", "dep", "holder"}
	var rows []map[string]any
	for _, id := range order {
		row := map[string]any{"id": id, "user_principal_name": id + "@mixed.example", "display_name": names[id], "account_enabled": id != "disabled"}
		if id != "noloc" {
			row["usage_location"] = "PL"
		}
		rows = append(rows, row)
	}
	c.Must(http.StatusOK, "POST", "/v1/customers/mixed/users/import", map[string]any{"users": rows})
	for sku, total := range map[string]int{"E5": 3, "E3": 10, "P1": 10, "VISIO": 10} {
		c.Must(http.StatusOK, "PUT", "/v1/customers/mixed/subscriptions/"+sku, map[string]int{"total": total})
	}
	for _, setup := range []struct {
		user   string
		assign []string
	}{{"excl", []string{"E3"}}, {"dep", []string{"P1", "VISIO"}}, {"holder", []string{"E5", "P1"}}} {
		var acc struct{ ID string }
		c.Must(http.StatusAccepted, "POST", "/v1/customers/mixed/license-operations",
			map[string]any{"user_ids": []string{setup.user}, "assign": setup.assign}).JSON(t, &acc)
		if op := c.WaitOperation(acc.ID, 30*time.Second); op.Succeeded != 1 {
			t.Fatalf("setup of %s: %+v", setup.user, op)
		}
	}
	return order
}

// A dry run predicts each user's outcome as the operation then has it, row
// for row in the report's order: a disabled account, a missing usage
// location, an exclusive pair, a missing prerequisite, and seats short
// under allow_partial: only the three users the rules let take E5 need a
// seat, and the two free seats go in report order (Aaron, Maria), so Zoe
// gets none although she is second in the list. Nothing is written, and the
// Idempotency-Key sent with the dry run is still free for the real submit.
func TestDryRunPredictsOutcome(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := previewTenant(t, b, c)
	body := map[string]any{"user_ids": users, "assign": []string{"E5"}, "revoke": []string{"P1"}, "allow_partial": true}

	before := dbState(t, b)
	dry := map[string]any{"dry_run": true}
	for k, v := range body {
		dry[k] = v
	}
	var pv preview
	r := c.Must(http.StatusOK, "POST", "/v1/customers/mixed/license-operations", dry, "Idempotency-Key", "rollout-7")
	r.JSON(t, &pv)
	if after := dbState(t, b); after != before {
		t.Fatalf("the dry run changed the database:\n%s\n%s", before, after)
	}
	if r.Header.Get("Location") != "" {
		t.Errorf("a preview has a Location: %q", r.Header.Get("Location"))
	}
	wantSKUs := []previewSKU{{SKU: "E5", Needed: 3, Available: 2,
		BuyMoreURL: "https://partner.example.com/customers/mixed/subscriptions/E5/buy-more"}}
	if !pv.DryRun || pv.CustomerID != "mixed" || pv.Total != 8 || pv.WouldSucceed != 3 || pv.WouldFail != 5 ||
		!reflect.DeepEqual(pv.SKUs, wantSKUs) {
		t.Fatalf("preview summary = %+v, skus %+v", pv, pv.SKUs)
	}
	want := map[string]string{"ok1": "", "ok2": "CountViolation", "holder": "", "ok3": "", "disabled": "UserDisabled",
		"noloc": "UsageLocationMissing", "excl": "MutuallyExclusiveViolation", "dep": "DependencyViolation"}
	for _, row := range pv.Results {
		code := ""
		if row.Error != nil {
			code = row.Error.Code
		}
		if code != want[row.UserID] || (code == "") != (row.Status == "would_succeed") || (code != "") != (row.Status == "would_fail") {
			t.Errorf("preview of %s: %s %s, want code %q", row.UserID, row.Status, code, want[row.UserID])
		}
	}

	// The real submit, under the key the dry run was sent with.
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/mixed/license-operations", body, "Idempotency-Key", "rollout-7").JSON(t, &acc)
	c.WaitOperation(acc.ID, 30*time.Second)
	var rep struct{ Results []previewRow }
	c.Must(http.StatusOK, "GET", "/v1/operations/"+acc.ID+"/report", nil).JSON(t, &rep)
	if len(rep.Results) != len(pv.Results) {
		t.Fatalf("report has %d rows, preview %d", len(rep.Results), len(pv.Results))
	}
	status := map[string]string{"succeeded": "would_succeed", "failed": "would_fail"}
	for i, got := range rep.Results {
		predicted := pv.Results[i]
		got.Status = status[got.Status]
		g, _ := json.Marshal(got)
		p, _ := json.Marshal(predicted)
		if string(g) != string(p) {
			t.Errorf("row %d:\nreport  %s\npreview %s", i, g, p)
		}
	}
	if pv.Results[0].UserID != "ok3" {
		t.Errorf("first row %s, want ok3 (Aaron): rows are in the report's order", pv.Results[0].UserID)
	}
}

// A dry run is refused exactly as the real submit: the same status and
// body for a malformed request, unknown users or SKUs, and seats short
// without allow_partial. Neither the refused dry runs nor the dry run of a
// valid request write anything.
func TestDryRunRefusedAsSubmit(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "helpdesk_agent")
	admin := b.Client("p", "global_admin")
	tn := seedTenant(t, admin, "acme", 5, map[string]int{"E5": 2})
	before := dbState(t, b)
	for _, body := range []map[string]any{
		{"user_ids": tn.users, "assign": []string{"E5"}},
		{"user_ids": []string{tn.users[0], "ghost-1", "ghost-2"}, "assign": []string{"E5"}},
		{"user_ids": tn.users, "assign": []string{"E5", "NOPE"}},
		{"user_ids": tn.users, "assign": []string{"E5"}, "revoke": []string{"E5"}},
		{"user_ids": tn.users},
		{"user_ids": tn.users, "assign": []string{"E5"}, "usage_location": "XX"},
	} {
		dry := map[string]any{"dry_run": true}
		for k, v := range body {
			dry[k] = v
		}
		real := c.Do("POST", "/v1/customers/acme/license-operations", body)
		preview := c.Do("POST", "/v1/customers/acme/license-operations", dry)
		if real.Status < 400 || preview.Status != real.Status || string(preview.Body) != string(real.Body) {
			t.Errorf("%v:\nsubmit  %d %s\ndry run %d %s", body, real.Status, real.Body, preview.Status, preview.Body)
		}
	}
	var pv preview
	c.Must(http.StatusOK, "POST", "/v1/customers/acme/license-operations",
		map[string]any{"user_ids": tn.users[:2], "assign": []string{"E5"}, "dry_run": true}).JSON(t, &pv)
	if pv.WouldSucceed != 2 || len(pv.SKUs) != 1 || pv.SKUs[0].Needed != 2 || pv.SKUs[0].Available != 2 {
		t.Fatalf("preview %+v", pv)
	}
	if after := dbState(t, b); after != before {
		t.Fatalf("refused requests and a dry run changed the database:\n%s\n%s", before, after)
	}
	var revoke preview
	c.Must(http.StatusOK, "POST", "/v1/customers/acme/license-operations",
		map[string]any{"user_ids": tn.users[:1], "revoke": []string{"E5"}, "dry_run": true}).JSON(t, &revoke)
	if revoke.SKUs == nil || len(revoke.SKUs) != 0 || revoke.Results[0].Status != "would_succeed" {
		t.Fatalf("revoke-only preview %+v", revoke)
	}
}

// BenchmarkPreview100k measures a dry run of a 100,000-user operation:
// validation, the reads of the whole selection, the rules for every user,
// and the answer.
func BenchmarkPreview100k(b *testing.B) {
	const n = 100_000
	bundle := testapp.New(b, testapp.Options{})
	c := bundle.Client("bench", "global_admin")
	users := make([]client.UserImport, n)
	for i := range users {
		users[i] = client.UserImport{ID: fmt.Sprintf("2f1c8a3e-0000-4000-8000-%012d", i),
			UserPrincipalName: fmt.Sprintf("u%d@example.com", i), DisplayName: fmt.Sprintf("User %d", i)}
	}
	ids := c.Seed(seed.Tenant{
		Customer: client.CustomerRequest{ID: "big", Name: "big", DefaultUsageLocation: new("US")},
		Users:    users, Seats: map[string]int{"E5": n / 2},
	})
	body := map[string]any{"user_ids": ids, "assign": []string{"E5"}, "allow_partial": true, "dry_run": true}
	b.ResetTimer()
	for b.Loop() {
		c.Must(http.StatusOK, "POST", "/v1/customers/big/license-operations", body)
	}
}
