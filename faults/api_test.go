//go:build faultinject

package faults

import (
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// The fail point in intake/intake.go, after the operation's commit and
// before the enqueue of its tasks, and the exit status of a crash there
// (intake/failpoint_faultinject.go).
const (
	failpointCommitted = "LICENSEOPS_FAILPOINT=operation-committed"
	failpointExitCode  = 86
)

// The api dies between the commit of an operation and the enqueue of its
// tasks: the client gets no answer, the operation is in Postgres with no
// task in Redis. The client retries with its Idempotency-Key against a
// restarted api and gets the operation's ID; the workers' sweeper enqueues
// the tasks once the operation is older than its enqueue grace (30 s), and
// the rollout completes.
func TestAPICrashBetweenCommitAndEnqueue(t *testing.T) {
	s := newStack(t)
	crashing := s.startAPI(failpointCommitted)
	c := s.client(crashing)
	users := c.seed("crash", rolloutUsers, "E5", rolloutSeats)
	w1, w2 := s.startWorker(), s.startWorker()
	req := operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true}
	const key = "rollout-2026-11-24"
	status, body, err := c.do("POST", "/v1/customers/crash/license-operations", req, nil, "Idempotency-Key", key)
	if err == nil {
		t.Fatalf("the api answered %d %s; want it to die at the fail point", status, body)
	}
	code, exited := crashing.Wait(10 * time.Second)
	if !exited || code != failpointExitCode {
		t.Fatalf("api: exited %v with %d, want exit %d at the fail point", exited, code, failpointExitCode)
	}
	crashedAt := time.Now()
	var opID string
	var enqueuedAt *time.Time
	if err := s.db.QueryRow(`SELECT id, enqueued_at FROM operations`).Scan(&opID, &enqueuedAt); err != nil {
		t.Fatalf("the operation was not committed before the crash: %v", err)
	}
	if enqueuedAt != nil {
		t.Fatalf("operation marked enqueued at %v, though the api died before enqueueing", enqueuedAt)
	}
	if info, err := asynq.NewInspectorFromRedisClient(s.rdb).GetQueueInfo("default"); err == nil && info.Size != 0 {
		t.Fatalf("%d tasks queued, though the api died before enqueueing", info.Size)
	}

	// The client's retry, on a restarted api, gets the same operation.
	c = s.client(s.startAPI())
	var acc struct{ ID string }
	c.must(http.StatusAccepted, "POST", "/v1/customers/crash/license-operations", req, &acc, "Idempotency-Key", key)
	if acc.ID != opID {
		t.Fatalf("the retry got operation %s, want the committed %s", acc.ID, opID)
	}
	f := s.waitFinished(opID, 90*time.Second)
	d := recovery(t, "api crash between commit and enqueue", crashedAt, f.At)
	never := reenqueued("never_enqueued", w1, w2)
	t.Logf("the sweeper enqueued %v tasks of the never-enqueued operation", never)
	if never != rolloutUsers {
		t.Errorf("the sweeper enqueued %v tasks as never_enqueued, want %d", never, rolloutUsers)
	}
	if d > 60*time.Second {
		t.Errorf("recovery took %v; the sweeper's enqueue grace is 30 s", d)
	}
	s.verifyRollout(c, opID, rolloutUsers, "E5", rolloutSeats)
}
