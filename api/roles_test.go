package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
)

// The permission table of the API reference (docs/api.md), written out
// again here rather than taken from the server, so that a wrong entry in the
// server's table fails.
var (
	everyone   = []string{"global_admin", "admin_agent", "user_management_admin", "helpdesk_agent", "sales_agent", "reader"}
	operators  = []string{"global_admin", "admin_agent", "user_management_admin", "helpdesk_agent", "sales_agent"}
	userAdmins = []string{"global_admin", "admin_agent", "user_management_admin"}
	sellers    = []string{"global_admin", "admin_agent", "sales_agent"}
	admins     = []string{"global_admin", "admin_agent"}
)

// wantRoles maps every route to the roles the API reference lets call it.
var wantRoles = map[string][]string{
	"PUT /v1/products/{sku_id}":                      admins,
	"GET /v1/products":                               everyone,
	"POST /v1/customers":                             sellers,
	"GET /v1/customers":                              everyone,
	"GET /v1/customers/{cid}":                        everyone,
	"PATCH /v1/customers/{cid}":                      sellers,
	"POST /v1/customers/{cid}/users/import":          userAdmins,
	"POST /v1/customers/{cid}/sync":                  userAdmins,
	"GET /v1/customers/{cid}/users":                  everyone,
	"GET /v1/customers/{cid}/users/{uid}":            everyone,
	"PATCH /v1/customers/{cid}/users/{uid}":          userAdmins,
	"PUT /v1/customers/{cid}/subscriptions/{sku_id}": sellers,
	"GET /v1/customers/{cid}/subscriptions":          everyone,
	"POST /v1/customers/{cid}/license-summary":       everyone,
	"POST /v1/customers/{cid}/license-operations":    operators,
	"POST /v1/operations/{oid}/cancel":               operators,
	"GET /v1/customers/{cid}/operations":             everyone,
	"GET /v1/operations/{oid}":                       everyone,
	"GET /v1/operations/{oid}/report":                everyone,
	"POST /v1/operations/{oid}/undo":                 operators,
	"GET /v1/audit":                                  admins,

	"POST /v1/customers/{cid}/cleanup-policies":           admins,
	"GET /v1/customers/{cid}/cleanup-policies":            everyone,
	"GET /v1/customers/{cid}/cleanup-policies/{pid}":      everyone,
	"PATCH /v1/customers/{cid}/cleanup-policies/{pid}":    admins,
	"DELETE /v1/customers/{cid}/cleanup-policies/{pid}":   admins,
	"POST /v1/customers/{cid}/cleanup-policies/{pid}/run": admins,
	"GET /v1/customers/{cid}/cleanup-policies/{pid}/runs": everyone,

	"POST /v1/webhooks":                 admins,
	"GET /v1/webhooks":                  everyone,
	"GET /v1/webhooks/{wid}":            everyone,
	"DELETE /v1/webhooks/{wid}":         admins,
	"GET /v1/webhooks/{wid}/deliveries": everyone,
}

// fillPath turns a route pattern into a method and a path with real IDs.
func fillPath(t *testing.T, pattern string, ids map[string]string) (method, path string) {
	t.Helper()
	method, path, _ = strings.Cut(pattern, " ")
	for {
		start := strings.Index(path, "{")
		if start < 0 {
			return method, path
		}
		end := strings.Index(path[start:], "}") + start
		id, ok := ids[path[start+1:end]]
		if !ok {
			t.Fatalf("%s: no test value for path parameter %s; add one to the test's ids", pattern, path[start:end+1])
		}
		path = path[:start] + id + path[end+1:]
	}
}

func TestRouteTableMatchesAPIReference(t *testing.T) {
	t.Parallel()
	if !slices.Equal(licensing.Roles(), everyone) {
		t.Errorf("licensing.Roles() = %v, the API reference has %v", licensing.Roles(), everyone)
	}
	for _, role := range everyone {
		if !licensing.ValidRole(role) {
			t.Errorf("ValidRole(%q) is false", role)
		}
	}
	if licensing.ValidRole("root") || licensing.ValidRole("") {
		t.Error("ValidRole accepts a role the API reference does not have")
	}
	seen := map[string]bool{}
	for _, rt := range api.RouteTable() {
		seen[rt.Pattern] = true
		want, ok := wantRoles[rt.Pattern]
		if !ok {
			t.Errorf("route %s is not in the test's permission table; add it with the roles the API reference (docs/api.md) gives it", rt.Pattern)
			continue
		}
		if !slices.Equal(rt.Roles, want) {
			t.Errorf("%s is allowed to %v, the API reference says %v", rt.Pattern, rt.Roles, want)
		}
	}
	for pattern := range wantRoles {
		if !seen[pattern] {
			t.Errorf("the server has no route %s", pattern)
		}
	}
}

// Every role calls every route: the allowed ones get past authorization,
// the others get 403 Forbidden naming their role and the roles that may.
func TestEveryRoleOnEveryRoute(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	admin := b.Client("p", "global_admin")
	tn := seedTenant(t, admin, "roles", 2, map[string]int{"E5": 5})
	var acc struct{ ID string }
	admin.Must(http.StatusAccepted, "POST", "/v1/customers/roles/license-operations",
		map[string]any{"user_ids": tn.users, "assign": []string{"E5"}}).JSON(t, &acc)
	admin.WaitOperation(acc.ID, 30*time.Second)
	// pid names no policy: the allowed calls get past authorization to a
	// 404, so DELETE and run change nothing for the roles after them.
	ids := map[string]string{"cid": "roles", "uid": tn.users[0], "sku_id": "E5", "oid": acc.ID,
		"pid": "00000000-0000-4000-8000-000000000000", "wid": "00000000-0000-4000-8000-000000000000"}

	for _, role := range everyone {
		c := b.Client("p", role)
		for _, rt := range api.RouteTable() {
			method, path := fillPath(t, rt.Pattern, ids)
			var body any
			if method != "GET" {
				// An empty object: enough to pass authorization, never a
				// valid change, so the allowed calls leave the data alone.
				body = "{}"
			}
			r := c.Do(method, path, body)
			want := wantRoles[rt.Pattern]
			if slices.Contains(want, role) {
				if r.Status == http.StatusForbidden || r.Status == http.StatusUnauthorized || r.Status >= 500 {
					t.Errorf("%s %s as %s: %d %s, want it allowed", method, path, role, r.Status, r.Body)
				}
				continue
			}
			if r.Status != http.StatusForbidden || r.ErrorCode() != "Forbidden" {
				t.Errorf("%s %s as %s: %d %s, want 403 Forbidden", method, path, role, r.Status, r.Body)
				continue
			}
			msg := errorMessage(t, r)
			if !strings.Contains(msg, role) || !strings.Contains(msg, strings.Join(want, ", ")) {
				t.Errorf("%s %s as %s: message %q should name the role and the roles %v that may", method, path, role, msg, want)
			}
		}
	}
}

// errorMessage returns error.message of an error answer.
func errorMessage(t *testing.T, r *testapp.Response) string {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	r.JSON(t, &e)
	return e.Error.Message
}
