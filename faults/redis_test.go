//go:build faultinject

package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/worker"
)

// redisOutage is how long Redis stays down in the restart tests.
const redisOutage = 2 * time.Second

// Redis restarted mid-rollout with an append-only file (appendfsync
// everysec, the recommended setting): the queue comes back as it was, the
// sweeper sees no loss, and the workers carry on where they were.
func TestRedisRestartWithAOF(t *testing.T) {
	srv := testenv.RedisServer(t)
	if !srv.Owned() {
		t.Skip("Redis comes from TEST_REDIS_URL: fault tests only restart servers they started")
	}
	s := newStack(t)
	enableAOF(t, s.rdb)
	srv.SetArgs("--appendonly", "yes", "--appendfsync", "everysec")
	c := s.client(s.startAPI())
	users := c.seed("aof", rolloutUsers, "E5", rolloutSeats)
	w1, w2 := s.startWorker(), s.startWorker()
	op := c.start("aof", operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true})
	s.waitDone(op, 0.25)
	epoch := s.rdb.Get(context.Background(), worker.EpochKey).Val()
	lostBefore := reenqueued("queue_lost", w1, w2)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	time.Sleep(redisOutage)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// Usually a few seconds; but a task that Redis handed out just before
	// it stopped, whose answer never reached the worker, stays active under
	// a lease nobody extends, and waits for asynq's lease recovery.
	f := s.waitFinished(op, 150*time.Second)
	recovery(t, "Redis restart with AOF", stoppedAt, f.At)
	if after := s.rdb.Get(context.Background(), worker.EpochKey).Val(); epoch == "" || after != epoch {
		t.Fatalf("epoch key %q before the restart, %q after: Redis did not keep its data", epoch, after)
	}
	if n := reenqueued("queue_lost", w1, w2) - lostBefore; n != 0 {
		t.Errorf("the sweeper re-enqueued %v items for a lost queue, but the AOF kept it", n)
	}
	s.verifyRollout(c, op, rolloutUsers, "E5", rolloutSeats)
}

// Redis restarted mid-rollout without persistence: the queue is gone. The
// sweeper notices (its epoch key is gone too) and enqueues every pending
// item again from Postgres. The rollout goes through asynq groups, so
// groups waiting for aggregation are lost with the rest.
func TestRedisRestartWithoutPersistence(t *testing.T) {
	srv := testenv.RedisServer(t)
	if !srv.Owned() {
		t.Skip("Redis comes from TEST_REDIS_URL: fault tests only restart servers they started")
	}
	s := newStack(t)
	c := s.client(s.startAPI(groupedRollout))
	users := c.seed("nopersist", rolloutUsers, "E5", rolloutSeats)
	w1, w2 := s.startWorker(), s.startWorker()
	op := c.start("nopersist", operationRequest{UserIDs: users, Assign: []string{"E5"}, AllowPartial: true})
	s.waitDone(op, 0.25)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	time.Sleep(redisOutage)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	f := s.waitFinished(op, time.Minute)
	d := recovery(t, "Redis restart without persistence", stoppedAt, f.At)
	lost := reenqueued("queue_lost", w1, w2)
	t.Logf("sweeper re-enqueued %v items for the lost queue", lost)
	if lost <= 0 {
		t.Errorf("the sweeper did not re-enqueue the lost queue (re-enqueued %v)", lost)
	}
	if d > 30*time.Second {
		t.Errorf("recovery took %v; the sweeper should have rebuilt the queue within a few sweeps", d)
	}
	checkGrouped(t, w1, w2)
	s.verifyRollout(c, op, rolloutUsers, "E5", rolloutSeats)
}

// enableAOF turns the append-only file on in the running server and waits
// until it holds the whole dataset, so that a restart with --appendonly yes
// loads what was there before.
func enableAOF(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	if err := rdb.ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	err := waitUntil(30*time.Second, func() (bool, error) {
		info, err := rdb.Info(ctx, "persistence").Result()
		if err != nil {
			return false, err
		}
		return strings.Contains(info, "aof_enabled:1") && strings.Contains(info, "aof_rewrite_in_progress:0") &&
			strings.Contains(info, "aof_rewrite_scheduled:0"), nil
	})
	if err != nil {
		t.Fatalf("enable the append-only file: %v", err)
	}
}
