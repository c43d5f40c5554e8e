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
	// Alone is the rollout with only the bench's own poll (every
	// operation_poll_ms), Watched the one with the watchers too.
	Alone   *benchRollout `json:"alone"`
	Watched *benchRollout `json:"watched"`
	Ratio   float64       `json:"ratio"` // watched users/s ÷ alone
	// Polls is how many GET /v1/operations/{id} the watchers made;
	// PollMeanMs and PollMaxMs their time, as the gap between a watcher's
	// polls less the interval.
	Polls      int64   `json:"polls"`
	PollMeanMs float64 `json:"poll_mean_ms"`
	PollMaxMs  float64 `json:"poll_max_ms"`
	PollErrors int64   `json:"poll_errors"`
	SeedS      float64 `json:"seed_s"`
}

// runWatch seeds one customer with two SKUs, rolls the first out to its
// users alone, then the second with the watchers polling.
func (r *benchRunner) runWatch(ctx context.Context) error {
	n := r.o.Users
	customer := "bench-" + r.runID + "-watch"
	users := benchUserIDs(0, n)
	w := &benchWatch{Users: n, Watchers: benchWatchers, IntervalMs: int(benchWatchEvery / time.Millisecond)}
	r.rep.Watch = w
	r.progress("(watch) seeding customer %s: %d users", customer, n)
	return r.scenarioRuns(ctx, "watch", nil,
		func(_ *benchStack, c *client.Client) error {
			var err error
			w.SeedS, err = benchTimed(func() error {
				return seedTenant(ctx, c, client.CustomerRequest{ID: customer, Name: "Bench watching", DefaultUsageLocation: new("US")},
					users, map[string]int{"BENCH_V1": n, "BENCH_V2": n})
			})
			return err
		},
		benchMeasure{Workers: 1, Measure: func(s *benchStack) error {
			r.progress("(watch) rollout: assign BENCH_V1 to %d users, nobody watching", n)
			var err error
			w.Alone, err = r.timedOperation(ctx, s, customer, users, []string{"BENCH_V1"}, nil, nil, nil)
			return err
		}},
		benchMeasure{Workers: 1, Measure: func(s *benchStack) error {
			r.progress("(watch) rollout: assign BENCH_V2 to %d users, %d clients polling it every %s", n, benchWatchers, benchWatchEvery)
			ws := &benchWatching{}
			ro, err := r.timedOperationHooks(ctx, s, customer, users, []string{"BENCH_V2"}, nil, benchOpHooks{
				accepted:  func(id string) { ws.start(ctx, r.client(s.url), id) },
				itemsDone: ws.stop,
			})
			ws.stop()
			w.Watched = ro
			w.Polls, w.PollErrors = ws.polls.Load(), ws.errors.Load()
			if ws.gaps > 0 {
				w.PollMeanMs, w.PollMaxMs = ws.sumMs/float64(ws.gaps), ws.maxMs
			}
			if err == nil && w.Polls == 0 {
				err = errors.New("the watchers made no poll")
			}
			return err
		}})
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

func (r *benchRunner) targetsWatch() {
	w := r.rep.Watch
	if w == nil || w.Alone == nil || w.Watched == nil || w.Alone.UsersPerS <= 0 {
		return
	}
	w.Ratio = w.Watched.UsersPerS / w.Alone.UsersPerS
	r.addTarget("watch.ratio", "watched ÷ alone", w.Ratio, "", fmt.Sprintf("≥ %.2f", benchWatchShare), w.Ratio >= benchWatchShare,
		benchJudge{AtScale: w.Users >= benchTargetUsers, Timing: true, Noise: max(w.Alone.CPU.Noise(), w.Watched.CPU.Noise())})
}

func (r *benchRunner) tableWatch(t *benchTable) {
	w := r.rep.Watch
	title := "(watch) rollout: assign 1 SKU"
	if t.failed("watch", title) || w == nil || w.Alone == nil || w.Watched == nil {
		return
	}
	t.row(title, "nobody watching: end to end", benchRate(w.Alone.UsersPerS, "users/s")+fmt.Sprintf(" (others %.2f cores)", w.Alone.CPU.Noise()), "")
	t.row(fmt.Sprintf("    to %s users", benchInt(w.Users)), fmt.Sprintf("%d watchers every %s: end to end", w.Watchers, benchWatchEvery),
		benchRate(w.Watched.UsersPerS, "users/s")+fmt.Sprintf(" (others %.2f cores)", w.Watched.CPU.Noise()), "")
	t.row("", "Postgres CPU: alone / watched", fmt.Sprintf("%.2f / %.2f cores", w.Alone.CPU.PostgresCores, w.Watched.CPU.PostgresCores), "")
	t.row("", "watched ÷ alone", fmt.Sprintf("%.2f", w.Ratio), "watch.ratio")
	t.row("", "polls: count, mean / max time", fmt.Sprintf("%d, %s / %s", w.Polls, benchMs(w.PollMeanMs), benchMs(w.PollMaxMs)), "")
}

// benchTimed runs f and returns how long it took, in seconds.
func benchTimed(f func() error) (float64, error) {
	start := time.Now()
	err := f()
	return time.Since(start).Seconds(), err
}
