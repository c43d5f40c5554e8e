package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/provider/msgraph"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// graphTenantID and the app registration the simulator accepts for it.
const (
	graphTenantID = "tenant-1"
	graphClientID = "app"
	graphSecret   = "s3cret"
)

// graphOptions tune startGraph.
type graphOptions struct {
	sim graphsim.Config
	// pageSize is the msgraph client's $top (default 100).
	pageSize int
	// worker is the base config of the one worker; Directories and the
	// retry timings are filled in.
	worker worker.Config
}

// startGraph starts a Graph simulator with seed as tenant graphTenantID, a
// worker wired to it through the msgraph client, and a licenseops customer
// "graph" on directory msgraph with a product in the catalog for every SKU
// of the seed. Nothing is synced yet.
func startGraph(t *testing.T, seed graphsim.TenantSeed, o graphOptions) (*testapp.Bundle, *testapp.Client, *graphsim.Server) {
	t.Helper()
	sim := graphsim.NewServer(o.sim)
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	seed.ID, seed.ClientID, seed.ClientSecret = graphTenantID, graphClientID, graphSecret
	if err := sim.AddTenant(seed); err != nil {
		t.Fatal(err)
	}
	if o.pageSize == 0 {
		o.pageSize = 100
	}
	client, err := msgraph.New(msgraph.Config{
		BaseURL: sim.GraphURL(), TokenURL: sim.TokenURL(),
		Credentials: msgraph.Credentials{ClientID: graphClientID, ClientSecret: graphSecret},
		Timeout:     300 * time.Millisecond, MaxInFlight: 32, RatePerSecond: 100_000, PageSize: o.pageSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	wcfg := o.worker
	wcfg.Directories = map[string]provider.Directory{"msgraph": client}
	wcfg.RetryCheckInterval, wcfg.RetryBase, wcfg.RetryMax = 200*time.Millisecond, 100*time.Millisecond, time.Second
	b := testapp.New(t, testapp.Options{Workers: 1, WorkerConfig: wcfg})
	c := b.Client("p", "global_admin")
	for _, k := range seed.SKUs {
		c.Must(200, "PUT", "/v1/products/"+k.ID, map[string]any{"name": k.ID})
	}
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "graph", "name": "Graph customer",
		"directory": map[string]string{"kind": "msgraph", "tenant_id": graphTenantID}})
	return b, c, sim
}

// graphUsers seeds n enabled users in PL holding nothing.
func graphUsers(n int) []graphsim.UserSeed {
	users := make([]graphsim.UserSeed, n)
	for i := range users {
		id := fmt.Sprintf("0000aaaa-0000-4000-8000-%012d", i)
		users[i] = graphsim.UserSeed{ID: id, UserPrincipalName: fmt.Sprintf("u%d@tenant.example", i), DisplayName: fmt.Sprintf("User %05d", i),
			UsageLocation: "PL", AccountEnabled: true}
	}
	return users
}

// simClient is a Graph client of the simulator's tenant, for a test that
// plays a worker's directory calls itself.
func simClient(t *testing.T, sim *graphsim.Server) *msgraph.Client {
	t.Helper()
	client, err := msgraph.New(msgraph.Config{BaseURL: sim.GraphURL(), TokenURL: sim.TokenURL(),
		Credentials: msgraph.Credentials{ClientID: graphClientID, ClientSecret: graphSecret}})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// graphTenant starts a Graph simulator with one tenant of n users and the
// SKU "E5" with seats seats, a worker wired to it, and a licenseops customer
// on directory msgraph synced from it.
func graphTenant(t *testing.T, n, seats int, simCfg graphsim.Config) (*testapp.Bundle, *testapp.Client, *graphsim.Server) {
	t.Helper()
	return graphTenantWith(t, n, seats, graphOptions{sim: simCfg})
}

func graphTenantWith(t *testing.T, n, seats int, o graphOptions) (*testapp.Bundle, *testapp.Client, *graphsim.Server) {
	t.Helper()
	b, c, sim := startGraph(t, graphsim.TenantSeed{
		SKUs: []graphsim.SKUSeed{{ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: seats}}, Users: graphUsers(n)}, o)
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, n)
	return b, c, sim
}

// waitForUsers waits until the customer "graph" has n users in licenseops.
func waitForUsers(t *testing.T, c *testapp.Client, n int) {
	t.Helper()
	waitFor(t, func() bool { return userCount(t, c) == n })
}

func userCount(t *testing.T, c *testapp.Client) int {
	t.Helper()
	var list struct{ Total int }
	c.Must(200, "GET", "/v1/customers/graph/users?page_size=1", nil).JSON(t, &list)
	return list.Total
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// directoryMatchesPostgres compares every user's licenses in the simulator
// with the mirror in Postgres, and the seats on both sides.
func directoryMatchesPostgres(t *testing.T, b *testapp.Bundle, sim *graphsim.Server) {
	t.Helper()
	state, _ := sim.Tenant(graphTenantID)
	mirror, plans := map[string][]string{}, map[string]string{}
	rows, err := b.DB.Query(`SELECT user_id, sku_id, array_to_string(disabled_plans, ',') FROM assignments ORDER BY user_id, sku_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var u, s, p string
		if err := rows.Scan(&u, &s, &p); err != nil {
			t.Fatal(err)
		}
		mirror[u], plans[u+"/"+s] = append(mirror[u], s), p
	}
	for _, u := range state.Users {
		if !slices.Equal(u.Licenses, mirror[u.ID]) && !(len(u.Licenses) == 0 && len(mirror[u.ID]) == 0) {
			t.Fatalf("user %s holds %v in the directory but %v in Postgres", u.ID, u.Licenses, mirror[u.ID])
		}
		for _, s := range u.Licenses {
			if got := strings.Join(u.DisabledPlans[s], ","); plans[u.ID+"/"+s] != got {
				t.Fatalf("user %s has plans %q of %s off in the directory but %q in Postgres", u.ID, got, s, plans[u.ID+"/"+s])
			}
		}
	}
	directoryGroupsMatchPostgres(t, b, state)
	for _, k := range state.SKUs {
		s := seats(t, b, k.ID)
		if s.Consumed != s.Assignments || s.Reserved != 0 || k.Consumed != s.Assignments {
			t.Fatalf("seats of %s: postgres %+v, directory consumed %d", k.ID, s, k.Consumed)
		}
	}
}

// directoryGroupsMatchPostgres compares how each user holds each license
// (direct, inherited from which groups) in the simulator and in Postgres.
func directoryGroupsMatchPostgres(t *testing.T, b *testapp.Bundle, state graphsim.TenantState) {
	t.Helper()
	how := func(direct bool, groups []string) string { return fmt.Sprintf("direct=%t groups=%v", direct, groups) }
	mirror := map[string]string{}
	rows, err := b.DB.Query(`SELECT user_id, sku_id, direct, array_to_string(inherited_from, ',') FROM assignments`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var u, sku, groups string
		var direct bool
		if err := rows.Scan(&u, &sku, &direct, &groups); err != nil {
			t.Fatal(err)
		}
		var gs []string
		if groups != "" {
			gs = strings.Split(groups, ",")
		}
		mirror[u+" "+sku] = how(direct, gs)
	}
	for _, u := range state.Users {
		for _, sku := range u.Licenses {
			direct, groups := len(u.LicenseStates) == 0, []string(nil)
			for _, st := range u.LicenseStates {
				switch {
				case st.SKU != sku || st.State != "Active":
				case st.Group == "":
					direct = true
				default:
					groups = append(groups, st.Group)
				}
			}
			slices.Sort(groups)
			if want := how(direct, groups); mirror[u.ID+" "+sku] != want {
				t.Fatalf("user %s holds %s %s in the directory but %s in Postgres", u.ID, sku, want, mirror[u.ID+" "+sku])
			}
		}
	}
}

// A rollout against a directory that throttles 30% of calls, fails 5% and
// times out on some still ends with every user assigned, and the directory
// and Postgres agree.
func TestGraphRolloutThroughStorm(t *testing.T) {
	t.Parallel()
	const n = 1500
	b, c, sim := graphTenant(t, n, n, graphsim.Config{})
	// The storm starts after the sync: throttled listings restart the whole
	// sync, which this test is not about.
	if err := sim.SetConfig(graphsim.Config{ThrottleRatio: 0.3, ErrorRatio: 0.05, TimeoutRatio: 0.02,
		HangFor: time.Second, RetryAfter: time.Second, RandSeed: 7}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	state, _ := sim.Tenant(graphTenantID)
	for _, u := range state.Users {
		ids = append(ids, u.ID)
	}
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/license-operations",
		map[string]any{"user_ids": ids, "assign": []string{"E5"}}).JSON(t, &acc)
	op := c.WaitOperation(acc.ID, 3*time.Minute)
	if op.Succeeded != n || op.Failed != 0 {
		t.Fatalf("operation = %+v, want all %d succeeded", op, n)
	}
	stats := sim.Stats()
	t.Logf("simulator: %+v", stats)
	// The storm must really have happened, or this test proves nothing.
	if stats.Throttled == 0 || stats.ServerErrors == 0 || stats.Timeouts == 0 {
		t.Fatalf("the simulator answered no 429 (%d), no 5xx (%d) or no timeout (%d): %+v",
			stats.Throttled, stats.ServerErrors, stats.Timeouts, stats)
	}
	directoryMatchesPostgres(t, b, sim)
}

// When the directory refuses a change for good (it has fewer seats than
// licenseops was told), the user fails with the matching code and its seat
// is released.
func TestGraphPermanentErrorsReleaseSeats(t *testing.T) {
	t.Parallel()
	b, c, sim := graphTenant(t, 20, 20, graphsim.Config{})
	if err := sim.SetSeats(graphTenantID, "E5", 15); err != nil { // the directory lost 5 seats after the sync
		t.Fatal(err)
	}
	state, _ := sim.Tenant(graphTenantID)
	var ids []string
	for _, u := range state.Users {
		ids = append(ids, u.ID)
	}
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/license-operations",
		map[string]any{"user_ids": ids, "assign": []string{"E5"}}).JSON(t, &acc)
	op := c.WaitOperation(acc.ID, time.Minute)
	if op.Succeeded != 15 || op.Failed != 5 {
		t.Fatalf("operation = %+v, want 15 succeeded and 5 failed", op)
	}
	var rep struct {
		Results []struct {
			Status string
			Error  *struct{ Code string }
		}
	}
	c.Must(200, "GET", "/v1/operations/"+acc.ID+"/report", nil).JSON(t, &rep)
	for _, r := range rep.Results {
		if r.Status == "failed" && r.Error.Code != "CountViolation" {
			t.Fatalf("failure code %s, want CountViolation", r.Error.Code)
		}
	}
	directoryMatchesPostgres(t, b, sim)
}

// A worker that died after reserving the seat and claiming the user but
// before calling the directory, and one that died after the call but before
// recording it: the next delivery completes both, with no seat leaked or
// counted twice.
func TestGraphCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	b, c, sim := graphTenant(t, 4, 10, graphsim.Config{})
	ctx := context.Background()
	state, _ := sim.Tenant(graphTenantID)
	ids := []string{state.Users[0].ID, state.Users[1].ID, state.Users[2].ID, state.Users[3].ID}
	cust := customerOf(t, b, "graph")
	op, err := b.Store.CreateOperation(ctx, storage.NewOperation{PartnerKey: cust.PartnerKey, Customer: cust, UserIDs: ids,
		Assign: []string{"E5"}, Source: "api", CreatedBy: "test", Queue: jobs.QueueDefault})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := b.Store.LoadPlan(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Died before the call.
	if _, err := b.Store.PrepareExternal(ctx, plan, ids[:1]); err != nil {
		t.Fatal(err)
	}
	// Died after the call.
	if _, err := b.Store.PrepareExternal(ctx, plan, ids[1:2]); err != nil {
		t.Fatal(err)
	}
	client := simClient(t, sim)
	if err := client.Apply(ctx, graphTenantID, provider.Change{UserID: ids[1], Add: []provider.AddLicense{{SKU: "E5"}}}); err != nil {
		t.Fatal(err)
	}
	// Redelivery of every item.
	if _, err := (&jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(b.Redis)}).EnqueueItems(ctx, op.ID, jobs.QueueDefault, ids); err != nil {
		t.Fatal(err)
	}
	got := c.WaitOperation(op.ID, time.Minute)
	if got.Succeeded != 4 {
		t.Fatalf("operation = %+v, want 4 succeeded", got)
	}
	directoryMatchesPostgres(t, b, sim)
	if s := seats(t, b, "E5"); s.Consumed != 4 {
		t.Fatalf("seats = %+v, want 4 consumed", s)
	}
	var claims int
	if err := b.DB.Get(&claims, `SELECT count(*) FROM users WHERE applying_operation IS NOT NULL`); err != nil || claims != 0 {
		t.Fatalf("%d users still claimed (%v)", claims, err)
	}
}

// syncSeed is a tenant whose users differ in every imported field, spread
// over several pages of the listing.
func syncSeed() graphsim.TenantSeed {
	locs := []string{"PL", "DE", "", "US"}
	skus := [][]string{{"E5"}, {"E3"}, nil, {"E3", "E5"}}
	base := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	users := make([]graphsim.UserSeed, 11)
	for i := range users {
		u := graphsim.UserSeed{ID: fmt.Sprintf("0000cccc-0000-4000-8000-%012d", i), UserPrincipalName: fmt.Sprintf("s%d@tenant.example", i),
			DisplayName: fmt.Sprintf("Synced %02d", i), UsageLocation: locs[i%4], AccountEnabled: i%3 != 1, Licenses: skus[i%4]}
		if i%2 == 0 {
			at := base.Add(time.Duration(i) * time.Hour)
			u.LastSignInAt = &at
		}
		users[i] = u
	}
	return graphsim.TenantSeed{Users: users, SKUs: []graphsim.SKUSeed{
		{ID: "E3", PartNumber: "ENTERPRISEPACK", Enabled: 5},
		{ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: 10},
		{ID: "VISIO", PartNumber: "VISIOCLIENT", Enabled: 3},
	}}
}

// assertSyncedUsers compares every user of licenseops' customer "graph"
// with what the directory was seeded or changed to.
func assertSyncedUsers(t *testing.T, b *testapp.Bundle, want []graphsim.UserSeed) {
	t.Helper()
	cust := customerOf(t, b, "graph")
	for _, w := range want {
		got, err := b.Store.GetUser(context.Background(), cust.Key, w.ID)
		if err != nil {
			t.Fatalf("user %s: %v", w.ID, err)
		}
		loc := ""
		if got.UsageLocation != nil {
			loc = *got.UsageLocation
		}
		wantLicenses := slices.Sorted(slices.Values(w.Licenses))
		signIn := func(p *time.Time) string {
			if p == nil {
				return "never"
			}
			return p.UTC().Format(time.RFC3339)
		}
		if got.UserPrincipalName != w.UserPrincipalName || got.DisplayName != w.DisplayName || loc != w.UsageLocation ||
			got.AccountEnabled != w.AccountEnabled || !slices.Equal(got.Licenses, wantLicenses) ||
			(len(wantLicenses) == 0) != (len(got.Licenses) == 0) || signIn(got.LastSignInAt) != signIn(w.LastSignInAt) {
			t.Errorf("user %s in Postgres: upn %q name %q location %q enabled %t licenses %v signed in %s; directory: %q %q %q %t %v %s",
				w.ID, got.UserPrincipalName, got.DisplayName, loc, got.AccountEnabled, got.Licenses, signIn(got.LastSignInAt),
				w.UserPrincipalName, w.DisplayName, w.UsageLocation, w.AccountEnabled, wantLicenses, signIn(w.LastSignInAt))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

type syncedSubscription struct {
	SKU                        string `json:"sku_id"`
	Total, Consumed, Available int
}

func syncedSubscriptions(t *testing.T, c *testapp.Client) map[string]syncedSubscription {
	t.Helper()
	var out struct{ Subscriptions []syncedSubscription }
	c.Must(200, "GET", "/v1/customers/graph/subscriptions", nil).JSON(t, &out)
	m := map[string]syncedSubscription{}
	for _, s := range out.Subscriptions {
		m[s.SKU] = s
	}
	return m
}

// A sync follows @odata.nextLink through every page (3 users a page here)
// and mirrors each user's usage location, enabled flag, sign-in time and
// licenses, and each subscribed SKU's seats; a second sync brings changes.
func TestGraphSyncImportsEveryPage(t *testing.T) {
	t.Parallel()
	seed := syncSeed()
	b, c, sim := startGraph(t, seed, graphOptions{pageSize: 3})
	// E3 lost a seat after 5 were assigned: the directory is over-assigned.
	if err := sim.SetSeats(graphTenantID, "E3", 4); err != nil {
		t.Fatal(err)
	}
	before := sim.Stats().Requests
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(seed.Users))
	// 11 users at 3 a page are 4 pages, plus subscribedSkus.
	if calls := sim.Stats().Requests - before; calls < 5 {
		t.Fatalf("the sync made %d Graph calls; 4 pages of users and the SKUs need at least 5", calls)
	}
	assertSyncedUsers(t, b, seed.Users)
	// E5: 10 bought, users 0, 3, 4, 7, 8 hold it. E3: 4 bought but 5
	// assigned (users 1, 3, 5, 7, 9), so the total is raised to what is
	// used and nothing is available. VISIO: bought, unused.
	want := map[string]syncedSubscription{
		"E3":    {SKU: "E3", Total: 5, Consumed: 5, Available: 0},
		"E5":    {SKU: "E5", Total: 10, Consumed: 5, Available: 5},
		"VISIO": {SKU: "VISIO", Total: 3, Consumed: 0, Available: 3},
	}
	if got := syncedSubscriptions(t, c); !maps.Equal(got, want) {
		t.Fatalf("subscriptions after the sync = %+v, want %+v", got, want)
	}
	state, _ := sim.Tenant(graphTenantID)
	for _, k := range state.SKUs {
		if s := seats(t, b, k.ID); s.Consumed != k.Consumed || s.Assignments != k.Consumed || s.Reserved != 0 {
			t.Fatalf("%s: postgres %+v, directory consumed %d", k.ID, s, k.Consumed)
		}
	}

	// The directory changes: a license taken away, a location set, a new
	// user on a fifth page holding VISIO.
	client := simClient(t, sim)
	ctx := context.Background()
	users := seed.Users
	if err := client.Apply(ctx, graphTenantID, provider.Change{UserID: users[3].ID, Remove: []string{"E5"}}); err != nil {
		t.Fatal(err)
	}
	users[3].Licenses = []string{"E3"}
	if err := client.SetUsageLocation(ctx, graphTenantID, users[2].ID, "FR"); err != nil {
		t.Fatal(err)
	}
	users[2].UsageLocation = "FR"
	extra := graphsim.UserSeed{ID: "0000cccc-0000-4000-8000-999999999999", UserPrincipalName: "new@tenant.example", DisplayName: "Newcomer",
		UsageLocation: "SE", AccountEnabled: true, Licenses: []string{"VISIO"}}
	if err := sim.AddUsers(graphTenantID, extra); err != nil {
		t.Fatal(err)
	}
	users = append(users, extra)
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(users))
	assertSyncedUsers(t, b, users)
	want["E5"] = syncedSubscription{SKU: "E5", Total: 10, Consumed: 4, Available: 6}
	want["VISIO"] = syncedSubscription{SKU: "VISIO", Total: 3, Consumed: 1, Available: 2}
	if got := syncedSubscriptions(t, c); !maps.Equal(got, want) {
		t.Fatalf("subscriptions after the second sync = %+v, want %+v", got, want)
	}
}

// Graph refuses some changes for good although licenseops' catalog allowed
// them (the directory's rules are stricter than the catalog, or the user's
// usage location was cleared in the directory): each such user fails with
// the code the contract gives, holds what it held, and its seats go back.
func TestGraphRefusalsFailUsersAndReleaseSeats(t *testing.T) {
	t.Parallel()
	user := func(id, loc string, licenses ...string) graphsim.UserSeed {
		return graphsim.UserSeed{ID: id, UserPrincipalName: id + "@tenant.example", DisplayName: id, UsageLocation: loc,
			AccountEnabled: true, Licenses: licenses}
	}
	b, c, sim := startGraph(t, graphsim.TenantSeed{
		SKUs: []graphsim.SKUSeed{
			{ID: "E5", Enabled: 10, ProhibitedLocations: []string{"CN"}},
			{ID: "E3", Enabled: 10, Excludes: []string{"E5"}},
			{ID: "BASE", Enabled: 10},
			{ID: "ADDON", Enabled: 10, Requires: []string{"BASE"}},
		},
		Users: []graphsim.UserSeed{
			user("a-ok", "PL", "BASE"),
			user("b-noloc", ""),
			user("c-china", "CN"),
			user("d-e3", "PL", "E3"),
			user("e-nobase", "PL"),
		},
	}, graphOptions{})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, 5)
	// licenseops believes b-noloc has a usage location; the directory has none.
	c.Must(http.StatusOK, "PATCH", "/v1/customers/graph/users/b-noloc", map[string]string{"usage_location": "PL"})

	ids := []string{"a-ok", "b-noloc", "c-china", "d-e3", "e-nobase"}
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/license-operations",
		map[string]any{"user_ids": ids, "assign": []string{"E5", "ADDON"}}).JSON(t, &acc)
	op := c.WaitOperation(acc.ID, time.Minute)
	if op.Succeeded != 1 || op.Failed != 4 {
		t.Fatalf("operation = %+v, want 1 succeeded and 4 failed", op)
	}
	var rep struct {
		Results []struct {
			UserID   string `json:"user_id"`
			Status   string
			Licenses []string
			Error    *struct{ Code, Message string }
		}
	}
	c.Must(200, "GET", "/v1/operations/"+acc.ID+"/report", nil).JSON(t, &rep)
	want := map[string]struct {
		code     string
		licenses []string
	}{
		"a-ok":     {"", []string{"ADDON", "BASE", "E5"}},
		"b-noloc":  {"UsageLocationMissing", []string{}},
		"c-china":  {"ProhibitedInUsageLocationViolation", []string{}},
		"d-e3":     {"MutuallyExclusiveViolation", []string{"E3"}},
		"e-nobase": {"DependencyViolation", []string{}},
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("report has %d rows, want %d", len(rep.Results), len(want))
	}
	for _, r := range rep.Results {
		w := want[r.UserID]
		code := ""
		if r.Error != nil {
			code = r.Error.Code
		}
		if code != w.code || !slices.Equal(r.Licenses, w.licenses) && len(r.Licenses)+len(w.licenses) > 0 {
			t.Errorf("%s: status %s, error %+v, licenses %v; want code %q and licenses %v", r.UserID, r.Status, r.Error, r.Licenses, w.code, w.licenses)
		}
	}
	for _, sku := range []string{"E5", "ADDON"} {
		if s := seats(t, b, sku); s.Consumed != 1 || s.Assignments != 1 || s.Reserved != 0 {
			t.Errorf("seats of %s = %+v, want 1 consumed, 1 assignment, none reserved", sku, s)
		}
	}
	directoryMatchesPostgres(t, b, sim)
}

// syncTasks lists the customer's sync tasks in Redis by state.
func syncTasks(t *testing.T, insp *asynq.Inspector, customerKey int64) map[asynq.TaskState][]string {
	t.Helper()
	out := map[asynq.TaskState][]string{}
	lists := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		insp.ListPendingTasks, insp.ListActiveTasks, insp.ListScheduledTasks, insp.ListRetryTasks, insp.ListArchivedTasks,
	}
	for _, list := range lists {
		infos, err := list(jobs.QueueLow, asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatal(err)
		}
		for _, info := range infos {
			var p jobs.SyncPayload
			if info.Type == jobs.TypeSyncDirectory && json.Unmarshal(info.Payload, &p) == nil && p.CustomerKey == customerKey {
				out[info.State] = append(out[info.State], info.ID)
			}
		}
	}
	return out
}

// waitSyncDeferred waits until the customer's only sync tasks are scheduled
// ones (the sync is waiting), none of them notThis, and returns one.
func waitSyncDeferred(t *testing.T, insp *asynq.Inspector, customerKey int64, notThis string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		tasks := syncTasks(t, insp, customerKey)
		sched := slices.DeleteFunc(slices.Clone(tasks[asynq.TaskStateScheduled]), func(id string) bool { return id == notThis })
		if len(tasks) == 1 && len(sched) > 0 {
			return sched[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s the customer's sync tasks are %v; want only scheduled ones (other than %q): a sync waiting for the customer", tasks, notThis)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A sync requested while the customer has an operation running waits for it
// as long as it runs (here: through several rounds that each find the
// customer busy, more than its retries would allow at this worker's retry
// timings) without failing, and then runs.
func TestGraphSyncWaitsForRunningOperation(t *testing.T) {
	t.Parallel()
	// No sweeper: the operation below stays unfinished until the test
	// enqueues its task.
	b, c, sim := graphTenantWith(t, 3, 10, graphOptions{worker: worker.Config{DisableSweeper: true}})
	ctx := context.Background()
	cust := customerOf(t, b, "graph")
	state, _ := sim.Tenant(graphTenantID)
	ids := []string{state.Users[0].ID}
	op, err := b.Store.CreateOperation(ctx, storage.NewOperation{PartnerKey: cust.PartnerKey, Customer: cust, UserIDs: ids,
		Assign: []string{"E5"}, Source: "api", CreatedBy: "test", Queue: jobs.QueueDefault})
	if err != nil {
		t.Fatal(err)
	}
	// The directory gains a user; the sync that brings it in must wait.
	if err := sim.AddUsers(graphTenantID, graphsim.UserSeed{ID: "0000bbbb-0000-4000-8000-000000000001", UserPrincipalName: "late@tenant.example",
		DisplayName: "Late", UsageLocation: "PL", AccountEnabled: true}); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(b.Redis)
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waiting := waitSyncDeferred(t, insp, cust.Key, "")
	// Make the waiting sync come due now, several times, instead of waiting
	// for its time: each time it finds the customer busy and waits again,
	// never reaching retry or the archive.
	for range 12 {
		if err := insp.RunTask(jobs.QueueLow, waiting); err != nil {
			t.Fatal(err)
		}
		waiting = waitSyncDeferred(t, insp, cust.Key, waiting)
	}
	// Asking again while it waits is accepted, and still nothing fails.
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitSyncDeferred(t, insp, cust.Key, "")
	if n := userCount(t, c); n != 3 {
		t.Fatalf("%d users: the sync ran while an operation was running", n)
	}

	// The operation finishes; the waiting sync runs (now rather than at its time).
	if _, err := (&jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(b.Redis)}).EnqueueItems(ctx, op.ID, jobs.QueueDefault, ids); err != nil {
		t.Fatal(err)
	}
	if got := c.WaitOperation(op.ID, time.Minute); got.Succeeded != 1 {
		t.Fatalf("operation = %+v", got)
	}
	if _, err := insp.RunAllScheduledTasks(jobs.QueueLow); err != nil {
		t.Fatal(err)
	}
	waitForUsers(t, c, 4)
	waitFor(t, func() bool { return len(syncTasks(t, insp, cust.Key)) == 0 })
}

// A sync task that was archived (it failed on every retry) keeps its
// TaskID; asking for a sync again runs it again instead of answering 202
// for a task that will never run.
func TestGraphSyncRequestRunsArchivedTaskAgain(t *testing.T) {
	t.Parallel()
	b, c, sim := graphTenant(t, 2, 10, graphsim.Config{})
	cust := customerOf(t, b, "graph")
	if err := sim.AddUsers(graphTenantID, graphsim.UserSeed{ID: "0000bbbb-0000-4000-8000-000000000002", UserPrincipalName: "new@tenant.example",
		DisplayName: "New", UsageLocation: "PL", AccountEnabled: true}); err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(b.Redis)
	info, err := client.Enqueue(jobs.NewSyncTask(cust.Key), asynq.ProcessIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(b.Redis)
	if err := insp.ArchiveTask(info.Queue, info.ID); err != nil {
		t.Fatal(err)
	}
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, 3)
}
