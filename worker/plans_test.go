package worker_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/client"
	seeder "github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/storage"
)

// e3Plans are the service plans of E3 in these tests.
var e3Plans = []licensing.ServicePlan{{ID: "EXCHANGE", Name: "Exchange"}, {ID: "TEAMS", Name: "Teams"}, {ID: "SWAY", Name: "Sway"}}

// plansTenant seeds customer with n users in the US, n seats of E3 (whose
// plans are e3Plans) and PROJ, and gives E3 to the users of e3 outside any
// operation.
func plansTenant(t *testing.T, b *testapp.Bundle, c *testapp.Client, customer string, n int, e3 ...int) []string {
	t.Helper()
	users := c.Seed(seeder.Tenant{
		Customer: client.CustomerRequest{ID: customer, Name: customer, DefaultUsageLocation: new("US")},
		Products: map[string]client.ProductRequest{"E3": {Name: "E3", ServicePlans: e3Plans}},
		Users:    seeder.Users(seeder.IDs("user-%05d", n)),
		Seats:    map[string]int{"E3": n, "PROJ": n},
	})
	give(b, customer, "E3", users, e3...)
	return users
}

// plansOff returns the plans switched off in user's license of sku in
// Postgres ("TEAMS,SWAY" sorted; "-" when the user lacks the SKU).
func plansOff(t *testing.T, b *testapp.Bundle, customer, user, sku string) string {
	t.Helper()
	var off []string
	err := b.DB.Select(&off, `
		SELECT array_to_string(a.disabled_plans, ',') FROM assignments a JOIN customers c USING (customer_key)
		WHERE c.id = $1 AND a.user_id = $2 AND a.sku_id = $3`, customer, user, sku)
	if err != nil {
		t.Fatal(err)
	}
	if len(off) == 0 {
		return "-"
	}
	return off[0]
}

// wantPlansOff checks plansOff for users[i] against want[i].
func wantPlansOff(t *testing.T, b *testapp.Bundle, customer, sku, when string, users, want []string) {
	t.Helper()
	for i, w := range want {
		if got := plansOff(t, b, customer, users[i], sku); got != w {
			t.Errorf("%s: %s has plans %q of %s off, want %q", when, users[i], got, sku, w)
		}
	}
}

// reportPlans returns each user's plans_changed ("E3") from an
// operation's report.
func reportPlans(t *testing.T, c *testapp.Client, id string) map[string]string {
	t.Helper()
	var rep struct {
		Results []struct {
			UserID       string   `json:"user_id"`
			PlansChanged []string `json:"plans_changed"`
		}
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+id+"/report", nil).JSON(t, &rep)
	out := map[string]string{}
	for _, r := range rep.Results {
		out[r.UserID] = strings.Join(r.PlansChanged, ",")
	}
	return out
}

// Assigning E3 with Teams off: holders whose plans differ get them
// updated, which changes them without a seat (none granted at intake,
// none consumed); the others get E3 with Teams off. The dry run
// predicts it, the operation, its report (JSON and CSV) show it. An
// assignment without disabled plans leaves the holders' plans as they
// are, and an empty list switches every plan back on.
func TestServicePlansLocal(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := plansTenant(t, b, c, "pl", 4, 0, 1)
	b.DB.MustExec(`UPDATE assignments SET disabled_plans = '{TEAMS}' WHERE user_id = $1`, users[1])
	body := map[string]any{"user_ids": users, "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"TEAMS"}}}

	dry := map[string]any{"dry_run": true}
	for k, v := range body {
		dry[k] = v
	}
	var pv struct {
		SKUs    []licensing.SeatShortage
		Results []struct {
			UserID        string              `json:"user_id"`
			Assigned      []string            `json:"assigned"`
			PlansChanged  []string            `json:"plans_changed"`
			DisabledPlans map[string][]string `json:"disabled_plans"`
		}
	}
	c.Must(http.StatusOK, "POST", "/v1/customers/pl/license-operations", dry).JSON(t, &pv)
	if len(pv.SKUs) != 1 || pv.SKUs[0].Needed != 2 {
		t.Errorf("dry run seats = %+v, want 2 needed of E3", pv.SKUs)
	}
	for _, r := range pv.Results {
		want := map[string]string{users[0]: "E3"}[r.UserID]
		if got := strings.Join(r.PlansChanged, ","); got != want {
			t.Errorf("dry run: %s plans_changed %q, want %q", r.UserID, got, want)
		}
		if want := map[string]bool{users[1]: true}[r.UserID]; (r.DisabledPlans == nil) != want {
			t.Errorf("dry run: %s disabled_plans = %v", r.UserID, r.DisabledPlans)
		}
	}

	op := change(t, c, "pl", body)
	if op.Succeeded != 4 || !slices.Equal(op.DisabledPlans["E3"], []string{"TEAMS"}) {
		t.Fatalf("operation = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	var got struct {
		DisabledPlans map[string][]string `json:"disabled_plans"`
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+op.ID, nil).JSON(t, &got)
	if !slices.Equal(got.DisabledPlans["E3"], []string{"TEAMS"}) {
		t.Errorf("GET operation disabled_plans = %v", got.DisabledPlans)
	}
	if masks := grantedMasks(t, b, op.ID); masks[users[0]] != 0 || masks[users[1]] != 0 {
		t.Errorf("intake granted seats to holders: %v", masks)
	}
	if plans := reportPlans(t, c, op.ID); plans[users[0]] != "E3" || plans[users[1]] != "" || plans[users[2]] != "" {
		t.Errorf("report plans_changed = %v, want E3 for %s only", plans, users[0])
	}
	if changes := reportChanges(t, c, op.ID); changes[users[0]] != "" || changes[users[2]] != "+E3" {
		t.Errorf("report changes = %v", changes)
	}
	csv := string(c.Must(http.StatusOK, "GET", "/v1/operations/"+op.ID+"/report?format=csv", nil).Body)
	if !strings.Contains(strings.SplitN(csv, "\n", 2)[0], "plans_changed") || !strings.Contains(csv, users[0]) {
		t.Errorf("CSV report has no plans_changed column:\n%s", csv)
	}
	// The report shows the plans the change left off where it set them:
	// an updated holder and a new holder, not the holder it left alone.
	var rep struct {
		Results []struct {
			UserID        string              `json:"user_id"`
			DisabledPlans map[string][]string `json:"disabled_plans"`
		}
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+op.ID+"/report", nil).JSON(t, &rep)
	for _, r := range rep.Results {
		want := map[string]string{users[0]: "TEAMS", users[2]: "TEAMS", users[3]: "TEAMS"}[r.UserID]
		if got, ok := r.DisabledPlans["E3"]; strings.Join(got, ",") != want || ok != (want != "") || len(r.DisabledPlans) > 1 {
			t.Errorf("report: %s disabled_plans = %v, want E3 off %q", r.UserID, r.DisabledPlans, want)
		}
	}
	if head := strings.SplitN(csv, "\n", 2)[0]; !strings.HasSuffix(head, ",disabled_plans") || strings.Count(csv, ",E3:TEAMS\n") != 3 {
		t.Errorf("CSV report does not show the plans left off (E3:TEAMS for three users):\n%s", csv)
	}
	wantPlansOff(t, b, "pl", "E3", "after the change", users, []string{"TEAMS", "TEAMS", "TEAMS", "TEAMS"})
	// The operation keeps the rules for its workers, not the products'
	// plans, which only intake checks.
	var catalog string
	if err := b.DB.QueryRow(`SELECT catalog::text FROM operations WHERE id = $1`, op.ID).Scan(&catalog); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(catalog, `"E3"`) || strings.Contains(catalog, "EXCHANGE") {
		t.Errorf("the operation's catalog = %s, want E3's rules without its plans", catalog)
	}
	wantSeats(t, b, "E3", 4)
	b.DB.MustExec(`UPDATE assignments SET disabled_plans = '{SWAY,TEAMS}' WHERE user_id = $1`, users[3])
	wantPlansShown(t, c, users, map[string]int{"EXCHANGE": 4, "TEAMS": 0, "SWAY": 3})
	b.DB.MustExec(`UPDATE assignments SET disabled_plans = '{TEAMS}' WHERE user_id = $1`, users[3])

	// Without disabled plans nobody's plans change.
	op = change(t, c, "pl", map[string]any{"user_ids": users, "assign": []string{"E3", "PROJ"}})
	if plans := reportPlans(t, c, op.ID); plans[users[0]] != "" {
		t.Errorf("plans changed without disabled_plans: %v", plans)
	}
	wantPlansOff(t, b, "pl", "E3", "after an assign without plans", users, []string{"TEAMS", "TEAMS", "TEAMS", "TEAMS"})
	wantPlansOff(t, b, "pl", "PROJ", "after an assign without plans", users, []string{"", "", "", ""})

	// An empty list switches every plan on.
	op = change(t, c, "pl", map[string]any{"user_ids": users[:2], "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {}}})
	if plans := reportPlans(t, c, op.ID); op.Succeeded != 2 || plans[users[0]] != "E3" || plans[users[1]] != "E3" {
		t.Errorf("every plan on: %+v, plans changed %v", op, plans)
	}
	wantPlansOff(t, b, "pl", "E3", "after every plan on", users, []string{"", "", "TEAMS", "TEAMS"})
	wantSeats(t, b, "E3", 4)
	wantSeats(t, b, "PROJ", 4)
	noProblems(t, b)
}

// A plan change of a held SKU takes no seat: it succeeds with every seat
// of the SKU taken.
func TestServicePlansNoSeat(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := plansTenant(t, b, c, "full", 3, 0, 1, 2)
	op := change(t, c, "full", map[string]any{"user_ids": users, "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"SWAY", "TEAMS"}}})
	if op.Succeeded != 3 {
		t.Fatalf("operation = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	wantPlansOff(t, b, "full", "E3", "after the change", users, []string{"SWAY,TEAMS", "SWAY,TEAMS", "SWAY,TEAMS"})
	wantSeats(t, b, "E3", 3)
	noProblems(t, b)
}

// Disabled plans the product does not list are 422 UnknownServicePlans
// naming them, for a preview too; plans of a SKU the operation does not
// assign, and a copy with plans, are 400.
func TestServicePlansRefused(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := plansTenant(t, b, c, "bad", 2, 0)
	path := "/v1/customers/bad/license-operations"
	for _, tc := range []struct {
		body    map[string]any
		status  int
		code    string
		message string
	}{
		{map[string]any{"user_ids": users, "assign": []string{"E3", "PROJ"}, "disabled_plans": map[string][]string{"E3": {"TEAMS", "YAMMER"}, "PROJ": {"X"}}},
			422, "UnknownServicePlans", `unknown service plans: \"YAMMER\" of SKU \"E3\"; \"X\" of SKU \"PROJ\"`},
		{map[string]any{"user_ids": users, "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"YAMMER"}}, "dry_run": true},
			422, "UnknownServicePlans", "YAMMER"},
		{map[string]any{"user_ids": users, "assign": []string{"PROJ"}, "disabled_plans": map[string][]string{"E3": {"TEAMS"}}},
			400, "InvalidRequest", `SKU \"E3\", which the operation does not assign`},
		{map[string]any{"user_ids": users[1:], "copy_from": users[0], "disabled_plans": map[string][]string{"E3": {"TEAMS"}}},
			400, "InvalidRequest", "goes alone"},
	} {
		r := c.Do("POST", path, tc.body)
		if r.Status != tc.status || r.ErrorCode() != tc.code || !strings.Contains(string(r.Body), tc.message) {
			t.Errorf("%v: %d %s, want %d %s with %q", tc.body, r.Status, r.Body, tc.status, tc.code, tc.message)
		}
	}
	var e struct {
		Error struct {
			Details struct {
				ServicePlans map[string][]string `json:"service_plans"`
			}
		}
	}
	c.Must(422, "POST", path, map[string]any{"user_ids": users, "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"YAMMER"}}}).JSON(t, &e)
	if !slices.Equal(e.Error.Details.ServicePlans["E3"], []string{"YAMMER"}) {
		t.Errorf("details.service_plans = %v, want E3: [YAMMER]", e.Error.Details.ServicePlans)
	}
	wantSeats(t, b, "E3", 1)
}

// Copy from a user carries the plans it has off: a user without the SKU
// gets it with them, a holder gets its plans updated (with and without
// exact), no seat taken for it.
func TestCopyFromPlans(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := plansTenant(t, b, c, "cp", 4, 0, 1)
	give(b, "cp", "PROJ", users, 0)
	b.DB.MustExec(`UPDATE assignments SET disabled_plans = '{SWAY,TEAMS}' WHERE user_id = $1 AND sku_id = 'E3'`, users[0])

	op := copyFrom(t, c, "cp", users[0], false, users[1:3])
	if op.Succeeded != 2 || !slices.Equal(op.DisabledPlans["E3"], []string{"SWAY", "TEAMS"}) {
		t.Fatalf("copy = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	if plans := reportPlans(t, c, op.ID); plans[users[1]] != "E3" || plans[users[2]] != "" {
		t.Errorf("copy plans_changed = %v, want E3 for %s", plans, users[1])
	}
	wantPlansOff(t, b, "cp", "E3", "after the copy", users, []string{"SWAY,TEAMS", "SWAY,TEAMS", "SWAY,TEAMS", "-"})
	wantPlansOff(t, b, "cp", "PROJ", "after the copy", users, []string{"", "", "", "-"})

	b.DB.MustExec(`UPDATE assignments SET disabled_plans = '{EXCHANGE}' WHERE user_id = $1 AND sku_id = 'E3'`, users[1])
	op = copyFrom(t, c, "cp", users[0], true, users[1:])
	if op.Succeeded != 3 {
		t.Fatalf("exact copy = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	wantPlansOff(t, b, "cp", "E3", "after the exact copy", users, []string{"SWAY,TEAMS", "SWAY,TEAMS", "SWAY,TEAMS", "SWAY,TEAMS"})
	wantHeld(t, b, "cp", "after the exact copy", users, []string{"E3,PROJ", "E3,PROJ", "E3,PROJ", "E3,PROJ"})
	wantSeats(t, b, "E3", 4)
	wantSeats(t, b, "PROJ", 4)
	noProblems(t, b)
}

// graphPlanSeed is a Graph tenant of n users with E3 (plans e3Plans,
// n seats) and PROJ; users 0 and 1 hold E3, user 1 with Teams off.
func graphPlanSeed(n int) graphsim.TenantSeed {
	var plans []graphsim.ServicePlanSeed
	for _, p := range e3Plans {
		plans = append(plans, graphsim.ServicePlanSeed{ID: p.ID, Name: p.Name})
	}
	users := graphUsers(n)
	users[0].Licenses = []string{"E3"}
	users[1].Licenses, users[1].DisabledPlans = []string{"E3"}, map[string][]string{"E3": {"TEAMS"}}
	return graphsim.TenantSeed{SKUs: []graphsim.SKUSeed{
		{ID: "E3", PartNumber: "ENTERPRISEPACK", Enabled: n, ServicePlans: plans}, {ID: "PROJ", PartNumber: "PROJECTPREMIUM", Enabled: n},
	}, Users: users}
}

func graphIDs(users []graphsim.UserSeed) []string {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return ids
}

// On Microsoft Graph: the sync imports E3's plans into the catalog and
// the users' plans into the mirror; an assignment with plans off updates
// the plans of holders in the directory (assignLicense with the held SKU)
// without a seat, assigns the others with them, and the directory and
// Postgres agree.
func TestServicePlansGraph(t *testing.T) {
	t.Parallel()
	seed := graphPlanSeed(4)
	b, c, sim := startGraph(t, seed, graphOptions{})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(seed.Users))
	var prods struct{ Products []licensing.Product }
	c.Must(http.StatusOK, "GET", "/v1/products", nil).JSON(t, &prods)
	for _, p := range prods.Products {
		if p.SKU == "E3" && !slices.Equal(p.ServicePlans, e3Plans) {
			t.Errorf("E3 plans after the sync = %v, want %v", p.ServicePlans, e3Plans)
		}
	}
	ids := graphIDs(seed.Users)
	wantPlansOff(t, b, "graph", "E3", "after the sync", ids, []string{"", "TEAMS", "-", "-"})

	op := change(t, c, "graph", map[string]any{"user_ids": ids, "assign": []string{"E3"}, "disabled_plans": map[string][]string{"E3": {"SWAY"}}})
	if op.Succeeded != 4 {
		t.Fatalf("operation = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	if plans := reportPlans(t, c, op.ID); plans[ids[0]] != "E3" || plans[ids[1]] != "E3" || plans[ids[2]] != "" {
		t.Errorf("plans_changed = %v, want E3 for the holders", plans)
	}
	state, _ := sim.Tenant(graphTenantID)
	for _, u := range state.Users {
		if !slices.Equal(u.DisabledPlans["E3"], []string{"SWAY"}) {
			t.Errorf("%s has %v off in the directory, want SWAY", u.ID, u.DisabledPlans)
		}
	}
	directoryMatchesPostgres(t, b, sim)

	// Without disabled plans the directory's plans stay.
	change(t, c, "graph", map[string]any{"user_ids": ids, "assign": []string{"E3", "PROJ"}})
	state, _ = sim.Tenant(graphTenantID)
	for _, u := range state.Users {
		if !slices.Equal(u.DisabledPlans["E3"], []string{"SWAY"}) {
			t.Errorf("%s has %v off after an assign without plans, want SWAY", u.ID, u.DisabledPlans)
		}
	}
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}

// Copy from a user on Microsoft Graph carries its plans into the
// directory, with and without exact.
func TestCopyFromGraph(t *testing.T) {
	t.Parallel()
	seed := graphPlanSeed(4)
	seed.Users[1].Licenses = append(seed.Users[1].Licenses, "PROJ")
	b, c, sim := startGraph(t, seed, graphOptions{})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(seed.Users))
	ids := graphIDs(seed.Users)

	// User 1 (E3 with Teams off, PROJ) is the reference.
	op := copyFrom(t, c, "graph", ids[1], false, []string{ids[0], ids[2]})
	if op.Succeeded != 2 {
		t.Fatalf("copy = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	if changes := reportChanges(t, c, op.ID); changes[ids[0]] != "+PROJ" || changes[ids[2]] != "+E3+PROJ" {
		t.Errorf("copy changes = %v", changes)
	}
	state, _ := sim.Tenant(graphTenantID)
	for _, u := range state.Users[:3] {
		if !slices.Equal(u.Licenses, []string{"E3", "PROJ"}) || !slices.Equal(u.DisabledPlans["E3"], []string{"TEAMS"}) {
			t.Errorf("%s holds %v with %v off in the directory, want E3 (TEAMS off) and PROJ", u.ID, u.Licenses, u.DisabledPlans)
		}
	}
	directoryMatchesPostgres(t, b, sim)

	op = copyFrom(t, c, "graph", ids[1], true, []string{ids[3]})
	if op.Succeeded != 1 {
		t.Fatalf("exact copy = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	if u, _ := sim.User(graphTenantID, ids[3]); !slices.Equal(u.DisabledPlans["E3"], []string{"TEAMS"}) {
		t.Errorf("%s has %v off after the exact copy, want TEAMS", ids[3], u.DisabledPlans)
	}
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}

// wantPlansShown checks that the user list of customer "pl" shows each
// user's disabled plans of E3 (TEAMS, SWAY,TEAMS for the last one) and
// that the license summary of users counts the holders with each plan on.
func wantPlansShown(t *testing.T, c *testapp.Client, users []string, on map[string]int) {
	t.Helper()
	var list struct{ Users []licensing.User }
	c.Must(http.StatusOK, "GET", "/v1/customers/pl/users", nil).JSON(t, &list)
	for _, u := range list.Users {
		want := map[bool]string{true: "SWAY,TEAMS", false: "TEAMS"}[u.ID == users[len(users)-1]]
		if got := strings.Join(u.DisabledPlans["E3"], ","); got != want {
			t.Errorf("user list: %s has %q of E3 off, want %q", u.ID, got, want)
		}
	}
	var sum struct {
		Products []struct {
			SKU          string `json:"sku_id"`
			ServicePlans []struct {
				ID string `json:"id"`
				On int    `json:"on"`
			} `json:"service_plans"`
		}
	}
	c.Must(http.StatusOK, "POST", "/v1/customers/pl/license-summary", map[string]any{"user_ids": users}).JSON(t, &sum)
	for _, p := range sum.Products {
		if p.SKU != "E3" {
			continue
		}
		if len(p.ServicePlans) != len(e3Plans) {
			t.Fatalf("summary of E3 has plans %+v, want %d", p.ServicePlans, len(e3Plans))
		}
		for _, sp := range p.ServicePlans {
			if sp.On != on[sp.ID] {
				t.Errorf("summary: plan %s of E3 on for %d holders, want %d", sp.ID, sp.On, on[sp.ID])
			}
		}
	}
}

// A worker that died before calling the directory, and one that died
// after the call but before recording it, for plan changes and new
// assignments with plans: the next delivery reads the users' plans,
// calls the directory only for what is still to do, and records every
// user once, seats exact.
func TestGraphPlansCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	seed := graphPlanSeed(4)
	b, c, sim := startGraph(t, seed, graphOptions{})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(seed.Users))
	ids := graphIDs(seed.Users)
	ctx := context.Background()
	cust := customerOf(t, b, "graph")
	plans := map[string][]string{"E3": {"SWAY"}}
	op, err := b.Store.CreateOperation(ctx, storage.NewOperation{PartnerKey: cust.PartnerKey, Customer: cust, UserIDs: ids,
		Assign: []string{"E3"}, DisabledPlans: plans, Source: "api", CreatedBy: "test", Queue: jobs.QueueDefault})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := b.Store.LoadPlan(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Users 0 (a holder) and 2 died before the call, users 1 (a holder)
	// and 3 after it.
	items, err := b.Store.PrepareExternal(ctx, plan, ids)
	if err != nil || len(items) != 4 {
		t.Fatalf("prepared %+v, %v", items, err)
	}
	dir := simClient(t, sim)
	for _, id := range []string{ids[1], ids[3]} {
		if err := dir.Apply(ctx, graphTenantID, provider.Change{UserID: id, Add: []provider.AddLicense{{SKU: "E3", DisabledPlans: []string{"SWAY"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	before := sim.Stats().Requests
	if _, err := (&jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(b.Redis)}).EnqueueItems(ctx, op.ID, jobs.QueueDefault, ids); err != nil {
		t.Fatal(err)
	}
	got := c.WaitOperation(op.ID, time.Minute)
	if got.Succeeded != 4 {
		t.Fatalf("operation = %+v: %v", got, reportCodes(t, c, op.ID))
	}
	// One read of each user's licenses, and a call for users 0 and 2 only.
	if n := sim.Stats().Requests - before; n != 6 {
		t.Errorf("the redelivery made %d directory calls, want 6 (4 reads, 2 changes)", n)
	}
	if p := reportPlans(t, c, op.ID); p[ids[0]] != "E3" || p[ids[1]] != "E3" || p[ids[2]] != "" || p[ids[3]] != "" {
		t.Errorf("plans_changed = %v, want E3 for users 0 and 1", p)
	}
	state, _ := sim.Tenant(graphTenantID)
	for _, u := range state.Users {
		if !slices.Equal(u.DisabledPlans["E3"], []string{"SWAY"}) {
			t.Errorf("%s has %v off in the directory, want SWAY", u.ID, u.DisabledPlans)
		}
	}
	directoryMatchesPostgres(t, b, sim)
	wantSeats(t, b, "E3", 4)
	noProblems(t, b)
}
