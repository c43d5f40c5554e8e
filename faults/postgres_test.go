//go:build faultinject

package faults

import (
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testenv"
)

// Every connection of licenseops to Postgres terminated mid-rollout, three
// times 300 ms apart (pg_terminate_backend, as a failover proxy or an
// administrator does): batches in flight roll back, their tasks fail and
// asynq retries them with backoff; the pools reconnect.
func TestPostgresBackendsTerminated(t *testing.T) {
	srv := testenv.PostgresServer(t)
	if !srv.Owned() {
		t.Skip("Postgres comes from TEST_DATABASE_URL: fault tests only touch servers they started")
	}
	s := newStack(t)
	c := s.client(s.startAPI())
	users := c.seed("terminated", rolloutUsers, "E5", rolloutSeats)
	s.startWorker()
	s.startWorker()
	op := c.start("terminated", operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true})
	s.waitDone(op, 0.25)
	faultAt := time.Now()
	total := 0
	for i := range 3 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond)
		}
		var n int
		// Every backend of the test's database but this one: the api's,
		// the workers' (batches, the sweeper's advisory lock) and the
		// test's own idle ones.
		if err := s.db.QueryRow(`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	t.Logf("terminated %d backends", total)
	if total == 0 {
		t.Fatal("no backend was terminated")
	}
	f := s.waitFinished(op, time.Minute)
	recovery(t, "Postgres backends terminated", faultAt, f.At)
	s.verifyRollout(c, op, rolloutUsers, "E5", rolloutSeats)
}

// Postgres stopped (fast shutdown) for two seconds and started again
// mid-rollout: every process loses its connections, handlers fail until it
// is back, asynq retries them with backoff. The rollout goes through asynq
// groups: a failed batch task is retried whole, and redoes only the users
// it had not recorded.
func TestPostgresRestart(t *testing.T) {
	srv := testenv.PostgresServer(t)
	if !srv.Owned() {
		t.Skip("Postgres comes from TEST_DATABASE_URL: fault tests only restart servers they started")
	}
	s := newStack(t)
	c := s.client(s.startAPI(groupedRollout))
	users := c.seed("restart", rolloutUsers, "E5", rolloutSeats)
	w1, w2 := s.startWorker(), s.startWorker()
	op := c.start("restart", operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true})
	s.waitDone(op, 0.25)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	time.Sleep(2 * time.Second)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Postgres down for %.1fs", time.Since(stoppedAt).Seconds())
	f := s.waitFinished(op, 2*time.Minute)
	recovery(t, "Postgres restart", stoppedAt, f.At)
	checkGrouped(t, w1, w2)
	s.verifyRollout(c, op, rolloutUsers, "E5", rolloutSeats)
}
