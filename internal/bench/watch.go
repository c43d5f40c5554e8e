package bench

// The watching scenario: the rollout of (b) while clients watch the
// operation as the CLI, the console and Grafana do, against none.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/licenseops/licenseops/client"
)

const (
	// benchWatchers poll the operation every benchWatchEvery.
	benchWatchers   = 10
	benchWatchEvery = time.Second
	// benchWatchShare is the least share of the unwatched rollout's users/s
	// that the watched one keeps: ten watchers must not slow a rollout.
	benchWatchShare = 0.95
)

type benchWatch struct {
	Users      int `json:"users"`
	Watchers   int `json:"watchers"`
	IntervalMs int `json:"interval_ms"`
	// The rollouts are measured alone (only the bench's own poll, every
	// operation_poll_ms), watched, watched, alone: each later rollout runs
	// on bigger tables, and this order gives neither side the advantage.
	// Alone and Watched are the first of each, AloneAgain and
	// WatchedAgain the second; Ratio compares the means.
	Alone        *benchRollout `json:"alone"`
	Watched      *benchRollout `json:"watched"`
	WatchedAgain *benchRollout `json:"watched_again"`
	AloneAgain   *benchRollout `json:"alone_again"`
	Ratio        float64       `json:"ratio"` // mean watched users/s ÷ mean alone
	// Polls is how many GET /v1/operations/{id} the watchers made;
	// PollMeanMs and PollMaxMs their time, as the gap between a watcher's
	// polls less the interval.
	Polls      int64   `json:"polls"`
	PollMeanMs float64 `json:"poll_mean_ms"`
	PollMaxMs  float64 `json:"poll_max_ms"`
	PollErrors int64   `json:"poll_errors"`
	SeedS      float64 `json:"seed_s"`
}

// runWatch seeds one customer with a SKU per rollout and rolls them out to
// its users: alone, watched, watched, alone.
func (r *benchRunner) runWatch(ctx context.Context) error {
	n := r.o.Users
	customer := "bench-" + r.runID + "-watch"
	users := benchUserIDs(0, n)
	w := &benchWatch{Users: n, Watchers: benchWatchers, IntervalMs: int(benchWatchEvery / time.Millisecond)}
	r.rep.Watch = w
	var gaps int
	var sumMs float64
	alone := func(sku string, into **benchRollout) benchMeasure {
		return benchMeasure{Workers: 1, Measure: func(s *benchStack) error {
			r.progress("(watch) rollout: assign %s to %d users, nobody watching", sku, n)
			var err error
			*into, err = r.timedOperation(ctx, s, customer, users, []string{sku}, nil, nil, nil)
			return err
		}}
	}
	watched := func(sku string, into **benchRollout) benchMeasure {
		return benchMeasure{Workers: 1, Measure: func(s *benchStack) error {
			r.progress("(watch) rollout: assign %s to %d users, %d clients polling it every %s", sku, n, benchWatchers, benchWatchEvery)
			run := &benchWatching{}
			ro, err := r.timedOperationHooks(ctx, s, customer, users, []string{sku}, nil, benchOpHooks{
				accepted:  func(id string) { run.start(ctx, r.client(s.url), id) },
				itemsDone: run.stop,
			})
			run.stop()
			*into = ro
			w.Polls += run.polls.Load()
			w.PollErrors += run.errors.Load()
			gaps, sumMs, w.PollMaxMs = gaps+run.gaps, sumMs+run.sumMs, max(w.PollMaxMs, run.maxMs)
			if err == nil && run.polls.Load() == 0 {
				err = errors.New("the watchers made no poll")
			}
			return err
		}}
	}
	r.progress("(watch) seeding customer %s: %d users", customer, n)
	err := r.scenarioRuns(ctx, "watch", nil,
		func(_ *benchStack, c *client.Client) error {
			var err error
			w.SeedS, err = benchTimed(func() error {
				return seedTenant(ctx, c, client.CustomerRequest{ID: customer, Name: "Bench watching", DefaultUsageLocation: new("US")},
					users, map[string]int{"BENCH_V1": n, "BENCH_V2": n, "BENCH_V3": n, "BENCH_V4": n})
			})
			return err
		},
		alone("BENCH_V1", &w.Alone), watched("BENCH_V2", &w.Watched), watched("BENCH_V3", &w.WatchedAgain), alone("BENCH_V4", &w.AloneAgain))
	if gaps > 0 {
		w.PollMeanMs = sumMs / float64(gaps)
	}
	return err
}

// benchWatching are the watchers of one operation: each polls it with the
// SDK's WaitOperation, as the CLI does, until stop.
type benchWatching struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	polls  atomic.Int64
	errors atomic.Int64

	mu           sync.Mutex
	gaps         int
	sumMs, maxMs float64
}

func (ws *benchWatching) start(ctx context.Context, c *client.Client, id string) {
	ctx, ws.cancel = context.WithCancel(ctx)
	for range benchWatchers {
		ws.wg.Go(func() {
			var last time.Time
			_, _ = c.WaitOperation(ctx, id, client.WaitOptions{
				Interval: benchWatchEvery,
				Progress: func(client.Operation) {
					now := time.Now()
					ws.polls.Add(1)
					if !last.IsZero() {
						ms := float64(now.Sub(last)-benchWatchEvery) / float64(time.Millisecond)
						ws.mu.Lock()
						ws.gaps++
						ws.sumMs += max(ms, 0)
						ws.maxMs = max(ws.maxMs, ms)
						ws.mu.Unlock()
					}
					last = now
				},
				OnError: func(err error) error {
					ws.errors.Add(1)
					return nil // keep watching, as the CLI does
				},
			})
		})
	}
}

// stop ends the watchers and waits for them; it may be called again.
func (ws *benchWatching) stop() {
	ws.once.Do(func() {
		if ws.cancel != nil {
			ws.cancel()
		}
		ws.wg.Wait()
	})
}

// complete reports whether all four rollouts were measured.
func (w *benchWatch) complete() bool {
	return w != nil && w.Alone != nil && w.Watched != nil && w.WatchedAgain != nil && w.AloneAgain != nil
}

func (r *benchRunner) targetsWatch() {
	w := r.rep.Watch
	if !w.complete() || w.Alone.UsersPerS+w.AloneAgain.UsersPerS <= 0 {
		return
	}
	w.Ratio = (w.Watched.UsersPerS + w.WatchedAgain.UsersPerS) / (w.Alone.UsersPerS + w.AloneAgain.UsersPerS)
	noise := max(w.Alone.CPU.Noise(), w.Watched.CPU.Noise(), w.WatchedAgain.CPU.Noise(), w.AloneAgain.CPU.Noise())
	r.addTarget("watch.ratio", "watched ÷ alone", w.Ratio, "", fmt.Sprintf("≥ %.2f", benchWatchShare), w.Ratio >= benchWatchShare,
		benchJudge{AtScale: w.Users >= benchTargetUsers, Timing: true, Noise: noise})
}

func (r *benchRunner) tableWatch(t *benchTable) {
	w := r.rep.Watch
	title := "(watch) rollout: assign 1 SKU"
	if t.failed("watch", title) || !w.complete() {
		return
	}
	pair := func(a, b *benchRollout) string {
		return fmt.Sprintf("%s / %s (others %.2f cores)", benchInt(int(a.UsersPerS+0.5)), benchRate(b.UsersPerS, "users/s"), max(a.CPU.Noise(), b.CPU.Noise()))
	}
	t.row(title, "nobody watching (1st and 4th): end to end", pair(w.Alone, w.AloneAgain), "")
	t.row(fmt.Sprintf("    to %s users", benchInt(w.Users)), fmt.Sprintf("%d watchers every %s (2nd, 3rd)", w.Watchers, benchWatchEvery),
		pair(w.Watched, w.WatchedAgain), "")
	t.row("", "Postgres CPU: alone / watched (1st each)", fmt.Sprintf("%.2f / %.2f cores", w.Alone.CPU.PostgresCores, w.Watched.CPU.PostgresCores), "")
	t.row("", "watched ÷ alone (means)", fmt.Sprintf("%.2f", w.Ratio), "watch.ratio")
	t.row("", "polls: count, mean / max time", fmt.Sprintf("%d, %s / %s", w.Polls, benchMs(w.PollMeanMs), benchMs(w.PollMaxMs)), "")
}

// benchTimed runs f and returns how long it took, in seconds.
func benchTimed(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return time.Since(start).Seconds(), err
}
