package worker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/worker"
)

// cancelMidway waits until at least from users of the operation have
// succeeded, cancels it, waits for it to finish and returns it. It fails
// the test if the operation finished before the cancel reached it.
func cancelMidway(t *testing.T, c *testapp.Client, opID string, from int) licensing.Operation {
	t.Helper()
	waitFor(t, func() bool {
		var op licensing.Operation
		c.Must(http.StatusOK, "GET", "/v1/operations/"+opID, nil).JSON(t, &op)
		if op.FinishedAt != nil {
			t.Fatalf("operation finished before the cancel: %+v", op)
		}
		return op.Succeeded >= from
	})
	var cancelled licensing.Operation
	c.Must(http.StatusAccepted, "POST", "/v1/operations/"+opID+"/cancel", nil).JSON(t, &cancelled)
	if cancelled.CancelRequestedAt == nil || cancelled.Cancelled == 0 {
		t.Fatalf("cancel answered %+v, want the cancel recorded and items cancelled", cancelled)
	}
	op := c.WaitOperation(opID, 2*time.Minute)
	if op.Status != licensing.StatusCancelled {
		t.Fatalf("status %s after a cancel, want cancelled", op.Status)
	}
	if op.Succeeded < from || op.Cancelled == 0 || op.Succeeded+op.Failed+op.Cancelled != op.Total || op.Pending != 0 {
		t.Fatalf("counts after a cancel midway: %+v", op)
	}
	t.Logf("cancelled midway: %d succeeded, %d failed, %d cancelled of %d", op.Succeeded, op.Failed, op.Cancelled, op.Total)
	// Cancelling again is harmless and says the same.
	var again licensing.Operation
	c.Must(http.StatusAccepted, "POST", "/v1/operations/"+opID+"/cancel", nil).JSON(t, &again)
	if again.Status != licensing.StatusCancelled || again.Cancelled != op.Cancelled || again.Succeeded != op.Succeeded {
		t.Fatalf("second cancel answered %+v, want %+v", again, op)
	}
	return op
}

// cancelledUsers returns up to n users of the operation whose items were
// cancelled, read from the report.
func cancelledUsers(t *testing.T, c *testapp.Client, opID string, n int) []string {
	t.Helper()
	var rep struct {
		Results []struct {
			UserID   string `json:"user_id"`
			Status   string
			Assigned []string
			Error    *struct{ Code string }
		}
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+opID+"/report", nil).JSON(t, &rep)
	var out []string
	for _, r := range rep.Results {
		if r.Status != licensing.ItemCancelled {
			continue
		}
		if len(r.Assigned) > 0 || r.Error != nil {
			t.Fatalf("cancelled user %s reports assigned %v, error %+v", r.UserID, r.Assigned, r.Error)
		}
		if len(out) < n {
			out = append(out, r.UserID)
		}
	}
	return out
}

// redeliver runs the apply tasks of users again through the worker's
// handler, as a duplicate delivery would.
func redeliver(t *testing.T, w *worker.Worker, opID string, users []string) {
	t.Helper()
	for _, u := range users {
		if err := w.Handler().ProcessTask(context.Background(), jobs.NewApplyTask(opID, u, jobs.QueueDefault)); err != nil {
			t.Fatalf("redelivered task of cancelled user %s: %v", u, err)
		}
	}
}

// A 20,000-user rollout cancelled midway: the users applied before the
// cancel keep their license, the rest are cancelled with no error, every
// seat granted to them comes back, and a task of a cancelled user that
// arrives afterwards changes nothing.
func TestCancelLocalRolloutMidway(t *testing.T) {
	t.Parallel()
	const n, bought = 20000, 25000
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := seed(t, c, "cancel", n, "E5", bought)
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/cancel/license-operations",
		map[string]any{"user_ids": users, "assign": []string{"E5"}}).JSON(t, &acc)
	// One slow worker, so that the cancel finds most of the rollout to do.
	w := b.StartWorker(worker.Config{Concurrency: 2, MaxBatch: 8})
	op := cancelMidway(t, c, acc.ID, 200)

	s := seats(t, b, "E5")
	if s.Assignments != op.Succeeded || s.Consumed != op.Succeeded || s.Reserved != 0 {
		t.Fatalf("seats %+v after a cancel, want exactly the %d succeeded users consumed, nothing reserved", s, op.Succeeded)
	}
	redeliver(t, w, acc.ID, cancelledUsers(t, c, acc.ID, 20))
	if s2 := seats(t, b, "E5"); s2 != s {
		t.Fatalf("a redelivered task of a cancelled user changed seats from %+v to %+v", s, s2)
	}
	noProblems(t, b)

	// A finished operation cannot be cancelled; undo is what reverses it.
	done := c.Must(http.StatusAccepted, "POST", "/v1/customers/cancel/license-operations",
		map[string]any{"user_ids": users[:2], "revoke": []string{"E5"}})
	var small struct{ ID string }
	done.JSON(t, &small)
	c.WaitOperation(small.ID, time.Minute)
	if r := c.Do("POST", "/v1/operations/"+small.ID+"/cancel", nil); r.Status != http.StatusConflict || r.ErrorCode() != "Conflict" {
		t.Fatalf("cancel of a finished operation: HTTP %d %s, want 409 Conflict", r.Status, r.ErrorCode())
	}
}

// The same against the Graph simulator: the directory holds exactly what
// licenseops recorded, and seats are exact.
func TestCancelGraphRolloutMidway(t *testing.T) {
	t.Parallel()
	const n = 20000
	b, c, sim := graphTenantWith(t, n, n, graphOptions{
		sim:      graphsim.Config{Latency: 2 * time.Millisecond},
		pageSize: 999,
		worker:   worker.Config{Concurrency: 4},
	})
	state, _ := sim.Tenant(graphTenantID)
	ids := make([]string, len(state.Users))
	for i, u := range state.Users {
		ids[i] = u.ID
	}
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/license-operations",
		map[string]any{"user_ids": ids, "assign": []string{"E5"}}).JSON(t, &acc)
	op := cancelMidway(t, c, acc.ID, 100)
	directoryMatchesPostgres(t, b, sim)
	s := seats(t, b, "E5")
	if s.Assignments != op.Succeeded || s.Consumed != op.Succeeded || s.Reserved != 0 {
		t.Fatalf("seats %+v after a cancel, want exactly the %d succeeded users consumed, nothing reserved", s, op.Succeeded)
	}
	redeliver(t, b.Workers[0], acc.ID, cancelledUsers(t, c, acc.ID, 20))
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}
