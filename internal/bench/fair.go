package bench

// The fairness scenario: customer B's rollout started while customer A's
// runs, on the local directory, with a two-user change every second.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/licenseops/licenseops/client"
)

const (
	// benchFairBUsers is the size of customer B's rollout.
	benchFairBUsers = 1000
	// benchFairBLimitS is how soon after its POST B's users are to be done:
	// a few seconds, about B's share of the throughput, not after A.
	benchFairBLimitS = 5.0
)

// benchFair is customer B's rollout started while customer A's runs, with
// a two-user change of B every second during both. Times are from B's
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
	// CPU is from B's POST to B's finished report.
	CPU benchCPUUsage `json:"cpu"`
	// ALastItemS is A's POST to A's last item recorded.
	ALastItemS  float64           `json:"a_last_item_s"`
	AUsersPerS  float64           `json:"a_users_per_s"`
	Succeeded   int               `json:"succeeded"`
	Failed      int               `json:"failed"`
	Interactive *benchInteractive `json:"interactive"`
	SeedS       float64           `json:"seed_s"`
}

// runFair measures fairness between customers on the local directory:
// customer A's rollout to --users users (in the bulk queue from
// LICENSEOPS_BULK_MIN users) runs; once a tenth of it is done, a two-user
// change of customer B starts every second and B's rollout of 1,000 users
// is posted. B should finish in about its own share of the throughput, not
// after A, and the two-user changes within a second.
func (r *benchRunner) runFair(ctx context.Context) error {
	nA, nB := r.o.Users, benchFairBUsers
	customerA, customerB := "bench-"+r.runID+"-fair-a", "bench-"+r.runID+"-fair-b"
	usersA, usersB, iusers := benchUserIDs(5, nA), benchUserIDs(6, nB), benchUserIDs(7, 2*benchInteractivePairs)
	f := &benchFair{UsersA: nA, UsersB: nB}
	r.progress("(fair) seeding customers %s (%d users) and %s (%d users, %d for the two-user changes)", customerA, nA, customerB, nB, len(iusers))
	return r.scenarioRun(ctx, "fair", nil,
		func(_ *benchStack, c *client.Client) error {
			var err error
			f.SeedS, err = benchTimed(func() error {
				if err := seedTenant(ctx, c, client.CustomerRequest{ID: customerA, Name: "Bench fairness A", DefaultUsageLocation: new("US")},
					usersA, map[string]int{"BENCH_E5": nA}); err != nil {
					return err
				}
				return seedTenant(ctx, c, client.CustomerRequest{ID: customerB, Name: "Bench fairness B", DefaultUsageLocation: new("US")},
					append(slices.Clone(usersB), iusers...), map[string]int{"BENCH_E5": nB, benchInteractiveSKU: len(iusers)})
			})
			return err
		},
		func(s *benchStack) error {
			if err := r.measureFair(ctx, s, f, customerA, customerB, usersA, usersB, iusers); err != nil {
				return err
			}
			r.rep.Fair = f
			return nil
		})
}

func (r *benchRunner) measureFair(ctx context.Context, s *benchStack, f *benchFair, customerA, customerB string, usersA, usersB, iusers []string) error {
	c := r.client(s.url)
	nA, nB := len(usersA), len(usersB)
	post := func(customer string, users []string) (client.AcceptedOperation, error) {
		body, err := json.Marshal(client.OperationRequest{UserIDs: users, Assign: []string{"BENCH_E5"}})
		if err != nil {
			return client.AcceptedOperation{}, err
		}
		return postOperation(ctx, c, customer, body)
	}
	r.progress("(fair) A: assign BENCH_E5 to %d users", nA)
	postA := time.Now()
	accA, err := post(customerA, usersA)
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
	window := s.window()
	postB := time.Now()
	f.BStartedAfterS, f.ADoneAtBStart = postB.Sub(postA).Seconds(), opA.Total-opA.Pending
	r.progress("(fair) B: assign BENCH_E5 to %d users, %.1fs after A's POST (%d of A's users done)", nB, f.BStartedAfterS, f.ADoneAtBStart)
	accB, err := post(customerB, usersB)
	if err != nil {
		return err
	}
	opB, err := benchWaitOperation(ctx, s, c, accB.ID, 50*time.Millisecond, benchOpTimeout(nA+nB),
		func(op client.Operation) bool { return op.FinishedAt != nil })
	if err != nil {
		return err
	}
	bDone := time.Since(postB)
	f.CPU = window.stop()
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
	r.progress("(fair) B's %d users done %.2fs after its POST (finished report %.2fs), %d of A's users meanwhile (%.0f/s), %d of A's pending",
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
	if f.Interactive.Operations == 0 {
		return fmt.Errorf("no two-user change finished: %v", d.firstErr)
	}
	r.progress("(fair) A's %d users in %.1fs (%.0f/s); two-user changes: %d, p50 %.0f ms, p99 %.0f ms",
		nA, f.ALastItemS, f.AUsersPerS, f.Interactive.Operations, f.Interactive.P50Ms, f.Interactive.P99Ms)
	return nil
}

func (r *benchRunner) targetsFair() {
	f := r.rep.Fair
	if f == nil {
		return
	}
	j := benchJudge{AtScale: f.UsersA >= benchTargetUsers, Timing: true, Noise: f.CPU.Noise()}
	r.addTarget("fair.b", "B's rollout, POST to last item", f.BLastItemS, "s", fmt.Sprintf("≤ %g s", benchFairBLimitS), f.BLastItemS <= benchFairBLimitS, j)
	r.addTarget("fair.p99", "two-user change p99 during A and B", f.Interactive.P99Ms/1000, "s", "≤ 1 s", f.Interactive.P99Ms <= 1000, j)
}

func (r *benchRunner) tableFair(t *benchTable) {
	f := r.rep.Fair
	title := fmt.Sprintf("(fair) B's %s users", benchInt(benchFairBUsers))
	if t.failed("fair", title) || f == nil {
		return
	}
	t.row(title, "B: POST to last item", benchSecs(f.BLastItemS), "fair.b")
	t.row(fmt.Sprintf("    during A's %s", benchInt(f.UsersA)), "B: POST to finished report", benchSecs(f.BCompletedS), "")
	t.row("", "B: end to end (to last item)", benchRate(f.BUsersPerS, "users/s"), "")
	t.row("", "A while B ran (to B's report)", benchRate(f.AUsersPerSDuringB, "users/s"), "")
	t.row("", "A's users pending at B's report", benchInt(f.APendingAtBEnd), "")
	t.row("", "A: end to end", benchRate(f.AUsersPerS, "users/s"), "")
	t.row(fmt.Sprintf("    2 users every 1 s, n=%d", f.Interactive.Operations), "two-user change p50 / p99",
		fmt.Sprintf("%s / %s", benchMs(f.Interactive.P50Ms), benchMs(f.Interactive.P99Ms)), "fair.p99")
	if f.Failed > 0 || f.Interactive.Failed > 0 {
		t.row("", "users failed / changes failed", fmt.Sprintf("%d / %d", f.Failed, f.Interactive.Failed), "")
	}
	t.cpu(f.CPU)
}
