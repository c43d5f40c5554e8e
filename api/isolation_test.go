package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/internal/testapp"
)

// isolationBodies are valid bodies for the routes that take one: if a
// partner could reach another's objects, these would change them.
var isolationBodies = map[string]string{
	"PATCH /v1/customers/{cid}":                      `{"name":"intruder","default_usage_location":null}`,
	"POST /v1/customers/{cid}/users/import":          `{"users":[{"id":"intruder","user_principal_name":"intruder@x"}]}`,
	"PATCH /v1/customers/{cid}/users/{uid}":          `{"usage_location":"DE"}`,
	"PUT /v1/customers/{cid}/subscriptions/{sku_id}": `{"total":1000}`,
	"POST /v1/customers/{cid}/license-summary":       `{"user_ids":["u00000"]}`,
	"POST /v1/customers/{cid}/license-operations":    `{"user_ids":["u00000"],"revoke":["E5"]}`,
	"POST /v1/customers/{cid}/sync":                  ``,
	"POST /v1/operations/{oid}/cancel":               ``,
	"POST /v1/operations/{oid}/undo":                 `{"allow_partial":true}`,

	"POST /v1/customers/{cid}/cleanup-policies":           `{"name":"intruder","schedule":"* * * * *","rule":{"kind":"disabled_accounts"},"dry_run":false}`,
	"PATCH /v1/customers/{cid}/cleanup-policies/{pid}":    `{"dry_run":false,"enabled":true,"schedule":"* * * * *"}`,
	"DELETE /v1/customers/{cid}/cleanup-policies/{pid}":   ``,
	"POST /v1/customers/{cid}/cleanup-policies/{pid}/run": ``,

	"DELETE /v1/webhooks/{wid}": ``,
}

// partnerSide is one partner of the isolation test with its objects.
type partnerSide struct {
	name     string
	c        *testapp.Client
	customer string
	op       string
	policy   string
	webhook  string
}

// snapshot is everything a partner can read about its own objects.
func (p partnerSide) snapshot(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, path := range []string{
		"/v1/customers", "/v1/customers/" + p.customer, "/v1/customers/" + p.customer + "/users",
		"/v1/customers/" + p.customer + "/subscriptions", "/v1/customers/" + p.customer + "/operations",
		"/v1/operations/" + p.op + "/report", "/v1/products", "/v1/audit",
		"/v1/customers/" + p.customer + "/cleanup-policies",
		"/v1/customers/" + p.customer + "/cleanup-policies/" + p.policy + "/runs",
		"/v1/webhooks", "/v1/webhooks/" + p.webhook + "/deliveries",
	} {
		out[path] = p.c.Must(http.StatusOK, "GET", path, nil).Body
	}
	return out
}

// Two partners each try every route on the other's objects: 404 NotFound
// every time, and nothing the other can see has changed.
func TestPartnerIsolation(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	sides := []partnerSide{
		{name: "partner-a", c: b.Client("partner-a", "global_admin"), customer: "alpha"},
		{name: "partner-b", c: b.Client("partner-b", "global_admin"), customer: "beta"},
	}
	for i := range sides {
		s := &sides[i]
		tn := seedTenant(t, s.c, s.customer, 3, map[string]int{"E5": 5})
		var acc struct{ ID string }
		s.c.Must(http.StatusAccepted, "POST", "/v1/customers/"+s.customer+"/license-operations",
			map[string]any{"user_ids": tn.users, "assign": []string{"E5"}}).JSON(t, &acc)
		s.c.WaitOperation(acc.ID, 30*time.Second)
		s.op = acc.ID
		var pol struct{ ID string }
		s.c.Must(http.StatusCreated, "POST", "/v1/customers/"+s.customer+"/cleanup-policies", map[string]any{
			"name": "nightly", "schedule": "0 2 * * *", "rule": map[string]any{"kind": "inactive", "days": 90}, "enabled": false,
		}).JSON(t, &pol)
		s.policy = pol.ID
		var hook struct{ ID string }
		s.c.Must(http.StatusCreated, "POST", "/v1/webhooks", map[string]any{
			"url": "https://hooks." + s.customer + ".example/in", "events": []string{"cleanup.blocked"},
		}).JSON(t, &hook)
		s.webhook = hook.ID
	}
	for i, victim := range sides {
		attacker := sides[1-i]
		before, attackerBefore := victim.snapshot(t), attacker.snapshot(t)
		ids := map[string]string{"cid": victim.customer, "uid": "u00000", "sku_id": "E5", "oid": victim.op, "pid": victim.policy,
			"wid": victim.webhook}
		// The victim's policy under the attacker's own customer: policies
		// are looked up within the caller's partner and customer.
		ownCustomer := map[string]string{"cid": attacker.customer, "pid": victim.policy}
		for _, rt := range api.RouteTable() {
			if !strings.Contains(rt.Pattern, "{cid}") && !strings.Contains(rt.Pattern, "{oid}") && !strings.Contains(rt.Pattern, "{wid}") {
				continue // not under a customer, operation or webhook: checked below
			}
			attempts := []map[string]string{ids}
			if strings.Contains(rt.Pattern, "{pid}") {
				attempts = append(attempts, ownCustomer)
			}
			for _, ids := range attempts {
				method, path := fillPath(t, rt.Pattern, ids)
				var body any
				if method != "GET" {
					raw, ok := isolationBodies[rt.Pattern]
					if !ok {
						t.Errorf("%s: add a valid body to isolationBodies so that the isolation test can try it", rt.Pattern)
						continue
					}
					body = raw
				}
				r := attacker.c.Do(method, path, body)
				if r.Status != http.StatusNotFound || r.ErrorCode() != "NotFound" {
					t.Errorf("%s %s %s: %d %s, want 404 NotFound", attacker.name, method, path, r.Status, r.Body)
				}
			}
		}
		// The catalog is per partner: the attacker's change of a product
		// with the same SKU is its own.
		attacker.c.Must(http.StatusOK, "PUT", "/v1/products/E5", map[string]any{"name": "E5 of " + attacker.name})
		for path, want := range before {
			if got := victim.c.Must(http.StatusOK, "GET", path, nil).Body; !bytes.Equal(got, want) {
				t.Errorf("%s: %s changed after %s's attempts:\nbefore %s\nafter  %s", victim.name, path, attacker.name, want, got)
			}
		}
		// The attacker's refused attempts left no trace in its own audit log,
		// and it sees none of the victim's entries.
		var audit struct {
			Entries []struct {
				Action     string  `json:"action"`
				CustomerID *string `json:"customer_id"`
			} `json:"entries"`
		}
		attacker.c.Must(http.StatusOK, "GET", "/v1/audit?page_size=500", nil).JSON(t, &audit)
		var beforeAudit struct{ Total int }
		if err := json.Unmarshal(attackerBefore["/v1/audit"], &beforeAudit); err != nil {
			t.Fatal(err)
		}
		if len(audit.Entries) != beforeAudit.Total+1 || audit.Entries[0].Action != "product.put" {
			t.Errorf("%s's audit log has %d entries, want the %d before and its product.put: %+v", attacker.name, len(audit.Entries), beforeAudit.Total, audit.Entries)
		}
		for _, e := range audit.Entries {
			if e.CustomerID != nil && *e.CustomerID != attacker.customer {
				t.Errorf("%s sees an audit entry of customer %s", attacker.name, *e.CustomerID)
			}
		}
	}
	// Customer IDs are per partner: b may create its own "alpha", and it
	// is not a's.
	bSide := sides[1]
	bSide.c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": "alpha", "name": "b's alpha"})
	var users struct{ Total int }
	bSide.c.Must(http.StatusOK, "GET", "/v1/customers/alpha/users", nil).JSON(t, &users)
	if users.Total != 0 {
		t.Fatalf("partner-b's new customer alpha has %d users; it sees partner-a's", users.Total)
	}
}
