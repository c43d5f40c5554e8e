package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
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

// graphTenant starts a Graph simulator with one tenant of n users and the
// SKU "E5" with seats seats, a worker wired to it, and a licenseops customer
// on directory msgraph synced from it.
func graphTenant(t *testing.T, n, seats int, simCfg graphsim.Config) (*testapp.Bundle, *testapp.Client, *graphsim.Server) {
	t.Helper()
	sim := graphsim.NewServer(simCfg)
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	users := make([]graphsim.UserSeed, n)
	for i := range users {
		id := fmt.Sprintf("0000aaaa-0000-4000-8000-%012d", i)
		users[i] = graphsim.UserSeed{ID: id, UserPrincipalName: fmt.Sprintf("u%d@tenant.example", i), DisplayName: fmt.Sprintf("User %05d", i),
			UsageLocation: "PL", AccountEnabled: true}
	}
	if err := sim.AddTenant(graphsim.TenantSeed{ID: "tenant-1", ClientID: "app", ClientSecret: "s3cret",
		SKUs: []graphsim.SKUSeed{{ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: seats}}, Users: users}); err != nil {
		t.Fatal(err)
	}
	client, err := msgraph.New(msgraph.Config{
		BaseURL: sim.GraphURL(), TokenURL: sim.TokenURL(),
		Credentials: msgraph.Credentials{ClientID: "app", ClientSecret: "s3cret"},
		Timeout:     300 * time.Millisecond, MaxInFlight: 32, RatePerSecond: 100_000, PageSize: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := testapp.New(t, testapp.Options{Workers: 1, WorkerConfig: worker.Config{
		Directories: map[string]provider.Directory{"msgraph": client}, RetryCheckInterval: 200 * time.Millisecond,
		RetryBase: 100 * time.Millisecond, RetryMax: time.Second,
	}})
	c := b.Client("p", "global_admin")
	c.Must(200, "PUT", "/v1/products/E5", map[string]any{"name": "E5"})
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "graph", "name": "Graph customer",
		"directory": map[string]string{"kind": "msgraph", "tenant_id": "tenant-1"}})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitFor(t, func() bool {
		var list struct{ Total int }
		c.Must(200, "GET", "/v1/customers/graph/users?page_size=1", nil).JSON(t, &list)
		return list.Total == n
	})
	return b, c, sim
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
	state, _ := sim.Tenant("tenant-1")
	mirror := map[string][]string{}
	rows, err := b.Store.DB().Query(`SELECT user_id, sku_id FROM assignments ORDER BY user_id, sku_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var u, s string
		if err := rows.Scan(&u, &s); err != nil {
			t.Fatal(err)
		}
		mirror[u] = append(mirror[u], s)
	}
	for _, u := range state.Users {
		if !slices.Equal(u.Licenses, mirror[u.ID]) && !(len(u.Licenses) == 0 && len(mirror[u.ID]) == 0) {
			t.Fatalf("user %s holds %v in the directory but %v in Postgres", u.ID, u.Licenses, mirror[u.ID])
		}
	}
	s := seats(t, b, "E5")
	if s.Consumed != s.Assignments || s.Reserved != 0 || state.SKUs[0].Consumed != s.Assignments {
		t.Fatalf("seats: postgres %+v, directory consumed %d", s, state.SKUs[0].Consumed)
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
	state, _ := sim.Tenant("tenant-1")
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
	directoryMatchesPostgres(t, b, sim)
}

// When the directory refuses a change for good (it has fewer seats than
// licenseops was told), the user fails with the matching code and its seat
// is released.
func TestGraphPermanentErrorsReleaseSeats(t *testing.T) {
	t.Parallel()
	b, c, sim := graphTenant(t, 20, 20, graphsim.Config{})
	if err := sim.SetSeats("tenant-1", "E5", 15); err != nil { // the directory lost 5 seats after the sync
		t.Fatal(err)
	}
	state, _ := sim.Tenant("tenant-1")
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
	state, _ := sim.Tenant("tenant-1")
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
	client, err := msgraph.New(msgraph.Config{BaseURL: sim.GraphURL(), TokenURL: sim.TokenURL(),
		Credentials: msgraph.Credentials{ClientID: "app", ClientSecret: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Apply(ctx, "tenant-1", provider.Change{UserID: ids[1], Add: []provider.AddLicense{{SKU: "E5"}}}); err != nil {
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
	if err := b.Store.DB().Get(&claims, `SELECT count(*) FROM users WHERE applying_operation IS NOT NULL`); err != nil || claims != 0 {
		t.Fatalf("%d users still claimed (%v)", claims, err)
	}
}
