package intake_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// env is a customer "acme" of partner "p" with users u00…, E5 and E3
// subscriptions, seeded through the API; no worker runs, so the tasks the
// intake enqueues stay in Redis. svc is an intake of the test's own with
// its own registry.
type env struct {
	b     *testapp.Bundle
	c     *testapp.Client
	p     *licensing.Principal
	cust  licensing.Customer
	users []string
	svc   *intake.Service
	reg   *prometheus.Registry
}

func newEnv(t *testing.T, n int, seats map[string]int, cfg intake.Config) *env {
	t.Helper()
	b := testapp.New(t, testapp.Options{})
	e := &env{b: b, reg: prometheus.NewRegistry()}
	e.c = b.Client("p", licensing.RoleGlobalAdmin)
	ctx := context.Background()
	var err error
	if e.p, err = b.Store.Authenticate(ctx, e.c.Token); err != nil || e.p == nil {
		t.Fatalf("authenticate: %v", err)
	}
	e.c.Must(http.StatusOK, "PUT", "/v1/products/E5", map[string]any{"name": "E5"})
	e.c.Must(http.StatusOK, "PUT", "/v1/products/E3", map[string]any{"name": "E3", "excludes": []string{"E5"}})
	e.c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": "acme", "name": "Acme", "default_usage_location": "PL"})
	rows := make([]map[string]any, n)
	for i := range rows {
		id := fmt.Sprintf("u%02d", i)
		e.users = append(e.users, id)
		rows[i] = map[string]any{"id": id, "user_principal_name": id + "@example.com", "display_name": id}
	}
	e.c.Must(http.StatusOK, "POST", "/v1/customers/acme/users/import", map[string]any{"users": rows})
	for sku, total := range seats {
		e.c.Must(http.StatusOK, "PUT", "/v1/customers/acme/subscriptions/"+sku, map[string]int{"total": total})
	}
	if e.cust, err = b.Store.GetCustomer(ctx, e.p.PartnerKey, "acme"); err != nil {
		t.Fatal(err)
	}
	cfg.Logger, cfg.Registerer = b.Log, e.reg
	if e.svc, err = intake.New(cfg, b.Store, b.Redis); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.svc.Close(context.Background()) })
	return e
}

func (e *env) request(users []string, assign, revoke []string) intake.Request {
	return intake.Request{Principal: e.p, Customer: e.cust, UserIDs: users, Assign: assign, Revoke: revoke, Source: licensing.SourceAPI}
}

// drain waits for the background enqueues of svc (closing it).
func (e *env) drain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.svc.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.b.DB.Get(&n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

// state is what a refused request must leave untouched.
func (e *env) state(t *testing.T) string {
	t.Helper()
	var s string
	if err := e.b.DB.Get(&s, `
		SELECT (SELECT count(*) FROM operations) || '/' || (SELECT count(*) FROM operation_items) || '/' ||
			(SELECT count(*) FROM audit_log WHERE action = 'operation.create') || '/' ||
			(SELECT string_agg(sku_id || ':' || reserved || ':' || consumed, ',' ORDER BY sku_id) FROM subscriptions)`); err != nil {
		t.Fatal(err)
	}
	return s
}

// tasks lists the task IDs pending in a queue, sorted.
func (e *env) tasks(t *testing.T, queue string) []string {
	t.Helper()
	infos, err := asynq.NewInspectorFromRedisClient(e.b.Redis).ListPendingTasks(queue, asynq.PageSize(1000))
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	var ids []string
	for _, ti := range infos {
		ids = append(ids, ti.ID)
	}
	slices.Sort(ids)
	return ids
}

func (e *env) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				v += m.Counter.GetValue()
			case m.Histogram != nil:
				v += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return v
}

func taskIDs(opID string, users []string) []string {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = jobs.TaskID(opID, u)
	}
	slices.Sort(ids)
	return ids
}

// Every front end gets the domain's checks: each refusal has its code and
// says what to do, and none writes anything.
func TestSubmitRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, map[string]int{"E5": 10, "E3": 10}, intake.Config{MaxUsersPerOperation: 3})
	before := e.state(t)
	bad := "de-"
	many := make([]string, 31)
	for i := range many {
		many[i] = fmt.Sprintf("S%d", i)
	}
	for _, tt := range []struct {
		name string
		req  func(r *intake.Request)
		code licensing.Code
		says string
	}{
		{"no users", func(r *intake.Request) { r.UserIDs = nil }, licensing.CodeInvalidRequest, "user_ids is required"},
		{"nothing to do", func(r *intake.Request) { r.Assign = nil }, licensing.CodeInvalidRequest, "nothing to do"},
		{"invalid user ID", func(r *intake.Request) { r.UserIDs = []string{"a/b"} }, licensing.CodeInvalidRequest, `user id "a/b" is not a valid ID`},
		{"invalid SKU", func(r *intake.Request) { r.Revoke = []string{"x\ty"} }, licensing.CodeInvalidRequest, "revoke SKU"},
		{"SKU in both", func(r *intake.Request) { r.Revoke = []string{"E5"} }, licensing.CodeInvalidRequest, "SKU E5 is in both assign and revoke"},
		{"usage location", func(r *intake.Request) { r.UsageLocation = &bad }, licensing.CodeInvalidRequest, "usage_location"},
		{"distinct users over the limit", func(r *intake.Request) { r.UserIDs = e.users }, licensing.CodeTooLarge, "4 distinct users; the limit is 3"},
		{"raw list over twice the limit", func(r *intake.Request) { r.UserIDs = slices.Repeat([]string{"u00"}, 7) },
			licensing.CodeTooLarge, "7 entries; an operation takes up to 3 distinct users"},
		{"too many SKUs", func(r *intake.Request) { r.Assign = many }, licensing.CodeTooLarge, "assign and revoke has 31 entries"},
		{"unknown user", func(r *intake.Request) { r.UserIDs = []string{"u00", "ghost"} }, licensing.CodeUnknownUsers, `"ghost"`},
		{"unknown SKU", func(r *intake.Request) { r.Assign = []string{"E5", "NOPE"} }, licensing.CodeUnknownSkus, "NOPE"},
		{"idempotency key too long", func(r *intake.Request) { r.IdempotencyKey = strings.Repeat("k", 256) },
			licensing.CodeInvalidRequest, "Idempotency-Key is longer than 255 characters"},
	} {
		req := e.request(e.users[:2], []string{"E5"}, nil)
		tt.req(&req)
		_, err := e.svc.Submit(context.Background(), req)
		if licensing.ErrorCode(err) != tt.code || !strings.Contains(licensing.ErrorMessage(err), tt.says) {
			t.Errorf("%s: %v, want %s saying %q", tt.name, err, tt.code, tt.says)
		}
		if req.IdempotencyKey != "" {
			continue // a preview takes no key
		}
		if _, perr := e.svc.Preview(context.Background(), req); licensing.ErrorCode(perr) != tt.code ||
			licensing.ErrorMessage(perr) != licensing.ErrorMessage(err) {
			t.Errorf("%s: preview %v, want the submit's %v", tt.name, perr, err)
		}
	}
	if after := e.state(t); after != before {
		t.Fatalf("refused requests changed the database: %s → %s", before, after)
	}
	if n := e.metric(t, "licenseops_operations_created_total", nil); n != 0 {
		t.Fatalf("%v operations counted", n)
	}
}

// Seats short without allow_partial: the shortage per SKU, nothing written,
// and the idempotency key free again for the retry after buying seats.
func TestSubmitSeatShortage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5, map[string]int{"E5": 2, "E3": 10}, intake.Config{})
	before := e.state(t)
	req := e.request(e.users, []string{"E5"}, nil)
	req.IdempotencyKey = "k1"
	req.Respond = func(op licensing.Operation) storage.StoredResponse {
		return storage.StoredResponse{Status: http.StatusAccepted, Body: []byte(op.ID)}
	}
	for _, do := range []func() error{
		func() error { _, err := e.svc.Preview(context.Background(), req); return err },
		func() error { _, err := e.svc.Submit(context.Background(), req); return err },
	} {
		err := do()
		var short *storage.ShortageError
		if !errors.As(err, &short) || len(short.Shortages) != 1 ||
			short.Shortages[0] != (licensing.SeatShortage{SKU: "E5", Needed: 5, Available: 2}) {
			t.Fatalf("preview, then submit: %v, want E5 short: 5 needed, 2 available", err)
		}
	}
	if after := e.state(t); after != before {
		t.Fatalf("a refused submit changed the database: %s → %s", before, after)
	}
	e.c.Must(http.StatusOK, "PUT", "/v1/customers/acme/subscriptions/E5", map[string]int{"total": 5})
	sub, err := e.svc.Submit(context.Background(), req)
	if err != nil || sub.Replayed != nil || sub.Operation.Total != 5 {
		t.Fatalf("retry with the key after buying seats: %+v %v", sub, err)
	}
	allowed := e.request(e.users, []string{"E5"}, nil)
	allowed.AllowPartial = true
	if sub, err := e.svc.Submit(context.Background(), allowed); err != nil || sub.Operation.Total != 5 {
		t.Fatalf("allow_partial with no seat left: %+v %v, want the operation", sub, err)
	}
}

// A submit writes the operation, its items, the seats granted and its
// audit entry, and enqueues one task per user on the queue its size calls
// for; the operation is then marked enqueued and counted.
func TestSubmitEnqueues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5, map[string]int{"E5": 10, "E3": 10}, intake.Config{InteractiveMax: 3})
	loc := "de"
	small := e.request([]string{"u01", "u00", "u01"}, []string{"E5"}, nil)
	small.UsageLocation = &loc
	s1, err := e.svc.Submit(context.Background(), small)
	if err != nil {
		t.Fatal(err)
	}
	op := s1.Operation
	if op.Total != 2 || op.Queue != jobs.QueueCritical || op.Source != licensing.SourceAPI || op.Status != licensing.StatusQueued ||
		op.UsageLocation == nil || *op.UsageLocation != "DE" || op.CreatedBy != e.p.TokenName {
		t.Fatalf("operation %+v", op)
	}
	if len(small.UserIDs) != 3 || *small.UsageLocation != "de" {
		t.Fatalf("the caller's request was changed: %+v", small)
	}
	large, err := e.svc.Submit(context.Background(), e.request(e.users, nil, []string{"E3"}))
	if err != nil {
		t.Fatal(err)
	}
	if large.Operation.Queue != jobs.QueueDefault {
		t.Fatalf("5 users > InteractiveMax 3 on queue %s", large.Operation.Queue)
	}
	e.drain(t)
	if got, want := e.tasks(t, jobs.QueueCritical), taskIDs(op.ID, []string{"u00", "u01"}); !slices.Equal(got, want) {
		t.Fatalf("critical queue %v, want %v", got, want)
	}
	if got, want := e.tasks(t, jobs.QueueDefault), taskIDs(large.Operation.ID, e.users); !slices.Equal(got, want) {
		t.Fatalf("default queue %v, want %v", got, want)
	}
	if n := e.count(t, `SELECT count(*) FROM operations WHERE enqueued_at IS NOT NULL`); n != 2 {
		t.Fatalf("%d operations marked enqueued, want 2", n)
	}
	if n := e.count(t, `SELECT reserved FROM subscriptions WHERE sku_id = 'E5'`); n != 2 {
		t.Fatalf("E5 reserved %d, want the 2 seats granted at intake", n)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_log WHERE action = $1 AND object_id = $2`, intake.AuditOperationCreate, op.ID); n != 1 {
		t.Fatalf("%d audit entries of the operation", n)
	}
	for labels, want := range map[[2]string]float64{{"api", "critical"}: 1, {"api", "default"}: 1} {
		if v := e.metric(t, "licenseops_operations_created_total", map[string]string{"source": labels[0], "queue": labels[1]}); v != want {
			t.Errorf("operations_created_total%v = %v, want %v", labels, v, want)
		}
	}
	if v := e.metric(t, "licenseops_operation_users", nil); v != 2 {
		t.Errorf("licenseops_operation_users observed %v operations, want 2", v)
	}
	// Closed, the intake still creates operations; the sweeper enqueues them.
	late, err := e.svc.Submit(context.Background(), e.request(e.users[:1], []string{"E5"}, nil))
	if err != nil || late.Operation.ID == "" {
		t.Fatalf("submit after close: %+v %v", late, err)
	}
}

// The same request under the same key creates one operation; every retry
// gets the stored answer, and another request under the key is refused.
func TestSubmitIdempotentReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3, map[string]int{"E5": 10}, intake.Config{})
	respond := func(op licensing.Operation) storage.StoredResponse {
		return storage.StoredResponse{Status: http.StatusAccepted, Body: []byte(`{"id":"` + op.ID + `"}`), Location: "/v1/operations/" + op.ID}
	}
	req := e.request(e.users, []string{"E5"}, nil)
	req.IdempotencyKey, req.Respond = "rollout-1", respond
	first, err := e.svc.Submit(context.Background(), req)
	if err != nil || first.Replayed != nil {
		t.Fatalf("first: %+v %v", first, err)
	}
	// The same meaning: duplicates and order of fields do not matter.
	again := req
	again.UserIDs = append(slices.Clone(e.users), e.users[0])
	for range 2 {
		sub, err := e.svc.Submit(context.Background(), again)
		if err != nil || sub.Replayed == nil {
			t.Fatalf("retry: %+v %v", sub, err)
		}
		if want := respond(first.Operation); sub.Replayed.Status != want.Status || string(sub.Replayed.Body) != string(want.Body) ||
			sub.Replayed.Location != want.Location {
			t.Fatalf("replayed %+v, want %+v", *sub.Replayed, want)
		}
	}
	other := req
	other.UserIDs = e.users[:1]
	if _, err := e.svc.Submit(context.Background(), other); licensing.ErrorCode(err) != licensing.CodeIdempotencyKeyReused {
		t.Fatalf("another request under the key: %v, want IdempotencyKeyReused", err)
	}
	if n := e.count(t, `SELECT count(*) FROM operations`); n != 1 {
		t.Fatalf("%d operations, want 1", n)
	}
	e.drain(t)
	if got := e.tasks(t, jobs.QueueCritical); !slices.Equal(got, taskIDs(first.Operation.ID, e.users)) {
		t.Fatalf("tasks %v", got)
	}
	if v := e.metric(t, "licenseops_operations_created_total", nil); v != 1 {
		t.Fatalf("%v operations counted, want 1", v)
	}
}

// A cleanup run through the intake creates its operation on the low queue,
// enqueues its tasks and counts it, as a submit does; a run that matches
// nobody creates and counts nothing.
func TestRunCleanupEnqueues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, map[string]int{"E5": 10}, intake.Config{})
	// u00 and u01 hold E5 and are disabled.
	for _, q := range []string{
		`INSERT INTO assignments (customer_key, user_id, sku_id) SELECT $1, u, 'E5' FROM unnest('{u00,u01}'::text[]) AS u`,
		`UPDATE subscriptions SET consumed = 2 WHERE customer_key = $1 AND sku_id = 'E5'`,
	} {
		if _, err := e.b.DB.Exec(q, e.cust.Key); err != nil {
			t.Fatal(err)
		}
	}
	e.c.Must(http.StatusOK, "POST", "/v1/customers/acme/users/import", map[string]any{"users": []map[string]any{
		{"id": "u00", "user_principal_name": "u00@example.com", "account_enabled": false},
		{"id": "u01", "user_principal_name": "u01@example.com", "account_enabled": false},
	}})
	var pol struct{ ID string }
	e.c.Must(http.StatusCreated, "POST", "/v1/customers/acme/cleanup-policies", map[string]any{"name": "disabled", "schedule": "0 2 * * *",
		"rule": map[string]any{"kind": "disabled_accounts"}, "dry_run": false, "max_percent": nil}).JSON(t, &pol) // a tiny customer
	run := storage.CleanupRunRequest{PolicyID: pol.ID, PartnerKey: e.p.PartnerKey, CustomerKey: e.cust.Key, At: time.Now(),
		CreatedBy: "tester", Queue: jobs.QueueCritical}
	res, err := e.svc.RunCleanup(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	if res.Operation == nil || res.Operation.Source != licensing.SourceCleanup || res.Operation.Queue != jobs.QueueLow ||
		!slices.Equal(res.UserIDs, []string{"u00", "u01"}) || !slices.Equal(res.Operation.Revoke, []string{"E5"}) {
		t.Fatalf("run: %+v", res)
	}
	// Nobody else is disabled: the next run matches nobody.
	e.c.Must(http.StatusOK, "POST", "/v1/customers/acme/users/import", map[string]any{"users": []map[string]any{
		{"id": "u00", "user_principal_name": "u00@example.com", "account_enabled": true},
		{"id": "u01", "user_principal_name": "u01@example.com", "account_enabled": true},
	}})
	if res2, err := e.svc.RunCleanup(context.Background(), run); err != nil || res2.Operation != nil || res2.Run.MatchedUsers != 0 {
		t.Fatalf("second run: %+v %v", res2, err)
	}
	e.drain(t)
	if got, want := e.tasks(t, jobs.QueueLow), taskIDs(res.Operation.ID, res.UserIDs); !slices.Equal(got, want) {
		t.Fatalf("low queue %v, want %v", got, want)
	}
	if got := e.tasks(t, jobs.QueueCritical); len(got) != 0 {
		t.Fatalf("critical queue %v, want empty", got)
	}
	if n := e.count(t, `SELECT count(*) FROM operations WHERE enqueued_at IS NOT NULL`); n != 1 {
		t.Fatalf("%d operations marked enqueued, want 1", n)
	}
	if v := e.metric(t, "licenseops_operations_created_total", map[string]string{"source": "cleanup", "queue": "low"}); v != 1 {
		t.Fatalf("cleanup operations counted: %v, want 1", v)
	}
	if _, err := e.svc.RunCleanup(context.Background(), storage.CleanupRunRequest{PolicyID: "9b2f7c1e-0000-4000-8000-000000000000",
		PartnerKey: e.p.PartnerKey, CustomerKey: e.cust.Key}); licensing.ErrorCode(err) != licensing.CodeNotFound {
		t.Fatalf("run of a missing policy: %v, want NotFound", err)
	}
}

// Two services on one registry cannot both register: a process builds one
// and hands it to its api and worker.
func TestOneServicePerRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed
	defer rdb.Close()
	if _, err := intake.New(intake.Config{Registerer: reg}, nil, rdb); err != nil {
		t.Fatal(err)
	}
	var are prometheus.AlreadyRegisteredError
	if _, err := intake.New(intake.Config{Registerer: reg}, nil, rdb); !errors.As(err, &are) {
		t.Fatalf("second service on the registry: %v, want AlreadyRegisteredError", err)
	}
}

// A preview predicts with the seats intake would grant and the workers
// would pass on: in the order of the selection, a seat granted to a user
// that fails a rule goes to the next user that needs one, and users left
// without a seat fail with CountViolation. It writes, queues and counts
// nothing.
func TestPreviewSeats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5, map[string]int{"E5": 3, "E3": 10}, intake.Config{})
	// u00 is disabled and holds E3 (which excludes E5); u04 holds E5.
	e.c.Must(http.StatusOK, "POST", "/v1/customers/acme/users/import", map[string]any{"users": []map[string]any{
		{"id": "u00", "user_principal_name": "u00@example.com", "display_name": "zz last", "account_enabled": false},
		{"id": "u03", "user_principal_name": "u03@example.com", "display_name": "aa first"},
	}})
	for _, q := range []string{
		`INSERT INTO assignments (customer_key, user_id, sku_id) VALUES ($1, 'u04', 'E5'), ($1, 'u01', 'E3')`,
		`UPDATE subscriptions SET consumed = 1 WHERE customer_key = $1`,
	} {
		if _, err := e.b.DB.Exec(q, e.cust.Key); err != nil {
			t.Fatal(err)
		}
	}
	before := e.state(t)
	// E5: u00 (disabled) and u01 (holds E3) fail a rule, so only u02 and
	// u03 could use a seat, and 2 are free: intake grants them theirs.
	req := e.request(e.users, []string{"E5"}, nil)
	req.AllowPartial = true
	pv, err := e.svc.Preview(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if pv.CustomerID != "acme" || pv.Total != 5 || pv.WouldSucceed != 3 || pv.WouldFail != 2 ||
		!slices.Equal(pv.SKUs, []licensing.SeatShortage{{SKU: "E5", Needed: 2, Available: 2}}) {
		t.Fatalf("preview %+v", pv)
	}
	got := map[string]string{}
	var order []string
	for _, r := range pv.Results {
		code := ""
		if r.Error != nil {
			code = string(r.Error.Code)
		}
		got[r.UserID] = r.Status + " " + code
		order = append(order, r.UserID)
	}
	want := map[string]string{"u00": "would_fail UserDisabled", "u01": "would_fail MutuallyExclusiveViolation",
		"u02": "would_succeed ", "u03": "would_succeed ", "u04": "would_succeed "}
	if !maps.Equal(got, want) || !slices.Equal(order, []string{"u03", "u01", "u02", "u04", "u00"}) {
		t.Fatalf("preview %v in order %v, want %v in report order", got, order, want)
	}
	// One seat free for u02 and u03: it goes in report order, to u03
	// ("aa first"), though u02 comes first in the list.
	e.c.Must(http.StatusOK, "PUT", "/v1/customers/acme/subscriptions/E5", map[string]int{"total": 2})
	before = e.state(t)
	short := e.request([]string{"u02", "u03", "u04"}, []string{"E5"}, nil)
	short.AllowPartial = true
	pv, err = e.svc.Preview(context.Background(), short)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pv.Results {
		fail := r.Status == intake.StatusWouldFail
		if fail != (r.UserID == "u02") || (fail && (r.Error.Code != licensing.CodeCountViolation || len(r.Assigned) != 0)) {
			t.Fatalf("%s: %+v %+v, want only u02 short of a seat", r.UserID, r, r.Error)
		}
	}
	if after := e.state(t); after != before {
		t.Fatalf("previews changed the database: %s → %s", before, after)
	}
	e.drain(t)
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault} {
		if tasks := e.tasks(t, q); len(tasks) != 0 {
			t.Fatalf("queue %s has %v", q, tasks)
		}
	}
	if v := e.metric(t, "licenseops_operations_created_total", nil); v != 0 {
		t.Fatalf("%v operations counted", v)
	}
}
