package worker_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/worker"
)

// scheduleAssign submits an assignment of E5 to users of the customer "sched"
// that starts at notBefore, and returns the operation as accepted.
func scheduleAssign(t *testing.T, c *testapp.Client, users []string, notBefore time.Time, extra map[string]any) licensing.Operation {
	t.Helper()
	body := map[string]any{"user_ids": users, "assign": []string{"E5"}, "not_before": notBefore.Format(time.RFC3339Nano)}
	for k, v := range extra {
		body[k] = v
	}
	var op licensing.Operation
	c.Must(http.StatusAccepted, "POST", "/v1/customers/sched/license-operations", body).JSON(t, &op)
	if op.Status != licensing.StatusScheduled || op.NotBefore == nil {
		t.Fatalf("accepted %+v, want a scheduled operation with its not_before", op)
	}
	return op
}

func getOperation(t *testing.T, c *testapp.Client, id string) licensing.Operation {
	t.Helper()
	var op licensing.Operation
	c.Must(http.StatusOK, "GET", "/v1/operations/"+id, nil).JSON(t, &op)
	return op
}

// A scheduled operation holds no seat and changes nobody until its time,
// then starts and completes like any other.
func TestScheduledOperationStartsAtItsTime(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "sched", 50, "E5", 50)
	at := time.Now().Add(3 * time.Second)
	op := scheduleAssign(t, c, users, at, nil)
	for time.Now().Before(at.Add(-500 * time.Millisecond)) {
		got := getOperation(t, c, op.ID)
		if got.Status != licensing.StatusScheduled || got.Pending != 50 {
			t.Fatalf("before its time the operation is %+v, want scheduled with 50 pending", got)
		}
		if s := seats(t, b, "E5"); s.Reserved != 0 || s.Assignments != 0 {
			t.Fatalf("before its time seats are %+v, want none reserved or assigned", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	done := c.WaitOperation(op.ID, time.Minute)
	if done.Status != licensing.StatusCompleted || done.Succeeded != 50 {
		t.Fatalf("scheduled operation ended %+v, want completed with 50 succeeded", done)
	}
	var early bool
	if err := b.DB.QueryRow(`SELECT started_at < not_before FROM operations WHERE id = $1`, op.ID).Scan(&early); err != nil {
		t.Fatal(err)
	}
	if early {
		t.Fatal("the operation started before its not_before")
	}
	wantSeats(t, b, "E5", 50)
	noProblems(t, b)
}

// Cancelled while scheduled, an operation ends at once, every user
// cancelled, and never starts.
func TestScheduledOperationCancelled(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "sched", 20, "E5", 20)
	at := time.Now().Add(2 * time.Second)
	op := scheduleAssign(t, c, users, at, nil)
	var cancelled licensing.Operation
	c.Must(http.StatusAccepted, "POST", "/v1/operations/"+op.ID+"/cancel", nil).JSON(t, &cancelled)
	if cancelled.Status != licensing.StatusCancelled || cancelled.Cancelled != 20 || cancelled.FinishedAt == nil {
		t.Fatalf("cancel of a scheduled operation answered %+v, want cancelled with 20 cancelled", cancelled)
	}
	time.Sleep(time.Until(at) + 3*time.Second) // past its time, and a few sweeps
	if got := getOperation(t, c, op.ID); got.Status != licensing.StatusCancelled || got.Succeeded != 0 {
		t.Fatalf("after its time the cancelled operation is %+v", got)
	}
	wantSeats(t, b, "E5", 0) // untouched
	noProblems(t, b)
}

// However many schedulers try at once, a due operation starts once; and
// with two workers and the queue lost before and after the start, it
// still completes with exact seats.
func TestScheduledOperationStartsOnce(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "sched", 200, "E5", 200)
	op := scheduleAssign(t, c, users, time.Now().Add(time.Second), nil)
	time.Sleep(1500 * time.Millisecond)

	var mu sync.Mutex
	starts := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := b.Store.StartScheduled(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			if st != nil {
				if st.Operation.ID != op.ID || len(st.UserIDs) != 200 {
					t.Errorf("started %s with %d users, want %s with 200", st.Operation.ID, len(st.UserIDs), op.ID)
				}
				mu.Lock()
				starts++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if starts != 1 {
		t.Fatalf("%d schedulers started the operation, want exactly 1", starts)
	}
	if s := seats(t, b, "E5"); s.Reserved != 200 {
		t.Fatalf("seats %+v after the start, want 200 reserved once", s)
	}

	// Nobody enqueued its tasks (the test started it by hand) and the queue
	// is flushed: two workers' sweepers find it and finish it.
	if err := b.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	fast := worker.Config{Sweep: worker.SweepConfig{EnqueueGrace: 100 * time.Millisecond}}
	b.StartWorker(fast)
	b.StartWorker(fast)
	done := c.WaitOperation(op.ID, time.Minute)
	if done.Status != licensing.StatusCompleted || done.Succeeded != 200 {
		t.Fatalf("operation ended %+v, want completed with 200 succeeded", done)
	}
	wantSeats(t, b, "E5", 200)
	noProblems(t, b)
}

// A scheduled operation whose time comes while Redis has lost its data
// (flushed just before) starts on time: the schedule is in Postgres.
func TestScheduledOperationSurvivesRedisFlush(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 2})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "sched", 30, "E5", 30)
	at := time.Now().Add(2 * time.Second)
	op := scheduleAssign(t, c, users, at, nil)
	if err := b.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	done := c.WaitOperation(op.ID, time.Minute)
	if done.Status != licensing.StatusCompleted || done.Succeeded != 30 {
		t.Fatalf("operation ended %+v, want completed with 30 succeeded", done)
	}
	noProblems(t, b)
}

// Seats are checked at intake but granted at the start: seats sold in
// between make the start fail every user (all or nothing), or, with
// allow_partial, the users without a seat.
func TestScheduledOperationSeatsShortAtStart(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "sched", 10, "E5", 10)
	at := time.Now().Add(2 * time.Second)
	strict := scheduleAssign(t, c, users[:5], at, nil)
	partial := scheduleAssign(t, c, users[5:], at, map[string]any{"allow_partial": true})
	// Both were checked against 10 seats; 7 are left when they start.
	c.Must(http.StatusOK, "PUT", "/v1/customers/sched/subscriptions/E5", map[string]int{"total": 7})
	s1 := c.WaitOperation(strict.ID, time.Minute)
	s2 := c.WaitOperation(partial.ID, time.Minute)
	if s1.Succeeded+s2.Succeeded > 7 {
		t.Fatalf("%d + %d users got a seat of 7", s1.Succeeded, s2.Succeeded)
	}
	// Which starts first is the scheduler's order (not_before, then ID);
	// the strict one either fits whole or fails whole.
	if s1.Succeeded != 0 && s1.Succeeded != 5 {
		t.Fatalf("the operation without allow_partial ended %+v, want all or nothing", s1)
	}
	if s1.Succeeded == 0 {
		var rep struct {
			Results []struct {
				Status string
				Error  *struct{ Code, Message string }
			}
		}
		c.Must(http.StatusOK, "GET", "/v1/operations/"+strict.ID+"/report", nil).JSON(t, &rep)
		for _, r := range rep.Results {
			if r.Status != "failed" || r.Error == nil || r.Error.Code != "CountViolation" {
				t.Fatalf("user of a start without seats: %+v, want failed CountViolation", r)
			}
		}
	}
	wantSeats(t, b, "E5", s1.Succeeded+s2.Succeeded)
	noProblems(t, b)
}

// not_before is checked: a clear 400 for a time that is not RFC 3339, long
// past, or more than a year ahead.
func TestScheduleValidation(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "sched", 2, "E5", 2)
	for _, nb := range []string{"tomorrow", "2020-01-01T00:00:00Z", time.Now().AddDate(2, 0, 0).Format(time.RFC3339)} {
		r := c.Do("POST", "/v1/customers/sched/license-operations", map[string]any{"user_ids": users, "assign": []string{"E5"}, "not_before": nb})
		if r.Status != http.StatusBadRequest || r.ErrorCode() != "InvalidRequest" {
			t.Fatalf("not_before %q: HTTP %d %s, want 400 InvalidRequest", nb, r.Status, r.ErrorCode())
		}
	}
}
