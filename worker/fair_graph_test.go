package worker_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/provider/graphsim"
)

// startGraphWorker starts a worker as `licenseops worker` runs one, with
// the environment it is given (internal/app, in this process): its own
// Postgres pool, Redis client and msgraph client, its Graph writes paced
// through Redis with the other workers at LICENSEOPS_GRAPH_RATE per tenant.
func startGraphWorker(t *testing.T, b *testapp.Bundle, sim *graphsim.Server, env map[string]string) {
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL": b.DatabaseURL, "REDIS_URL": b.RedisURL, "LICENSEOPS_METRICS_ADDR": "127.0.0.1:0",
		"LICENSEOPS_GRAPH_BASE_URL": sim.GraphURL(), "LICENSEOPS_GRAPH_TOKEN_URL": sim.TokenURL(),
		"LICENSEOPS_GRAPH_CLIENT_ID": graphClientID, "LICENSEOPS_GRAPH_CLIENT_SECRET": graphSecret,
		"LICENSEOPS_SWEEP_INTERVAL": "250ms",
	}
	maps.Copy(vars, env)
	getenv := func(k string) string { return vars[k] }
	cfg, err := app.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, app.ModeWorker, b.Log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
}

// fairCustomer is a customer on Graph with its own tenant in the simulator.
type fairCustomer struct {
	id, tenant string
	users      []string
}

// startFairGraph starts a simulator with one tenant per customer, each
// with n users and as many E5 seats, and licenseops (the api, and workers
// worker processes with env) on it, the customers synced. The simulator
// answers 429 beyond 60 writes a second per tenant, Graph's quota of a
// tenant across apps (18,000 per 5 minutes).
func startFairGraph(t *testing.T, workers int, env map[string]string, sizes map[string]int) (*testapp.Bundle, *testapp.Client, *graphsim.Server, map[string]fairCustomer) {
	t.Helper()
	sim := graphsim.NewServer(graphsim.Config{Latency: 10 * time.Millisecond, Jitter: 10 * time.Millisecond, WriteQuotaPerSecond: 60})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	b := testapp.New(t, testapp.Options{})
	for range workers {
		startGraphWorker(t, b, sim, env)
	}
	c := b.Client("p", "global_admin")
	c.Must(200, "PUT", "/v1/products/E5", map[string]any{"name": "E5"})
	customers := map[string]fairCustomer{}
	for id, n := range sizes {
		fc := fairCustomer{id: id, tenant: "tenant-" + id}
		seed := graphsim.TenantSeed{ID: fc.tenant, ClientID: graphClientID, ClientSecret: graphSecret,
			SKUs: []graphsim.SKUSeed{{ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: n}}, Users: graphUsers(n)}
		if err := sim.AddTenant(seed); err != nil {
			t.Fatal(err)
		}
		for _, u := range seed.Users {
			fc.users = append(fc.users, u.ID)
		}
		c.Must(201, "POST", "/v1/customers", map[string]any{"id": id, "name": id,
			"directory": map[string]string{"kind": "msgraph", "tenant_id": fc.tenant}})
		c.Must(http.StatusAccepted, "POST", "/v1/customers/"+id+"/sync", nil)
		customers[id] = fc
	}
	for id, n := range sizes {
		waitFor(t, func() bool {
			var list struct{ Total int }
			c.Must(200, "GET", "/v1/customers/"+id+"/users?page_size=1", nil).JSON(t, &list)
			return list.Total == n
		})
	}
	return b, c, sim, customers
}

// tenantConsumed is how many E5 licenses the tenant has handed out in the
// directory: one assignLicense write each.
func tenantConsumed(t *testing.T, sim *graphsim.Server, tenant string) int {
	t.Helper()
	state, ok := sim.Tenant(tenant)
	if !ok {
		t.Fatalf("no tenant %s", tenant)
	}
	return state.SKUs[0].Consumed
}

// Two customers on Graph, each tenant paced at 20 writes/s: a 2,000-user
// rollout on tenant A is queued, then a 300-user rollout on tenant B. B
// needs about 15 s of its own quota; it must not wait for A's tasks, which
// are over A's quota and used to hold every worker slot waiting for it (B
// then finished after all of A, 105 s in). B finishes within 45 s of its
// intake (a generous bound for a shared machine) while A keeps its pace,
// with one worker and with three; tasks sent back for their slot spend no
// retry; and both rollouts end with every user assigned once, the
// directory and Postgres agreeing.
func TestGraphTenantsShareWorkersFairly(t *testing.T) {
	t.Parallel()
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			t.Parallel()
			const nA, nB = 2000, 300
			b, c, sim, cs := startFairGraph(t, workers, map[string]string{"LICENSEOPS_GRAPH_RATE": "20"}, map[string]int{"a": nA, "b": nB})
			var opA, opB struct{ ID string }
			c.Must(http.StatusAccepted, "POST", "/v1/customers/a/license-operations",
				map[string]any{"user_ids": cs["a"].users, "assign": []string{"E5"}}).JSON(t, &opA)
			// A's tasks are on the queue, and its first writes are out.
			waitFor(t, func() bool { return tenantConsumed(t, sim, cs["a"].tenant) > 0 })
			aStart, aFirst := tenantConsumed(t, sim, cs["a"].tenant), time.Now()
			intake := time.Now()
			c.Must(http.StatusAccepted, "POST", "/v1/customers/b/license-operations",
				map[string]any{"user_ids": cs["b"].users, "assign": []string{"E5"}}).JSON(t, &opB)
			b1 := c.WaitOperation(opB.ID, 3*time.Minute)
			bTook := time.Since(intake)
			aWrites := tenantConsumed(t, sim, cs["a"].tenant) - aStart
			aRate := float64(aWrites) / bTook.Seconds()
			t.Logf("%d worker(s): B's %d users finished %.1f s after intake; A meanwhile %d writes = %.1f writes/s",
				workers, nB, bTook.Seconds(), aWrites, aRate)
			if b1.Succeeded != nB || b1.Failed != 0 {
				t.Fatalf("B's operation = %+v, want all %d succeeded", b1, nB)
			}
			if bTook > 45*time.Second {
				t.Errorf("B finished %v after its intake, want within 45 s (its own quota needs 15 s)", bTook)
			}
			// A keeps its pace: 20 writes/s give or take the burst and a
			// shared machine; never above it.
			if aRate < 15 || float64(aWrites) > 20*bTook.Seconds()+40 {
				t.Errorf("A wrote %d times in %v (%.1f/s) while B ran, want about 20/s", aWrites, bTook, aRate)
			}
			// Tasks waiting for their slot are on the queue (not in a
			// worker), and waiting spent none of their retries. A task may
			// have spent one on a real failure before it waited: a write
			// Graph refused over its quota (allowed below, at most one in
			// a hundred) spends one retry of one task. Were waiting to
			// spend retries, the hundreds of waiting tasks would have
			// spent far more.
			insp := asynq.NewInspectorFromRedisClient(b.Redis)
			waiting, err := insp.ListRetryTasks(jobs.QueueDefault, asynq.PageSize(5000))
			if err != nil {
				t.Fatal(err)
			}
			if len(waiting) == 0 {
				t.Error("no task of A is waiting on the queue for its slot")
			}
			spent := 0
			for _, ti := range waiting {
				spent += ti.Retried
			}
			st := sim.Stats()
			if failures := st.QuotaExceeded + st.Throttled + st.ServerErrors + st.Timeouts; int64(spent) > failures {
				t.Fatalf("the %d tasks waiting for their slot have spent %d retries, more than the %d directory failures", len(waiting), spent, failures)
			}
			a1 := c.WaitOperation(opA.ID, 4*time.Minute)
			if a1.Succeeded != nA || a1.Failed != 0 {
				t.Fatalf("A's operation = %+v, want all %d succeeded", a1, nA)
			}
			t.Logf("%d worker(s): A's %d users took %.1f s from its first write: %.1f writes/s", workers, nA,
				time.Since(aFirst).Seconds(), float64(nA-aStart)/time.Since(aFirst).Seconds())
			for id, n := range map[string]int{"a": nA, "b": nB} {
				if got := tenantConsumed(t, sim, cs[id].tenant); got != n {
					t.Errorf("tenant %s hands out %d licenses, want %d", id, got, n)
				}
				var consumed, reserved, assignments int
				if err := b.DB.QueryRow(`SELECT s.consumed, s.reserved,
						(SELECT count(*) FROM assignments a WHERE a.customer_key = s.customer_key AND a.sku_id = s.sku_id)
					FROM subscriptions s JOIN customers c ON c.customer_key = s.customer_key WHERE c.id = $1 AND s.sku_id = 'E5'`, id).
					Scan(&consumed, &reserved, &assignments); err != nil {
					t.Fatal(err)
				}
				if consumed != n || reserved != 0 || assignments != n {
					t.Errorf("customer %s: consumed %d, reserved %d, assignments %d; want %d, 0, %d", id, consumed, reserved, assignments, n, n)
				}
			}
			// Writes are paced below the quota, so Graph refuses none over
			// it; on a starved machine a few paced writes leave late and
			// together, and the simulator's one second of burst may refuse
			// one or two of them (retried, as Graph's 429s are): at most
			// one write in a hundred.
			if st := sim.Stats(); st.QuotaExceeded > st.Requests/100 || st.Throttled != 0 {
				t.Errorf("the simulator throttled: %+v", st)
			}
		})
	}
}
