package dashboards_test

import (
	"context"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/worker"
)

// During a rollout the api's /metrics shows the queue filling and draining
// (asynq's queue state) and the worker's /metrics shows items and outcomes
// counting up, the backlog gauges going down, and both scrapes pass
// `promtool check metrics`.
func TestMetricsDuringRollout(t *testing.T) {
	t.Parallel()
	const users, seats = 3000, 2000
	s := newStack(t)
	c := s.b.Client("p", "global_admin")
	ids := seed(t, c.Client, "metrics", users, "E5", seats)
	opID := start(t, c.Client, "metrics", client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}, AllowPartial: true})
	pendingInQueue := map[string]string{"queue": "default", "state": "pending"}
	waitUntil(t, "every task in the default queue, as the api's metrics show", func() bool {
		v, _ := scrape(t, s.apiMetrics).sum("asynq_queue_tasks", pendingInQueue)
		return v == users
	})
	apiBefore := scrape(t, s.apiMetrics)
	if v, _ := apiBefore.sum("asynq_queue_size", map[string]string{"queue": "default"}); v != users {
		t.Errorf("asynq_queue_size{queue=default} = %v before any worker, want %d", v, users)
	}
	if v, _ := apiBefore.sum("licenseops_queue_metrics_up", nil); v != 1 {
		t.Errorf("licenseops_queue_metrics_up = %v, want 1", v)
	}
	route := map[string]string{"route": "POST /v1/customers/{cid}/license-operations", "code": "202"}
	if v, _ := apiBefore.sum("licenseops_http_requests_total", route); v != 1 {
		t.Errorf("licenseops_http_requests_total%v = %v, want 1", route, v)
	}
	if v, _ := apiBefore.sum("licenseops_http_request_duration_seconds", map[string]string{"route": route["route"]}); v != 1 {
		t.Errorf("licenseops_http_request_duration_seconds count for %s = %v, want 1", route["route"], v)
	}
	if v, _ := apiBefore.sum("licenseops_operations_created_total", map[string]string{"queue": "default"}); v != 1 {
		t.Errorf("licenseops_operations_created_total{queue=default} = %v, want 1", v)
	}
	promtoolCheck(t, "api with a full queue", apiBefore)

	// One sweep before the worker takes any task: the backlog gauges.
	p := s.newWorker(t, worker.Config{Concurrency: 32, MaxBatch: 32})
	if err := p.w.Sweeper().Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := scrape(t, p.metrics)
	inDefault := map[string]string{"queue": "default"}
	for name, want := range map[string]float64{"licenseops_operations_unfinished": 1, "licenseops_items_pending": users} {
		if v, ok := before.sum(name, inDefault); !ok || v != want {
			t.Errorf("%s{queue=default} = %v (present %v) before the rollout, want %v", name, v, ok, want)
		}
	}
	for _, q := range []string{"critical", "low"} {
		if v, ok := before.sum("licenseops_items_pending", map[string]string{"queue": q}); !ok || v != 0 {
			t.Errorf("licenseops_items_pending{queue=%s} = %v (present %v), want 0", q, v, ok)
		}
	}
	if v, _ := before.sum("licenseops_operation_oldest_unfinished_age_seconds", inDefault); v <= 0 {
		t.Errorf("licenseops_operation_oldest_unfinished_age_seconds{queue=default} = %v, want > 0", v)
	}
	if v, _ := before.sum("licenseops_items_finished_total", nil); v != 0 {
		t.Errorf("licenseops_items_finished_total = %v before the worker ran, want 0", v)
	}
	promtoolCheck(t, "worker before the rollout", before)

	// The counters move while the rollout runs and end at the totals.
	p.start(t)
	var seen []float64
	intermediate := false
	waitUntil(t, "every item counted in licenseops_items_finished_total", func() bool {
		v, _ := scrape(t, p.metrics).sum("licenseops_items_finished_total", nil)
		if n := len(seen); n > 0 && v < seen[n-1] {
			t.Fatalf("licenseops_items_finished_total went down: %v after %v", v, seen)
		}
		if v > 0 && v < users {
			intermediate = true
		}
		seen = append(seen, v)
		return v == users
	})
	if !intermediate {
		t.Errorf("licenseops_items_finished_total never showed a rollout in progress: %v", seen)
	}
	op := c.WaitOperation(opID, 60*time.Second)
	if op.Succeeded != seats || op.Failed != users-seats {
		t.Fatalf("operation = %+v, want %d succeeded and %d failed", op, seats, users-seats)
	}
	waitUntil(t, "the backlog gauges at zero after the sweeper finished the operation", func() bool {
		e := scrape(t, p.metrics)
		u, ok1 := e.sum("licenseops_operations_unfinished", inDefault)
		n, ok2 := e.sum("licenseops_items_pending", inDefault)
		a, ok3 := e.sum("licenseops_operation_oldest_unfinished_age_seconds", inDefault)
		return ok1 && ok2 && ok3 && u == 0 && n == 0 && a == 0
	})
	after := scrape(t, p.metrics)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"licenseops_items_finished_total", map[string]string{"status": "succeeded"}, seats},
		{"licenseops_items_finished_total", map[string]string{"status": "failed", "code": "CountViolation"}, users - seats},
		{"licenseops_worker_tasks_total", map[string]string{"type": "license:apply", "result": "ok"}, users},
		{"licenseops_operations_finished_total", map[string]string{"status": "completed_with_errors"}, 1},
		{"licenseops_operations_finished_total", map[string]string{"status": "completed"}, 0},
	} {
		if v, _ := after.sum(tc.name, tc.labels); v != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, v, tc.want)
		}
	}
	if v, _ := after.sum("licenseops_worker_batch_duration_seconds", nil); v < 1 {
		t.Errorf("licenseops_worker_batch_duration_seconds has %v observations, want some", v)
	}
	promtoolCheck(t, "worker after the rollout", after)

	waitUntil(t, "the default queue drained, as the api's metrics show", func() bool {
		v, _ := scrape(t, s.apiMetrics).sum("asynq_queue_tasks", pendingInQueue)
		return v == 0
	})
	apiAfter := scrape(t, s.apiMetrics)
	if v, _ := apiAfter.sum("asynq_tasks_processed_total", inDefault); v < users {
		t.Errorf("asynq_tasks_processed_total{queue=default} = %v, want at least %d", v, users)
	}
	promtoolCheck(t, "api after the rollout", apiAfter)
}
