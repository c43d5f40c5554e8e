package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
)

type cleanupPolicy struct {
	ID         string `json:"id"`
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	Schedule   string `json:"schedule"`
	TimeZone   string `json:"time_zone"`
	Rule       struct {
		Kind           string   `json:"kind"`
		Days           *int     `json:"days"`
		SKUs           []string `json:"skus"`
		ExcludeUserIDs []string `json:"exclude_user_ids"`
	} `json:"rule"`
	DryRun    bool       `json:"dry_run"`
	Enabled   bool       `json:"enabled"`
	NextRunAt *time.Time `json:"next_run_at"`
	CreatedBy string     `json:"created_by"`
	Links     struct{ Self, Run, Runs string }
}

type cleanupRun struct {
	ID                string     `json:"id"`
	Trigger           string     `json:"trigger"`
	Tick              *time.Time `json:"tick"`
	DryRun            bool       `json:"dry_run"`
	MatchedUsers      int        `json:"matched_users"`
	OperationID       *string    `json:"operation_id"`
	Status            string     `json:"status"`
	ReclaimedSeats    int        `json:"reclaimed_seats"`
	WouldRevokeUsers  int        `json:"would_revoke_users"`
	WouldReclaimSeats int        `json:"would_reclaim_seats"`
	FailedUsers       int        `json:"failed_users"`
}

func listRuns(t *testing.T, c *testapp.Client, policyPath string) []cleanupRun {
	t.Helper()
	var out struct {
		Runs  []cleanupRun
		Total int
	}
	c.Must(http.StatusOK, "GET", policyPath+"/runs", nil).JSON(t, &out)
	if out.Total != len(out.Runs) {
		t.Fatalf("runs: total %d, %d on the page", out.Total, len(out.Runs))
	}
	return out.Runs
}

// cleanupTenant creates a customer "tidy" with E5 and PBI and users holding
// them: d1 (E5, PBI), d2 (E5), d4 (E5) and a1 (E5, PBI); then d1, d2, d3
// and d4 are disabled. d3 holds nothing.
func cleanupTenant(t *testing.T, c *testapp.Client) {
	t.Helper()
	c.Must(http.StatusOK, "PUT", "/v1/products/E5", map[string]any{"name": "Office 365 E5"})
	c.Must(http.StatusOK, "PUT", "/v1/products/PBI", map[string]any{"name": "Power BI Pro"})
	c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": "tidy", "name": "Tidy", "default_usage_location": "PL"})
	users := []map[string]any{}
	for _, id := range []string{"a1", "d1", "d2", "d3", "d4"} {
		users = append(users, map[string]any{"id": id, "user_principal_name": id + "@tidy.example", "display_name": "User " + id})
	}
	c.Must(http.StatusOK, "POST", "/v1/customers/tidy/users/import", map[string]any{"users": users})
	c.Must(http.StatusOK, "PUT", "/v1/customers/tidy/subscriptions/E5", map[string]int{"total": 10})
	c.Must(http.StatusOK, "PUT", "/v1/customers/tidy/subscriptions/PBI", map[string]int{"total": 10})
	assign(t, c, "tidy", []string{"a1", "d1", "d2", "d4"}, []string{"E5"})
	assign(t, c, "tidy", []string{"a1", "d1"}, []string{"PBI"})
	for i := range users {
		users[i]["account_enabled"] = users[i]["id"] == "a1"
	}
	c.Must(http.StatusOK, "POST", "/v1/customers/tidy/users/import", map[string]any{"users": users})
}

func TestCleanupPolicyValidation(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "admin_agent")
	cleanupTenant(t, c)
	valid := func() map[string]any {
		return map[string]any{"name": "nightly", "schedule": "0 2 * * *", "time_zone": "Europe/Warsaw",
			"rule": map[string]any{"kind": "inactive", "days": 90}, "dry_run": true, "enabled": true}
	}
	with := func(field string, v any) map[string]any {
		m := valid()
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		return m
	}
	cases := []struct {
		name    string
		body    any
		status  int
		code    string
		mention string
	}{
		{"bad cron", with("schedule", "0 25 * * *"), 400, "InvalidRequest", "not a valid cron expression"},
		{"six fields", with("schedule", "0 0 2 * * *"), 400, "InvalidRequest", "five"},
		{"descriptor", with("schedule", "@every 1m"), 400, "InvalidRequest", "five"},
		{"time zone in schedule", with("schedule", "CRON_TZ=UTC 0 2 * * *"), 400, "InvalidRequest", "time_zone"},
		{"never fires", with("schedule", "0 0 30 2 *"), 400, "InvalidRequest", "never fires"},
		{"missing schedule", with("schedule", nil), 400, "InvalidRequest", "schedule is required"},
		{"unknown time zone", with("time_zone", "Mars/Olympus_Mons"), 400, "InvalidRequest", "time_zone"},
		{"local time zone", with("time_zone", "Local"), 400, "InvalidRequest", "time_zone"},
		{"missing name", with("name", nil), 400, "InvalidRequest", "name is required"},
		{"missing rule", with("rule", nil), 400, "InvalidRequest", "rule is required"},
		{"unknown kind", with("rule", map[string]any{"kind": "everyone"}), 400, "InvalidRequest", "rule.kind"},
		{"days missing for inactive", with("rule", map[string]any{"kind": "inactive"}), 400, "InvalidRequest", "rule.days is required"},
		{"days zero", with("rule", map[string]any{"kind": "inactive", "days": 0}), 400, "InvalidRequest", "rule.days"},
		{"days negative", with("rule", map[string]any{"kind": "inactive", "days": -5}), 400, "InvalidRequest", "rule.days"},
		{"days for disabled_accounts", with("rule", map[string]any{"kind": "disabled_accounts", "days": 30}), 400, "InvalidRequest", "only for kind inactive"},
		{"empty skus", with("rule", map[string]any{"kind": "disabled_accounts", "skus": []string{}}), 400, "InvalidRequest", "rule.skus"},
		{"bad exclude id", with("rule", map[string]any{"kind": "disabled_accounts", "exclude_user_ids": []string{"a/b"}}), 400, "InvalidRequest", "not a valid ID"},
		{"unknown rule field", with("rule", map[string]any{"kind": "disabled_accounts", "since": 3}), 400, "InvalidRequest", "unknown field"},
		{"unknown SKU", with("rule", map[string]any{"kind": "disabled_accounts", "skus": []string{"E5", "VISIO"}}), 422, "UnknownSkus", "VISIO"},
	}
	for _, tc := range cases {
		r := c.Do("POST", "/v1/customers/tidy/cleanup-policies", tc.body)
		if r.Status != tc.status || r.ErrorCode() != tc.code || !strings.Contains(string(r.Body), tc.mention) {
			t.Errorf("%s: %d %s, want %d %s mentioning %q", tc.name, r.Status, r.Body, tc.status, tc.code, tc.mention)
		}
	}
	var body struct {
		Error struct {
			Details struct {
				SKUIDs []string `json:"sku_ids"`
			}
		}
	}
	c.Must(422, "POST", "/v1/customers/tidy/cleanup-policies", with("rule", map[string]any{"kind": "inactive", "days": 9, "skus": []string{"NOPE"}})).JSON(t, &body)
	if !slices.Equal(body.Error.Details.SKUIDs, []string{"NOPE"}) {
		t.Errorf("UnknownSkus details = %+v, want the unknown SKU", body.Error.Details)
	}
	var list struct {
		CleanupPolicies []cleanupPolicy `json:"cleanup_policies"`
	}
	c.Must(http.StatusOK, "GET", "/v1/customers/tidy/cleanup-policies", nil).JSON(t, &list)
	if len(list.CleanupPolicies) != 0 {
		t.Fatalf("refused policies were stored: %+v", list.CleanupPolicies)
	}

	// PATCH validates the policy it would make, and changes nothing when refused.
	var pol cleanupPolicy
	c.Must(http.StatusCreated, "POST", "/v1/customers/tidy/cleanup-policies", valid()).JSON(t, &pol)
	path := "/v1/customers/tidy/cleanup-policies/" + pol.ID
	for _, tc := range []struct {
		body    map[string]any
		status  int
		mention string
	}{
		{map[string]any{"schedule": "61 * * * *"}, 400, "cron"},
		{map[string]any{"time_zone": "Europe/Atlantis"}, 400, "time_zone"},
		{map[string]any{"rule": map[string]any{"kind": "disabled_accounts", "days": 90}}, 400, "only for kind inactive"},
		{map[string]any{"rule": map[string]any{"kind": "inactive", "days": 0}}, 400, "rule.days"},
		{map[string]any{"rule": map[string]any{"kind": "inactive", "days": 30, "skus": []string{"GHOST"}}}, 422, "GHOST"},
		{map[string]any{"name": ""}, 400, "name"},
		{map[string]any{}, 400, "nothing to change"},
	} {
		r := c.Do("PATCH", path, tc.body)
		if r.Status != tc.status || !strings.Contains(string(r.Body), tc.mention) {
			t.Errorf("PATCH %v: %d %s, want %d mentioning %q", tc.body, r.Status, r.Body, tc.status, tc.mention)
		}
	}
	var after cleanupPolicy
	c.Must(http.StatusOK, "GET", path, nil).JSON(t, &after)
	if !reflect.DeepEqual(after, pol) {
		t.Fatalf("a refused PATCH changed the policy:\nbefore %+v\nafter  %+v", pol, after)
	}
}

// Create, read, list, change and delete a policy, each change in the audit log.
func TestCleanupPolicyLifecycle(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "admin_agent")
	cleanupTenant(t, c)
	r := c.Must(http.StatusCreated, "POST", "/v1/customers/tidy/cleanup-policies", map[string]any{
		"name": "take back E5 from the inactive", "schedule": "0  2 * * *",
		"rule": map[string]any{"kind": "inactive", "days": 90, "skus": []string{"E5", "E5"}, "exclude_user_ids": []string{"a1"}},
	})
	var pol cleanupPolicy
	r.JSON(t, &pol)
	path := "/v1/customers/tidy/cleanup-policies/" + pol.ID
	if r.Header.Get("Location") != path || pol.Links.Self != path || pol.Links.Runs != path+"/runs" || pol.Links.Run != path+"/run" {
		t.Fatalf("Location %q, links %+v, want %s", r.Header.Get("Location"), pol.Links, path)
	}
	// Defaults: UTC, a dry run, enabled; the schedule normalized.
	if pol.CustomerID != "tidy" || pol.Schedule != "0 2 * * *" || pol.TimeZone != "UTC" || !pol.DryRun || !pol.Enabled ||
		pol.Rule.Kind != "inactive" || pol.Rule.Days == nil || *pol.Rule.Days != 90 || !slices.Equal(pol.Rule.SKUs, []string{"E5"}) ||
		!slices.Equal(pol.Rule.ExcludeUserIDs, []string{"a1"}) || pol.CreatedBy != "admin_agent-token" || pol.NextRunAt == nil {
		t.Fatalf("created policy = %+v", pol)
	}
	if h := pol.NextRunAt.UTC(); h.Hour() != 2 || h.Minute() != 0 || !h.After(time.Now()) {
		t.Fatalf("next_run_at %v, want the next 02:00 UTC", pol.NextRunAt)
	}
	var got cleanupPolicy
	c.Must(http.StatusOK, "GET", path, nil).JSON(t, &got)
	if !reflect.DeepEqual(got, pol) {
		t.Fatalf("GET = %+v, want %+v", got, pol)
	}

	// PATCH replaces the rule whole and keeps what it does not name.
	got = cleanupPolicy{}
	c.Must(http.StatusOK, "PATCH", path, map[string]any{"time_zone": "America/New_York", "dry_run": false,
		"rule": map[string]any{"kind": "disabled_accounts"}, "max_percent": nil}).JSON(t, &got)
	if got.Name != pol.Name || got.Schedule != "0 2 * * *" || got.TimeZone != "America/New_York" || got.DryRun ||
		got.Rule.Kind != "disabled_accounts" || got.Rule.Days != nil || got.Rule.SKUs != nil || len(got.Rule.ExcludeUserIDs) != 0 {
		t.Fatalf("patched policy = %+v", got)
	}
	ny, _ := time.LoadLocation("America/New_York")
	if h := got.NextRunAt.In(ny); h.Hour() != 2 || h.Minute() != 0 {
		t.Fatalf("next_run_at %v, want the next 02:00 in New York", got.NextRunAt)
	}
	got = cleanupPolicy{}
	c.Must(http.StatusOK, "PATCH", path, map[string]any{"enabled": false}).JSON(t, &got)
	if got.Enabled || got.NextRunAt != nil {
		t.Fatalf("disabled policy = %+v, want no next run", got)
	}
	var list struct {
		CleanupPolicies []cleanupPolicy `json:"cleanup_policies"`
	}
	c.Must(http.StatusOK, "GET", "/v1/customers/tidy/cleanup-policies", nil).JSON(t, &list)
	if len(list.CleanupPolicies) != 1 || !reflect.DeepEqual(list.CleanupPolicies[0], got) {
		t.Fatalf("list = %+v, want the one policy", list.CleanupPolicies)
	}

	// Running it now: d1 and d2 hold licenses and are disabled (d4 too).
	var acc struct {
		ID     string
		Status string
		Total  int
		DryRun bool `json:"dry_run"`
		Run    cleanupRun
	}
	c.Must(http.StatusAccepted, "POST", path+"/run", nil).JSON(t, &acc)
	if acc.Status != "queued" || acc.Total != 3 || acc.DryRun || acc.Run.Trigger != "manual" || acc.Run.Tick != nil ||
		acc.Run.OperationID == nil || *acc.Run.OperationID != acc.ID || acc.Run.MatchedUsers != 3 {
		t.Fatalf("run answer = %+v", acc)
	}

	// A policy of another customer of the same partner is not found here.
	c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": "other", "name": "Other"})
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		if r := c.Do(m, "/v1/customers/other/cleanup-policies/"+pol.ID, `{"enabled":true}`); r.Status != http.StatusNotFound {
			t.Errorf("%s of tidy's policy under customer other: %d %s, want 404", m, r.Status, r.Body)
		}
	}
	if r := c.Do("GET", "/v1/customers/tidy/cleanup-policies/not-a-uuid", nil); r.Status != http.StatusNotFound {
		t.Errorf("GET a malformed policy ID: %d, want 404", r.Status)
	}

	c.Must(http.StatusNoContent, "DELETE", path, nil)
	c.Must(http.StatusNotFound, "GET", path, nil)
	c.Must(http.StatusNotFound, "DELETE", path, nil)

	var page auditPage
	c.Must(http.StatusOK, "GET", "/v1/audit?page_size=100", nil).JSON(t, &page)
	var actions []string
	for _, e := range page.Entries {
		if strings.HasPrefix(e.Action, "cleanup_policy.") {
			if e.ObjectID != pol.ID || e.CustomerID == nil || *e.CustomerID != "tidy" || e.Role != "admin_agent" {
				t.Errorf("audit entry %+v, want object %s of customer tidy by admin_agent", e, pol.ID)
			}
			actions = append(actions, e.Action)
		}
		if e.Action == "cleanup_policy.run" {
			var d struct {
				OperationID  string `json:"operation_id"`
				MatchedUsers int    `json:"matched_users"`
			}
			if err := json.Unmarshal(e.Details, &d); err != nil || d.OperationID != acc.ID || d.MatchedUsers != 3 {
				t.Errorf("run audit details %s, want the operation and 3 users", e.Details)
			}
		}
	}
	want := []string{"cleanup_policy.delete", "cleanup_policy.run", "cleanup_policy.update", "cleanup_policy.update", "cleanup_policy.create"}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit actions %v, want %v", actions, want)
	}
}

// state is everything a cleanup could change: assignments, seats and users.
func cleanupState(t *testing.T, b *testapp.Bundle) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, q := range map[string]string{
		"assignments":   `SELECT user_id || ' ' || sku_id || ' ' || COALESCE(operation_id::text, '') || ' ' || assigned_at FROM assignments ORDER BY 1`,
		"subscriptions": `SELECT sku_id || ' ' || total || ' ' || consumed || ' ' || reserved || ' ' || updated_at FROM subscriptions ORDER BY 1`,
		"users":         `SELECT row(u.*)::text FROM users u ORDER BY id`,
	} {
		var rows []string
		if err := b.DB.Select(&rows, q); err != nil {
			t.Fatal(err)
		}
		out[name] = rows
	}
	return out
}

type cleanupReport struct {
	Operation struct {
		Source string `json:"source"`
		DryRun bool   `json:"dry_run"`
		Status string `json:"status"`
	} `json:"operation"`
	Results []reportRow `json:"results"`
}

// A dry run lists exactly the matching users as would_revoke and changes
// nothing; switched live, the same policy revokes and frees the seats, and
// its runs say how many.
func TestCleanupDryRunThenLive(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "admin_agent")
	cleanupTenant(t, c)
	var pol cleanupPolicy
	c.Must(http.StatusCreated, "POST", "/v1/customers/tidy/cleanup-policies", map[string]any{
		"name": "disabled accounts", "schedule": "0 2 * * *", "time_zone": "Europe/Warsaw",
		"rule": map[string]any{"kind": "disabled_accounts", "exclude_user_ids": []string{"d4"}}, "dry_run": true, "enabled": false,
	}).JSON(t, &pol)
	path := "/v1/customers/tidy/cleanup-policies/" + pol.ID
	before := cleanupState(t, b)
	seatsBefore := subscriptions(t, c, "tidy")

	var acc struct {
		ID  string
		Run cleanupRun
	}
	c.Must(http.StatusAccepted, "POST", path+"/run", nil).JSON(t, &acc)
	if op := c.WaitOperation(acc.ID, 30*time.Second); op.Status != "completed" || op.Source != "cleanup" || !op.DryRun || op.Succeeded != 2 {
		t.Fatalf("dry run operation = %+v", op)
	}
	var rep cleanupReport
	c.Must(http.StatusOK, "GET", "/v1/operations/"+acc.ID+"/report", nil).JSON(t, &rep)
	got := map[string]string{}
	for _, row := range rep.Results {
		// licenses is what the user holds after the change: all of it still.
		if row.Status != "would_revoke" || row.Error != nil || strings.Join(row.Licenses, ",") != strings.Join(row.Revoked, ",") {
			t.Errorf("dry run row %+v, want would_revoke and the licenses still held", row)
		}
		got[row.UserID] = strings.Join(row.Revoked, ",")
	}
	if want := map[string]string{"d1": "E5,PBI", "d2": "E5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("dry run would revoke %v, want %v (disabled, holding licenses, not excluded)", got, want)
	}
	if after := cleanupState(t, b); !reflect.DeepEqual(after, before) {
		t.Fatalf("the dry run changed something:\nbefore %v\nafter  %v", before, after)
	}
	runs := listRuns(t, c, path)
	if len(runs) != 1 || !runs[0].DryRun || runs[0].MatchedUsers != 2 || runs[0].ReclaimedSeats != 0 ||
		runs[0].WouldRevokeUsers != 2 || runs[0].WouldReclaimSeats != 3 || runs[0].Status != "completed" || runs[0].Trigger != "manual" {
		t.Fatalf("runs after the dry run = %+v", runs)
	}

	// Live: the same users lose their licenses and the seats come back.
	// A tenant of five users: any live run is over 10 % of them.
	c.Must(http.StatusOK, "PATCH", path, map[string]any{"dry_run": false, "max_percent": nil})
	c.Must(http.StatusAccepted, "POST", path+"/run", nil).JSON(t, &acc)
	if op := c.WaitOperation(acc.ID, 30*time.Second); op.Status != "completed" || op.DryRun || op.Succeeded != 2 {
		t.Fatalf("live operation = %+v", op)
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+acc.ID+"/report", nil).JSON(t, &rep)
	for _, row := range rep.Results {
		if row.Status != "succeeded" || len(row.Licenses) != 0 {
			t.Errorf("live row %+v, want succeeded with no licenses left", row)
		}
	}
	seats := subscriptions(t, c, "tidy")
	if seats["E5"].Available != seatsBefore["E5"].Available+2 || seats["PBI"].Available != seatsBefore["PBI"].Available+1 {
		t.Fatalf("seats before %+v, after %+v: want 2 E5 and 1 PBI back", seatsBefore, seats)
	}
	var users struct {
		Users []struct {
			ID       string
			Licenses []string
		}
	}
	c.Must(http.StatusOK, "GET", "/v1/customers/tidy/users", nil).JSON(t, &users)
	held := map[string]string{}
	for _, u := range users.Users {
		held[u.ID] = strings.Join(u.Licenses, ",")
	}
	if want := map[string]string{"a1": "E5,PBI", "d1": "", "d2": "", "d3": "", "d4": "E5"}; !reflect.DeepEqual(held, want) {
		t.Fatalf("licenses after the live run %v, want %v", held, want)
	}
	runs = listRuns(t, c, path)
	if len(runs) != 2 || runs[0].DryRun || runs[0].ReclaimedSeats != 3 || runs[0].WouldRevokeUsers != 0 || runs[0].MatchedUsers != 2 ||
		runs[0].OperationID == nil || *runs[0].OperationID != acc.ID {
		t.Fatalf("runs after the live run = %+v", runs)
	}
	checkSeatInvariant(t, b)

	// Nobody left to match: the run is recorded, no operation started.
	var none struct {
		Status       string
		MatchedUsers int `json:"matched_users"`
		Run          cleanupRun
	}
	c.Must(http.StatusOK, "POST", path+"/run", nil).JSON(t, &none)
	if none.Status != "nothing_matched" || none.Run.OperationID != nil || none.Run.MatchedUsers != 0 {
		t.Fatalf("run with nobody to match = %+v", none)
	}
	if runs = listRuns(t, c, path); len(runs) != 3 || runs[0].Status != "nothing_matched" || runs[0].OperationID != nil {
		t.Fatalf("runs = %+v", runs)
	}
	var ops struct{ Operations []struct{ ID string } }
	c.Must(http.StatusOK, "GET", "/v1/customers/tidy/operations", nil).JSON(t, &ops)
	if len(ops.Operations) != 4 { // two setup assignments, the dry run, the live run
		t.Fatalf("%d operations, want 4: a run that matches nobody starts none", len(ops.Operations))
	}
}
