package graphsim_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/provider/graphsim"
)

// postAdmin posts a JSON body to an admin endpoint and returns the status.
func (b bundle) postAdmin(t *testing.T, path, body string) int {
	t.Helper()
	resp, err := http.Post(b.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	status, _ := decode(t, resp)
	return status
}

// userStates returns a user's licenseAssignmentStates as Graph serves them,
// as "sku group state error" lines ("-" for a direct assignment).
func (b bundle) userStates(t *testing.T, token, user string) []string {
	t.Helper()
	status, m, _ := b.graph(t, token, "GET", "/users/"+user+"?$select=id,assignedLicenses,licenseAssignmentStates", nil)
	if status != 200 {
		t.Fatalf("get %s: %d %v", user, status, m)
	}
	var out []string
	for _, s := range m["licenseAssignmentStates"].([]any) {
		st := s.(map[string]any)
		group, _ := st["assignedByGroup"].(string)
		if group == "" {
			group = "-"
		}
		out = append(out, strings.Join([]string{st["skuId"].(string), group, st["state"].(string), st["error"].(string)}, " "))
	}
	return out
}

// A group created through the admin API gives its members its licenses:
// one seat per user however many ways it holds a license, an error state
// when the seats run out or the license excludes one the user holds.
func TestGroupLicenses(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	before := consumed(t, b.sim)
	// u1 holds E3 (direct); u2 nothing; skuFew has one seat, E5 excludes E3.
	if s := b.postAdmin(t, "/_sim/tenants/"+tenantID+"/groups",
		`{"id":"g1","display_name":"Sales","skus":["`+skuE3+`","`+skuFew+`"],"members":["u1","u2"]}`); s != 204 {
		t.Fatalf("create group: %d", s)
	}
	if err := b.sim.AddGroup(tenantID, graphsim.GroupSeed{ID: "g2", DisplayName: "Eng", SKUs: []string{skuE5}}); err != nil {
		t.Fatal(err)
	}
	if s := b.postAdmin(t, "/_sim/tenants/"+tenantID+"/groups/g2/members", `{"members":["u1"]}`); s != 204 {
		t.Fatalf("add members: %d", s)
	}
	tok := b.token(t)
	wantU1 := []string{skuE3 + " - Active None", skuE3 + " g1 Active None", skuE5 + " g2 Error MutuallyExclusiveViolation", skuFew + " g1 Active None"}
	if got := b.userStates(t, tok, "u1"); !slices.Equal(got, wantU1) {
		t.Errorf("u1 states %q, want %q", got, wantU1)
	}
	wantU2 := []string{skuE3 + " g1 Active None", skuFew + " g1 Error CountViolation"}
	if got := b.userStates(t, tok, "u2"); !slices.Equal(got, wantU2) {
		t.Errorf("u2 states %q, want %q", got, wantU2)
	}
	if got := licenses(t, b.sim, "u1"); !slices.Equal(got, []string{skuE3, skuFew}) {
		t.Errorf("u1 holds %v", got)
	}
	if got := licenses(t, b.sim, "u2"); !slices.Equal(got, []string{skuE3}) {
		t.Errorf("u2 holds %v", got)
	}
	after := consumed(t, b.sim)
	if after[skuE3] != before[skuE3]+1 || after[skuFew] != 1 || after[skuE5] != before[skuE5] {
		t.Errorf("consumed %v, before %v: want one more E3 (u2), one skuFew (u1), no E5", after, before)
	}
	if st, _ := b.sim.Tenant(tenantID); len(st.Groups) != 2 || !slices.Equal(st.Groups[0].Members, []string{"u1", "u2"}) {
		t.Errorf("groups %+v", st.Groups)
	}
}

// assignLicense refuses to remove a license held only through a group, as
// Graph does; removing one held both ways removes the direct assignment
// and keeps the seat; adding one held only through a group makes it direct
// too, with no further seat. Every call is counted.
func TestAssignLicenseWithGroups(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{})
	if err := b.sim.AddGroup(tenantID, graphsim.GroupSeed{ID: "g1", SKUs: []string{skuE3}, Members: []string{"u1", "u2"}}); err != nil {
		t.Fatal(err)
	}
	tok := b.token(t)
	seats := consumed(t, b.sim)[skuE3]
	calls := b.sim.Stats().AssignLicense

	status, m, _ := b.graph(t, tok, "POST", "/users/u2/assignLicense", assignBody(nil, []string{skuE3}))
	if _, msg := graphErr(m); status != 400 || !strings.Contains(msg, "inherited from a group") {
		t.Fatalf("removing u2's inherited-only E3: %d %v", status, m)
	}
	status, m, _ = b.graph(t, tok, "POST", "/users/u1/assignLicense", assignBody(nil, []string{skuE3}))
	if status != 200 {
		t.Fatalf("removing u1's direct E3: %d %v", status, m)
	}
	if got := b.userStates(t, tok, "u1"); !slices.Equal(got, []string{skuE3 + " g1 Active None"}) {
		t.Errorf("u1 states after removing the direct assignment: %q", got)
	}
	status, m, _ = b.graph(t, tok, "POST", "/users/u2/assignLicense", assignBody([]string{skuE3}, nil))
	if status != 200 {
		t.Fatalf("adding u2's inherited E3 directly: %d %v", status, m)
	}
	if got := b.userStates(t, tok, "u2"); !slices.Equal(got, []string{skuE3 + " - Active None", skuE3 + " g1 Active None"}) {
		t.Errorf("u2 states after the direct add: %q", got)
	}
	if got := consumed(t, b.sim)[skuE3]; got != seats {
		t.Errorf("E3 consumed %d, want %d: no call changed who holds E3", got, seats)
	}
	if got := b.sim.Stats().AssignLicense - calls; got != 3 {
		t.Errorf("assignLicense counted %d calls, want 3", got)
	}
}
