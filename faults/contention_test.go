//go:build faultinject

package faults

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
)

// Three worker processes and two api processes; six operations started at
// once through both apis, on overlapping users and the same two SKUs,
// assigns racing revokes, with fewer seats than users want. Whatever the
// interleaving: every user ends with one recorded outcome per operation,
// no SKU has more assignments than seats, consumed seats equal
// assignments, and the checker finds nothing.
func TestRacingOperations(t *testing.T) {
	const n = 3000
	s := newStack(t)
	apis := []*client{s.client(s.startAPI()), s.client(s.startAPI())}
	users := apis[0].seed("race", n, "E5", 1500)
	apis[0].must(200, "PUT", "/v1/products/E3", map[string]any{"name": "E3"}, nil)
	apis[0].setSeats("race", "E3", 1000)
	for range 3 {
		s.startWorker()
	}
	ops := []operationRequest{
		{UserIDs: users[0:2000], Assign: []string{"E5"}},
		{UserIDs: users[1000:3000], Assign: []string{"E5"}},
		{UserIDs: users[0:1500], Revoke: []string{"E5"}},
		{UserIDs: users[1500:2500], Assign: []string{"E3"}, Revoke: []string{"E5"}},
		{UserIDs: users[2500:3000], Assign: []string{"E3", "E5"}},
		{UserIDs: users[0:1000], Revoke: []string{"E3"}},
	}
	ids := make([]string, len(ops))
	errs := make([]error, len(ops))
	var wg sync.WaitGroup
	start := time.Now()
	for i, req := range ops {
		req.AllowPartial = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			var acc struct{ ID string }
			status, body, err := apis[i%2].do("POST", "/v1/customers/race/license-operations", req, &acc)
			if err == nil && status != http.StatusAccepted {
				err = fmt.Errorf("status %d: %s", status, body)
			}
			ids[i], errs[i] = acc.ID, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("operation %d: %v", i, err)
		}
	}
	for i, id := range ids {
		f := s.waitFinished(id, 2*time.Minute)
		var op operation
		apis[0].must(200, "GET", "/v1/operations/"+id, nil, &op)
		t.Logf("operation %d (%d users): %d succeeded, %d failed, finished %.1fs after the start",
			i, op.Total, op.Succeeded, op.Failed, f.At.Sub(start).Seconds())
		var rep struct{ Results []reportRow }
		apis[1].must(200, "GET", "/v1/operations/"+id+"/report", nil, &rep)
		if len(rep.Results) != op.Total || op.Succeeded+op.Failed != op.Total {
			t.Fatalf("operation %d: %+v, %d report rows", i, op, len(rep.Results))
		}
		for _, r := range rep.Results {
			if r.Status != "succeeded" && (r.Status != "failed" || r.Error == nil || r.Error.Code != "CountViolation") {
				t.Fatalf("operation %d, user %s: status %s, error %+v; want succeeded, or failed with CountViolation", i, r.UserID, r.Status, r.Error)
			}
		}
	}
	time.Sleep(time.Second) // Postgres' statistics lag
	if n := s.deadlocks(); n > 0 {
		t.Logf("Postgres resolved %d deadlocks in this test's database (each costs deadlock_timeout, 1 s)", n)
	}
	for _, sku := range []string{"E5", "E3"} {
		st := s.seats(sku)
		t.Logf("%s: %+v", sku, st)
		if st.Consumed != st.Assignments || st.Reserved != 0 || st.Consumed > st.Total {
			t.Fatalf("seats of %s = %+v: want consumed = assignments <= total and none reserved", sku, st)
		}
	}
	// All-or-nothing: what each user holds now is what one of its items
	// reported, never a mix of two changes or a part of one.
	var mixed []string
	if err := s.db.QueryRow(`
		WITH held AS (
			SELECT u.id, coalesce(array_agg(a.sku_id ORDER BY a.sku_id) FILTER (WHERE a.sku_id IS NOT NULL), '{}') AS held
			FROM users u LEFT JOIN assignments a ON a.customer_key = u.customer_key AND a.user_id = u.id GROUP BY u.id)
		SELECT coalesce(array_agg(h.id || ' holds {' || array_to_string(h.held, ',') || '}'), '{}') FROM held h
		WHERE NOT EXISTS (SELECT 1 FROM operation_items i WHERE i.user_id = h.id AND i.licenses IS NOT NULL
			AND (SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM unnest(i.licenses) x) = h.held)`).Scan((*pq.StringArray)(&mixed)); err != nil {
		t.Fatal(err)
	}
	if len(mixed) > 0 {
		t.Fatalf("%d users hold what none of their changes reported, e.g. %v", len(mixed), mixed[:min(5, len(mixed))])
	}
	// Racing operations are applied to a user in whatever order their tasks
	// come: the change applied last wins, not the one created last.
	var appliedOutOfOrder int
	if err := s.db.QueryRow(`
		WITH latest AS (
			SELECT DISTINCT ON (i.user_id) i.user_id, i.licenses FROM operation_items i JOIN operations o ON o.id = i.operation_id
			ORDER BY i.user_id, o.created_at DESC)
		SELECT count(*) FROM latest l
		WHERE (SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM unnest(l.licenses) x) <>
			(SELECT coalesce(array_agg(a.sku_id ORDER BY a.sku_id), '{}') FROM assignments a WHERE a.user_id = l.user_id)`).Scan(&appliedOutOfOrder); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d users hold what an older operation applied after a newer one", appliedOutOfOrder)
	// The checker compares each user with the item applied last.
	s.check()
}
