package api_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/licensing"
)

func TestMain(m *testing.M) { testenv.Run(m) }

type tenant struct {
	customer string
	users    []string
}

// seedTenant creates a catalog (E3, E5, VISIO with rules, and a product
// without rules for any other SKU of seats), a customer with n users and
// subscriptions, through the API.
func seedTenant(t *testing.T, c *testapp.Client, customer string, n int, seats map[string]int) tenant {
	t.Helper()
	users := make([]client.UserImport, n)
	for i := range users {
		id := fmt.Sprintf("u%05d", i)
		users[i] = client.UserImport{ID: id, UserPrincipalName: id + "@example.com", DisplayName: fmt.Sprintf("User %05d", n-i)}
	}
	ids := c.Seed(seed.Tenant{
		Customer: client.CustomerRequest{ID: customer, Name: "Customer " + customer, DefaultUsageLocation: new("PL")},
		Products: map[string]client.ProductRequest{
			"E3":    {Name: "Office 365 E3", Excludes: []string{"E5"}},
			"E5":    {Name: "Office 365 E5", ProhibitedLocations: []string{"CN"}},
			"VISIO": {Name: "Visio", Requires: []string{"E5"}},
		},
		Users: users,
		Seats: seats,
	})
	return tenant{customer: customer, users: ids}
}

type subscription struct {
	SKU        string  `json:"sku_id"`
	Total      int     `json:"total"`
	Consumed   int     `json:"consumed"`
	Available  int     `json:"available"`
	BuyMoreURL *string `json:"buy_more_url"`
}

func subscriptions(t *testing.T, c *testapp.Client, customer string) map[string]subscription {
	t.Helper()
	var out struct{ Subscriptions []subscription }
	c.Must(200, "GET", "/v1/customers/"+customer+"/subscriptions", nil).JSON(t, &out)
	m := map[string]subscription{}
	for _, s := range out.Subscriptions {
		m[s.SKU] = s
	}
	return m
}

type reportRow struct {
	UserID      string   `json:"user_id"`
	DisplayName string   `json:"display_name"`
	Status      string   `json:"status"`
	Assigned    []string `json:"assigned"`
	Revoked     []string `json:"revoked"`
	Licenses    []string `json:"licenses"`
	Error       *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type report struct {
	Operation licensing.Operation `json:"operation"`
	Results   []reportRow         `json:"results"`
}

func TestRolloutEndToEnd(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p1", "global_admin")
	tn := seedTenant(t, c, "contoso", 300, map[string]int{"E3": 300, "E5": 250})

	r := c.Must(http.StatusAccepted, "POST", "/v1/customers/contoso/license-operations",
		map[string]any{"user_ids": tn.users, "assign": []string{"E5"}, "allow_partial": true})
	var accepted struct {
		ID, CustomerID, Status string
		Total                  int
		Links                  struct{ Self, Report string }
	}
	r.JSON(t, &accepted)
	if accepted.Status != "queued" || accepted.Total != 300 || r.Header.Get("Location") != accepted.Links.Self ||
		accepted.Links.Self != "/v1/operations/"+accepted.ID {
		t.Fatalf("accepted = %+v, Location %q", accepted, r.Header.Get("Location"))
	}
	op := c.WaitOperation(accepted.ID, 30*time.Second)
	if op.Status != "completed_with_errors" || op.Succeeded != 250 || op.Failed != 50 || op.Pending != 0 {
		t.Fatalf("operation = %+v, want 250 succeeded and 50 failed", op)
	}
	var rep report
	c.Must(200, "GET", "/v1/operations/"+op.ID+"/report", nil).JSON(t, &rep)
	if len(rep.Results) != 300 {
		t.Fatalf("report has %d rows, want 300", len(rep.Results))
	}
	failed := 0
	for i, row := range rep.Results {
		if i > 0 && rep.Results[i-1].DisplayName > row.DisplayName {
			t.Fatalf("report not sorted by display name at %d: %q > %q", i, rep.Results[i-1].DisplayName, row.DisplayName)
		}
		switch row.Status {
		case "succeeded":
			if strings.Join(row.Assigned, ",") != "E5" || strings.Join(row.Licenses, ",") != "E5" || row.Error != nil {
				t.Fatalf("succeeded row = %+v", row)
			}
		case "failed":
			failed++
			if row.Error == nil || row.Error.Code != "CountViolation" || len(row.Licenses) != 0 || len(row.Assigned) != 0 {
				t.Fatalf("failed row = %+v", row)
			}
		default:
			t.Fatalf("row status %q", row.Status)
		}
	}
	if failed != 50 {
		t.Fatalf("%d failed rows, want 50", failed)
	}
	subs := subscriptions(t, c, "contoso")
	if s := subs["E5"]; s.Consumed != 250 || s.Available != 0 || s.BuyMoreURL == nil {
		t.Fatalf("E5 after rollout = %+v", s)
	}

	// The same report as CSV, by Accept and by ?format=csv.
	for _, get := range []func() *testapp.Response{
		func() *testapp.Response {
			return c.Must(200, "GET", "/v1/operations/"+op.ID+"/report", nil, "Accept", "text/csv")
		},
		func() *testapp.Response { return c.Must(200, "GET", "/v1/operations/"+op.ID+"/report?format=csv", nil) },
	} {
		resp := get()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Fatalf("Content-Type %q", ct)
		}
		records, err := csv.NewReader(strings.NewReader(string(resp.Body))).ReadAll()
		if err != nil {
			t.Fatalf("csv: %v", err)
		}
		if len(records) != 301 || records[0][0] != "user_id" || records[0][3] != "status" {
			t.Fatalf("csv has %d records, header %v", len(records), records[0])
		}
		for i, rec := range records[1:] {
			if rec[0] != rep.Results[i].UserID || rec[3] != rep.Results[i].Status {
				t.Fatalf("csv row %d = %v, json row = %+v", i, rec, rep.Results[i])
			}
		}
	}

	// Assigning again changes nothing and succeeds for the holders.
	again := c.Must(http.StatusAccepted, "POST", "/v1/customers/contoso/license-operations",
		map[string]any{"user_ids": tn.users[:10], "assign": []string{"E5"}, "allow_partial": true})
	var id struct{ ID string }
	again.JSON(t, &id)
	op2 := c.WaitOperation(id.ID, 30*time.Second)
	var rep2 report
	c.Must(200, "GET", "/v1/operations/"+op2.ID+"/report", nil).JSON(t, &rep2)
	holders := map[string]bool{}
	for _, row := range rep.Results {
		holders[row.UserID] = row.Status == "succeeded"
	}
	for _, row := range rep2.Results {
		if holders[row.UserID] && (row.Status != "succeeded" || len(row.Assigned) != 0) {
			t.Fatalf("re-assign to holder = %+v", row)
		}
	}
	if s := subscriptions(t, c, "contoso")["E5"]; s.Consumed != 250 {
		t.Fatalf("E5 consumed %d after no-op re-assign, want 250", s.Consumed)
	}
	checkSeatInvariant(t, b)
}

// checkSeatInvariant asserts consumed equals assignments and nothing stays reserved.
func checkSeatInvariant(t *testing.T, b *testapp.Bundle) {
	t.Helper()
	var bad []string
	err := b.DB.Select(&bad, `
		SELECT s.sku_id || ': consumed ' || s.consumed || ', reserved ' || s.reserved || ', assignments ' ||
			(SELECT count(*) FROM assignments a WHERE a.customer_key = s.customer_key AND a.sku_id = s.sku_id)
		FROM subscriptions s
		WHERE s.reserved <> 0 OR s.consumed <> (SELECT count(*) FROM assignments a WHERE a.customer_key = s.customer_key AND a.sku_id = s.sku_id)`)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("seat invariant broken: %v", bad)
	}
}

func TestCountViolationAtIntake(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p1", "global_admin")
	tn := seedTenant(t, c, "fabrikam", 20, map[string]int{"E5": 5})
	r := c.Must(http.StatusConflict, "POST", "/v1/customers/fabrikam/license-operations",
		map[string]any{"user_ids": tn.users, "assign": []string{"E5"}})
	var body struct {
		Error struct {
			Code    string
			Message string
			Details struct {
				Skus []struct {
					SkuID      string `json:"sku_id"`
					Needed     int
					Available  int
					BuyMoreURL string `json:"buy_more_url"`
				}
			}
		}
	}
	r.JSON(t, &body)
	e := body.Error
	if e.Code != "CountViolation" || len(e.Details.Skus) != 1 || e.Details.Skus[0].SkuID != "E5" ||
		e.Details.Skus[0].Needed != 20 || e.Details.Skus[0].Available != 5 || !strings.Contains(e.Details.Skus[0].BuyMoreURL, "fabrikam") {
		t.Fatalf("error = %+v", e)
	}
	var ops struct{ Operations []licensing.Operation }
	c.Must(200, "GET", "/v1/customers/fabrikam/operations", nil).JSON(t, &ops)
	if len(ops.Operations) != 0 {
		t.Fatalf("a refused operation was queued: %+v", ops.Operations)
	}
	if s := subscriptions(t, c, "fabrikam")["E5"]; s.Available != 5 {
		t.Fatalf("seats changed by a refused operation: %+v", s)
	}
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p1", "global_admin")
	tn := seedTenant(t, c, "acme", 3, map[string]int{"E5": 5})
	path := "/v1/customers/acme/license-operations"
	cases := []struct {
		name   string
		body   string
		status int
		code   string
		says   string
	}{
		{"empty", ``, 400, "InvalidRequest", "empty"},
		{"not json", `{"user_ids": [`, 400, "InvalidRequest", "JSON"},
		{"array", `[]`, 400, "InvalidRequest", "object"},
		{"unknown field", `{"user_ids":["u00000"],"assign":["E5"],"color":"red"}`, 400, "InvalidRequest", "color"},
		{"wrong type", `{"user_ids":"u00000","assign":["E5"]}`, 400, "InvalidRequest", `user_ids`},
		{"wrong bool", `{"user_ids":["u00000"],"assign":["E5"],"allow_partial":"yes"}`, 400, "InvalidRequest", "allow_partial"},
		{"trailing", `{"user_ids":["u00000"],"assign":["E5"]} {}`, 400, "InvalidRequest", "after"},
		{"no users", `{"user_ids":[],"assign":["E5"]}`, 400, "InvalidRequest", "user_ids"},
		{"nothing to do", `{"user_ids":["u00000"]}`, 400, "InvalidRequest", "assign, revoke or replace"},
		{"both", `{"user_ids":["u00000"],"assign":["E5"],"revoke":["E5"]}`, 400, "InvalidRequest", "both"},
		{"bad id", `{"user_ids":["a/b"],"assign":["E5"]}`, 400, "InvalidRequest", "not a valid ID"},
		{"bad country", `{"user_ids":["u00000"],"assign":["E5"],"usage_location":"XX"}`, 400, "InvalidRequest", "ISO 3166"},
		{"unknown user", `{"user_ids":["u00000","ghost"],"assign":["E5"]}`, 422, "UnknownUsers", "ghost"},
		{"unknown sku", `{"user_ids":["u00000"],"assign":["NOPE"]}`, 422, "UnknownSkus", "NOPE"},
	}
	for _, tc := range cases {
		r := c.Do("POST", path, tc.body)
		if r.Status != tc.status || r.ErrorCode() != tc.code || !strings.Contains(string(r.Body), tc.says) {
			t.Errorf("%s: %d %s, want %d %s mentioning %q", tc.name, r.Status, r.Body, tc.status, tc.code, tc.says)
		}
	}
	var ops struct{ Operations []licensing.Operation }
	c.Must(200, "GET", "/v1/customers/acme/operations", nil).JSON(t, &ops)
	if len(ops.Operations) != 0 {
		t.Fatalf("a malformed request created an operation")
	}
	_ = tn
}

// A seat total needs the SKU in the partner's catalog: a typo must not
// create a subscription without product rules. And a total is refused
// below the seats assigned plus those held by unfinished operations.
func TestSubscriptionNeedsProductAndCoversHeldSeats(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{}) // no worker: the operation below stays unfinished
	c := b.Client("p1", "global_admin")
	tn := seedTenant(t, c, "contoso", 5, map[string]int{"E5": 10})

	r := c.Do("PUT", "/v1/customers/contoso/subscriptions/E5X", map[string]int{"total": 5})
	if r.Status != http.StatusNotFound || r.ErrorCode() != "NotFound" || !strings.Contains(string(r.Body), "PUT /v1/products/E5X") {
		t.Fatalf("unknown SKU: %d %s, want 404 NotFound telling to create the product first", r.Status, r.Body)
	}
	// Another partner's product of that ID does not count.
	b.Client("p2", "global_admin").Must(http.StatusOK, "PUT", "/v1/products/E5X", map[string]any{"name": "Not yours"})
	if r := c.Do("PUT", "/v1/customers/contoso/subscriptions/E5X", map[string]int{"total": 5}); r.Status != http.StatusNotFound {
		t.Fatalf("SKU only in another partner's catalog: %d %s, want 404", r.Status, r.Body)
	}
	if _, ok := subscriptions(t, c, "contoso")["E5X"]; ok {
		t.Fatal("a refused PUT created a subscription")
	}
	c.Must(http.StatusOK, "PUT", "/v1/products/E5X", map[string]any{"name": "E5, typo fixed in the catalog"})
	c.Must(http.StatusOK, "PUT", "/v1/customers/contoso/subscriptions/E5X", map[string]int{"total": 5})

	// Three seats held by a queued operation: nothing consumed yet, and
	// still the total cannot go below 3.
	c.Must(http.StatusAccepted, "POST", "/v1/customers/contoso/license-operations",
		map[string]any{"user_ids": tn.users[:3], "assign": []string{"E5"}})
	r = c.Do("PUT", "/v1/customers/contoso/subscriptions/E5", map[string]int{"total": 2})
	var body struct {
		Error struct {
			Code    string
			Details struct {
				Consumed, Reserved int
				MinimumTotal       int `json:"minimum_total"`
			}
		}
	}
	r.JSON(t, &body)
	if d := body.Error.Details; r.Status != http.StatusConflict || body.Error.Code != "SeatsInUse" || d.Consumed != 0 || d.Reserved != 3 || d.MinimumTotal != 3 {
		t.Fatalf("total below the held seats: %d %s, want 409 SeatsInUse with consumed 0, reserved 3, minimum_total 3", r.Status, r.Body)
	}
	c.Must(http.StatusOK, "PUT", "/v1/customers/contoso/subscriptions/E5", map[string]int{"total": 3})
}
