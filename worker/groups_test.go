package worker_test

import (
	"context"
	"time"

	"encoding/csv"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/storage"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider/graphsim"
)

// groupTenant starts a Graph customer with group-based licensing, synced:
//
//	u0 holds E3 directly and through g-sales (one seat);
//	u1 holds E3 only through g-sales;
//	u2 holds E3 directly only;
//	u3 holds E5 through g-eng, whose one seat it took;
//	u4 is in g-eng too, but no E5 seat was left: an error state, no license.
func groupTenant(t *testing.T) (*testapp.Bundle, *testapp.Client, *graphsim.Server, []string) {
	t.Helper()
	users := graphUsers(5)
	users[0].Licenses, users[2].Licenses = []string{"E3"}, []string{"E3"}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	b, c, sim := startGraph(t, graphsim.TenantSeed{
		SKUs:  []graphsim.SKUSeed{{ID: "E3", PartNumber: "STANDARDPACK", Enabled: 4}, {ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: 1}},
		Users: users,
		Groups: []graphsim.GroupSeed{
			{ID: "g-sales", DisplayName: "Sales", SKUs: []string{"E3"}, Members: ids[:2]},
			{ID: "g-eng", DisplayName: "Engineering", SKUs: []string{"E5"}, Members: ids[3:]},
		},
	}, graphOptions{})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(users))
	return b, c, sim, ids
}

// usersByID lists the customer's users (query is added to the list's URL).
func usersByID(t *testing.T, c *testapp.Client, query string) (map[string]licensing.User, int) {
	t.Helper()
	var list struct {
		Users []licensing.User
		Total int
	}
	c.Must(http.StatusOK, "GET", "/v1/customers/graph/users?page_size=100"+query, nil).JSON(t, &list)
	m := map[string]licensing.User{}
	for _, u := range list.Users {
		m[u.ID] = u
	}
	return m, list.Total
}

// sourcesOf renders license sources as "E3 direct g-sales" / "E3 - g-sales"
// (held only through the group), one per license.
func sourcesOf(ss []licensing.LicenseSource) string {
	var parts []string
	for _, s := range ss {
		how := "-"
		if s.Direct {
			how = "direct"
		}
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s %s %s", s.SKU, how, strings.Join(s.InheritedFrom, ","))))
	}
	return strings.Join(parts, "; ")
}

// mirrorOf returns how the mirror says user holds sku: "direct g-sales",
// "- g-sales", "direct", or "" when it does not hold it.
func mirrorOf(t *testing.T, b *testapp.Bundle, user, sku string) string {
	t.Helper()
	var out string
	err := b.DB.QueryRow(`SELECT COALESCE((SELECT CASE WHEN direct THEN 'direct' ELSE '-' END ||
			CASE WHEN inherited_from <> '{}' THEN ' ' || array_to_string(inherited_from, ',') ELSE '' END
		FROM assignments WHERE user_id = $1 AND sku_id = $2), '')`, user, sku).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// reportRows returns an operation's report rows by user.
func reportRows(t *testing.T, c *testapp.Client, id string) map[string]client.ReportRow {
	t.Helper()
	var rep struct{ Results []client.ReportRow }
	c.Must(http.StatusOK, "GET", "/v1/operations/"+id+"/report", nil).JSON(t, &rep)
	m := map[string]client.ReportRow{}
	for _, r := range rep.Results {
		m[r.UserID] = r
	}
	return m
}

// A sync records, per held license, whether it is direct and which groups
// it comes from, and each user's group licensing errors; the user list
// shows both and filters on errors, the subscriptions count them.
func TestGraphSyncRecordsGroupLicenses(t *testing.T) {
	t.Parallel()
	b, c, sim, ids := groupTenant(t)
	users, _ := usersByID(t, c, "")
	want := []string{"E3 direct g-sales", "E3 - g-sales", "", "E5 - g-eng", ""}
	for i, id := range ids {
		if got := sourcesOf(users[id].LicenseSources); got != want[i] {
			t.Errorf("user %d license sources %q, want %q", i, got, want[i])
		}
	}
	if got := users[ids[0]].LicenseSources[0].GroupNames; !slices.Equal(got, []string{"Sales"}) {
		t.Errorf("user 0's E3 group names %q, want the sync to have read Sales", got)
	}
	if got := users[ids[2]].LicenseSources; got != nil {
		t.Errorf("user 2 inherits nothing, but the list shows sources %+v", got)
	}
	wantErr := []licensing.LicenseError{{SKU: "E5", GroupID: "g-eng", Error: "CountViolation"}}
	if u4 := users[ids[4]]; !slices.Equal(u4.LicenseErrors, wantErr) || len(u4.Licenses) != 0 {
		t.Errorf("user 4 = %+v, want no license and errors %+v", u4, wantErr)
	}
	for _, id := range ids[:4] {
		if len(users[id].LicenseErrors) != 0 {
			t.Errorf("user %s has license errors %+v", id, users[id].LicenseErrors)
		}
	}
	if got, want := mirrorOf(t, b, ids[1], "E3"), "- g-sales"; got != want {
		t.Errorf("mirror of user 1's E3 = %q, want %q", got, want)
	}

	withErrors, err := c.ListUsers(context.Background(), "graph", client.UserListOptions{LicenseErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	if withErrors.Total != 1 || len(withErrors.Users) != 1 || withErrors.Users[0].ID != ids[4] {
		t.Errorf("license_errors=true lists %+v, want only user 4", withErrors)
	}
	c.Must(http.StatusBadRequest, "GET", "/v1/customers/graph/users?license_errors=maybe", nil)

	var subs struct{ Subscriptions []licensing.Subscription }
	c.Must(http.StatusOK, "GET", "/v1/customers/graph/subscriptions", nil).JSON(t, &subs)
	errs := map[string]int{}
	for _, s := range subs.Subscriptions {
		errs[s.SKU] = s.LicenseErrors
	}
	if errs["E5"] != 1 || errs["E3"] != 0 {
		t.Errorf("subscriptions count license errors %v, want E5: 1, E3: 0", errs)
	}
	sum, err := c.LicenseSummary(context.Background(), "graph", ids)
	if err != nil {
		t.Fatal(err)
	}
	holders := map[string]string{}
	for _, p := range sum.Products {
		holders[p.SKU] = fmt.Sprintf("%d held: %d direct, %d inherited", len(p.AssignedUserIDs), p.DirectHolders, p.InheritedHolders)
	}
	if want := map[string]string{"E3": "3 held: 2 direct, 2 inherited", "E5": "1 held: 0 direct, 1 inherited"}; !maps.Equal(holders, want) {
		t.Errorf("license summary %v, want %v", holders, want)
	}
	wantSeats(t, b, "E3", 3)
	wantSeats(t, b, "E5", 1)
	directoryMatchesPostgres(t, b, sim)
}

// Revoking a license a user holds only through a group fails that user with
// InheritedFromGroup, naming the group, without calling Graph. Revoking one
// held directly and through a group removes the direct assignment: the
// user keeps the license and its seat, and the report says so.
func TestGraphRevokeInheritedFromGroup(t *testing.T) {
	t.Parallel()
	b, c, sim, ids := groupTenant(t)
	calls := sim.Stats().AssignLicense

	// The dry run predicts it with the same decision.
	var pv struct{ Results []client.ReportRow }
	c.Must(http.StatusOK, "POST", "/v1/customers/graph/license-operations",
		map[string]any{"user_ids": ids[:3], "revoke": []string{"E3"}, "dry_run": true}).JSON(t, &pv)
	predicted := map[string]string{}
	for _, r := range pv.Results {
		predicted[r.UserID] = r.Status + " " + sourcesOf(r.LicenseSources)
		if r.Error != nil {
			predicted[r.UserID] += " " + string(r.Error.Code)
		}
	}
	wantPredicted := map[string]string{ids[0]: "would_succeed E3 - g-sales", ids[1]: "would_fail E3 - g-sales InheritedFromGroup", ids[2]: "would_succeed "}
	if !maps.Equal(predicted, wantPredicted) {
		t.Errorf("dry run predicts %q, want %q", predicted, wantPredicted)
	}

	op := change(t, c, "graph", map[string]any{"user_ids": ids[1:2], "revoke": []string{"E3"}})
	rows := reportRows(t, c, op.ID)
	r1 := rows[ids[1]]
	if op.Failed != 1 || r1.Error == nil || r1.Error.Code != licensing.CodeInheritedFromGroup ||
		!strings.Contains(r1.Error.Message, "group Sales (g-sales)") || !strings.Contains(r1.Error.Message, "remove the user from the group") {
		t.Fatalf("operation %+v, user 1: %+v %+v", op, r1, r1.Error)
	}
	if got := sourcesOf(r1.LicenseSources); got != "E3 - g-sales" || !slices.Equal(r1.Licenses, []string{"E3"}) {
		t.Errorf("report of user 1: licenses %v, sources %q", r1.Licenses, got)
	}
	if got := sim.Stats().AssignLicense - calls; got != 0 {
		t.Fatalf("%d assignLicense calls for a revoke decided before Graph, want none", got)
	}

	op = change(t, c, "graph", map[string]any{"user_ids": []string{ids[0], ids[2]}, "revoke": []string{"E3"}})
	if op.Succeeded != 2 {
		t.Fatalf("operation %+v: %v", op, reportCodes(t, c, op.ID))
	}
	if got := sim.Stats().AssignLicense - calls; got != 2 {
		t.Errorf("%d assignLicense calls, want 2 (users 0 and 2)", got)
	}
	rows = reportRows(t, c, op.ID)
	r0, r2 := rows[ids[0]], rows[ids[2]]
	if !slices.Equal(r0.Licenses, []string{"E3"}) || len(r0.Revoked) != 0 || sourcesOf(r0.LicenseSources) != "E3 - g-sales" ||
		!strings.Contains(r0.Note, "still holds E3 (inherited from group Sales (g-sales))") {
		t.Errorf("report of user 0 = %+v, want E3 still held, inherited from g-sales, with a note", r0.ReportRow)
	}
	if !slices.Equal(r2.Revoked, []string{"E3"}) || len(r2.Licenses) != 0 || r2.LicenseSources != nil || r2.Note != "" {
		t.Errorf("report of user 2 = %+v, want E3 revoked", r2.ReportRow)
	}
	csvRep := c.Must(http.StatusOK, "GET", "/v1/operations/"+op.ID+"/report?format=csv", nil)
	recs, err := csv.NewReader(strings.NewReader(string(csvRep.Body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(recs[0], "inherited")
	found := false
	for _, rec := range recs[1:] {
		found = found || (rec[0] == ids[0] && col >= 0 && rec[col] == "E3:g-sales")
	}
	if !found {
		t.Errorf("the CSV report does not show user 0's E3 inherited from g-sales: %q", recs)
	}
	if got := mirrorOf(t, b, ids[0], "E3"); got != "- g-sales" {
		t.Errorf("mirror of user 0's E3 = %q, want held only through g-sales", got)
	}
	if u, _ := sim.User(graphTenantID, ids[0]); !slices.Equal(u.Licenses, []string{"E3"}) {
		t.Errorf("user 0 holds %v in the directory, want E3 through the group", u.Licenses)
	}
	wantSeats(t, b, "E3", 2)
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)

	// A sync finds what the worker recorded, and a newcomer to the group.
	extra := graphUsers(6)[5]
	if err := sim.AddUsers(graphTenantID, extra); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddGroupMembers(graphTenantID, "g-sales", extra.ID); err != nil {
		t.Fatal(err)
	}
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(ids)+1)
	for _, id := range []string{ids[0], extra.ID} {
		if got := mirrorOf(t, b, id, "E3"); got != "- g-sales" {
			t.Errorf("after a sync, mirror of %s's E3 = %q, want held only through g-sales", id, got)
		}
	}
	wantSeats(t, b, "E3", 3)
}

// Assigning a license a user holds only through a group adds a direct
// assignment on top, as Graph does: one call, no further seat.
func TestGraphAssignInheritedLicenseMakesItDirect(t *testing.T) {
	t.Parallel()
	b, c, sim, ids := groupTenant(t)
	calls := sim.Stats().AssignLicense
	op := change(t, c, "graph", map[string]any{"user_ids": ids[1:2], "assign": []string{"E3"}})
	if op.Succeeded != 1 {
		t.Fatalf("operation %+v: %v", op, reportCodes(t, c, op.ID))
	}
	if got := sim.Stats().AssignLicense - calls; got != 1 {
		t.Errorf("%d assignLicense calls, want 1", got)
	}
	if got := mirrorOf(t, b, ids[1], "E3"); got != "direct g-sales" {
		t.Errorf("mirror of user 1's E3 = %q, want direct and from g-sales", got)
	}
	if r := reportRows(t, c, op.ID)[ids[1]]; sourcesOf(r.LicenseSources) != "E3 direct g-sales" || len(r.Assigned) != 0 {
		t.Errorf("report of user 1 = %+v", r.ReportRow)
	}
	u, _ := sim.User(graphTenantID, ids[1])
	if !slices.Contains(u.LicenseStates, graphsim.LicenseStateJSON{SKU: "E3", State: "Active", Error: "None"}) {
		t.Errorf("user 1's states in the directory %+v, want a direct E3", u.LicenseStates)
	}
	wantSeats(t, b, "E3", 3)
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}

// A worker that died between the steps of a group change: after removing
// a direct assignment the user keeps through a group (Graph now refuses
// the removal as inherited-only), and before adding a direct assignment on
// top of an inherited license (Graph lists it as held already). The next
// delivery completes both.
func TestGraphGroupCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	b, c, sim, ids := groupTenant(t)
	ctx := context.Background()
	cust := customerOf(t, b, "graph")
	prepare := func(user string, assign, revoke []string) string {
		op, err := b.Store.CreateOperation(ctx, storage.NewOperation{PartnerKey: cust.PartnerKey, Customer: cust, UserIDs: []string{user},
			Assign: assign, Revoke: revoke, Source: "api", CreatedBy: "test", Queue: jobs.QueueDefault})
		if err != nil {
			t.Fatal(err)
		}
		plan, err := b.Store.LoadPlan(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Store.PrepareExternal(ctx, plan, []string{user}); err != nil {
			t.Fatal(err)
		}
		return op.ID
	}
	revoked := prepare(ids[0], nil, []string{"E3"})
	assigned := prepare(ids[1], []string{"E3"}, nil)
	client := simClient(t, sim)
	if err := client.Apply(ctx, graphTenantID, provider.Change{UserID: ids[0], Remove: []string{"E3"}}); err != nil {
		t.Fatal(err) // died after this call
	}
	enq := &jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(b.Redis)}
	for op, user := range map[string]string{revoked: ids[0], assigned: ids[1]} {
		if _, err := enq.EnqueueItems(ctx, op, jobs.QueueDefault, []string{user}); err != nil {
			t.Fatal(err)
		}
		if got := c.WaitOperation(op, time.Minute); got.Succeeded != 1 {
			t.Fatalf("operation %+v: %v", got, reportCodes(t, c, op))
		}
	}
	if got := mirrorOf(t, b, ids[0], "E3"); got != "- g-sales" {
		t.Errorf("mirror of user 0's E3 = %q, want held only through g-sales", got)
	}
	if got := mirrorOf(t, b, ids[1], "E3"); got != "direct g-sales" {
		t.Errorf("mirror of user 1's E3 = %q, want direct and from g-sales", got)
	}
	wantSeats(t, b, "E3", 3)
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}

// When the mirror is stale (the user joined the group and lost its direct
// assignment after the last sync), Graph refuses the revoke itself, and the
// user fails with InheritedFromGroup all the same, keeping the license.
func TestGraphRevokeInheritedAfterStaleSync(t *testing.T) {
	t.Parallel()
	b, c, sim, ids := groupTenant(t)
	if err := sim.AddGroupMembers(graphTenantID, "g-sales", ids[2]); err != nil {
		t.Fatal(err)
	}
	client := simClient(t, sim)
	if err := client.Apply(context.Background(), graphTenantID, provider.Change{UserID: ids[2], Remove: []string{"E3"}}); err != nil {
		t.Fatal(err)
	}
	calls := sim.Stats().AssignLicense
	op := change(t, c, "graph", map[string]any{"user_ids": ids[2:3], "revoke": []string{"E3"}})
	if got := reportCodes(t, c, op.ID)[ids[2]]; got != "failed InheritedFromGroup" {
		t.Fatalf("user 2: %q, want failed InheritedFromGroup", got)
	}
	if got := sim.Stats().AssignLicense - calls; got != 1 {
		t.Errorf("%d assignLicense calls, want the 1 Graph refused", got)
	}
	if got := mirrorOf(t, b, ids[2], "E3"); got != "direct" {
		t.Errorf("mirror of user 2's E3 = %q, want it as the last sync left it until the next", got)
	}
	wantSeats(t, b, "E3", 3)
	noProblems(t, b)
}

// The product rules judge what a user will hold: a license revoked from a
// user who keeps it through a group stays held, so an add-on that requires
// it does not fail the user. Held only through the group, the user fails
// InheritedFromGroup (not DependencyViolation); held directly only, the
// rule still refuses the revoke.
func TestGraphRulesSeeLicensesKeptThroughGroups(t *testing.T) {
	t.Parallel()
	users := graphUsers(3)
	users[0].Licenses = []string{"E3", "VISIO"} // E3 also through g-sales
	users[1].Licenses = []string{"VISIO"}       // E3 only through g-sales
	users[2].Licenses = []string{"E3", "VISIO"} // E3 direct only
	ids := []string{users[0].ID, users[1].ID, users[2].ID}
	b, c, sim := startGraph(t, graphsim.TenantSeed{
		SKUs:   []graphsim.SKUSeed{{ID: "E3", PartNumber: "STANDARDPACK", Enabled: 5}, {ID: "VISIO", PartNumber: "VISIOCLIENT", Enabled: 5}},
		Users:  users,
		Groups: []graphsim.GroupSeed{{ID: "g-sales", DisplayName: "Sales", SKUs: []string{"E3"}, Members: ids[:2]}},
	}, graphOptions{})
	c.Must(http.StatusOK, "PUT", "/v1/products/VISIO", map[string]any{"name": "Visio", "requires": []string{"E3"}})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(users))

	body := map[string]any{"user_ids": ids, "revoke": []string{"E3"}, "allow_partial": true}
	want := map[string]string{ids[0]: "succeeded", ids[1]: "failed InheritedFromGroup", ids[2]: "failed DependencyViolation"}
	outcomes := func(rows []client.ReportRow) map[string]string {
		got := map[string]string{}
		for _, r := range rows {
			got[r.UserID] = r.Status
			if s, ok := map[string]string{"would_succeed": "succeeded", "would_fail": "failed"}[r.Status]; ok {
				got[r.UserID] = s
			}
			if r.Error != nil {
				got[r.UserID] += " " + string(r.Error.Code)
			}
		}
		return got
	}
	var pv struct{ Results []client.ReportRow }
	dry := maps.Clone(body)
	dry["dry_run"] = true
	c.Must(http.StatusOK, "POST", "/v1/customers/graph/license-operations", dry).JSON(t, &pv)
	if got := outcomes(pv.Results); !maps.Equal(got, want) {
		t.Errorf("dry run predicts %q, want %q", got, want)
	}
	op := change(t, c, "graph", body)
	if got := outcomes(slices.Collect(maps.Values(reportRows(t, c, op.ID)))); !maps.Equal(got, want) {
		t.Fatalf("outcomes %q, want %q", got, want)
	}
	if r := reportRows(t, c, op.ID)[ids[0]]; !slices.Equal(r.Licenses, []string{"E3", "VISIO"}) || !strings.Contains(r.Note, "still holds E3") {
		t.Errorf("report of user 0 = %+v, want E3 kept through the group with VISIO", r.ReportRow)
	}
	if got := mirrorOf(t, b, ids[0], "E3"); got != "- g-sales" {
		t.Errorf("mirror of user 0's E3 = %q, want held only through g-sales", got)
	}
	wantSeats(t, b, "E3", 3)
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}

// A replace changes only the users who hold its source: one who lacks E5
// but inherits E3 gets no direct E3 on top (no Graph call). An exact copy
// judges its revokes as an explicit revoke is judged: E3 kept through the
// group still satisfies VISIO (the direct E3 goes), and E3 held only
// through the group fails InheritedFromGroup. Plans of a license the user
// inherits cannot be changed on the user (the group's plans apply too).
func TestGraphGroupsWithReplaceCopyAndPlans(t *testing.T) {
	t.Parallel()
	users := graphUsers(4)
	users[0].Licenses = []string{"E3", "VISIO"} // E3 also through g-sales
	users[1].Licenses = []string{"VISIO"}       // E3 only through g-sales
	users[2].Licenses = []string{"VISIO"}       // the reference of the copy
	ids := []string{users[0].ID, users[1].ID, users[2].ID, users[3].ID}
	b, c, sim := startGraph(t, graphsim.TenantSeed{
		SKUs: []graphsim.SKUSeed{{ID: "E3", PartNumber: "STANDARDPACK", Enabled: 5,
			ServicePlans: []graphsim.ServicePlanSeed{{ID: "EXCHANGE", Name: "Exchange"}, {ID: "TEAMS", Name: "Teams"}}},
			{ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: 5}, {ID: "VISIO", PartNumber: "VISIOCLIENT", Enabled: 5}},
		Users:  users,
		Groups: []graphsim.GroupSeed{{ID: "g-sales", DisplayName: "Sales", SKUs: []string{"E3"}, Members: ids[:2]}},
	}, graphOptions{})
	c.Must(http.StatusOK, "PUT", "/v1/products/VISIO", map[string]any{"name": "Visio", "requires": []string{"E3"}})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(users))

	calls := sim.Stats().AssignLicense
	op := change(t, c, "graph", map[string]any{"user_ids": ids[1:2], "replace": []map[string]string{{"from": "E5", "to": "E3"}}})
	if op.Succeeded != 1 || sim.Stats().AssignLicense != calls || mirrorOf(t, b, ids[1], "E3") != "- g-sales" {
		t.Errorf("replace for a user without E5: %+v, %d Graph calls, mirror %q; want nothing changed",
			op, sim.Stats().AssignLicense-calls, mirrorOf(t, b, ids[1], "E3"))
	}

	op = change(t, c, "graph", map[string]any{"user_ids": ids[:2], "copy_from": ids[2], "exact": true, "allow_partial": true})
	rows := reportRows(t, c, op.ID)
	if r := rows[ids[0]]; r.Status != "succeeded" || !slices.Equal(r.Licenses, []string{"E3", "VISIO"}) || r.Note == "" {
		t.Errorf("exact copy, user 0 = %+v %+v; want succeeded, E3 kept through the group", r.ReportRow, r.Error)
	}
	if r := rows[ids[1]]; r.Error == nil || r.Error.Code != licensing.CodeInheritedFromGroup {
		t.Errorf("exact copy, user 1 = %+v %+v; want InheritedFromGroup", r.ReportRow, r.Error)
	}

	op = change(t, c, "graph", map[string]any{"user_ids": []string{ids[1], ids[3]}, "assign": []string{"E3"},
		"disabled_plans": map[string][]string{"E3": {"TEAMS"}}, "allow_partial": true})
	rows = reportRows(t, c, op.ID)
	if r := rows[ids[1]]; r.Error == nil || r.Error.Code != licensing.CodeInheritedFromGroup || !strings.Contains(r.Error.Message, "plans") {
		t.Errorf("plans of an inherited E3: user 1 = %+v %+v; want InheritedFromGroup about its plans", r.ReportRow, r.Error)
	}
	if r := rows[ids[3]]; r.Status != "succeeded" || !slices.Equal(r.Assigned, []string{"E3"}) {
		t.Errorf("plans of a new E3: user 3 = %+v %+v", r.ReportRow, r.Error)
	}
	wantSeats(t, b, "E3", 3)
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}
