package tenantrate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/internal/redisconf"
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

// Bad rates are refused, and a cancelled wait returns its context's error.
func TestRates(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	for _, bad := range []Config{{PerSecond: 0}, {PerSecond: -1}, {PerSecond: 20, AppPerSecond: -1},
		{PerSecond: 20, Hold: time.Minute, Horizon: time.Second}} {
		if _, err := NewWithConfig(rdb, bad); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
	l, err := New(rdb, 6.5)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, "t"); err == nil {
		t.Error("Wait with a cancelled context succeeded")
	}
}

// admitN asks for one write for each of tickets t0..t(n-1) of tenant.
func admitN(t *testing.T, l *Limiter, tenant string, n int) []Admission {
	t.Helper()
	out := make([]Admission, n)
	for i := range out {
		a, err := l.Admit(context.Background(), tenant, fmt.Sprintf("t%d", i), 1)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = a
	}
	return out
}

// A tenant's slots go out in the order they are asked for: a burst and
// what falls within the hold go at once, later ones are reserved spaced at
// the tenant's pace; asking again with a ticket before its slot keeps the
// same slot instead of taking another, and it is redeemed once within the
// hold. Another tenant's slots are its own.
func TestAdmitReservesInOrder(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	l, err := NewWithConfig(rdb, Config{PerSecond: 20, Hold: time.Second, Horizon: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	got := admitN(t, l, "a", 60)
	var goes, reserved int
	for i, a := range got {
		switch {
		case a.Go:
			goes++
			if a.Wait > time.Second {
				t.Fatalf("admission %d goes after %v, beyond the hold", i, a.Wait)
			}
		case a.Reserved:
			reserved++
			if prev := got[i-1]; a.Wait <= prev.Wait {
				t.Fatalf("admission %d waits %v, not after admission %d (%v)", i, a.Wait, i-1, prev.Wait)
			}
		default:
			t.Fatalf("admission %d = %+v, within the horizon", i, a)
		}
	}
	// A burst of 20 and 20 more within the second of hold go; the other 20
	// are reserved 50 ms apart, the last about 2 s ahead.
	if goes < 38 || goes > 42 || goes+reserved != 60 {
		t.Fatalf("%d went at once, %d reserved; want about 40 and 20", goes, reserved)
	}
	last := got[59].Wait
	if last < 1800*time.Millisecond || last > 2200*time.Millisecond {
		t.Fatalf("the 60th write at 20/s waits %v, want about 2 s", last)
	}
	again, err := l.Admit(context.Background(), "a", "t59", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reserved || again.Wait > last || again.Wait < last-500*time.Millisecond {
		t.Fatalf("asking again before the slot = %+v, want the same slot (%v)", again, last)
	}
	next, err := l.Admit(context.Background(), "a", "t60", 1) // after t59, not after a second t59
	if err != nil {
		t.Fatal(err)
	}
	if !next.Reserved || next.Wait-last > 200*time.Millisecond {
		t.Fatalf("the next write after asking again = %+v, want right after %v", next, last)
	}
	if other := admitN(t, l, "b", 1)[0]; !other.Go || other.Wait != 0 {
		t.Fatalf("another tenant's first write = %+v, want at once", other)
	}
	// Once the slot is within the hold, the ticket is redeemed, once.
	time.Sleep(last - 900*time.Millisecond)
	redeemed, err := l.Admit(context.Background(), "a", "t59", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !redeemed.Go {
		t.Fatalf("the ticket at its slot = %+v, want go", redeemed)
	}
	if again, _ := l.Admit(context.Background(), "a", "t59", 1); again.Go && again.Wait < time.Second/2 {
		t.Fatalf("the ticket was redeemed twice: %+v", again)
	}
}

// Beyond the horizon nothing is reserved: the caller is told when to ask
// again, and the tenant's later slots do not move.
func TestAdmitBeyondHorizon(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	l, err := NewWithConfig(rdb, Config{PerSecond: 10, Hold: 100 * time.Millisecond, Horizon: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := admitN(t, l, "a", 30)
	var later int
	for _, a := range got {
		if !a.Go && !a.Reserved {
			later++
			if a.Wait <= 0 || a.Wait > 3*time.Second {
				t.Fatalf("come back after %v", a.Wait)
			}
		}
	}
	// A burst of 10, then 10 within the horizon of 1 s; the rest later.
	if later < 9 || later > 11 {
		t.Fatalf("%d of 30 told to come back later, want about 10: %+v", later, got)
	}
}

// The app's rate is shared by the tenants writing: with four of them, each
// gets a quarter of it when that is below its own rate; pressure reported
// by Graph slows the tenant down in proportion.
func TestAppShareAndPressure(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	l, err := NewWithConfig(rdb, Config{PerSecond: 20, AppPerSecond: 40, Hold: time.Millisecond, Horizon: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"a", "b", "c"} {
		admitN(t, l, tenant, 1)
	}
	// Tenant d is the fourth writing: 10/s. After its burst of 20 (at the
	// interval of 10/s: 1.9 s of tolerance), 10 more take a second.
	got := admitN(t, l, "d", 40)
	gap := got[39].Wait - got[29].Wait
	if gap < 900*time.Millisecond || gap > 1100*time.Millisecond {
		t.Fatalf("10 writes of the 4th tenant of an app at 40/s take %v, want 1 s", gap)
	}
	if err := l.ReportPressure(context.Background(), "d", 1.0, false); err != nil {
		t.Fatal(err)
	}
	more := admitN(t, l, "d", 50)[40:]
	gap = more[9].Wait - more[0].Wait
	// Nine intervals at 10/s slowed to 80 %: 1.125 s.
	if gap < 1050*time.Millisecond || gap > 1200*time.Millisecond {
		t.Fatalf("under pressure 1.0, nine intervals take %v, want 1.125 s", gap)
	}
}

// Pressure Graph reports is shared by every process: up to 0.8 of a limit
// used changes nothing; pressure on the app's limit across tenants
// (reported by one process for one tenant) slows every tenant, as paced by
// another process, in proportion.
func TestAppPressureSlowsEveryTenant(t *testing.T) {
	t.Parallel()
	rdb := client(t)
	cfg := Config{PerSecond: 10, Hold: time.Millisecond, Horizon: time.Hour}
	l1, err := NewWithConfig(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := NewWithConfig(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// tenGaps is the time the 30th to 40th of 40 writes to tenant take:
	// ten intervals after the burst.
	tenGaps := func(l *Limiter, tenant string) time.Duration {
		got := admitN(t, l, tenant, 40)
		return got[39].Wait - got[29].Wait
	}
	if err := l1.ReportPressure(ctx, "x", PressureThreshold, false); err != nil {
		t.Fatal(err)
	}
	if gap := tenGaps(l2, "x"); gap < 950*time.Millisecond || gap > 1050*time.Millisecond {
		t.Fatalf("at %.1f of its limit, 10 writes of a tenant at 10/s take %v, want 1 s", PressureThreshold, gap)
	}
	if err := l1.ReportPressure(ctx, "x", 1.6, true); err != nil {
		t.Fatal(err)
	}
	// 10/s slowed to 0.8/1.6 of it: 5/s.
	if gap := tenGaps(l2, "y"); gap < 1950*time.Millisecond || gap > 2050*time.Millisecond {
		t.Fatalf("with the app at 1.6 of its limit, 10 writes of another tenant at 10/s take %v, want 2 s", gap)
	}
}

// One script reads a tenant's keys with the app's: in Redis Cluster they
// must hash to one slot, the "no ticket" placeholder included.
func TestKeysShareAHashSlot(t *testing.T) {
	tag := redisconf.HashTag(activeKey)
	for _, key := range []string{keyPrefix + "t1", ticketPrefix + "t1:task", pressurePrefix + "t1", appPressureKey, noTicketKey} {
		if got := redisconf.HashTag(key); got != tag {
			t.Errorf("key %q hashes on %q, want %q like %q", key, got, tag, activeKey)
		}
	}
}
