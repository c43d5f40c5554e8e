//go:build faultinject

package faults

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	apiclient "github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/seed"
	devstack "github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/storage"
)

// Settings every process of the suite gets. The sweeper runs often so that
// the recovery times measured are those of the rules (grace, stall, lease),
// not of the sweep interval.
const (
	sweepInterval = 250 * time.Millisecond
	// workerConcurrency is low enough that a rollout of a few thousand
	// users lasts a few seconds on 2 cores, so that a fault lands in the
	// middle of it.
	workerConcurrency = 4
)

// stack is one test's licenseops installation (internal/stack): its own
// database and Redis database, and the api and worker processes of the
// faultinject binary started on them.
type stack struct {
	t   *testing.T
	st  *devstack.Stack
	db  *sql.DB               // the test's own view of Postgres
	rdb redis.UniversalClient // the test's own view of Redis
	// env is added to the environment of every process (Graph settings).
	env []string
	// api is the api process started last, whose answers the waits read.
	api *proc
}

func newStack(t *testing.T) *stack {
	t.Helper()
	return newStackOn(t, testenv.Redis(t))
}

// newStackOn is newStack on the Redis at redisURL, of any mode.
func newStackOn(t *testing.T, redisURL string) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := devstack.Start(ctx, devstack.Options{
		DatabaseURL: testenv.Postgres(t, storage.MigrateURL), RedisURL: redisURL,
		Partner: "faults", Exe: binary(t),
		Env: []string{
			"LICENSEOPS_SWEEP_INTERVAL=" + sweepInterval.String(),
			"LICENSEOPS_RATE_LIMIT=-1",
			fmt.Sprintf("LICENSEOPS_WORKER_CONCURRENCY=%d", workerConcurrency),
			"LICENSEOPS_SHUTDOWN_TIMEOUT=10s",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range st.Procs() {
			p.Kill()
			if t.Failed() {
				t.Logf("--- last output of %s (pid %d, %s):\n%s", p.Name, p.Pid(), p.State(), p.Tail(40))
			}
		}
		_ = st.Close()
	})
	db, err := sql.Open("postgres", st.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	t.Cleanup(func() { db.Close() })
	return &stack{t: t, st: st, db: db, rdb: st.Redis}
}

// startAPI starts an api process, extra added to its environment, and
// waits until it answers.
func (s *stack) startAPI(extra ...string) *proc {
	s.t.Helper()
	p, err := s.st.StartAPI(context.Background(), append(slices.Clone(s.env), extra...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.api = p
	return p
}

// startWorker starts a worker process, extra added to its environment, and
// waits until its asynq server has registered in Redis and a sweeper has
// swept once. Its /metrics listens on a free port of its own (p.URL), so
// that tests can see which rule of the sweeper recovered what.
func (s *stack) startWorker(extra ...string) *proc {
	s.t.Helper()
	p, err := s.st.StartWorker(context.Background(), append(slices.Clone(s.env), extra...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// metric returns the sum of the series of a process's /metrics named name
// whose labels include every label (`reason="stalled"`); -1 when the
// process does not answer.
func metric(p *proc, name string, labels ...string) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := apiclient.New(p.URL, "").Metrics(ctx)
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, line := range strings.Split(raw, "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		n, lbls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(lbls, l)
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil && match {
			sum += v
		}
	}
	return sum
}

// reenqueued sums licenseops_sweeper_reenqueued_total{reason} over workers.
func reenqueued(reason string, workers ...*proc) float64 {
	return workersMetric("licenseops_sweeper_reenqueued_total", `reason="`+reason+`"`, workers...)
}

// groupedRollout is the api's environment that sends a fault test's
// rollout of rolloutUsers through asynq groups, as operations of
// LICENSEOPS_AGGREGATE_MIN users or more go: the fault then meets
// license:apply-batch tasks of up to a thousand users instead of a task
// per user.
const groupedRollout = "LICENSEOPS_AGGREGATE_MIN=1000"

// checkGrouped fails the test when the workers handled no
// license:apply-batch task: its rollout did not go through groups.
func checkGrouped(t *testing.T, workers ...*proc) {
	t.Helper()
	if n := workersMetric("licenseops_worker_tasks_total", `type="license:apply-batch"`, workers...); n <= 0 {
		t.Errorf("the workers handled no license:apply-batch task (%v): the rollout did not go through groups", n)
	}
}

// workersMetric sums a metric over the workers that still answer.
func workersMetric(name, labels string, workers ...*proc) float64 {
	sum := 0.0
	for _, w := range workers {
		if v := metric(w, name, labels); v > 0 {
			sum += v
		}
	}
	return sum
}

// check runs `licenseops check` as its own process: it must exit 0.
func (s *stack) check() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.st.Run(ctx, s.env, "check")
	if err != nil || res.Code != 0 || !strings.Contains(res.Stdout, "ok: every invariant holds") {
		s.t.Fatalf("licenseops check: %v, exit %d:\n%s%s", err, res.Code, res.Stdout, res.Stderr)
	}
}

// waitUntil polls cond every 20 ms until it is true, returns an error, or d
// passes.
func waitUntil(d time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client talks to one api process with the stack's token: the SDK's
// client, with helpers that fail the test.
type client struct {
	t *testing.T
	*apiclient.Client
}

func (s *stack) client(api *proc) *client {
	return &client{t: s.t, Client: apiclient.New(api.URL, s.st.Token, apiclient.WithHTTPClient(&http.Client{Timeout: time.Minute}))}
}

// do sends a request through the SDK's raw path (body marshalled as JSON
// unless nil) and decodes a 2xx answer into out (unless nil). Errors are
// those of the transport.
func (c *client) do(method, path string, body, out any, headers ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(context.Background(), method, path, rd, h)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, raw, nil
}

// must sends a request and fails the test unless the answer has status want.
func (c *client) must(want int, method, path string, body, out any, headers ...string) {
	c.t.Helper()
	status, raw, err := c.do(method, path, body, out, headers...)
	if err != nil || status != want {
		if len(raw) > 1000 {
			raw = raw[:1000]
		}
		c.t.Fatalf("%s %s: status %d (%v), want %d: %s", method, path, status, err, want, raw)
	}
}

// check fails the test when err is not nil.
func (c *client) check(what string, err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// seed creates customer with n users and a subscription of sku with seats
// seats, through the API (seed.OneSKU), and returns the user IDs.
func (c *client) seed(customer string, n int, sku string, seats int) []string {
	c.t.Helper()
	ids, err := seed.Seed(context.Background(), c.Client, seed.OneSKU(customer, n, sku, seats))
	c.check("seed "+customer, err)
	return ids
}

func (c *client) setSeats(customer, sku string, seats int) {
	c.t.Helper()
	_, err := c.PutSubscription(context.Background(), customer, sku, seats)
	c.check("set seats of "+sku, err)
}

// operationRequest is the body of POST …/license-operations.
type operationRequest = apiclient.OperationRequest

// start creates an operation and returns its ID.
func (c *client) start(customer string, req operationRequest) string {
	c.t.Helper()
	acc, err := c.CreateOperation(context.Background(), customer, req, "")
	c.check("create operation", err)
	return acc.ID
}

// progress is an operation's state as Postgres has it.
type progress struct {
	Total, Done int
	Finished    *time.Time
}

func (s *stack) progress(opID string) (progress, error) {
	var p progress
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.db.QueryRowContext(ctx, `
		SELECT o.total, o.finished_at,
			(SELECT count(*) FROM operation_items i WHERE i.operation_id = o.id AND i.status NOT IN ('pending','applying'))
		FROM operations o WHERE o.id = $1`, opID).Scan(&p.Total, &p.Finished, &p.Done)
	return p, err
}

// waitDone waits until at least fraction of the operation's items are done
// and returns how many are: the moment to inject a fault. It fails the test
// when the operation finishes first (the fault would not be mid-rollout).
func (s *stack) waitDone(opID string, fraction float64) int {
	s.t.Helper()
	c := s.client(s.api)
	var op operation
	err := waitUntil(60*time.Second, func() (bool, error) {
		var err error
		if op, err = c.GetOperation(context.Background(), opID); err != nil {
			return false, nil
		}
		done := op.Succeeded + op.Failed
		if done == op.Total {
			return false, fmt.Errorf("all %d items were done before the fault: the rollout is too fast to be interrupted", op.Total)
		}
		return float64(done) >= fraction*float64(op.Total), nil
	})
	if err != nil {
		s.t.Fatalf("operation %s: %v (last %+v)", opID, err, op)
	}
	return op.Succeeded + op.Failed
}

// finish is how an operation came to its end.
type finish struct {
	At time.Time // when it finished (Postgres' clock, the same host's)
	// The longest time no item became done, and how many items were done
	// when it began: the wait for a recovery rule after a fault.
	StallFrom, StallTo time.Time
	DoneAtStall        int
}

// Stall is the length of the longest stall.
func (f finish) Stall() time.Duration { return f.StallTo.Sub(f.StallFrom) }

// waitFinished waits up to d for the operation to be finished, polling
// the api started last with the SDK's WaitOperation. Errors while the
// database is down are waited out.
func (s *stack) waitFinished(opID string, d time.Duration) finish {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		f        finish
		lastDone int
		changeAt = time.Now()
		lastErr  error
	)
	op, err := s.client(s.api).WaitOperation(ctx, opID, apiclient.WaitOptions{
		Interval: 20 * time.Millisecond,
		Progress: func(op operation) {
			now, done := time.Now(), op.Succeeded+op.Failed
			if done != lastDone || op.FinishedAt != nil {
				if now.Sub(changeAt) > f.Stall() {
					f.StallFrom, f.StallTo, f.DoneAtStall = changeAt, now, lastDone
				}
				changeAt, lastDone = now, done
			}
		},
		StallAfter: 10 * time.Second,
		Stalled: func(op operation, idle time.Duration) {
			s.t.Logf("no progress for %v with %d of %d items done; %s", idle.Round(time.Second), op.Succeeded+op.Failed, op.Total, s.describePending(opID))
		},
		OnError: func(err error) error { lastErr = err; return nil },
	})
	if err != nil {
		s.t.Fatalf("operation %s not finished: %v: %d of %d items done (last error: %v); %s",
			opID, err, op.Succeeded+op.Failed, op.Total, lastErr, s.describePending(opID))
	}
	f.At = *op.FinishedAt
	return f
}

// describePending says where the tasks of a few pending items are in asynq,
// to tell a lost task from a retried or orphaned one.
func (s *stack) describePending(opID string) string {
	var users []string
	err := s.db.QueryRow(`SELECT coalesce(array_agg(user_id ORDER BY user_id), '{}') FROM operation_items
		WHERE operation_id = $1 AND status IN ('pending','applying')`, opID).Scan((*pq.StringArray)(&users))
	if err != nil {
		return "pending items: " + err.Error()
	}
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	var b strings.Builder
	fmt.Fprintf(&b, "%d items pending; their tasks:", len(users))
	for i, u := range users {
		if i == 5 {
			b.WriteString(" …")
			break
		}
		id := jobs.TaskID(opID, u)
		info, err := insp.GetTaskInfo(jobs.QueueDefault, id)
		if err != nil {
			fmt.Fprintf(&b, " [%s: %v]", u, err)
			continue
		}
		fmt.Fprintf(&b, " [%s: %s, orphaned %v, retried %d, last error %q]", u, info.State, info.IsOrphaned, info.Retried, info.LastErr)
	}
	return b.String()
}

// recovery logs and returns the time from a fault to the end of the
// operation; README.md quotes these lines.
func recovery(t *testing.T, fault string, at, finished time.Time) time.Duration {
	t.Helper()
	d := finished.Sub(at)
	t.Logf("RECOVERY %s: %.1fs from the fault to the operation finished", fault, d.Seconds())
	return d
}

// operation is GET /v1/operations/{id}.
type operation = apiclient.Operation

// reportRow is a row of GET /v1/operations/{id}/report.
type reportRow = apiclient.ReportRow

// verifyRollout checks a finished assign operation of users over the API
// and in Postgres: every user terminal, exactly wantSucceeded succeeded,
// every failure a CountViolation; then the seats of sku and the checker.
func (s *stack) verifyRollout(c *client, opID string, users int, sku string, wantSucceeded int) {
	s.t.Helper()
	ctx := context.Background()
	op, err := c.GetOperation(ctx, opID)
	c.check("get operation", err)
	if op.FinishedAt == nil || op.Total != users || op.Succeeded != wantSucceeded || op.Failed != users-wantSucceeded || op.Pending != 0 {
		s.t.Fatalf("operation = %+v, want finished with %d succeeded and %d failed", op, wantSucceeded, users-wantSucceeded)
	}
	rows, succeeded := 0, 0
	_, err = c.Report(ctx, opID, func(r reportRow) error {
		rows++
		switch {
		case r.Status == "succeeded":
			succeeded++
		case r.Status == "failed" && r.Error != nil && r.Error.Code == "CountViolation":
		default:
			return fmt.Errorf("user %s: status %s, error %+v; want succeeded, or failed with CountViolation", r.UserID, r.Status, r.Error)
		}
		return nil
	})
	c.check("report", err)
	if rows != users {
		s.t.Fatalf("report has %d rows, want %d", rows, users)
	}
	if succeeded != wantSucceeded {
		s.t.Fatalf("report: %d succeeded, want %d", succeeded, wantSucceeded)
	}
	seats := s.seats(sku)
	if seats.Consumed != wantSucceeded || seats.Assignments != wantSucceeded || seats.Reserved != 0 {
		s.t.Fatalf("seats of %s = %+v, want %d consumed and assigned, none reserved", sku, seats, wantSucceeded)
	}
	s.check()
	if n := s.deadlocks(); n > 0 {
		s.t.Logf("Postgres resolved %d deadlocks in this test's database (each costs deadlock_timeout, 1 s)", n)
	}
}

// deadlocks returns how many deadlocks Postgres has detected in the test's
// database (its statistics lag by up to a second).
func (s *stack) deadlocks() int {
	s.t.Helper()
	var n int
	if err := s.db.QueryRow(`SELECT pg_stat_clear_snapshot(), deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(new(any), &n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// seatState is a subscription row and the assignments of its SKU.
type seatState struct{ Total, Consumed, Reserved, Assignments int }

func (s *stack) seats(sku string) seatState {
	s.t.Helper()
	var st seatState
	err := s.db.QueryRow(`
		SELECT s.total, s.consumed, s.reserved,
			(SELECT count(*) FROM assignments a WHERE a.customer_key = s.customer_key AND a.sku_id = s.sku_id)
		FROM subscriptions s WHERE s.sku_id = $1`, sku).Scan(&st.Total, &st.Consumed, &st.Reserved, &st.Assignments)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}
