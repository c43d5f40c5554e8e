package worker_test

import (
	"context"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/licenseops/licenseops/intake"
	seeder "github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// seed creates a customer with n users and one subscription of sku through the API.
func seed(t *testing.T, c *testapp.Client, customer string, n int, sku string, seats int) []string {
	t.Helper()
	return c.Seed(seeder.OneSKU(customer, n, sku, seats))
}

type seatState struct {
	Total, Consumed, Reserved, Assignments int
}

func seats(t *testing.T, b *testapp.Bundle, sku string) seatState {
	t.Helper()
	var s seatState
	err := b.DB.QueryRow(`
		SELECT s.total, s.consumed, s.reserved,
			(SELECT count(*) FROM assignments a WHERE a.customer_key = s.customer_key AND a.sku_id = s.sku_id)
		FROM subscriptions s WHERE s.sku_id = $1`, sku).Scan(&s.Total, &s.Consumed, &s.Reserved, &s.Assignments)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Several operations race for fewer seats than users, processed by two
// asynq servers at once: exactly the seats are handed out, never more.
func TestSeatsUnderContention(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 2, WorkerConfig: worker.Config{Concurrency: 16, MaxBatch: 16}})
	c := b.Client("p", "global_admin")
	const ops, perOp, total = 5, 2000, 3000
	users := seed(t, c, "race", ops*perOp, "E5", total)
	ids := make([]string, ops)
	var wg sync.WaitGroup
	for i := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var acc struct{ ID string }
			c.Must(http.StatusAccepted, "POST", "/v1/customers/race/license-operations", map[string]any{
				"user_ids": users[i*perOp : (i+1)*perOp], "assign": []string{"E5"}, "allow_partial": true,
			}).JSON(t, &acc)
			ids[i] = acc.ID
		}()
	}
	wg.Wait()
	succeeded, failed := 0, 0
	for _, id := range ids {
		op := c.WaitOperation(id, 3*time.Minute) // 10,000 items under the race detector on a busy machine
		succeeded += op.Succeeded
		failed += op.Failed
		var rep struct {
			Results []struct {
				Status string
				Error  *struct{ Code string }
			}
		}
		c.Must(200, "GET", "/v1/operations/"+id+"/report", nil).JSON(t, &rep)
		for _, r := range rep.Results {
			if r.Status == "failed" && r.Error.Code != "CountViolation" {
				t.Fatalf("failure with code %s, want CountViolation", r.Error.Code)
			}
			if r.Status == "pending" {
				t.Fatalf("item pending in a finished operation")
			}
		}
	}
	if succeeded != total || failed != ops*perOp-total {
		t.Fatalf("succeeded %d failed %d, want %d and %d", succeeded, failed, total, ops*perOp-total)
	}
	if s := seats(t, b, "E5"); s.Assignments != total || s.Consumed != total || s.Reserved != 0 {
		t.Fatalf("seats = %+v, want exactly %d consumed and assigned", s, total)
	}
	noProblems(t, b)
}

// When seats are freed while a partial operation runs, workers take them
// from the subscription for users that got no seat at intake, and still
// never oversell.
func TestWorkersTakeFreedSeats(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "freed", 100, "E5", 40)
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/freed/license-operations",
		map[string]any{"user_ids": users, "assign": []string{"E5"}, "allow_partial": true}).JSON(t, &acc)
	// Buy 30 more seats before any worker runs: 40 were granted at intake,
	// 30 more must be found by the workers, 30 users stay without.
	c.Must(200, "PUT", "/v1/customers/freed/subscriptions/E5", map[string]int{"total": 70})
	b.StartWorker(worker.Config{Concurrency: 8, MaxBatch: 8})
	op := c.WaitOperation(acc.ID, 30*time.Second)
	if op.Succeeded != 70 || op.Failed != 30 {
		t.Fatalf("operation = %+v, want 70 succeeded, 30 failed", op)
	}
	if s := seats(t, b, "E5"); s.Assignments != 70 || s.Consumed != 70 || s.Reserved != 0 {
		t.Fatalf("seats = %+v", s)
	}
}

// The same task delivered twice, also at the same moment, takes one seat
// and reports the same outcome.
func TestRedelivery(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "dup", 3, "E5", 10)
	w, err := worker.New(worker.Config{DisableSweeper: true, Logger: b.Log}, b.Store, b.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	op := createOperation(t, b, "dup", users, false)
	h := w.Handler()
	task := jobs.NewApplyTask(op.ID, users[0], jobs.QueueDefault)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.ProcessTask(context.Background(), task) }()
	}
	wg.Wait()
	if err := h.ProcessTask(context.Background(), task); err != nil {
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatalf("delivery failed: %v", err)
		}
	}
	var n int
	if err := b.DB.Get(&n, `SELECT count(*) FROM assignments WHERE user_id = $1`, users[0]); err != nil || n != 1 {
		t.Fatalf("assignments of %s = %d (%v), want 1", users[0], n, err)
	}
	var status string
	if err := b.DB.Get(&status, `SELECT status FROM operation_items WHERE operation_id = $1 AND user_id = $2`, op.ID, users[0]); err != nil || status != "succeeded" {
		t.Fatalf("item status %q (%v)", status, err)
	}
	// Finish the others and check the books: one seat per user, none reserved.
	for _, u := range users[1:] {
		if err := h.ProcessTask(context.Background(), jobs.NewApplyTask(op.ID, u, jobs.QueueDefault)); err != nil {
			t.Fatal(err)
		}
	}
	if done, err := b.Store.FinalizeIfDone(context.Background(), op.ID); err != nil || !done {
		t.Fatalf("finalize: %v %v", done, err)
	}
	if s := seats(t, b, "E5"); s.Assignments != 3 || s.Consumed != 3 || s.Reserved != 0 {
		t.Fatalf("seats = %+v, want 3 consumed", s)
	}
}

func customerOf(t *testing.T, b *testapp.Bundle, id string) licensing.Customer {
	t.Helper()
	var pk int64
	if err := b.DB.Get(&pk, `SELECT partner_key FROM customers WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	cust, err := b.Store.GetCustomer(context.Background(), pk, id)
	if err != nil {
		t.Fatal(err)
	}
	return cust
}

// createOperation writes an operation assigning E5 to users of customer as
// the api's intake does, without enqueueing its tasks: the test runs them.
func createOperation(t *testing.T, b *testapp.Bundle, customer string, users []string, allowPartial bool) licensing.Operation {
	t.Helper()
	cust := customerOf(t, b, customer)
	op, err := b.Store.CreateOperation(context.Background(), storage.NewOperation{
		PartnerKey: cust.PartnerKey, Customer: cust, UserIDs: users, Assign: []string{"E5"}, AllowPartial: allowPartial,
		Source: "api", CreatedBy: "test", Queue: jobs.QueueDefault,
	})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// disable marks users of customer as disabled accounts, through the import API.
func disable(t *testing.T, c *testapp.Client, customer string, users ...string) {
	t.Helper()
	rows := make([]map[string]any, len(users))
	for i, u := range users {
		rows[i] = map[string]any{"id": u, "user_principal_name": u + "@example.com", "display_name": u, "account_enabled": false}
	}
	c.Must(200, "POST", "/v1/customers/"+customer+"/users/import", map[string]any{"users": rows})
}

// planOf loads an operation's plan.
func planOf(t *testing.T, b *testapp.Bundle, op licensing.Operation) *storage.Plan {
	t.Helper()
	plan, err := b.Store.LoadPlan(context.Background(), op.ID)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// An operation whose tasks were never enqueued (the api died after commit),
// and one whose queue was lost (Redis restarted empty), are completed by the
// sweeper.
func TestSweeperReenqueues(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "sweep", 50, "E5", 100)
	newOp := func(u []string) licensing.Operation { return createOperation(t, b, "sweep", u, false) }
	inspector := asynq.NewInspectorFromRedisClient(b.Redis)
	queued := func() int {
		info, err := inspector.GetQueueInfo(jobs.QueueDefault)
		if err != nil {
			return 0
		}
		return info.Pending
	}

	// 1. Never enqueued.
	neverEnqueued := newOp(users[:25])
	sweeper := worker.NewSweeper(worker.SweepConfig{EnqueueGrace: time.Millisecond}, b.Store, b.Redis, b.Log, nil)
	time.Sleep(5 * time.Millisecond)
	if err := sweeper.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := queued(); n != 25 {
		t.Fatalf("after sweep %d tasks queued, want 25", n)
	}
	// A second sweep does not duplicate them.
	if err := sweeper.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := queued(); n != 25 {
		t.Fatalf("after second sweep %d tasks queued, want 25", n)
	}

	// 2. Enqueued, then the queue is lost.
	lost := newOp(users[25:])
	if err := b.Store.MarkEnqueued(context.Background(), lost.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := sweeper.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := queued(); n != 50 {
		t.Fatalf("after the queue was lost, sweep queued %d tasks, want 50 (25 + 25)", n)
	}
	b.StartWorker(worker.Config{})
	for _, id := range []string{neverEnqueued.ID, lost.ID} {
		op := c.WaitOperation(id, 30*time.Second)
		if op.Status != "completed" || op.Succeeded != 25 {
			t.Fatalf("operation %s = %+v", id, op)
		}
	}
	if s := seats(t, b, "E5"); s.Assignments != 50 || s.Consumed != 50 || s.Reserved != 0 {
		t.Fatalf("seats = %+v", s)
	}
}

// Tasks asynq archived after their last retry (Postgres was down for longer
// than the retries) are run again by the sweeper once their operation has
// stalled: their items are still pending, and the archived task's ID keeps
// a new task for them off the queue.
func TestSweeperRunsArchivedTasks(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "archived", 20, "E5", 20)
	ctx := context.Background()
	op := createOperation(t, b, "archived", users, false)
	enq := &jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(b.Redis)}
	if res, err := enq.EnqueueItems(ctx, op.ID, jobs.QueueDefault, users); err != nil || res.Enqueued != len(users) {
		t.Fatalf("enqueue: %+v, %v", res, err)
	}
	if err := b.Store.MarkEnqueued(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspectorFromRedisClient(b.Redis)
	if n, err := inspector.ArchiveAllPendingTasks(jobs.QueueDefault); err != nil || n != len(users) {
		t.Fatalf("archive: %d, %v", n, err)
	}
	sweeper := worker.NewSweeper(worker.SweepConfig{StallAfter: time.Millisecond}, b.Store, b.Redis, b.Log, nil)
	if err := sweeper.Sweep(ctx); err != nil { // sets the epoch key: not a lost queue
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := sweeper.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := inspector.GetQueueInfo(jobs.QueueDefault)
	if err != nil {
		t.Fatal(err)
	}
	if info.Archived != 0 || info.Pending != len(users) {
		t.Fatalf("after the sweep: %d archived, %d pending; want every archived task pending again", info.Archived, info.Pending)
	}
	b.StartWorker(worker.Config{})
	if got := c.WaitOperation(op.ID, 30*time.Second); got.Status != "completed" || got.Succeeded != len(users) {
		t.Fatalf("operation = %+v", got)
	}
	noProblems(t, b)
}

// Seats granted at intake to users that then fail a rule (their accounts
// were disabled after intake) go to users that got no grant, instead of
// sitting unused while those users fail.
func TestUnusedGrantsGoToOtherUsers(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "regrant", 10, "E5", 5)
	// The first users in report order receive the five grants, then lose
	// their accounts.
	op := createOperation(t, b, "regrant", users, true)
	disable(t, c, "regrant", users[:5]...)
	w, err := worker.New(worker.Config{DisableSweeper: true, Logger: b.Log}, b.Store, b.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	for _, u := range users { // in order: the granted users fail first
		if err := w.Handler().ProcessTask(context.Background(), jobs.NewApplyTask(op.ID, u, jobs.QueueDefault)); err != nil {
			t.Fatal(err)
		}
	}
	if done, err := b.Store.FinalizeIfDone(context.Background(), op.ID); err != nil || !done {
		t.Fatalf("finalize: %v %v", done, err)
	}
	got := c.WaitOperation(op.ID, 10*time.Second)
	if got.Succeeded != 5 || got.Failed != 5 {
		t.Fatalf("operation = %+v, want the 5 enabled users to get the 5 seats", got)
	}
	if s := seats(t, b, "E5"); s.Assignments != 5 || s.Consumed != 5 || s.Reserved != 0 {
		t.Fatalf("seats = %+v", s)
	}
}

// A batch short of seats never waits for a lock on another item: the seat
// a failed user left unused is handed over from its item, and while a
// redelivered batch holds that item, the short user waits (stays pending,
// its task retried) instead of blocking on it or failing. A redelivery
// holding a finished item while it waits for the short batch's pending
// item used to deadlock with a settlement inside the short batch.
func TestShortBatchNeverWaitsForALock(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "nodeadlock", 2, "E5", 1)
	granted, waiting := users[0], users[1]
	ctx := context.Background()
	op := createOperation(t, b, "nodeadlock", users, true)
	disable(t, c, "nodeadlock", granted)
	plan := planOf(t, b, op)
	// The disabled user holds the only seat, granted at intake, and fails.
	if out, err := b.Store.ApplyLocal(ctx, plan, []string{granted}); err != nil || len(out) != 1 || out[0].Status != licensing.ItemFailed {
		t.Fatalf("disabled user: %+v, %v", out, err)
	}
	// A redelivery of the failed user's task holds its item...
	redelivery, err := b.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = redelivery.Rollback() }()
	if _, err := redelivery.ExecContext(ctx, `SELECT 1 FROM operation_items WHERE operation_id = $1 AND user_id = $2 FOR NO KEY UPDATE`, op.ID, granted); err != nil {
		t.Fatal(err)
	}
	// ...so the other user's batch cannot take the seat now: it waits.
	out, err := b.Store.ApplyLocal(ctx, plan, []string{waiting})
	if err != nil || len(out) != 1 || !out[0].Wait || out[0].Status != licensing.ItemPending {
		t.Fatalf("short batch: %+v, %v; want the user to wait", out, err)
	}
	// The redelivery reaches the pending item, which nobody holds.
	if _, err := redelivery.ExecContext(ctx, `SELECT 1 FROM operation_items WHERE operation_id = $1 AND user_id = $2 FOR NO KEY UPDATE`, op.ID, waiting); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if err := redelivery.Commit(); err != nil {
		t.Fatal(err)
	}
	// The retry gets the seat handed over.
	out, err = b.Store.ApplyLocal(ctx, plan, []string{waiting})
	if err != nil || len(out) != 1 || out[0].Status != licensing.ItemSucceeded {
		t.Fatalf("retry: %+v, %v; want the user to get the seat left unused", out, err)
	}
	if done, err := b.Store.FinalizeIfDone(ctx, op.ID); err != nil || !done {
		t.Fatalf("finalize: %v %v", done, err)
	}
	if s := seats(t, b, "E5"); s.Assignments != 1 || s.Consumed != 1 || s.Reserved != 0 {
		t.Fatalf("seats = %+v", s)
	}
	noProblems(t, b)
}

// A user short of a seat waits while another user of its operation, still
// pending, holds a grant it may leave unused, and gets that seat when it
// does: it never fails CountViolation while a seat could still be its.
// The wait is the task's error, which asynq retries without counting it as
// a failure.
func TestShortUserWaitsForAPendingGrant(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "wait", 2, "E5", 1)
	granted, short := users[0], users[1]
	op := createOperation(t, b, "wait", users, true)
	disable(t, c, "wait", granted)
	w, err := worker.New(worker.Config{DisableSweeper: true, Logger: b.Log}, b.Store, b.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	run := func(u string) error {
		return w.Handler().ProcessTask(context.Background(), jobs.NewApplyTask(op.ID, u, jobs.QueueDefault))
	}
	if err := run(short); err == nil {
		t.Fatal("the short user finished while the granted user was pending; want it to wait")
	}
	if err := run(granted); err != nil {
		t.Fatal(err)
	}
	if err := run(short); err != nil {
		t.Fatal(err)
	}
	if done, err := b.Store.FinalizeIfDone(context.Background(), op.ID); err != nil || !done {
		t.Fatalf("finalize: %v %v", done, err)
	}
	got := outcomes(t, c, op.ID)
	if got[granted] != "failed UserDisabled" || got[short] != "succeeded " {
		t.Fatalf("outcomes %v", got)
	}
	noProblems(t, b)
}

// Within one batch, a seat granted at intake to a user who fails a rule
// goes to a user of the same batch who got no grant: 3 seats, the first
// user disabled after intake, 3 enabled users → all 3 enabled users get a
// seat.
func TestGrantsPassWithinABatch(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "inbatch", 4, "E5", 3)
	ctx := context.Background()
	op := createOperation(t, b, "inbatch", users, true)
	disable(t, c, "inbatch", users[0]) // after intake, which granted it a seat
	plan := planOf(t, b, op)
	out, err := b.Store.ApplyLocal(ctx, plan, users)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range out {
		got[o.UserID] = o.Status + " " + string(o.Code)
	}
	want := map[string]string{users[0]: "failed UserDisabled", users[1]: "succeeded ", users[2]: "succeeded ", users[3]: "succeeded "}
	if !maps.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if done, err := b.Store.FinalizeIfDone(ctx, op.ID); err != nil || !done {
		t.Fatalf("finalize: %v %v", done, err)
	}
	if s := seats(t, b, "E5"); s.Assignments != 3 || s.Consumed != 3 || s.Reserved != 0 {
		t.Fatalf("seats = %+v", s)
	}
	noProblems(t, b)
}

// noProblems fails the test with the checker's list when an invariant is broken.
func noProblems(t *testing.T, b *testapp.Bundle) {
	t.Helper()
	problems, err := b.Store.Check(context.Background(), storage.CheckScope{})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("invariants broken: %v", problems)
	}
}

// The checker passes a clean rollout and names each kind of corruption.
func TestCheckerFindsBrokenInvariants(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "chk", 20, "E5", 20)
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/chk/license-operations",
		map[string]any{"user_ids": users, "assign": []string{"E5"}}).JSON(t, &acc)
	c.WaitOperation(acc.ID, 30*time.Second)
	noProblems(t, b)
	wantCheckerFinds(t, b, []corruption{
		{"seats: consumed differs from assignments",
			`UPDATE subscriptions SET consumed = consumed - 1`, `UPDATE subscriptions SET consumed = consumed + 1`},
		{"user holds part of a change",
			`DELETE FROM assignments WHERE user_id = 'user-00003'`,
			`INSERT INTO assignments (customer_key, user_id, sku_id) SELECT customer_key, 'user-00003', 'E5' FROM customers WHERE id = 'chk'`},
		{"finished operation has a non-final item",
			`UPDATE operation_items SET status = 'pending' WHERE user_id = 'user-00004'`,
			`UPDATE operation_items SET status = 'succeeded' WHERE user_id = 'user-00004'`},
		{"user claimed by a finished operation",
			`UPDATE users SET applying_operation = '` + acc.ID + `' WHERE id = 'user-00005'`,
			`UPDATE users SET applying_operation = NULL`},
		{"CountViolation while the operation left a grant unused",
			`UPDATE operation_items SET status = 'failed', error_code = 'CountViolation', short_skus = '{E5}' WHERE user_id = 'user-00006';
			 UPDATE operation_items SET status = 'failed', error_code = 'UserDisabled' WHERE user_id = 'user-00007'`,
			`UPDATE operation_items SET status = 'succeeded', error_code = NULL, short_skus = NULL WHERE user_id IN ('user-00006', 'user-00007')`},
		{"item without an operation",
			`INSERT INTO operation_items (operation_id, user_id) VALUES ('00000000-0000-0000-0000-000000000001', 'user-00001')`,
			`DELETE FROM operation_items WHERE operation_id = '00000000-0000-0000-0000-000000000001'`},
		{"progress counters disagree with items",
			`UPDATE operation_progress SET succeeded = succeeded - 1 WHERE ctid = (SELECT ctid FROM operation_progress WHERE succeeded > 0 LIMIT 1)`,
			`UPDATE operation_progress SET succeeded = succeeded + 1 WHERE ctid = (SELECT ctid FROM operation_progress LIMIT 1)`},
	})
}

// corruption breaks an invariant with one SQL statement and repairs it
// with another.
type corruption struct{ invariant, breakIt, repair string }

// wantCheckerFinds applies each corruption in turn and expects the checker
// to name its invariant, then to find nothing once all are repaired.
func wantCheckerFinds(t *testing.T, b *testapp.Bundle, corruptions []corruption) {
	t.Helper()
	for _, k := range corruptions {
		b.DB.MustExec(k.breakIt)
		problems, err := b.Store.Check(context.Background(), storage.CheckScope{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range problems {
			found = found || p.Invariant == k.invariant
		}
		if !found {
			t.Errorf("after %q the checker reported %v, want %q", k.breakIt, problems, k.invariant)
		}
		b.DB.MustExec(k.repair)
	}
	noProblems(t, b)
}

// A large operation's tasks are enqueued in groups and taken by the workers
// as batches (license:apply-batch): every user is changed once, seats are
// exact, and a user short of a seat fails as with single tasks. Two workers
// aggregate and process at once.
func TestGroupedRollout(t *testing.T) {
	t.Parallel()
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	b := testapp.New(t, testapp.Options{IntakeConfig: intake.Config{AggregateMin: 100}})
	for _, reg := range regs {
		b.StartWorker(worker.Config{Registerer: reg})
	}
	c := b.Client("p", "global_admin")
	const n, total = 3000, 2900
	users := seed(t, c, "grouped", n, "E5", total)
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/grouped/license-operations", map[string]any{
		"user_ids": users, "assign": []string{"E5"}, "allow_partial": true,
	}).JSON(t, &acc)
	op := c.WaitOperation(acc.ID, 2*time.Minute)
	if op.Succeeded != total || op.Failed != n-total {
		t.Fatalf("operation = %+v, want %d succeeded, %d failed", op, total, n-total)
	}
	if s := seats(t, b, "E5"); s.Assignments != total || s.Consumed != total || s.Reserved != 0 {
		t.Fatalf("seats = %+v, want exactly %d consumed and assigned", s, total)
	}
	batches := 0.0
	for _, reg := range regs {
		batches += counterValue(t, reg, "licenseops_worker_tasks_total", map[string]string{"type": jobs.TypeApplyBatch, "result": "ok"})
	}
	if batches == 0 {
		t.Fatalf("worker processed no %s task: the operation did not go through groups", jobs.TypeApplyBatch)
	}
	noProblems(t, b)
}
