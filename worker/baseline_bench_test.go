package worker_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/jobs"
)

// BenchmarkBareAsynq is the queue's own speed: no-op tasks enqueued and
// processed on the same Redis, from one queue (asynq's fastest setup).
func BenchmarkBareAsynq(b *testing.B) {
	const n = 20_000
	opts, _ := redis.ParseURL(testenv.Redis(b))
	opts.PoolSize = 100
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	for b.Loop() {
		enq := &jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(rdb)}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = strconv.Itoa(i)
		}
		start := time.Now()
		if _, err := enq.EnqueueItems(context.Background(), strconv.FormatInt(time.Now().UnixNano(), 10), jobs.QueueDefault, ids); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "enqueued/s")
		var done atomic.Int64
		finished := make(chan struct{})
		srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 64, Queues: map[string]int{jobs.QueueDefault: 1}, TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.ErrorLevel})
		start = time.Now()
		if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if done.Add(1) == n {
				close(finished)
			}
			return nil
		})); err != nil {
			b.Fatal(err)
		}
		<-finished
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "processed/s")
		srv.Shutdown()
	}
}
