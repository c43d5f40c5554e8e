package bench

// The scenarios of the bench: (a) bare asynq, (b) rollout with (d)
// interactive operations alongside, (c) four-SKU change, (e) Graph
// simulator; and what they share: processes, seeding, timed operations,
// the checker. scale.go, watch.go and download.go hold the others.

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
	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/redisconf"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/worker"
)

const (
	// benchOpPoll is how often the bench polls a big operation, as a
	// watching CLI does; the precise end comes from max(finished_at), and
	// the watch scenario measures what more polling costs.
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
// worker's (queues, poll interval, Redis pool) processes them, once for
// each concurrency of --baseline-concurrency. The best run is the baseline:
// the queue's ceiling on this machine, whatever concurrency reaches it.
func (r *benchRunner) runBaseline(ctx context.Context) error {
	base := &benchBaseline{Tasks: r.o.Users, EnqueueWorker: intake.Config{}.WithDefaults().EnqueueParallelism}
	for _, conc := range r.o.BaselineConcurrency {
		run, err := r.baselineRun(ctx, conc)
		if err != nil {
			return fmt.Errorf("concurrency %d: %w", conc, err)
		}
		base.Runs = append(base.Runs, run)
		base.NoiseCores = max(base.NoiseCores, run.CPU.Noise())
		if run.ProcessPerS > base.ProcessPerS {
			base.EnqueueS, base.EnqueuePerS, base.ProcessS, base.ProcessPerS, base.Concurrency = run.EnqueueS, run.EnqueuePerS, run.ProcessS, run.ProcessPerS, run.Concurrency
		}
	}
	r.rep.Baseline = base
	r.progress("(a) baseline: %.0f tasks/s at concurrency %d", base.ProcessPerS, base.Concurrency)
	return nil
}

// baselineRun enqueues N no-op tasks on the flushed Redis and processes them
// with a bare asynq server of concurrency conc.
func (r *benchRunner) baselineRun(ctx context.Context, conc int) (benchBaselineRun, error) {
	run := benchBaselineRun{Concurrency: conc}
	if err := r.flushRedis(ctx); err != nil {
		return run, err
	}
	n := r.o.Users
	r.progress("(a) bare asynq: enqueueing %d no-op tasks", n)
	newClient := func() (redis.UniversalClient, error) {
		// The pool the app gives the api and the worker.
		rdb, _, err := redisconf.Open(r.s.RedisURL, app.RedisPoolSize(conc))
		return rdb, err
	}
	enqRDB, err := newClient()
	if err != nil {
		return run, err
	}
	defer enqRDB.Close()
	srvRDB, err := newClient()
	if err != nil {
		return run, err
	}
	defer srvRDB.Close()
	par := intake.Config{}.WithDefaults().EnqueueParallelism
	enq := &jobs.Enqueuer{Client: asynq.NewClientFromRedisClient(enqRDB), Parallelism: par}
	ids := benchUserIDs(0, n)
	start := time.Now()
	res, err := enq.EnqueueItems(ctx, fmt.Sprintf("bench-baseline-%s-%d", r.runID, conc), jobs.QueueDefault, ids)
	if err != nil {
		return run, err
	}
	enqueue := time.Since(start)
	if res.Enqueued != n {
		return run, fmt.Errorf("enqueued %d tasks of %d (%d already there)", res.Enqueued, n, res.Existing)
	}
	r.progress("(a) processing them with concurrency %d", conc)
	wcfg := worker.Config{Concurrency: conc}.WithDefaults()
	var done atomic.Int64
	finished := make(chan struct{})
	// One queue: the strongest setup of a bare asynq server. licenseops'
	// workers serve four (jobs.QueueWeights), and asynq spends a round trip
	// on each empty queue it looks at before the one with a task, which
	// halves a server's rate here; the baseline does not pay that.
	srv := asynq.NewServerFromRedisClient(srvRDB, asynq.Config{
		Concurrency: wcfg.Concurrency, Queues: map[string]int{jobs.QueueDefault: 1}, TaskCheckInterval: wcfg.TaskCheckInterval,
		ShutdownTimeout: wcfg.ShutdownTimeout, LogLevel: asynq.WarnLevel,
	})
	window := benchStartWindow(nil)
	start = time.Now()
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})); err != nil {
		return run, err
	}
	defer srv.Shutdown()
	select {
	case <-finished:
	case <-ctx.Done():
		return run, ctx.Err()
	case <-time.After(benchOpTimeout(n)):
		return run, fmt.Errorf("processed %d tasks of %d in %s", done.Load(), n, benchOpTimeout(n))
	}
	process := time.Since(start)
	run.CPU = window.stop()
	run.EnqueueS, run.EnqueuePerS = enqueue.Seconds(), float64(n)/enqueue.Seconds()
	run.ProcessS, run.ProcessPerS = process.Seconds(), float64(n)/process.Seconds()
	r.progress("(a) %.0f tasks/s enqueued, %.0f tasks/s processed at concurrency %d (others %.2f cores)", run.EnqueuePerS, run.ProcessPerS, conc, run.CPU.Noise())
	return run, nil
}

// ---------------------------------------------------------------- processes

// benchStack is an api and one or more worker processes.
type benchStack struct {
	api     *stack.Proc
	workers []*stack.Proc
	url     string
}

// startStack starts a worker and an api process; see startStackWorkers.
func (r *benchRunner) startStack(ctx context.Context, extraEnv []string) (*benchStack, error) {
	return r.startStackWorkers(ctx, extraEnv, 1)
}

// startStackWorkers starts n workers and an api process and waits until all
// are ready: the api answers /readyz, each worker's asynq server is
// registered and its sweeper has swept once (on the flushed Redis, a
// sweeper's first sweep takes every pending item for lost and enqueues it
// again, which a long-running deployment never does).
func (r *benchRunner) startStackWorkers(ctx context.Context, extraEnv []string, n int) (*benchStack, error) {
	env := append(slices.Clone(extraEnv), "LICENSEOPS_WORKER_CONCURRENCY="+strconv.Itoa(r.o.Concurrency))
	if r.o.Profile > 0 {
		env = append(env, "LICENSEOPS_PPROF=true") // on the worker's metrics listener
	}
	s := &benchStack{}
	for range n {
		w, err := r.s.StartWorker(ctx, env...)
		if err != nil {
			_ = s.stop() // the start error is the one to report
			return nil, err
		}
		s.workers = append(s.workers, w)
	}
	var err error
	if s.api, err = r.s.StartAPI(ctx, env...); err != nil {
		_ = s.stop() // the start error is the one to report
		return nil, err
	}
	s.url = s.api.URL
	return s, nil
}

// procs are the stack's processes, the api first.
func (s *benchStack) procs() []*stack.Proc {
	return append([]*stack.Proc{s.api}, s.workers...)
}

// window starts measuring the CPU of the machine and of the stack's processes.
func (s *benchStack) window() *benchWindow { return benchStartWindow(s.api, s.workers...) }

// alive returns an error when the api or a worker has ended.
func (s *benchStack) alive() error {
	for _, p := range s.procs() {
		if p != nil && p.Exited() {
			return p.Err()
		}
	}
	return nil
}

// peakRSS returns the api's and the largest worker's VmHWM in MiB.
func (s *benchStack) peakRSS() (apiMiB, workerMiB float64, err error) {
	a, err := s.api.PeakRSS()
	if err != nil {
		return 0, 0, err
	}
	var w int64
	for _, p := range s.workers {
		v, err := p.PeakRSS()
		if err != nil {
			return 0, 0, err
		}
		w = max(w, v)
	}
	return benchMiB(a), benchMiB(w), nil
}

// stop stops the processes (SIGTERM, then SIGKILL after a timeout).
func (s *benchStack) stop() error {
	var wg sync.WaitGroup
	procs := s.procs()
	errs := make([]error, len(procs))
	for i, p := range procs {
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
	h := benchOpHooks{itemsDone: itemsDone}
	if accepted != nil {
		h.accepted = func(string) { accepted() }
	}
	return r.timedOperationHooks(ctx, s, customer, users, assign, revoke, h)
}

// benchOpHooks run during a timed operation: accepted after the 202, with
// the operation's ID, and itemsDone once no item is pending. Either may be nil.
type benchOpHooks struct {
	accepted  func(id string)
	itemsDone func()
}

// timedOperationHooks is timedOperation with hooks that get the operation.
func (r *benchRunner) timedOperationHooks(ctx context.Context, s *benchStack, customer string, users, assign, revoke []string,
	h benchOpHooks) (*benchRollout, error) {
	body, err := json.Marshal(client.OperationRequest{UserIDs: users, Assign: assign, Revoke: revoke})
	if err != nil {
		return nil, err
	}
	c := r.client(s.url)
	window := s.window()
	intakeWindow := s.window()
	post := time.Now()
	// The body is encoded already, so that the intake time holds no JSON
	// encoding of the bench's own: the SDK's raw request path.
	acc, err := postOperation(ctx, c, customer, body)
	if err != nil {
		return nil, err
	}
	intake := time.Since(post)
	intakeCPU := intakeWindow.stop()
	r.progress("    accepted in %s: operation %s", intake.Round(time.Millisecond), acc.ID)
	// A scenario may roll out several times to one customer: a profile per SKU.
	name := fmt.Sprintf("%s-%dw", customer, len(s.workers))
	if len(assign) > 0 {
		name += "-" + assign[0]
	}
	profiled := r.profileWorker(ctx, s, name)
	defer func() { <-profiled }()
	if h.accepted != nil {
		h.accepted(acc.ID)
	}
	_, err = benchWaitOperation(ctx, s, c, acc.ID, benchOpPoll, benchOpTimeout(len(users)), func(op client.Operation) bool { return op.Pending == 0 })
	pendingZero := time.Since(post)
	cpu := window.stop()
	if h.itemsDone != nil {
		h.itemsDone()
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
		Users: len(users), Workers: len(s.workers), Assign: assign, Revoke: revoke,
		IntakeS: intake.Seconds(), LastItemS: lastItem.Seconds(), PendingZeroS: pendingZero.Seconds(), CompletedS: completed.Seconds(),
		UsersPerS: float64(len(users)) / lastItem.Seconds(), Succeeded: op.Succeeded, Failed: op.Failed,
		CPU: cpu, IntakeCPU: intakeCPU,
	}
	if ro.APIPeakRSSMiB, ro.WorkerPeakRSSMiB, err = s.peakRSS(); err != nil {
		return nil, fmt.Errorf("read peak RSS: %w", err)
	}
	r.progress("    %d users in %.1fs: %.0f users/s (%d failed); completed at %.1fs; peak RSS api %.0f MiB, worker %.0f MiB; others %.2f cores",
		len(users), lastItem.Seconds(), ro.UsersPerS, ro.Failed, completed.Seconds(), ro.APIPeakRSSMiB, ro.WorkerPeakRSSMiB, cpu.Noise())
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
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.workers[0].URL, max(1, int(r.o.Profile.Seconds())))
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

// scenarioRun seeds with one api and worker, then measures with fresh ones;
// see scenarioRuns.
func (r *benchRunner) scenarioRun(ctx context.Context, key string, env []string,
	seedWith func(*benchStack, *client.Client) error, measure func(*benchStack) error) error {
	return r.scenarioRuns(ctx, key, env, seedWith, benchMeasure{Workers: 1, Measure: measure})
}

// benchMeasure is one measured part of a scenario: Measure gets a fresh
// api and Workers fresh workers.
type benchMeasure struct {
	Workers int
	Measure func(*benchStack) error
}

// scenarioRuns seeds with one api and worker, then runs each measure with
// fresh processes, so that peak RSS and CPU count the measured operation
// only, after a VACUUM (ANALYZE) and a Redis flush. Then `licenseops check`
// checks the customers that the scenario made (the check is recorded under
// key; a broken invariant is an error).
func (r *benchRunner) scenarioRuns(ctx context.Context, key string, env []string,
	seedWith func(*benchStack, *client.Client) error, measures ...benchMeasure) error {
	if err := r.flushRedis(ctx); err != nil {
		return err
	}
	start := time.Now()
	s, err := r.startStack(ctx, env)
	if err != nil {
		return err
	}
	c := r.client(s.url)
	before, err := c.ListCustomers(ctx)
	if err == nil {
		err = seedWith(s, c)
	}
	if serr := s.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	r.progress("(%s) seeded in %.1fs", key, time.Since(start).Seconds())
	var after []client.Customer
	for i, m := range measures {
		r.progress("(%s) vacuuming, then starting a fresh api and %d worker(s)", key, m.Workers)
		if err := r.quiesceDB(ctx); err != nil {
			return err
		}
		if err := r.flushRedis(ctx); err != nil {
			return err
		}
		if s, err = r.startStackWorkers(ctx, env, max(m.Workers, 1)); err != nil {
			return err
		}
		err = m.Measure(s)
		if err == nil && i == len(measures)-1 {
			after, err = r.client(s.url).ListCustomers(ctx)
		}
		if serr := s.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
	}
	var made []string
	for _, cu := range after {
		if !slices.ContainsFunc(before, func(b client.Customer) bool { return b.ID == cu.ID }) {
			made = append(made, cu.ID)
		}
	}
	return r.check(ctx, key, env, made)
}

// check runs `licenseops check` for each of the customers, with the
// scenario's environment (a Graph customer's directory is checked too),
// and records what it said under key. Broken invariants are recorded as
// an error of the run (key + " check"), not of the scenario.
func (r *benchRunner) check(ctx context.Context, key string, env []string, customers []string) error {
	c := &benchCheck{Customers: customers, Clean: true}
	r.rep.Checks[key] = c
	start := time.Now()
	for _, cu := range customers {
		res, err := r.s.Run(ctx, env, "check", "--partner", r.s.Partner, "--customer", cu)
		if err != nil {
			return err
		}
		if res.Code != 0 || !strings.Contains(res.Stdout, "ok: every invariant holds") {
			c.Clean = false
			c.Problems += max(strings.Count(res.Stdout, "\n  - "), 1)
			c.Output += fmt.Sprintf("customer %s: exit %d\n%s%s", cu, res.Code, res.Stdout, res.Stderr)
		}
	}
	c.Seconds = time.Since(start).Seconds()
	if !c.Clean {
		// Recorded apart from the scenario's error, so that the table
		// still shows the scenario's figures; the bench exits 1 all the same.
		r.rep.Errors[key+" check"] = fmt.Sprintf("licenseops check found %d problems:\n%s", c.Problems, c.Output)
		r.progress("(%s) licenseops check: %d problems\n%s", key, c.Problems, c.Output)
		return nil
	}
	r.progress("(%s) licenseops check: clean (%s, %.1fs)", key, benchPlural(len(customers), "customer"), c.Seconds)
	return nil
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
