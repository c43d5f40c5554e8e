//go:build faultinject

package faults

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/licenseops/licenseops/provider/graphsim"
)

// A directory storm mid-rollout against the Graph simulator (run by the
// test, reached by the worker processes over HTTP): half the calls
// throttled with 429 and Retry-After, then half failing with 5xx, then a
// third applied but never answered (the worker's call ends with a 504 after
// a hang). Every user still ends with a recorded outcome, the directory and
// Postgres agree (the checker compares them over Graph too), and no seat is
// used twice on either side.
func TestGraphStorm(t *testing.T) {
	const n, seats, tenant = 2000, 1700, "tenant-1"
	// Graph's latency, with at most 8 calls in flight per worker (the
	// default), paces the rollout at a few hundred users a second, so that
	// the storm's three phases all fall in the middle of it.
	calm := graphsim.Config{Latency: 40 * time.Millisecond, Jitter: 20 * time.Millisecond}
	sim := graphsim.NewServer(calm)
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	users := make([]graphsim.UserSeed, n)
	for i := range users {
		users[i] = graphsim.UserSeed{ID: fmt.Sprintf("0000aaaa-0000-4000-8000-%012d", i), UserPrincipalName: fmt.Sprintf("u%d@tenant.example", i),
			DisplayName: fmt.Sprintf("User %05d", i), UsageLocation: "PL", AccountEnabled: true}
	}
	if err := sim.AddTenant(graphsim.TenantSeed{ID: tenant, ClientID: "app", ClientSecret: "s3cret",
		SKUs: []graphsim.SKUSeed{{ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: seats}}, Users: users}); err != nil {
		t.Fatal(err)
	}

	s := newStack(t)
	s.env = []string{
		"LICENSEOPS_GRAPH_BASE_URL=" + sim.GraphURL(), "LICENSEOPS_GRAPH_TOKEN_URL=" + sim.TokenURL(),
		"LICENSEOPS_GRAPH_CLIENT_ID=app", "LICENSEOPS_GRAPH_CLIENT_SECRET=s3cret",
		"LICENSEOPS_GRAPH_RATE=100000", "LICENSEOPS_GRAPH_MAX_IN_FLIGHT=8",
		"LICENSEOPS_WORKER_CONCURRENCY=32",
	}
	c := s.client(s.startAPI())
	s.startWorker()
	s.startWorker()
	c.must(200, "PUT", "/v1/products/E5", map[string]any{"name": "E5"}, nil)
	c.must(201, "POST", "/v1/customers", map[string]any{"id": "graph", "name": "Graph customer",
		"directory": map[string]string{"kind": "msgraph", "tenant_id": tenant}}, nil)
	c.must(202, "POST", "/v1/customers/graph/sync", nil, nil)
	err := waitUntil(time.Minute, func() (bool, error) {
		var list struct{ Total int }
		var subs struct{ Subscriptions []struct{ Total int } }
		c.must(200, "GET", "/v1/customers/graph/users?page_size=1", nil, &list)
		c.must(200, "GET", "/v1/customers/graph/subscriptions", nil, &subs)
		return list.Total == n && len(subs.Subscriptions) == 1 && subs.Subscriptions[0].Total == seats, nil
	})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	ids := make([]string, n)
	for i, u := range users {
		ids[i] = u.ID
	}

	op := c.start("graph", operationRequest{UserIDs: ids, Assign: []string{"E5"}, AllowPartial: true})
	storm := []struct {
		name string
		cfg  graphsim.Config
	}{
		{"429s", graphsim.Config{ThrottleRatio: 0.5, RetryAfter: time.Second}},
		{"5xx", graphsim.Config{ErrorRatio: 0.5, RetryAfter: time.Second}},
		{"timeouts", graphsim.Config{TimeoutRatio: 0.3, HangFor: 2 * time.Second}},
	}
	const phaseFor = 3 * time.Second
	for i, phase := range storm {
		phase.cfg.Latency, phase.cfg.Jitter, phase.cfg.RandSeed = calm.Latency, calm.Jitter, uint64(i+1)
		before := sim.Stats()
		if err := sim.SetConfig(phase.cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(phaseFor)
		after := sim.Stats()
		p, _ := s.progress(op)
		t.Logf("after %v of %s: %d of %d users done; %d calls: %d throttled, %d 5xx, %d unanswered",
			phaseFor, phase.name, p.Done, p.Total, after.Requests-before.Requests, after.Throttled-before.Throttled,
			after.ServerErrors-before.ServerErrors, after.Timeouts-before.Timeouts)
		if p.Finished != nil {
			t.Fatalf("the rollout finished during the %s; the storm did not cover it", phase.name)
		}
		if after.Throttled+after.ServerErrors+after.Timeouts == before.Throttled+before.ServerErrors+before.Timeouts {
			t.Fatalf("no call met the %s", phase.name)
		}
	}
	if err := sim.SetConfig(calm); err != nil {
		t.Fatal(err)
	}
	calmAt := time.Now()
	f := s.waitFinished(op, 2*time.Minute)
	recovery(t, "Graph storm (from the end of the storm)", calmAt, f.At)
	st := sim.Stats()
	t.Logf("simulator: %+v", st)
	if st.Throttled == 0 || st.ServerErrors == 0 || st.Timeouts == 0 {
		t.Fatalf("the storm did not reach the workers: %+v", st)
	}

	s.verifyRollout(c, op, n, "E5", seats)
	// The checker compared Postgres with the simulator over Graph; compare
	// the simulator's own state too, seats included.
	state, _ := sim.Tenant(tenant)
	holders := 0
	for _, u := range state.Users {
		if slices.Contains(u.Licenses, "E5") {
			holders++
		}
	}
	var assigned int
	if err := s.db.QueryRow(`SELECT count(*) FROM assignments WHERE sku_id = 'E5'`).Scan(&assigned); err != nil {
		t.Fatal(err)
	}
	if holders != seats || assigned != seats || state.SKUs[0].Consumed != seats {
		t.Fatalf("directory: %d users hold E5, %d seats consumed; Postgres: %d assignments; want %d everywhere",
			holders, state.SKUs[0].Consumed, assigned, seats)
	}
}
