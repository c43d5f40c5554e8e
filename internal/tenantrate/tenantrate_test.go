package tenantrate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

func client(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Three limiters, as in three worker processes, share one tenant's budget:
// in a window, the writes let through are what one limiter allows — the
// burst plus the rate over the window — not three times that; another
// tenant has a budget of its own.
func TestSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	const perSecond = 10.0
	var limiters []*Limiter
	for range 3 {
		l, err := New(rdb, perSecond)
		if err != nil {
			t.Fatal(err)
		}
		limiters = append(limiters, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var allowed, other atomic.Int64
	var wg sync.WaitGroup
	for _, l := range limiters {
		for range 4 {
			wg.Go(func() {
				for l.Wait(ctx, "tenant-a") == nil {
					allowed.Add(1)
				}
			})
		}
	}
	wg.Go(func() {
		for limiters[0].Wait(ctx, "tenant-b") == nil {
			other.Add(1)
		}
	})
	wg.Wait()
	// One second: a burst of 10 plus about 10 more. Three unshared
	// limiters would have let about 60 through.
	if n := allowed.Load(); n < 10 || n > 24 {
		t.Fatalf("%d writes to tenant-a in 1 s at %v/s shared by 3 processes, want 10 to 24", n, perSecond)
	}
	if n := other.Load(); n < 10 {
		t.Fatalf("%d writes to tenant-b: its budget is not its own", n)
	}
}

// A fractional rate is kept, and bad rates are refused.
func TestRates(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	l, err := New(rdb, 6.5)
	if err != nil {
		t.Fatal(err)
	}
	if l.limit.Rate != 650 || l.limit.Period != 100*time.Second || l.limit.Burst != 7 {
		t.Fatalf("limit for 6.5/s = %+v", l.limit)
	}
	for _, bad := range []float64{0, -1} {
		if _, err := New(rdb, bad); err == nil {
			t.Errorf("rate %v accepted", bad)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, "t"); err == nil {
		t.Error("Wait with a cancelled context succeeded")
	}
}
