//go:build faultinject

package faults

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/lib/pq"

	apiclient "github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/jobs"
)

// A change of service plans delivered twice at the same moment to two
// worker processes (as TestSameTaskTwiceAtOnce): half of the users hold E5
// and get its plans updated, without a seat, the other half get E5 with
// the plans off. Each user changes once: one outcome, the holders
// reported with plans_changed and no assignment, seats exact.
func TestPlanChangesTwiceAtOnce(t *testing.T) {
	const n = 800
	s := newStack(t)
	c := s.client(s.startAPI())
	users := c.seed("plans", n, "E5", n)
	ctx := context.Background()
	_, err := c.PutProduct(ctx, "E5", apiclient.ProductRequest{Name: "E5",
		ServicePlans: []apiclient.ServicePlan{{ID: "EXCHANGE", Name: "Exchange"}, {ID: "TEAMS", Name: "Teams"}}})
	c.check("put product", err)
	holders := users[:n/2]
	if _, err := s.db.Exec(`
		WITH ins AS (INSERT INTO assignments (customer_key, user_id, sku_id)
			SELECT c.customer_key, u, 'E5' FROM customers c, unnest($1::text[]) AS u WHERE c.id = 'plans')
		UPDATE subscriptions s SET consumed = consumed + $2
		FROM customers c WHERE c.customer_key = s.customer_key AND c.id = 'plans' AND s.sku_id = 'E5'`,
		pq.StringArray(holders), len(holders)); err != nil {
		t.Fatal(err)
	}

	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	op := c.start("plans", operationRequest{UserIDs: users, Assign: []string{"E5"}, DisabledPlans: map[string][]string{"E5": {"TEAMS"}}})
	enqueueTwice(t, s, insp, op, users)
	w1 := s.startWorker("LICENSEOPS_WORKER_CONCURRENCY=16")
	w2 := s.startWorker("LICENSEOPS_WORKER_CONCURRENCY=16")
	if err := insp.UnpauseQueue(jobs.QueueDefault); err != nil {
		t.Fatal(err)
	}
	s.waitFinished(op, 2*time.Minute)
	s.verifyRollout(c, op, n, "E5", n)

	changed, assigned := 0, 0
	_, err = c.Report(ctx, op, func(r reportRow) error {
		held := slices.Contains(holders, r.UserID)
		switch {
		case held && slices.Equal(r.PlansChanged, []string{"E5"}) && len(r.Assigned) == 0:
			changed++
		case !held && len(r.PlansChanged) == 0 && slices.Equal(r.Assigned, []string{"E5"}):
			assigned++
		default:
			t.Errorf("user %s (holder: %v): assigned %v, plans changed %v", r.UserID, held, r.Assigned, r.PlansChanged)
		}
		return nil
	})
	c.check("report", err)
	if changed != len(holders) || assigned != n-len(holders) {
		t.Fatalf("report: %d plan changes, %d assignments; want %d of each", changed, assigned, n/2)
	}
	var off int
	if err := s.db.QueryRow(`SELECT count(*) FROM assignments WHERE sku_id = 'E5' AND disabled_plans = '{TEAMS}'`).Scan(&off); err != nil || off != n {
		t.Fatalf("%d licenses of E5 have TEAMS off (%v), want %d", off, err, n)
	}
	err = waitUntil(30*time.Second, func() (bool, error) {
		info, err := insp.GetQueueInfo(jobs.QueueDefault)
		return err == nil && info.Size == 0 && info.Active == 0, nil
	})
	if err != nil {
		t.Fatalf("queue not empty: %v", err)
	}
	if finished := metric(w1, "licenseops_items_finished_total") + metric(w2, "licenseops_items_finished_total"); finished != n {
		t.Fatalf("licenseops_items_finished_total counts %v items for %d users", finished, n)
	}
}
