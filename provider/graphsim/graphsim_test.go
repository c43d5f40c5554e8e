package graphsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licenseops/licenseops/provider/graphsim"
)

const (
	tenantID = "contoso"
	clientID = "app-1"
	secret   = "s3cret-value"
	skuE3    = "sku-e3"
	skuE5    = "sku-e5"
	skuAddon = "sku-addon"
	skuCN    = "sku-cn-blocked"
	skuFew   = "sku-few"
)

type bundle struct {
	sim *graphsim.Simulator
	url string
}

// setup serves a simulator with one seeded tenant: E3 and E5 exclude each
// other, the add-on requires E3, one SKU is prohibited in CN, one has a
// single seat. u1 (PL) holds E3; u2 (PL) holds nothing; u3 has no usage location.
func setup(t *testing.T, cfg graphsim.Config) bundle {
	t.Helper()
	sim := graphsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: releases hanging calls so srv.Close does not wait
	err := sim.AddTenant(graphsim.TenantSeed{
		ID: tenantID, ClientID: clientID, ClientSecret: secret,
		SKUs: []graphsim.SKUSeed{
			{ID: skuE3, PartNumber: "ENTERPRISEPACK", Enabled: 10, Excludes: []string{skuE5}},
			{ID: skuE5, PartNumber: "ENTERPRISEPREMIUM", Enabled: 10},
			{ID: skuAddon, PartNumber: "ADDON", Enabled: 10, Requires: []string{skuE3}},
			{ID: skuCN, PartNumber: "BLOCKED_CN", Enabled: 10, ProhibitedLocations: []string{"CN"}},
			{ID: skuFew, PartNumber: "FEW", Enabled: 1},
		},
		Users: []graphsim.UserSeed{
			{ID: "u1", UserPrincipalName: "u1@contoso.com", DisplayName: "User One", UsageLocation: "PL", AccountEnabled: true, Licenses: []string{skuE3}},
			{ID: "u2", UserPrincipalName: "u2@contoso.com", DisplayName: "User Two", UsageLocation: "PL", AccountEnabled: true},
			{ID: "u3", UserPrincipalName: "u3@contoso.com", DisplayName: "User Three", AccountEnabled: true},
			{ID: "u4", UserPrincipalName: "u4@contoso.com", DisplayName: "User Four", UsageLocation: "CN", AccountEnabled: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return bundle{sim: sim, url: srv.URL}
}

func (b bundle) token(t *testing.T) string {
	t.Helper()
	status, body := b.tokenRequest(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_secret": {secret}, "scope": {"https://graph.microsoft.com/.default"}})
	if status != http.StatusOK {
		t.Fatalf("token: %d %v", status, body)
	}
	return body["access_token"].(string)
}

func (b bundle) tokenRequest(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(b.url+"/"+tenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

// graph calls a Graph endpoint with a bearer token ("" for none).
func (b bundle) graph(t *testing.T, token, method, path string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, graphsim.GraphURL(b.url)+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	status, m := decode(t, resp)
	return status, m, resp.Header
}

func decode(t *testing.T, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%d: body is not JSON: %s", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, m
}

func graphErr(m map[string]any) (code, msg string) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(string)
	msg, _ = e["message"].(string)
	return code, msg
}

func assignBody(add []string, remove []string) map[string]any {
	adds := []map[string]any{}
	for _, s := range add {
		adds = append(adds, map[string]any{"skuId": s, "disabledPlans": []string{}})
	}
	if remove == nil {
		remove = []string{}
	}
	return map[string]any{"addLicenses": adds, "removeLicenses": remove}
}

func licenses(t *testing.T, sim *graphsim.Simulator, user string) []string {
	t.Helper()
	u, ok := sim.User(tenantID, user)
	if !ok {
		t.Fatalf("no user %s", user)
	}
	return u.Licenses
}

func consumed(t *testing.T, sim *graphsim.Simulator) map[string]int {
	t.Helper()
	st, _ := sim.Tenant(tenantID)
	m := map[string]int{}
	for _, k := range st.SKUs {
		m[k.ID] = k.Consumed
	}
	return m
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	good := func() url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {"x/.default"}}
	}
	tests := []struct {
		name   string
		edit   func(url.Values)
		status int
		code   string
		aadsts string
	}{
		{"ok", func(url.Values) {}, 200, "", ""},
		{"wrong secret", func(v url.Values) { v.Set("client_secret", "nope") }, 401, "invalid_client", "AADSTS7000215"},
		{"unknown app", func(v url.Values) { v.Set("client_id", "other") }, 400, "unauthorized_client", "AADSTS700016"},
		{"no scope", func(v url.Values) { v.Del("scope") }, 400, "invalid_request", "AADSTS90014"},
		{"wrong grant", func(v url.Values) { v.Set("grant_type", "password") }, 400, "unsupported_grant_type", "AADSTS70003"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			form := good()
			tt.edit(form)
			status, body := b.tokenRequest(t, form)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.status == 200 {
				if body["token_type"] != "Bearer" || body["access_token"] == "" || body["expires_in"].(float64) <= 0 {
					t.Fatalf("token answer %v", body)
				}
				return
			}
			if body["error"] != tt.code || !strings.HasPrefix(body["error_description"].(string), tt.aadsts+":") {
				t.Fatalf("error %v", body)
			}
		})
	}

	t.Run("unknown tenant", func(t *testing.T) {
		t.Parallel()
		resp, err := http.PostForm(b.url+"/fabrikam/oauth2/v2.0/token", good())
		if err != nil {
			t.Fatal(err)
		}
		status, body := decode(t, resp)
		if status != 400 || !strings.HasPrefix(body["error_description"].(string), "AADSTS90002:") {
			t.Fatalf("%d %v", status, body)
		}
	})
	t.Run("basic auth", func(t *testing.T) {
		t.Parallel()
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"x/.default"}}
		req, _ := http.NewRequest("POST", b.url+"/"+tenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := decode(t, resp); status != 200 {
			t.Fatalf("%d %v", status, body)
		}
	})
}

func TestGraphNeedsValidToken(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	tok := b.token(t)
	if status, _, _ := b.graph(t, tok, "GET", "/subscribedSkus", nil); status != 200 {
		t.Fatalf("valid token: %d", status)
	}
	for _, tc := range []struct{ name, token, msg string }{
		{"none", "", "Access token is empty."},
		{"unknown", "garbage", "Invalid access token."},
	} {
		status, body, _ := b.graph(t, tc.token, "GET", "/subscribedSkus", nil)
		if code, msg := graphErr(body); status != 401 || code != "InvalidAuthenticationToken" || msg != tc.msg {
			t.Errorf("%s: %d %s %q", tc.name, status, code, msg)
		}
	}
	b.sim.ExpireTokens()
	status, body, _ := b.graph(t, tok, "GET", "/subscribedSkus", nil)
	if _, msg := graphErr(body); status != 401 || !strings.Contains(msg, "expired") {
		t.Fatalf("expired token: %d %q", status, msg)
	}
	if st := b.sim.Stats(); st.Unauthorized != 3 || st.Succeeded != 1 || st.Tokens != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAssignLicenseNeedsBothLists(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	tok := b.token(t)
	status, body, _ := b.graph(t, tok, "POST", "/users/u2/assignLicense",
		map[string]any{"addLicenses": []map[string]any{{"skuId": skuE5, "disabledPlans": []string{}}}})
	_, msg := graphErr(body)
	if status != 400 || !strings.HasSuffix(msg, "The missing parameters are: removeLicenses.") {
		t.Fatalf("%d %q", status, msg)
	}
	if got := licenses(t, b.sim, "u2"); len(got) != 0 {
		t.Fatalf("u2 holds %v", got)
	}
}

func TestAssignLicense(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		user         string
		add, remove  []string
		status       int
		msg          string // fragment of Graph's message on failure
		wantLicenses []string
	}{
		{name: "assign", user: "u2", add: []string{skuE3}, status: 200, wantLicenses: []string{skuE3}},
		{name: "revoke", user: "u1", remove: []string{skuE3}, status: 200, wantLicenses: []string{}},
		{name: "swap exclusive in one call", user: "u1", add: []string{skuE5}, remove: []string{skuE3}, status: 200, wantLicenses: []string{skuE5}},
		{name: "add held is a no-op", user: "u1", add: []string{skuE3}, status: 200, wantLicenses: []string{skuE3}},
		{name: "add with prerequisite in one call", user: "u2", add: []string{skuE3, skuAddon}, status: 200, wantLicenses: []string{skuAddon, skuE3}},
		{name: "remove unheld", user: "u2", remove: []string{skuE3}, status: 400, msg: "does not have a corresponding license", wantLicenses: []string{}},
		{name: "no usage location", user: "u3", add: []string{skuE3}, status: 400, msg: "invalid usage location", wantLicenses: []string{}},
		{name: "mutually exclusive", user: "u1", add: []string{skuE5}, status: 400, msg: "mutually exclusive", wantLicenses: []string{skuE3}},
		{name: "dependency", user: "u2", add: []string{skuAddon}, status: 400, msg: "depends on the service plan", wantLicenses: []string{}},
		{name: "prohibited location", user: "u4", add: []string{skuCN}, status: 400, msg: "not available in the user's usage location", wantLicenses: []string{}},
		{name: "unknown sku", user: "u2", add: []string{"nope"}, status: 400, msg: "does not correspond to a valid company License", wantLicenses: []string{}},
		{name: "all or nothing", user: "u2", add: []string{skuE5, skuFew, skuCN}, status: 400, msg: "does not have any available licenses", wantLicenses: []string{}},
		{name: "unknown user", user: "nobody", add: []string{skuE3}, status: 404, msg: "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, graphsim.Config{})
			if tt.name == "all or nothing" {
				// Use up skuFew's one seat so the third SKU of the call fails.
				if err := b.sim.AddUsers(tenantID, graphsim.UserSeed{ID: "holder", UsageLocation: "PL", Licenses: []string{skuFew}}); err != nil {
					t.Fatal(err)
				}
			}
			before := consumed(t, b.sim)
			status, body, _ := b.graph(t, b.token(t), "POST", "/users/"+tt.user+"/assignLicense", assignBody(tt.add, tt.remove))
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if _, msg := graphErr(body); !strings.Contains(msg, tt.msg) {
				t.Fatalf("message %q, want it to contain %q", msg, tt.msg)
			}
			if tt.wantLicenses == nil {
				return
			}
			if got := licenses(t, b.sim, tt.user); !slices.Equal(got, tt.wantLicenses) {
				t.Fatalf("licenses %v, want %v", got, tt.wantLicenses)
			}
			after := consumed(t, b.sim)
			if tt.status != 200 && !mapsEqual(before, after) {
				t.Fatalf("a refused call changed seats: %v → %v", before, after)
			}
			// Seats consumed always equal the holders.
			st, _ := b.sim.Tenant(tenantID)
			holders := map[string]int{}
			for _, u := range st.Users {
				for _, l := range u.Licenses {
					holders[l]++
				}
			}
			for _, k := range st.SKUs {
				if k.Consumed != holders[k.ID] || k.Consumed > k.Enabled {
					t.Fatalf("SKU %s consumed %d, holders %d, enabled %d", k.ID, k.Consumed, holders[k.ID], k.Enabled)
				}
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestAssignLicenseKeepsDisabledPlans(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	tok := b.token(t)
	body := map[string]any{"addLicenses": []map[string]any{{"skuId": skuE3, "disabledPlans": []string{"plan-a"}}}, "removeLicenses": []string{}}
	status, resp, _ := b.graph(t, tok, "POST", "/users/u1/assignLicense", body)
	if status != 200 {
		t.Fatalf("%d %v", status, resp)
	}
	u, _ := b.sim.User(tenantID, "u1")
	if !slices.Equal(u.DisabledPlans[skuE3], []string{"plan-a"}) || consumed(t, b.sim)[skuE3] != 1 {
		t.Fatalf("disabled plans %v, consumed %d", u.DisabledPlans, consumed(t, b.sim)[skuE3])
	}
	ls := resp["assignedLicenses"].([]any)
	if len(ls) != 1 || ls[0].(map[string]any)["skuId"] != skuE3 {
		t.Fatalf("answer %v", resp)
	}
}

func TestGetAndPatchUser(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	tok := b.token(t)

	status, u, _ := b.graph(t, tok, "GET", "/users/u3?$select=id,usageLocation,assignedLicenses", nil)
	if status != 200 || u["usageLocation"] != nil || len(u) != 3 {
		t.Fatalf("%d %v", status, u)
	}
	if _, u, _ = b.graph(t, tok, "GET", "/users/u1", nil); u["usageLocation"] != nil || u["userPrincipalName"] != "u1@contoso.com" {
		t.Fatalf("default properties %v", u)
	}
	if _, present := u["usageLocation"]; present {
		t.Fatalf("usageLocation is not a default property: %v", u)
	}
	if status, body, _ := b.graph(t, tok, "GET", "/users/u1?$select=id,manager", nil); status != 400 {
		t.Fatalf("unknown property: %d %v", status, body)
	}

	if status, body, _ := b.graph(t, tok, "PATCH", "/users/u3", map[string]any{"usageLocation": "PL"}); status != 204 {
		t.Fatalf("patch: %d %v", status, body)
	}
	if u, _ := b.sim.User(tenantID, "u3"); u.UsageLocation != "PL" {
		t.Fatalf("usage location %q", u.UsageLocation)
	}
	for _, body := range []map[string]any{{"usageLocation": "Poland"}, {"usageLocation": 3}, {"manager": "x"}} {
		if status, resp, _ := b.graph(t, tok, "PATCH", "/users/u3", body); status != 400 {
			t.Errorf("patch %v: %d %v", body, status, resp)
		}
	}
	if status, _, _ := b.graph(t, tok, "PATCH", "/users/nobody", map[string]any{"usageLocation": "PL"}); status != 404 {
		t.Fatalf("patch unknown user: %d", status)
	}
}

func TestListUsersPaging(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	var more []graphsim.UserSeed
	for i := range 150 {
		more = append(more, graphsim.UserSeed{ID: fmt.Sprintf("x%03d", i), AccountEnabled: true})
	}
	if err := b.sim.AddUsers(tenantID, more...); err != nil {
		t.Fatal(err)
	}
	tok := b.token(t)

	var ids []string
	next := graphsim.GraphURL(b.url) + "/users?$select=id,assignedLicenses&$top=40"
	pages := 0
	for next != "" {
		pages++
		req, _ := http.NewRequest("GET", next, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		status, body := decode(t, resp)
		if status != 200 {
			t.Fatalf("%d %v", status, body)
		}
		for _, u := range body["value"].([]any) {
			ids = append(ids, u.(map[string]any)["id"].(string))
		}
		next, _ = body["@odata.nextLink"].(string)
	}
	if pages != 4 || len(ids) != 154 || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 154 {
		t.Fatalf("%d pages, %d ids, sorted %t", pages, len(ids), slices.IsSorted(ids))
	}

	_, body, _ := b.graph(t, tok, "GET", "/users", nil)
	if n := len(body["value"].([]any)); n != 100 || body["@odata.nextLink"] == nil {
		t.Fatalf("default page: %d users, next %v", n, body["@odata.nextLink"])
	}
	for _, top := range []string{"0", "1000", "x"} {
		if status, body, _ := b.graph(t, tok, "GET", "/users?$top="+top, nil); status != 400 {
			t.Errorf("$top=%s: %d %v", top, status, body)
		}
	}
}

func TestSubscribedSkus(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	_, body, _ := b.graph(t, b.token(t), "GET", "/subscribedSkus", nil)
	skus := body["value"].([]any)
	if len(skus) != 5 {
		t.Fatalf("%d skus", len(skus))
	}
	for _, s := range skus {
		m := s.(map[string]any)
		if m["skuId"] == skuE3 {
			pre := m["prepaidUnits"].(map[string]any)
			if m["consumedUnits"].(float64) != 1 || pre["enabled"].(float64) != 10 || m["skuPartNumber"] != "ENTERPRISEPACK" {
				t.Fatalf("E3: %v", m)
			}
			return
		}
	}
	t.Fatal("E3 missing")
}

func TestWriteQuota(t *testing.T) {
	t.Parallel()
	// One write per thousand seconds: the second write is over quota
	// whatever the machine's speed.
	b := setup(t, graphsim.Config{WriteQuotaPerSecond: 0.001})
	tok := b.token(t)
	if status, body, _ := b.graph(t, tok, "POST", "/users/u2/assignLicense", assignBody([]string{skuE3}, nil)); status != 200 {
		t.Fatalf("first write: %d %v", status, body)
	}
	status, body, h := b.graph(t, tok, "POST", "/users/u2/assignLicense", assignBody(nil, []string{skuE3}))
	if code, _ := graphErr(body); status != 429 || code != "TooManyRequests" || h.Get("Retry-After") == "" || h.Get("x-ms-throttle-information") != "WriteLimitExceeded" {
		t.Fatalf("second write: %d %v %v", status, body, h)
	}
	if status, _, _ := b.graph(t, tok, "GET", "/users/u2", nil); status != 200 {
		t.Fatalf("reads are not under the write quota: %d", status)
	}
	if got := licenses(t, b.sim, "u2"); !slices.Equal(got, []string{skuE3}) {
		t.Fatalf("a throttled write changed the user: %v", got)
	}
	if st := b.sim.Stats(); st.QuotaExceeded != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFaultsAreSeeded(t *testing.T) {
	t.Parallel()
	cfg := graphsim.Config{ThrottleRatio: 0.3, ErrorRatio: 0.3, RetryAfter: 2 * time.Second, RandSeed: 42}
	run := func() []int {
		b := setup(t, cfg)
		tok := b.token(t)
		var statuses []int
		for range 60 {
			status, _, h := b.graph(t, tok, "GET", "/subscribedSkus", nil)
			if status == 429 && h.Get("Retry-After") != "2" {
				t.Fatalf("Retry-After %q", h.Get("Retry-After"))
			}
			statuses = append(statuses, status)
		}
		st := b.sim.Stats()
		if st.Requests != 60 || st.Throttled+st.ServerErrors+st.Succeeded != 60 || st.Throttled == 0 || st.ServerErrors == 0 || st.Succeeded == 0 {
			t.Fatalf("stats %+v", st)
		}
		return statuses
	}
	first, second := run(), run()
	if !slices.Equal(first, second) {
		t.Fatalf("same seed, different faults:\n%v\n%v", first, second)
	}
	for _, s := range first {
		if s != 200 && s != 429 && s != 500 && s != 503 {
			t.Fatalf("status %d", s)
		}
	}
}

func TestTimeoutAppliesTheChange(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{TimeoutRatio: 1})
	tok := b.token(t)
	client := &http.Client{Timeout: 200 * time.Millisecond}
	j, _ := json.Marshal(assignBody([]string{skuE5}, nil))
	req, _ := http.NewRequest("POST", graphsim.GraphURL(b.url)+"/users/u2/assignLicense", bytes.NewReader(j))
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer: %d", resp.StatusCode)
	}
	if got := licenses(t, b.sim, "u2"); !slices.Equal(got, []string{skuE5}) {
		t.Fatalf("the unanswered call was not applied: %v", got)
	}
	if st := b.sim.Stats(); st.Timeouts != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSetConfigAtRuntime(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	tok := b.token(t)
	if err := b.sim.SetConfig(graphsim.Config{ThrottleRatio: 1}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := b.graph(t, tok, "GET", "/subscribedSkus", nil); status != 429 {
		t.Fatalf("throttle on: %d", status)
	}
	if err := b.sim.SetConfig(graphsim.Config{}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := b.graph(t, tok, "GET", "/subscribedSkus", nil); status != 200 {
		t.Fatalf("throttle off: %d", status)
	}
	for _, bad := range []graphsim.Config{{ThrottleRatio: 0.6, ErrorRatio: 0.6}, {TimeoutRatio: -1}, {Latency: -time.Second}} {
		if err := b.sim.SetConfig(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	put := func(body string) (int, map[string]any) {
		req, _ := http.NewRequest("PUT", b.url+"/_sim/config", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return decode(t, resp)
	}
	status, cfg := put(`{"latency": "5ms", "throttle_ratio": 0.25}`)
	if status != 200 || cfg["latency"] != "5ms" || cfg["throttle_ratio"] != 0.25 || cfg["retry_after"] != "1s" {
		t.Fatalf("%d %v", status, cfg)
	}
	if c := b.sim.Config(); c.Latency != 5*time.Millisecond || c.ThrottleRatio != 0.25 {
		t.Fatalf("config %+v", c)
	}
	if status, _ := put(`{"throttle_ratio": 2}`); status != 400 {
		t.Fatalf("bad ratio: %d", status)
	}
	if status, _ := put(`{"latency": "soon"}`); status != 400 {
		t.Fatalf("bad duration: %d", status)
	}

	resp, err := http.Post(b.url+"/_sim/seed", "application/json", strings.NewReader(
		`{"tenants":[{"id":"fabrikam","client_id":"a","client_secret":"b","skus":[{"sku_id":"s","part_number":"P","enabled":2}],"users":[{"id":"f1","usage_location":"DE","account_enabled":true,"licenses":["s"]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("seed: %d", resp.StatusCode)
	}
	resp, err = http.Get(b.url + "/_sim/tenants/fabrikam")
	if err != nil {
		t.Fatal(err)
	}
	var st graphsim.TenantState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(st.Users) != 1 || st.SKUs[0].Consumed != 1 || !slices.Equal(st.Users[0].Licenses, []string{"s"}) {
		t.Fatalf("tenant %+v", st)
	}
	resp, err = http.Get(b.url + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := decode(t, resp); status != 200 || body["requests"] == nil {
		t.Fatalf("stats: %d %v", status, body)
	}
}

func TestSeed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, json string
		ok         bool
	}{
		{"valid", `{"tenants":[{"id":"t","client_id":"a","client_secret":"b","skus":[{"sku_id":"s","part_number":"P","enabled":1}],"users":[{"id":"u","user_principal_name":"u@t","display_name":"U","usage_location":"PL","account_enabled":true,"last_sign_in_at":"2024-05-01T10:00:00Z","licenses":["s"]}]}]}`, true},
		{"unknown field", `{"tenants":[{"id":"t","client_id":"a","client_secret":"b","colour":"red"}]}`, false},
		{"over-consumed", `{"tenants":[{"id":"t","client_id":"a","client_secret":"b","skus":[{"sku_id":"s","enabled":1}],"users":[{"id":"u1","licenses":["s"]},{"id":"u2","licenses":["s"]}]}]}`, false},
		{"unknown sku", `{"tenants":[{"id":"t","client_id":"a","client_secret":"b","users":[{"id":"u1","licenses":["s"]}]}]}`, false},
		{"no credentials", `{"tenants":[{"id":"t"}]}`, false},
		{"duplicate user", `{"tenants":[{"id":"t","client_id":"a","client_secret":"b","users":[{"id":"u"},{"id":"u"}]}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := graphsim.New(graphsim.Config{})
			err := sim.Seed(strings.NewReader(tt.json))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v", err)
			}
			if !tt.ok {
				if _, ok := sim.Tenant("t"); ok {
					t.Fatal("a failed seed left a tenant behind")
				}
				return
			}
			u, _ := sim.User("t", "u")
			if u.LastSignInAt == nil || u.LastSignInAt.Year() != 2024 || u.UsageLocation != "PL" {
				t.Fatalf("user %+v", u)
			}
			if err := sim.Seed(strings.NewReader(tt.json)); err == nil {
				t.Fatal("seeding the same tenant twice succeeded")
			}
		})
	}
}

// logURL captures the url attribute of Run's "listening" log line.
type logURL struct {
	slog.Handler
	mu  *sync.Mutex
	url *string
}

func (h logURL) Enabled(context.Context, slog.Level) bool { return true }

func (h logURL) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "url" {
			h.mu.Lock()
			*h.url = a.Value.String()
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func TestRun(t *testing.T) {
	t.Parallel()
	seed := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(seed, []byte(`{"tenants":[{"id":"t","client_id":"a","client_secret":"b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var root string
	log := slog.New(logURL{Handler: slog.DiscardHandler, mu: &mu, url: &root})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- graphsim.Run(ctx, "127.0.0.1:0", seed, graphsim.Config{}, log) }()

	var u string
	deadline := time.After(10 * time.Second)
	for u == "" {
		select {
		case <-deadline:
			t.Fatal("Run did not log its URL")
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
		mu.Lock()
		u = root
		mu.Unlock()
	}
	resp, err := http.PostForm(u+"/t/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"a"}, "client_secret": {"b"}, "scope": {"s"}})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := decode(t, resp); status != 200 {
		t.Fatalf("token from the seeded tenant: %d %v", status, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := graphsim.Run(context.Background(), "127.0.0.1:0", filepath.Join(t.TempDir(), "missing.json"), graphsim.Config{}, log); err == nil {
		t.Fatal("Run with a missing seed file succeeded")
	}
}

// The seed file README.md shows is one the simulator accepts.
func TestSeedExample(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/seed-example.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sim := graphsim.New(graphsim.Config{})
	if err := sim.Seed(f); err != nil {
		t.Fatalf("the README's example seed: %v", err)
	}
	u, ok := sim.User("6f1c5a2e-0000-4000-8000-00000000c0de", "a1b2c3d4-0000-4000-8000-000000000001")
	if !ok || u.UsageLocation != "PL" || len(u.Licenses) != 1 {
		t.Fatalf("seeded user %+v (%v)", u, ok)
	}
}

// licenseDetails lists each license with its SKU's plans, those the user
// has off "Disabled", as Graph does; an unknown user is 404.
func TestLicenseDetails(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	err := b.sim.AddTenant(graphsim.TenantSeed{
		ID: "plans-tenant", ClientID: "plans-client", ClientSecret: "plans-secret",
		SKUs: []graphsim.SKUSeed{{ID: "sku-e3", PartNumber: "ENTERPRISEPACK", Enabled: 5,
			ServicePlans: []graphsim.ServicePlanSeed{{ID: "p-exchange", Name: "EXCHANGE_S_ENTERPRISE"}, {ID: "p-teams", Name: "TEAMS1"}}}},
		Users: []graphsim.UserSeed{{ID: "v1", UserPrincipalName: "v1@contoso.com", DisplayName: "V One", UsageLocation: "PL", AccountEnabled: true,
			Licenses: []string{"sku-e3"}, DisabledPlans: map[string][]string{"sku-e3": {"p-teams"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.PostForm(b.url+"/plans-tenant/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"plans-client"}, "client_secret": {"plans-secret"}, "scope": {"https://graph.microsoft.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	_, tok := decode(t, r)
	token, _ := tok["access_token"].(string)
	if token == "" {
		t.Fatalf("no token: %v", tok)
	}
	status, resp, _ := b.graph(t, token, "GET", "/users/v1/licenseDetails", nil)
	if status != http.StatusOK {
		t.Fatalf("%d %v", status, resp)
	}
	got := map[string]string{}
	for _, l := range resp["value"].([]any) {
		lic := l.(map[string]any)
		for _, p := range lic["servicePlans"].([]any) {
			sp := p.(map[string]any)
			got[lic["skuId"].(string)+"/"+sp["servicePlanName"].(string)] = sp["provisioningStatus"].(string)
		}
	}
	want := map[string]string{"sku-e3/EXCHANGE_S_ENTERPRISE": "Success", "sku-e3/TEAMS1": "Disabled"}
	if !maps.Equal(got, want) {
		t.Errorf("licenseDetails plans = %v, want %v", got, want)
	}
	if status, _, _ := b.graph(t, token, "GET", "/users/nobody/licenseDetails", nil); status != http.StatusNotFound {
		t.Errorf("licenseDetails of an unknown user: %d, want 404", status)
	}
}
