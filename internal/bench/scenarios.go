package bench

// The scenarios of the bench: (a) bare asynq, (b) rollout with (d)
// interactive operations alongside, (c) four-SKU change, (e) Graph simulator,
// (f) fairness between two customers' rollouts.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/worker"
)

const (
	// benchOpPoll is how often a big operation is polled. Each GET counts
	// the operation's items, a scan of 100,000 rows (tens of ms of Postgres
	// CPU), so polling faster would load the Postgres it measures; the
	// precise end comes from max(finished_at) anyway.
	benchOpPoll = time.Second
	// benchInteractivePoll is how often an interactive operation is polled.
	benchInteractivePoll = 10 * time.Millisecond
	// benchInteractivePairs is the number of user pairs that (d) cycles
	// through (assigning, then on the next pass revoking).
	benchInteractivePairs = 100
	benchInteractiveSKU   = "BENCH_ADDON"
	// benchGraphSKU is the SKU of (e), a GUID as in Graph.
	benchGraphSKU = "6fd2c87f-b296-42f0-b197-1e91e994b900"
)

// benchUserIDs returns n user IDs of group g, GUID-shaped like Entra's.
func benchUserIDs(g, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012d", g, i)
	}
	return ids
}

// benchOpTimeout bounds the wait for an operation of n users.
func benchOpTimeout(n int) time.Duration { return 5*time.Minute + time.Duration(n)*10*time.Millisecond }

// ---------------------------------------------------------------- (a)

// runBaseline measures bare asynq: the api's parallel enqueuer puts N
// no-op tasks on the queue, then an asynq server configured like the
// worker's (concurrency, queues, poll interval, Redis pool) processes them.
func (r *benchRunner) runBaseline(ctx context.Context) error {
	if err := r.flushRedis(ctx); err != nil {
		return err
	}
	n := r.o.Users
	r.progress("(a) bare asynq: enqueueing %d no-op tasks", n)
	newClient := func() (*redis.Client, error) {
		opts, err := redis.ParseURL(r.s.RedisURL)
		if err != nil {
			return nil, err
		}
		// The pool NewApp gives the api and the worker.
		opts.PoolSize = min(max(r.o.Concurrency/2, 64), 256)
		return redis.NewClient(opts), nil
	}
	enqRDB, err := newClient()
	if err != nil {
		return err
	}
	defer enqRDB.Close()
	srvRDB, err := newClient()
	if err != nil {
		return err
	}
	defer srvRDB.Close()
	par := intake.Config{}.WithDefaults().EnqueueParallelism
	enq := &jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(enqRDB), Parallelism: par}
	ids := benchUserIDs(0, n)
	start := time.Now()
	res, err := enq.EnqueueItems(ctx, "bench-baseline-"+r.runID, jobs.QueueDefault, ids)
	if err != nil {
		return err
	}
	enqueue := time.Since(start)
	if res.Enqueued != n {
		return fmt.Errorf("enqueued %d tasks of %d (%d already there)", res.Enqueued, n, res.Existing)
	}
	r.progress("(a) processing them with concurrency %d", r.o.Concurrency)
	wcfg := worker.Config{Concurrency: r.o.Concurrency}.WithDefaults()
	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(srvRDB, asynq.Config{
		Concurrency: wcfg.Concurrency, Queues: jobs.QueueWeights, TaskCheckInterval: wcfg.TaskCheckInterval,
		ShutdownTimeout: wcfg.ShutdownTimeout, LogLevel: asynq.WarnLevel,
	})
	start = time.Now()
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})); err != nil {
		return err
	}
	defer srv.Shutdown()
	select {
	case <-finished:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(benchOpTimeout(n)):
		return fmt.Errorf("processed %d tasks of %d in %s", done.Load(), n, benchOpTimeout(n))
	}
	process := time.Since(start)
	r.rep.Baseline = &benchBaseline{
		Tasks: n, EnqueueS: enqueue.Seconds(), EnqueuePerS: float64(n) / enqueue.Seconds(),
		ProcessS: process.Seconds(), ProcessPerS: float64(n) / process.Seconds(),
		Concurrency: wcfg.Concurrency, EnqueueWorker: par,
	}
	r.progress("(a) %.0f tasks/s enqueued, %.0f tasks/s processed", r.rep.Baseline.EnqueuePerS, r.rep.Baseline.ProcessPerS)
	return nil
}

// ---------------------------------------------------------------- processes

// benchStack is an api and a worker process.
type benchStack struct {
	api, worker *stack.Proc
	url         string
}

// startStack starts a worker and an api process and waits until both are
// ready: the api answers /readyz, the worker's asynq server is registered
// and its sweeper has swept once (on the flushed Redis, a sweeper's first
// sweep takes every pending item for lost and enqueues it again, which a
// long-running deployment never does).
func (r *benchRunner) startStack(ctx context.Context, extraEnv []string) (*benchStack, error) {
	env := append(slices.Clone(extraEnv), "LICENSEOPS_WORKER_CONCURRENCY="+strconv.Itoa(r.o.Concurrency))
	if r.o.Profile > 0 {
		env = append(env, "LICENSEOPS_PPROF=true") // on the worker's metrics listener
	}
	s := &benchStack{}
	var err error
	if s.worker, err = r.s.StartWorker(ctx, env...); err != nil {
		return nil, err
	}
	if s.api, err = r.s.StartAPI(ctx, env...); err != nil {
		_ = s.stop() // the start error is the one to report
		return nil, err
	}
	s.url = s.api.URL
	return s, nil
}

// alive returns an error when the api or the worker has ended.
func (s *benchStack) alive() error {
	for _, p := range []*stack.Proc{s.api, s.worker} {
		if p != nil && p.Exited() {
			return p.Err()
		}
	}
	return nil
}

// peakRSS returns the api's and the worker's VmHWM in MiB.
func (s *benchStack) peakRSS() (apiMiB, workerMiB float64, err error) {
	a, err := s.api.PeakRSS()
	if err != nil {
		return 0, 0, err
	}
	w, err := s.worker.PeakRSS()
	return benchMiB(a), benchMiB(w), err
}

// stop stops both processes (SIGTERM, then SIGKILL after a timeout).
func (s *benchStack) stop() error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []*stack.Proc{s.api, s.worker} {
		if p == nil {
			continue
		}
		wg.Go(func() { errs[i] = p.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ---------------------------------------------------------------- API

func (r *benchRunner) client(base string) *client.Client {
	return client.New(base, r.s.Token, client.WithHTTPClient(stack.HTTPClient))
}

// seedTenant seeds customer with users and seats through the API: a
// product per SKU, users in the US, enabled.
func seedTenant(ctx context.Context, c *client.Client, customer client.CustomerRequest, users []string, seats map[string]int) error {
	products := map[string]client.ProductRequest{}
	for sku := range seats {
		products[sku] = client.ProductRequest{Name: "Bench " + sku, PartNumber: "BENCH-" + sku[:min(len(sku), 8)]}
	}
	us := make([]client.UserImport, len(users))
	for i, id := range users {
		us[i] = client.UserImport{ID: id, UserPrincipalName: "u" + id + "@bench.example", DisplayName: "Bench user " + id,
			UsageLocation: new("US"), AccountEnabled: new(true)}
	}
	_, err := seed.Seed(ctx, c, seed.Tenant{Customer: customer, Products: products, Users: us, Seats: seats})
	return err
}

// benchWaitOperation polls an operation every interval until done says so.
func benchWaitOperation(ctx context.Context, s *benchStack, c *client.Client, id string, every, timeout time.Duration, done func(client.Operation) bool) (client.Operation, error) {
	deadline := time.Now().Add(timeout)
	for {
		op, err := c.GetOperation(ctx, id)
		if err != nil {
			return op, err
		}
		if done(op) {
			return op, nil
		}
		if err := s.alive(); err != nil {
			return op, err
		}
		if time.Now().After(deadline) {
			return op, fmt.Errorf("operation %s not done after %s: %d of %d pending", id, timeout, op.Pending, op.Total)
		}
		select {
		case <-ctx.Done():
			return op, ctx.Err()
		case <-time.After(every):
		}
	}
}

// submitAndFinish submits an operation and waits until it is finished (untimed seeding).
func (r *benchRunner) submitAndFinish(ctx context.Context, s *benchStack, c *client.Client, customer string, req client.OperationRequest) error {
	acc, err := c.CreateOperation(ctx, customer, req, "")
	if err != nil {
		return err
	}
	op, err := benchWaitOperation(ctx, s, c, acc.ID, 500*time.Millisecond, benchOpTimeout(len(req.UserIDs)), func(op client.Operation) bool { return op.FinishedAt != nil })
	if err == nil && op.Failed > 0 {
		err = fmt.Errorf("seeding operation %s: %d of %d users failed", op.ID, op.Failed, op.Total)
	}
	return err
}

// timedOperation is the measured part of (b), (c) and (e): POST, 202, poll
// until no item is pending, then until the operation is finished. accepted
// runs after the 202 and itemsDone once no item is pending (for (d)).
func (r *benchRunner) timedOperation(ctx context.Context, s *benchStack, customer string, users, assign, revoke []string,
	accepted, itemsDone func()) (*benchRollout, error) {
	body, err := json.Marshal(client.OperationRequest{UserIDs: users, Assign: assign, Revoke: revoke})
	if err != nil {
		return nil, err
	}
	c := r.client(s.url)
	cpu0 := benchSampleCPU(s.api, s.worker)
	post := time.Now()
	// The body is encoded already, so that the intake time holds no JSON
	// encoding of the bench's own: the SDK's raw request path.
	acc, err := postOperation(ctx, c, customer, body)
	if err != nil {
		return nil, err
	}
	intake := time.Since(post)
	r.progress("    accepted in %s: operation %s", intake.Round(time.Millisecond), acc.ID)
	profiled := r.profileWorker(ctx, s, customer)
	defer func() { <-profiled }()
	if accepted != nil {
		accepted()
	}
	_, err = benchWaitOperation(ctx, s, c, acc.ID, benchOpPoll, benchOpTimeout(len(users)), func(op client.Operation) bool { return op.Pending == 0 })
	pendingZero := time.Since(post)
	cpu1 := benchSampleCPU(s.api, s.worker)
	if itemsDone != nil {
		itemsDone()
	}
	if err != nil {
		return nil, err
	}
	last, err := r.s.Store.LastItemFinishedAt(ctx, acc.ID)
	if err != nil {
		return nil, fmt.Errorf("read max(finished_at): %w", err)
	}
	lastItem := pendingZero
	// Postgres's clock is this machine's unless DATABASE_URL points
	// elsewhere; a figure outside what the poll saw means it is not.
	if last != nil {
		if d := last.Sub(post); d > 0 && d <= pendingZero {
			lastItem = d
		}
	}
	op, err := benchWaitOperation(ctx, s, c, acc.ID, 100*time.Millisecond, 5*time.Minute, func(op client.Operation) bool { return op.FinishedAt != nil })
	if err != nil {
		return nil, fmt.Errorf("wait for the operation to be completed: %w", err)
	}
	completed := time.Since(post)
	if d := op.FinishedAt.Sub(post); d > 0 && d <= completed {
		completed = d
	}
	ro := &benchRollout{
		Users: len(users), Assign: assign, Revoke: revoke,
		IntakeS: intake.Seconds(), LastItemS: lastItem.Seconds(), PendingZeroS: pendingZero.Seconds(), CompletedS: completed.Seconds(),
		UsersPerS: float64(len(users)) / lastItem.Seconds(), Succeeded: op.Succeeded, Failed: op.Failed,
		CPU: cpu1.usageSince(cpu0),
	}
	if ro.APIPeakRSSMiB, ro.WorkerPeakRSSMiB, err = s.peakRSS(); err != nil {
		return nil, fmt.Errorf("read peak RSS: %w", err)
	}
	r.progress("    %d users in %.1fs: %.0f users/s (%d failed); completed at %.1fs; peak RSS api %.0f MiB, worker %.0f MiB",
		len(users), lastItem.Seconds(), ro.UsersPerS, ro.Failed, completed.Seconds(), ro.APIPeakRSSMiB, ro.WorkerPeakRSSMiB)
	return ro, nil
}

// postOperation creates an operation from its encoded request.
func postOperation(ctx context.Context, c *client.Client, customer string, body []byte) (client.AcceptedOperation, error) {
	var acc client.AcceptedOperation
	resp, err := c.Do(ctx, http.MethodPost, "/v1/customers/"+url.PathEscape(customer)+"/license-operations", bytes.NewReader(body), nil)
	if err != nil {
		return acc, err
	}
	defer resp.Body.Close()
	if err := client.CheckResponse(resp); err != nil {
		return acc, err
	}
	err = json.NewDecoder(resp.Body).Decode(&acc)
	return acc, err
}

// profileWorker takes a CPU profile of the stack's worker for
// r.o.Profile in the background, when asked to, and writes it next to the
// JSON figures. The channel is closed when it is done.
func (r *benchRunner) profileWorker(ctx context.Context, s *benchStack, name string) <-chan struct{} {
	done := make(chan struct{})
	if r.o.Profile <= 0 {
		close(done)
		return done
	}
	path := strings.TrimSuffix(r.o.Out, filepath.Ext(r.o.Out)) + "-" + name + "-worker.cpu.pprof"
	go func() {
		defer close(done)
		err := func() error {
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.worker.URL, max(1, int(r.o.Profile.Seconds())))
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req) // #nosec G107 -- our own worker's pprof on 127.0.0.1
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s", resp.Status)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { // #nosec G301 -- benchmark output, no secrets
				return err
			}
			f, err := os.Create(path) // #nosec G304 -- a path under the bench's own output folder
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				_ = f.Close()
				return err
			}
			return f.Close()
		}()
		if err != nil {
			r.progress("    worker CPU profile failed: %v", err)
			return
		}
		r.progress("    worker CPU profile (%s) written to %s", r.o.Profile, path)
	}()
	return done
}

// scenarioRun seeds with one api and worker, then measures with fresh ones,
// so that peak RSS and CPU count the measured operation only, and Redis is
// flushed in between. measure gets the fresh stack.
func (r *benchRunner) scenarioRun(ctx context.Context, key string, env []string,
	seedWith func(*benchStack, *client.Client) error, measure func(*benchStack) error) error {
	if err := r.flushRedis(ctx); err != nil {
		return err
	}
	start := time.Now()
	s, err := r.startStack(ctx, env)
	if err != nil {
		return err
	}
	err = seedWith(s, r.client(s.url))
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	r.progress("(%s) seeded in %.1fs; vacuuming, then starting a fresh api and worker", key, time.Since(start).Seconds())
	if err := r.quiesceDB(ctx); err != nil {
		return err
	}
	if err := r.flushRedis(ctx); err != nil {
		return err
	}
	if s, err = r.startStack(ctx, env); err != nil {
		return err
	}
	err = measure(s)
	if serr := s.stop(); err == nil {
		err = serr
	}
	return err
}

// quiesceDB vacuums and analyzes the database, then waits (up to a minute)
// until no autovacuum worker runs, so that the dead rows of earlier
// scenarios and of the seeding are not cleaned up during the measured part
// (autovacuum after a 100,000-user operation takes a good part of a core
// for tens of seconds), and the planner knows the tables' sizes.
func (r *benchRunner) quiesceDB(ctx context.Context) error { return r.s.Store.Quiesce(ctx) }

// ---------------------------------------------------------------- (b) and (d)

func (r *benchRunner) runRollout(ctx context.Context) error {
	n := r.o.Users
	withD := slices.Contains(r.o.Only, "d")
	customer := "bench-" + r.runID + "-b"
	users := benchUserIDs(0, n)
	iusers := benchUserIDs(1, 2*benchInteractivePairs)
	seats := map[string]int{"BENCH_E5": n}
	all := users
	if withD {
		seats[benchInteractiveSKU] = len(iusers)
		all = append(slices.Clone(users), iusers...)
	}
	r.progress("(b) seeding customer %s: %d users", customer, len(all))
	var seedS float64
	return r.scenarioRun(ctx, "b", nil,
		func(s *benchStack, c *client.Client) error {
			start := time.Now()
			err := seedTenant(ctx, c, client.CustomerRequest{ID: customer, Name: "Bench rollout", DefaultUsageLocation: new("US")}, all, seats)
			seedS = time.Since(start).Seconds()
			return err
		},
		func(s *benchStack) error {
			r.progress("(b) rollout: assign BENCH_E5 to %d users%s", n, map[bool]string{true: ", with (d) every second", false: ""}[withD])
			var d *benchInteractiveRun
			accepted, itemsDone := func() {}, func() {}
			if withD {
				d = r.newInteractive(s.url, customer, iusers)
				accepted = func() { d.start(ctx) }
				itemsDone = d.stop
			}
			ro, err := r.timedOperation(ctx, s, customer, users, []string{"BENCH_E5"}, nil, accepted, itemsDone)
			if err != nil {
				return err
			}
			ro.SeedS = seedS
			r.rep.Rollout = ro
			if withD {
				r.rep.Interact = d.result()
				if r.rep.Interact.Operations == 0 {
					return fmt.Errorf("(d): no interactive operation finished: %v", d.firstErr)
				}
				r.progress("(d) %d operations: p50 %.0f ms, p99 %.0f ms", r.rep.Interact.Operations, r.rep.Interact.P50Ms, r.rep.Interact.P99Ms)
			}
			return nil
		})
}

// benchInteractiveRun submits a two-user operation every second and
// measures each from POST to its finished report.
type benchInteractiveRun struct {
	customer string
	users    []string
	clients  []*client.Client
	next     atomic.Uint64

	stopc    chan struct{}
	loopDone chan struct{}
	wg       sync.WaitGroup

	mu          sync.Mutex
	lat         []time.Duration
	failed      int
	firstErr    error
	rateLimited atomic.Int64
}

func (r *benchRunner) newInteractive(base, customer string, users []string) *benchInteractiveRun {
	d := &benchInteractiveRun{customer: customer, users: users, stopc: make(chan struct{}), loopDone: make(chan struct{})}
	for _, tok := range r.itokens {
		// No retries of 429s: request counts them and moves to the next token.
		d.clients = append(d.clients, client.New(base, tok, client.WithHTTPClient(stack.HTTPClient), client.WithMaxRateLimitRetries(0)))
	}
	return d
}

// start submits the first operation now and one more every second until stop.
func (d *benchInteractiveRun) start(ctx context.Context) {
	go func() {
		defer close(d.loopDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for k := 0; ; k++ {
			d.wg.Add(1)
			go d.one(ctx, k)
			select {
			case <-d.stopc:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// stop ends the submissions and waits for the operations in flight.
func (d *benchInteractiveRun) stop() {
	close(d.stopc)
	<-d.loopDone
	d.wg.Wait()
}

// one runs the k-th operation: pair k of the users, assigning the add-on on
// even passes over the pairs and revoking it on odd ones.
func (d *benchInteractiveRun) one(ctx context.Context, k int) {
	defer d.wg.Done()
	pairs := len(d.users) / 2
	pair, pass := k%pairs, k/pairs
	req := client.OperationRequest{UserIDs: d.users[2*pair : 2*pair+2]}
	if pass%2 == 0 {
		req.Assign = []string{benchInteractiveSKU}
	} else {
		req.Revoke = []string{benchInteractiveSKU}
	}
	start := time.Now()
	var acc client.AcceptedOperation
	err := d.request(ctx, func(c *client.Client) (err error) {
		acc, err = c.CreateOperation(ctx, d.customer, req, "")
		return err
	})
	for err == nil {
		var op client.Operation
		if err = d.request(ctx, func(c *client.Client) (err error) {
			op, err = c.GetOperation(ctx, acc.ID)
			return err
		}); err != nil {
			break
		}
		if op.FinishedAt != nil {
			lat := time.Since(start)
			d.mu.Lock()
			d.lat = append(d.lat, lat)
			if op.Failed > 0 {
				d.failed++
			}
			d.mu.Unlock()
			return
		}
		if time.Since(start) > 5*time.Minute {
			err = fmt.Errorf("operation %s not finished after 5 minutes", acc.ID)
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(benchInteractivePoll):
		}
	}
	d.mu.Lock()
	d.failed++
	if d.firstErr == nil {
		d.firstErr = err
	}
	d.mu.Unlock()
}

// request makes one call with the client of the next token of the pool; a
// 429 is counted and tried again with another token.
func (d *benchInteractiveRun) request(ctx context.Context, call func(*client.Client) error) error {
	for {
		err := call(d.clients[d.next.Add(1)%uint64(len(d.clients))])
		if client.ErrorCode(err) == client.CodeRateLimited {
			d.rateLimited.Add(1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(benchInteractivePoll):
			}
			continue
		}
		return err
	}
}

func (d *benchInteractiveRun) result() *benchInteractive {
	d.mu.Lock()
	defer d.mu.Unlock()
	res := &benchInteractive{Operations: len(d.lat), UsersPerOp: 2, IntervalMs: 1000, Failed: d.failed, RateLimited: int(d.rateLimited.Load())}
	if len(d.lat) == 0 {
		return res
	}
	ms := make([]float64, len(d.lat))
	var sum float64
	for i, l := range d.lat {
		ms[i] = float64(l) / float64(time.Millisecond)
		sum += ms[i]
	}
	sort.Float64s(ms)
	res.P50Ms, res.P99Ms, res.MaxMs, res.MeanMs = benchPercentile(ms, 0.50), benchPercentile(ms, 0.99), ms[len(ms)-1], sum/float64(len(ms))
	return res
}

// benchPercentile is the nearest-rank percentile of sorted values.
func benchPercentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ---------------------------------------------------------------- (c)

func (r *benchRunner) runChange(ctx context.Context) error {
	n := r.o.Users
	customer := "bench-" + r.runID + "-c"
	users := benchUserIDs(0, n)
	assign, revoke := []string{"BENCH_A1", "BENCH_A2"}, []string{"BENCH_R1", "BENCH_R2"}
	seats := map[string]int{"BENCH_A1": n, "BENCH_A2": n, "BENCH_R1": n, "BENCH_R2": n}
	r.progress("(c) seeding customer %s: %d users, then giving them %v (untimed)", customer, n, revoke)
	var seedS float64
	return r.scenarioRun(ctx, "c", nil,
		func(s *benchStack, c *client.Client) error {
			start := time.Now()
			if err := seedTenant(ctx, c, client.CustomerRequest{ID: customer, Name: "Bench change", DefaultUsageLocation: new("US")}, users, seats); err != nil {
				return err
			}
			err := r.submitAndFinish(ctx, s, c, customer, client.OperationRequest{UserIDs: users, Assign: revoke})
			seedS = time.Since(start).Seconds()
			return err
		},
		func(s *benchStack) error {
			r.progress("(c) change: assign %v and revoke %v for %d users", assign, revoke, n)
			ro, err := r.timedOperation(ctx, s, customer, users, assign, revoke, nil, nil)
			if err != nil {
				return err
			}
			ro.SeedS = seedS
			r.rep.Change = ro
			return nil
		})
}

// ---------------------------------------------------------------- (e)

// runGraph rolls one SKU out to the users of an msgraph customer whose
// directory is the Graph simulator, served by the bench on a 127.0.0.1 port.
func (r *benchRunner) runGraph(ctx context.Context) error {
	n := r.o.GraphUsers
	sim := graphsim.NewServer(graphsim.Config{Latency: r.o.GraphLatency, RandSeed: 1})
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return fmt.Errorf("start the Graph simulator: %w", err)
	}
	defer sim.Close()
	tenant := fmt.Sprintf("00000000-0000-4000-b000-%012d", r.rep.StartedAt.Unix()%1_000_000_000_000)
	clientID, secret := "bench-client-"+r.runID, "bench-secret-"+r.runID
	users := benchUserIDs(2, n)
	seeds := make([]graphsim.UserSeed, n)
	for i, id := range users {
		seeds[i] = graphsim.UserSeed{ID: id, UserPrincipalName: "u" + id + "@bench.example", DisplayName: "Bench user " + id, UsageLocation: "US", AccountEnabled: true}
	}
	if err := sim.AddTenant(graphsim.TenantSeed{
		ID: tenant, ClientID: clientID, ClientSecret: secret,
		SKUs:  []graphsim.SKUSeed{{ID: benchGraphSKU, PartNumber: "ENTERPRISEPACK", Enabled: n}},
		Users: seeds,
	}); err != nil {
		return fmt.Errorf("seed the Graph simulator: %w", err)
	}
	env := []string{
		"LICENSEOPS_GRAPH_BASE_URL=" + sim.GraphURL(), "LICENSEOPS_GRAPH_TOKEN_URL=" + sim.TokenURL(),
		"LICENSEOPS_GRAPH_CLIENT_ID=" + clientID, "LICENSEOPS_GRAPH_CLIENT_SECRET=" + secret,
		"LICENSEOPS_GRAPH_MAX_IN_FLIGHT=" + strconv.Itoa(r.o.GraphMaxInFlight), "LICENSEOPS_GRAPH_RATE=" + strconv.Itoa(r.o.GraphRate),
	}
	customer := "bench-" + r.runID + "-e"
	r.progress("(e) seeding msgraph customer %s (tenant %s): %d users", customer, tenant, n)
	var seedS float64
	return r.scenarioRun(ctx, "e", env,
		func(s *benchStack, c *client.Client) error {
			start := time.Now()
			err := seedTenant(ctx, c, client.CustomerRequest{ID: customer, Name: "Bench Graph", DefaultUsageLocation: new("US"),
				Directory: &client.Directory{Kind: client.DirectoryMSGraph, TenantID: tenant}}, users, map[string]int{benchGraphSKU: n})
			seedS = time.Since(start).Seconds()
			return err
		},
		func(s *benchStack) error {
			r.progress("(e) rollout through the Graph simulator: %s latency, %d calls in flight per tenant", r.o.GraphLatency, r.o.GraphMaxInFlight)
			before := sim.Stats()
			ro, err := r.timedOperation(ctx, s, customer, users, []string{benchGraphSKU}, nil, nil, nil)
			if err != nil {
				return err
			}
			ro.SeedS = seedS
			after := sim.Stats()
			g := &benchGraph{
				benchRollout: *ro, LatencyMs: float64(r.o.GraphLatency) / float64(time.Millisecond), MaxInFlight: r.o.GraphMaxInFlight,
				BoundPerS:     float64(r.o.GraphMaxInFlight) / r.o.GraphLatency.Seconds(),
				GraphRequests: after.Requests - before.Requests, GraphThrottled: after.Throttled + after.QuotaExceeded - before.Throttled - before.QuotaExceeded,
				PeakInFlight: after.PeakInFlight,
			}
			g.RatioToBound = g.UsersPerS / g.BoundPerS
			if t, ok := sim.Tenant(tenant); ok {
				for _, sku := range t.SKUs {
					if sku.ID == benchGraphSKU {
						g.DirectoryConsumed = sku.Consumed
					}
				}
			}
			r.rep.Graph = g
			r.progress("(e) %.0f users/s, bound %.0f users/s: %.2f of the bound; %d Graph calls, peak %d in flight",
				g.UsersPerS, g.BoundPerS, g.RatioToBound, g.GraphRequests, g.PeakInFlight)
			return nil
		})
}

// ---------------------------------------------------------------- (f)

// benchFairBUsers is the size of customer B's rollout in (f).
const benchFairBUsers = 1000

// benchFair is (f): customer B's rollout started while customer A's runs,
// with a two-user change every second during both. Times are from B's
// POST unless said otherwise.
type benchFair struct {
	UsersA int `json:"users_a"`
	UsersB int `json:"users_b"`
	// BStartedAfterS is A's POST to B's POST; ADoneAtBStart is how many
	// of A's users were finished then.
	BStartedAfterS float64 `json:"b_started_after_a_s"`
	ADoneAtBStart  int     `json:"a_done_at_b_start"`
	// BLastItemS is B's POST to B's last item recorded, BCompletedS to its
	// finished report.
	BLastItemS  float64 `json:"b_last_item_s"`
	BCompletedS float64 `json:"b_completed_s"`
	BUsersPerS  float64 `json:"b_users_per_s"`
	// AUsersPerSDuringB is A's users finished per second from B's POST to
	// B's finished report, and APendingAtBEnd A's users still pending then:
	// B did not wait for A.
	AUsersPerSDuringB float64 `json:"a_users_per_s_during_b"`
	APendingAtBEnd    int     `json:"a_pending_at_b_end"`
	// ALastItemS is A's POST to A's last item recorded.
	ALastItemS  float64           `json:"a_last_item_s"`
	AUsersPerS  float64           `json:"a_users_per_s"`
	Succeeded   int               `json:"succeeded"`
	Failed      int               `json:"failed"`
	Interactive *benchInteractive `json:"interactive"`
}

// runFair measures fairness between customers on the local directory:
// customer A's rollout to --users users (the bulk queue from
// LICENSEOPS_BULK_MIN users) runs; once a tenth of it is done, a
// two-user change of customer B starts every second and B's rollout of
// 1,000 users is posted. B should finish in about its own share of the
// throughput, not after A, and the two-user changes within a second.
func (r *benchRunner) runFair(ctx context.Context) error {
	nA, nB := r.o.Users, benchFairBUsers
	customerA, customerB := "bench-"+r.runID+"-fa", "bench-"+r.runID+"-fb"
	usersA, usersB, iusers := benchUserIDs(5, nA), benchUserIDs(6, nB), benchUserIDs(7, 2*benchInteractivePairs)
	r.progress("(f) seeding customers %s (%d users) and %s (%d users, %d for the two-user changes)", customerA, nA, customerB, nB, len(iusers))
	return r.scenarioRun(ctx, "f", nil,
		func(s *benchStack, c *client.Client) error {
			if err := seedTenant(ctx, c, client.CustomerRequest{ID: customerA, Name: "Bench fairness A", DefaultUsageLocation: new("US")},
				usersA, map[string]int{"BENCH_E5": nA}); err != nil {
				return err
			}
			return seedTenant(ctx, c, client.CustomerRequest{ID: customerB, Name: "Bench fairness B", DefaultUsageLocation: new("US")},
				append(slices.Clone(usersB), iusers...), map[string]int{"BENCH_E5": nB, benchInteractiveSKU: len(iusers)})
		},
		func(s *benchStack) error {
			c := r.client(s.url)
			f := &benchFair{UsersA: nA, UsersB: nB}
			opOf := func(customer string, users []string) (client.AcceptedOperation, error) {
				body, err := json.Marshal(client.OperationRequest{UserIDs: users, Assign: []string{"BENCH_E5"}})
				if err != nil {
					return client.AcceptedOperation{}, err
				}
				return postOperation(ctx, c, customer, body)
			}
			r.progress("(f) A: assign BENCH_E5 to %d users", nA)
			postA := time.Now()
			accA, err := opOf(customerA, usersA)
			if err != nil {
				return err
			}
			opA, err := benchWaitOperation(ctx, s, c, accA.ID, 100*time.Millisecond, benchOpTimeout(nA),
				func(op client.Operation) bool { return op.Total-op.Pending >= max(1, nA/10) })
			if err != nil {
				return err
			}
			d := r.newInteractive(s.url, customerB, iusers)
			d.start(ctx)
			stopped := false
			defer func() {
				if !stopped {
					d.stop()
				}
			}()
			postB := time.Now()
			f.BStartedAfterS, f.ADoneAtBStart = postB.Sub(postA).Seconds(), opA.Total-opA.Pending
			r.progress("(f) B: assign BENCH_E5 to %d users, %.1fs after A's POST (%d of A's users done)", nB, f.BStartedAfterS, f.ADoneAtBStart)
			accB, err := opOf(customerB, usersB)
			if err != nil {
				return err
			}
			opB, err := benchWaitOperation(ctx, s, c, accB.ID, 50*time.Millisecond, benchOpTimeout(nA+nB),
				func(op client.Operation) bool { return op.FinishedAt != nil })
			if err != nil {
				return err
			}
			bDone := time.Since(postB)
			if opA, err = c.GetOperation(ctx, accA.ID); err != nil {
				return err
			}
			f.BCompletedS, f.BLastItemS = bDone.Seconds(), bDone.Seconds()
			if d := opB.FinishedAt.Sub(postB); d > 0 && d <= bDone {
				f.BCompletedS = d.Seconds()
			}
			if last, err := r.s.Store.LastItemFinishedAt(ctx, accB.ID); err == nil && last != nil {
				if d := last.Sub(postB); d > 0 && d <= bDone {
					f.BLastItemS = d.Seconds()
				}
			}
			aDuringB := opA.Total - opA.Pending - f.ADoneAtBStart
			f.APendingAtBEnd = opA.Pending
			f.BUsersPerS = float64(nB) / f.BLastItemS
			f.AUsersPerSDuringB = float64(aDuringB) / bDone.Seconds()
			r.progress("(f) B's %d users done %.2fs after its POST (finished report %.2fs), %d of A's users meanwhile (%.0f/s), %d of A's pending",
				nB, f.BLastItemS, f.BCompletedS, aDuringB, f.AUsersPerSDuringB, f.APendingAtBEnd)
			opA, err = benchWaitOperation(ctx, s, c, accA.ID, benchOpPoll, benchOpTimeout(nA),
				func(op client.Operation) bool { return op.FinishedAt != nil })
			d.stop()
			stopped = true
			if err != nil {
				return err
			}
			f.ALastItemS = time.Since(postA).Seconds()
			if last, err := r.s.Store.LastItemFinishedAt(ctx, accA.ID); err == nil && last != nil {
				if d := last.Sub(postA); d > 0 && d.Seconds() <= f.ALastItemS {
					f.ALastItemS = d.Seconds()
				}
			}
			f.AUsersPerS = float64(nA) / f.ALastItemS
			f.Succeeded, f.Failed = opA.Succeeded+opB.Succeeded, opA.Failed+opB.Failed
			f.Interactive = d.result()
			r.rep.Fair = f
			if f.Interactive.Operations == 0 {
				return fmt.Errorf("(f): no two-user change finished: %v", d.firstErr)
			}
			r.progress("(f) A's %d users in %.1fs (%.0f/s); two-user changes: %d, p50 %.0f ms, p99 %.0f ms",
				nA, f.ALastItemS, f.AUsersPerS, f.Interactive.Operations, f.Interactive.P50Ms, f.Interactive.P99Ms)
			return nil
		})
}

// benchFairBTargetS is how soon after its POST B's 1,000 users are to be
// done: a few seconds, about B's share of the throughput.
const benchFairBTargetS = 5

// fairTargets adds the targets of (f).
func (r *benchRunner) fairTargets() {
	f := r.rep.Fair
	if f == nil {
		return
	}
	r.rep.Targets = append(r.rep.Targets,
		benchTarget{ID: "f.b", Figure: "B's rollout, POST to last item", Value: f.BLastItemS, Unit: "s",
			Target: fmt.Sprintf("≤ %d s", benchFairBTargetS), Met: f.BLastItemS <= benchFairBTargetS},
		benchTarget{ID: "f.p99", Figure: "two-user change p99 during A and B", Value: f.Interactive.P99Ms / 1000, Unit: "s",
			Target: "≤ 1 s", Met: f.Interactive.P99Ms <= 1000})
}

// fairRows prints the rows of (f).
func (r *benchRunner) fairRows(row func(scenario, figure, value, id string)) {
	f := r.rep.Fair
	if f == nil {
		return
	}
	row(fmt.Sprintf("(f) fairness: B's %s users", benchInt(f.UsersB)), "B: POST to last item", benchSecs(f.BLastItemS), "f.b")
	row(fmt.Sprintf("    during A's %s", benchInt(f.UsersA)), "B: POST to finished report", benchSecs(f.BCompletedS), "")
	row("", "B: end to end (to last item)", benchRate(f.BUsersPerS, "users/s"), "")
	row("", "A while B ran (to B's report)", benchRate(f.AUsersPerSDuringB, "users/s"), "")
	row("", "A's users pending at B's report", benchInt(f.APendingAtBEnd), "")
	row("", "A: end to end", benchRate(f.AUsersPerS, "users/s"), "")
	row(fmt.Sprintf("    2 users every 1 s, n=%d", f.Interactive.Operations), "two-user change p50 / p99",
		fmt.Sprintf("%s / %s", benchMs(f.Interactive.P50Ms), benchMs(f.Interactive.P99Ms)), "f.p99")
	if f.Failed > 0 || f.Interactive.Failed > 0 {
		row("", "users failed / changes failed", fmt.Sprintf("%d / %d", f.Failed, f.Interactive.Failed), "")
	}
}
