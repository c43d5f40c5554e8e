package worker_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// clock is a clock the test sets.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// cleanupSetup is a customer "sched" whose six users u0…u5 hold E5, with
// u0 and u1 disabled, and a way to run cleanup tasks by a clock the test
// controls.
type cleanupSetup struct {
	b      *testapp.Bundle
	c      *testapp.Client
	clock  *clock
	runner *worker.CleanupRunner
	// reg has the metrics of the intake the runners share.
	reg *prometheus.Registry
	svc *intake.Service
}

func newCleanupSetup(t *testing.T) *cleanupSetup {
	t.Helper()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "admin_agent")
	users := seed(t, c, "sched", 6, "E5", 10)
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/sched/license-operations",
		map[string]any{"user_ids": users, "assign": []string{"E5"}}).JSON(t, &acc)
	if op := c.WaitOperation(acc.ID, 30*time.Second); op.Succeeded != 6 {
		t.Fatalf("setup assignment = %+v", op)
	}
	setEnabled(t, c, map[string]bool{users[0]: false, users[1]: false})
	reg := prometheus.NewRegistry()
	svc, err := intake.New(intake.Config{Logger: b.Log, Registerer: reg}, b.Store, b.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	s := &cleanupSetup{b: b, c: c, clock: &clock{}, reg: reg, svc: svc}
	s.runner = s.newRunner()
	return s
}

// newRunner is one more handler of cleanup tasks, as in another process.
func (s *cleanupSetup) newRunner() *worker.CleanupRunner {
	return worker.NewCleanupRunner(worker.CleanupConfig{Now: s.clock.Now, Logger: s.b.Log}, s.svc)
}

// created is licenseops_operations_created_total{source,queue} of the
// runners' intake.
func (s *cleanupSetup) created(t *testing.T, source, queue string) float64 {
	t.Helper()
	return counterValue(t, s.reg, "licenseops_operations_created_total", map[string]string{"source": source, "queue": queue})
}

// counterValue is the value of the counter name with the given labels in
// reg, 0 when it is absent.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func setEnabled(t *testing.T, c *testapp.Client, enabled map[string]bool) {
	t.Helper()
	var rows []map[string]any
	for id, on := range enabled {
		rows = append(rows, map[string]any{"id": id, "user_principal_name": id + "@example.com", "display_name": id, "account_enabled": on})
	}
	c.Must(http.StatusOK, "POST", "/v1/customers/sched/users/import", map[string]any{"users": rows})
}

func (s *cleanupSetup) createPolicy(t *testing.T, body map[string]any) string {
	t.Helper()
	var pol struct{ ID string }
	s.c.Must(http.StatusCreated, "POST", "/v1/customers/sched/cleanup-policies", body).JSON(t, &pol)
	return pol.ID
}

// task is the periodic task the scheduler registers for a policy, straight
// from the config provider ("" cronspec when it registers none).
func (s *cleanupSetup) task(t *testing.T, policyID string) (cronspec string, task *asynq.Task) {
	t.Helper()
	configs, err := worker.NewPolicyConfigProvider(s.b.Store, 5*time.Second, s.b.Log).GetConfigs()
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range configs {
		p, err := jobs.ParseCleanupPayload(cfg.Task.Payload())
		if err != nil {
			t.Fatal(err)
		}
		if p.PolicyID == policyID {
			if cfg.Task.Type() != jobs.TypeCleanupRun {
				t.Fatalf("task type %q, want %q", cfg.Task.Type(), jobs.TypeCleanupRun)
			}
			return cfg.Cronspec, cfg.Task
		}
	}
	return "", nil
}

// fire handles task at the given time, as a worker would.
func (s *cleanupSetup) fire(t *testing.T, at time.Time, task *asynq.Task) storage.CleanupRunResult {
	t.Helper()
	s.clock.Set(at)
	p, err := jobs.ParseCleanupPayload(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.runner.RunScheduled(context.Background(), p)
	if err != nil {
		t.Fatalf("run at %v: %v", at, err)
	}
	return res
}

type runView struct {
	Tick         *time.Time `json:"tick"`
	Trigger      string     `json:"trigger"`
	MatchedUsers int        `json:"matched_users"`
	OperationID  *string    `json:"operation_id"`
	Status       string     `json:"status"`
	DryRun       bool       `json:"dry_run"`
	Reclaimed    int        `json:"reclaimed_seats"`
	WouldRevoke  int        `json:"would_revoke_users"`
}

func (s *cleanupSetup) runs(t *testing.T, policyID string) []runView {
	t.Helper()
	var out struct{ Runs []runView }
	s.c.Must(http.StatusOK, "GET", "/v1/customers/sched/cleanup-policies/"+policyID+"/runs?page_size=500", nil).JSON(t, &out)
	return out.Runs
}

// cleanupOperations counts the operations cleanups started.
func (s *cleanupSetup) cleanupOperations(t *testing.T) int {
	t.Helper()
	var n int
	if err := s.b.DB.Get(&n, `SELECT count(*) FROM operations WHERE source = 'cleanup'`); err != nil {
		t.Fatal(err)
	}
	return n
}

func schedule(t *testing.T, spec, zone string) storage.Schedule {
	t.Helper()
	s, err := storage.ParseSchedule(spec, zone)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A policy runs at its tick and not before, once per tick, with the rule
// evaluated at the tick.
func TestCleanupRunsAtItsTickNotBefore(t *testing.T) {
	t.Parallel()
	s := newCleanupSetup(t)
	id := s.createPolicy(t, map[string]any{"name": "nightly", "schedule": "0 2 * * *", "time_zone": "Europe/Warsaw",
		"rule": map[string]any{"kind": "disabled_accounts"}, "dry_run": false, "max_percent": nil})
	spec, task := s.task(t, id)
	if spec != "CRON_TZ=Europe/Warsaw 0 2 * * *" {
		t.Fatalf("cronspec %q", spec)
	}
	sched := schedule(t, "0 2 * * *", "Europe/Warsaw")
	tick := sched.Next(time.Now())
	warsaw, _ := time.LoadLocation("Europe/Warsaw")
	if h := tick.In(warsaw); h.Hour() != 2 || h.Minute() != 0 {
		t.Fatalf("tick %v is not 02:00 in Warsaw", tick)
	}

	// Before the tick the latest tick is yesterday's, before the policy existed.
	for _, at := range []time.Time{tick.Add(-12 * time.Hour), tick.Add(-time.Minute), tick.Add(-3 * time.Second)} {
		if res := s.fire(t, at, task); res.Skipped == "" {
			t.Fatalf("at %v (tick %v) the policy ran: %+v", at, tick, res.Run)
		}
	}
	if runs := s.runs(t, id); len(runs) != 0 || s.cleanupOperations(t) != 0 {
		t.Fatalf("runs before the tick: %+v", runs)
	}

	res := s.fire(t, tick, task)
	if res.Skipped != "" || res.Run.Tick == nil || !res.Run.Tick.Equal(tick) || res.Operation == nil {
		t.Fatalf("at the tick: %+v", res)
	}
	op := s.c.WaitOperation(res.Operation.ID, 30*time.Second)
	if op.Source != "cleanup" || op.Succeeded != 2 || op.DryRun || !slices.Equal(op.Revoke, []string{"E5"}) {
		t.Fatalf("operation of the tick = %+v", op)
	}
	// Later deliveries of the same tick, and a late one, change nothing.
	for _, at := range []time.Time{tick, tick.Add(30 * time.Second), tick.Add(5 * time.Hour)} {
		if res := s.fire(t, at, task); res.Skipped != storage.SkipAlreadyRan {
			t.Fatalf("at %v: %+v, want the tick already run", at, res)
		}
	}
	runs := s.runs(t, id)
	if len(runs) != 1 || !runs[0].Tick.Equal(tick) || runs[0].Trigger != "schedule" || runs[0].MatchedUsers != 2 ||
		runs[0].Reclaimed != 2 || runs[0].Status != "completed" || *runs[0].OperationID != op.ID {
		t.Fatalf("runs after the first tick = %+v", runs)
	}

	// Between ticks u2 is disabled: the next tick takes its license back.
	setEnabled(t, s.c, map[string]bool{"user-00002": false})
	next := sched.Next(tick)
	res = s.fire(t, next, task)
	if res.Skipped != "" || res.Operation == nil || res.Run.MatchedUsers != 1 || !slices.Equal(res.UserIDs, []string{"user-00002"}) {
		t.Fatalf("at the next tick: %+v", res)
	}
	s.c.WaitOperation(res.Operation.ID, 30*time.Second)
	// A tick with nobody left records a run with no operation.
	res = s.fire(t, sched.Next(next), task)
	if res.Skipped != "" || res.Operation != nil || res.Run.MatchedUsers != 0 || res.Run.Status != licensing.RunNothingMatched {
		t.Fatalf("at the third tick: %+v", res)
	}
	if runs := s.runs(t, id); len(runs) != 3 || s.cleanupOperations(t) != 2 {
		t.Fatalf("after three ticks: %d cleanup operations, runs %+v; want 3 runs and 2 operations", s.cleanupOperations(t), runs)
	}
	if st := seats(t, s.b, "E5"); st.Consumed != 3 || st.Assignments != 3 || st.Reserved != 0 {
		t.Fatalf("E5 seats after the cleanups = %+v, want the 3 enabled users' only", st)
	}
}

// Three schedulers fire every tick and their tasks are handled at the same
// moment by three processes: each tick runs once and starts one operation.
func TestCleanupOneRunPerTickAcrossSchedulers(t *testing.T) {
	t.Parallel()
	s := newCleanupSetup(t)
	// A dry run changes nothing, so every tick matches the same two users.
	id := s.createPolicy(t, map[string]any{"name": "every minute", "schedule": "* * * * *", "time_zone": "UTC",
		"rule": map[string]any{"kind": "disabled_accounts"}, "dry_run": true})
	_, task := s.task(t, id)
	payload, err := jobs.ParseCleanupPayload(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	runners := []*worker.CleanupRunner{s.newRunner(), s.newRunner(), s.newRunner()}
	const ticks, deliveries = 5, 2 // each scheduler's task, delivered twice
	tick := schedule(t, "* * * * *", "UTC").Next(time.Now().Add(time.Hour))
	for n := range ticks {
		s.clock.Set(tick.Add(time.Duration(n)*time.Minute + 7*time.Second))
		start := make(chan struct{})
		var (
			mu      sync.Mutex
			ran     int
			skipped int
			wg      sync.WaitGroup
		)
		for _, r := range runners {
			for range deliveries {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res, err := r.RunScheduled(context.Background(), payload)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						t.Errorf("tick %d: %v", n, err)
					case res.Skipped == "":
						ran++
					case res.Skipped == storage.SkipAlreadyRan:
						skipped++
					default:
						t.Errorf("tick %d skipped: %s", n, res.Skipped)
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		if ran != 1 || skipped != len(runners)*deliveries-1 {
			t.Fatalf("tick %d: %d runs and %d skips, want 1 run", n, ran, skipped)
		}
	}
	runs := s.runs(t, id)
	if len(runs) != ticks || s.cleanupOperations(t) != ticks {
		t.Fatalf("%d runs and %d operations for %d ticks: %+v", len(runs), s.cleanupOperations(t), ticks, runs)
	}
	if v := s.created(t, "cleanup", jobs.QueueLow); v != ticks {
		t.Fatalf("licenseops_operations_created_total{source=\"cleanup\"} = %v, want one per tick (%d)", v, ticks)
	}
	seen := map[time.Time]bool{}
	for _, r := range runs {
		if r.Tick == nil || seen[*r.Tick] || r.OperationID == nil || r.MatchedUsers != 2 || !r.DryRun {
			t.Fatalf("runs = %+v, want one per tick, each with its operation", runs)
		}
		seen[*r.Tick] = true
	}
	var perTick []int
	if err := s.b.DB.Select(&perTick, `SELECT count(*) FROM cleanup_runs WHERE policy_id = $1 GROUP BY tick`, id); err != nil {
		t.Fatal(err)
	}
	if len(perTick) != ticks || slices.Max(perTick) != 1 {
		t.Fatalf("runs per tick %v", perTick)
	}
}

// Edits and disabling between ticks apply at the next tick, with no
// restart: the provider the scheduler syncs from returns the new schedule,
// a task of the old one is dropped, the new rule is what runs, and a
// disabled policy neither is scheduled nor runs.
func TestCleanupPolicyChangesApplyAtNextTick(t *testing.T) {
	t.Parallel()
	s := newCleanupSetup(t)
	// u3 last signed in 100 days ago; the others recently (or never, and
	// were imported just now).
	long := time.Now().Add(-100 * 24 * time.Hour)
	s.c.Must(http.StatusOK, "POST", "/v1/customers/sched/users/import", map[string]any{"users": []map[string]any{
		{"id": "user-00003", "user_principal_name": "user-00003@example.com", "last_sign_in_at": long},
		{"id": "user-00004", "user_principal_name": "user-00004@example.com", "last_sign_in_at": time.Now()},
	}})
	id := s.createPolicy(t, map[string]any{"name": "cleanup", "schedule": "0 2 * * *", "time_zone": "Europe/Warsaw",
		"rule": map[string]any{"kind": "disabled_accounts"}, "dry_run": true})
	path := "/v1/customers/sched/cleanup-policies/" + id
	spec1, task1 := s.task(t, id)
	old := schedule(t, "0 2 * * *", "Europe/Warsaw")
	tick1 := old.Next(time.Now())
	if res := s.fire(t, tick1, task1); res.Skipped != "" || !slices.Equal(res.UserIDs, []string{"user-00000", "user-00001"}) {
		t.Fatalf("first tick: %+v", res)
	}

	// Between ticks: a new schedule and a new rule.
	s.c.Must(http.StatusOK, "PATCH", path, map[string]any{"schedule": "30 3 * * *",
		"rule": map[string]any{"kind": "inactive", "days": 30}})
	spec2, task2 := s.task(t, id)
	if spec2 != "CRON_TZ=Europe/Warsaw 30 3 * * *" || spec2 == spec1 {
		t.Fatalf("after the edit the provider gives %q (before %q)", spec2, spec1)
	}
	// A scheduler that has not synced yet fires the old schedule: dropped.
	if res := s.fire(t, old.Next(tick1), task1); res.Skipped == "" {
		t.Fatalf("a task of the old schedule ran: %+v", res)
	}
	tick2 := schedule(t, "30 3 * * *", "Europe/Warsaw").Next(tick1)
	res := s.fire(t, tick2, task2)
	if res.Skipped != "" || !res.Run.Tick.Equal(tick2) || !slices.Equal(res.UserIDs, []string{"user-00003"}) {
		t.Fatalf("tick of the new schedule: %+v, want the new rule (u3 inactive 100 days)", res)
	}

	// Disabled between ticks: not scheduled any more, and a task already
	// on its way does not run.
	s.c.Must(http.StatusOK, "PATCH", path, map[string]any{"enabled": false})
	if spec, _ := s.task(t, id); spec != "" {
		t.Fatalf("a disabled policy is still scheduled: %q", spec)
	}
	tick3 := schedule(t, "30 3 * * *", "Europe/Warsaw").Next(tick2)
	if res := s.fire(t, tick3, task2); res.Skipped == "" {
		t.Fatalf("a disabled policy ran: %+v", res)
	}
	// Enabled again, it runs from the next tick on.
	s.c.Must(http.StatusOK, "PATCH", path, map[string]any{"enabled": true})
	if spec, _ := s.task(t, id); spec != spec2 {
		t.Fatalf("re-enabled policy scheduled as %q, want %q", spec, spec2)
	}
	if res := s.fire(t, tick3, task2); res.Skipped != "" {
		t.Fatalf("re-enabled policy did not run: %+v", res)
	}
	if runs := s.runs(t, id); len(runs) != 3 {
		t.Fatalf("runs = %+v, want the first tick, the new schedule's and the one after re-enabling", runs)
	}

	// Deleted: the task is dropped without an error (no retries).
	s.c.Must(http.StatusNoContent, "DELETE", path, nil)
	if err := s.runner.ProcessTask(context.Background(), task2); err != nil {
		t.Fatalf("task of a deleted policy: %v", err)
	}
}

// The real scheduler picks up new, edited and disabled policies at its next
// sync, without a restart, and several schedulers may run at once.
func TestSchedulerSyncsPolicies(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "admin_agent")
	seed(t, c, "sched", 1, "E5", 1)
	create := func(name, spec string) string {
		var pol struct{ ID string }
		c.Must(http.StatusCreated, "POST", "/v1/customers/sched/cleanup-policies", map[string]any{"name": name, "schedule": spec,
			"time_zone": "Europe/Warsaw", "rule": map[string]any{"kind": "disabled_accounts"}}).JSON(t, &pol)
		return pol.ID
	}
	keep := create("keep", "0 1 * * *")
	var schedulers []*worker.Scheduler
	for range 3 {
		sch, err := worker.NewScheduler(worker.SchedulerConfig{SyncInterval: 50 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond, Logger: b.Log},
			b.Store, b.Redis)
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sch.Shutdown)
		schedulers = append(schedulers, sch)
	}
	inspector := asynq.NewInspectorFromRedisClient(b.Redis)
	// waitEntries waits until every scheduler has published exactly want:
	// policy ID → cronspec.
	waitEntries := func(want map[string]string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			entries, err := inspector.SchedulerEntries()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, e := range entries {
				p, err := jobs.ParseCleanupPayload(e.Task.Payload())
				if err != nil {
					t.Fatal(err)
				}
				got[p.PolicyID+" "+e.Spec]++
			}
			ok := len(got) == len(want)
			for id, spec := range want {
				ok = ok && got[id+" "+spec] == len(schedulers)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("scheduler entries %v, want %v on each of %d schedulers", got, want, len(schedulers))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitEntries(map[string]string{keep: "CRON_TZ=Europe/Warsaw 0 1 * * *"})
	id := create("new", "0 2 * * *")
	waitEntries(map[string]string{keep: "CRON_TZ=Europe/Warsaw 0 1 * * *", id: "CRON_TZ=Europe/Warsaw 0 2 * * *"})
	c.Must(http.StatusOK, "PATCH", "/v1/customers/sched/cleanup-policies/"+id, map[string]any{"schedule": "15 4 * * 1-5"})
	waitEntries(map[string]string{keep: "CRON_TZ=Europe/Warsaw 0 1 * * *", id: "CRON_TZ=Europe/Warsaw 15 4 * * 1-5"})
	c.Must(http.StatusOK, "PATCH", "/v1/customers/sched/cleanup-policies/"+id, map[string]any{"enabled": false})
	waitEntries(map[string]string{keep: "CRON_TZ=Europe/Warsaw 0 1 * * *"})
	c.Must(http.StatusNoContent, "DELETE", "/v1/customers/sched/cleanup-policies/"+keep, nil)
	waitEntries(map[string]string{})
}
