package bench

// The scale-out scenario: the rollout of (b) with 1, 2 and 3 worker
// processes, one api.

import (
	"context"
	"fmt"
	"strings"

	"github.com/licenseops/licenseops/client"
)

// benchScaleWorkers are the numbers of worker processes of the scale-out
// scenario, in the order measured: each later rollout runs on bigger
// tables, and measuring each count twice, there and back, gives none of
// them the advantage.
var benchScaleWorkers = []int{1, 2, 3, 3, 2, 1}

type benchScale struct {
	Users int `json:"users"`
	// Runs are the rollouts, in the order of benchScaleWorkers (Workers
	// says how many).
	Runs []*benchRollout `json:"runs"`
	// Ratio is the mean users/s of the most workers ÷ that of one.
	Ratio float64 `json:"ratio_most_to_one"`
	SeedS float64 `json:"seed_s"`
}

// runScale seeds one customer with a SKU per run, then rolls one SKU out to
// all its users with each number of workers in turn.
func (r *benchRunner) runScale(ctx context.Context) error {
	n := r.o.Users
	customer := "bench-" + r.runID + "-scale"
	users := benchUserIDs(0, n)
	seats := map[string]int{}
	var measures []benchMeasure
	sc := &benchScale{Users: n}
	r.rep.Scale = sc
	for i, w := range benchScaleWorkers {
		sku := fmt.Sprintf("BENCH_W%d_%d", w, i)
		seats[sku] = n
		measures = append(measures, benchMeasure{Workers: w, Measure: func(s *benchStack) error {
			r.progress("(scale) rollout: assign %s to %d users with %d worker processes", sku, n, w)
			ro, err := r.timedOperation(ctx, s, customer, users, []string{sku}, nil, nil, nil)
			if err != nil {
				return err
			}
			sc.Runs = append(sc.Runs, ro)
			return nil
		}})
	}
	r.progress("(scale) seeding customer %s: %d users", customer, n)
	return r.scenarioRuns(ctx, "scale", nil, func(_ *benchStack, c *client.Client) error {
		var err error
		sc.SeedS, err = benchTimed(func() error {
			return seedTenant(ctx, c, client.CustomerRequest{ID: customer, Name: "Bench scale-out", DefaultUsageLocation: new("US")}, users, seats)
		})
		return err
	}, measures...)
}

// scaleMeans returns the mean users/s of the runs with one worker and with
// the most workers, and that most.
func (sc *benchScale) scaleMeans() (one, most float64, workers int) {
	sum, n := map[int]float64{}, map[int]int{}
	for _, ro := range sc.Runs {
		sum[ro.Workers] += ro.UsersPerS
		n[ro.Workers]++
		workers = max(workers, ro.Workers)
	}
	if n[1] == 0 || n[workers] == 0 {
		return 0, 0, workers
	}
	return sum[1] / float64(n[1]), sum[workers] / float64(n[workers]), workers
}

func (r *benchRunner) targetsScale() {
	sc := r.rep.Scale
	if sc == nil || len(sc.Runs) < 2 {
		return
	}
	one, most, workers := sc.scaleMeans()
	if one <= 0 {
		return
	}
	sc.Ratio = most / one
	var noise float64
	for _, ro := range sc.Runs {
		noise = max(noise, ro.CPU.Noise())
	}
	r.addTarget("scale.ratio", fmt.Sprintf("%d workers ÷ 1 (means)", workers), sc.Ratio, "", "≥ 1.00", sc.Ratio >= 1,
		benchJudge{AtScale: sc.Users >= benchTargetUsers, Timing: true, Noise: noise})
}

func (r *benchRunner) tableScale(t *benchTable) {
	sc := r.rep.Scale
	title := "(scale) rollout: assign 1 SKU"
	if t.failed("scale", title) || sc == nil {
		return
	}
	counts := make([]string, len(benchScaleWorkers))
	for i, w := range benchScaleWorkers {
		counts[i] = fmt.Sprint(w)
	}
	sub := []string{title, fmt.Sprintf("    to %s users,", benchInt(sc.Users)), fmt.Sprintf("    %s workers", strings.Join(counts, ", ")), "    in this order"}
	for i, ro := range sc.Runs {
		scenario := ""
		if i < len(sub) {
			scenario = sub[i]
		}
		t.row(scenario, fmt.Sprintf("%s: end to end", benchPlural(ro.Workers, "worker")), benchRate(ro.UsersPerS, "users/s")+fmt.Sprintf(" (others %.2f cores)", ro.CPU.Noise()), "")
	}
	if _, ok := t.targets["scale.ratio"]; ok {
		_, _, workers := sc.scaleMeans()
		t.row("", fmt.Sprintf("%d workers ÷ 1 (means)", workers), fmt.Sprintf("%.2f", sc.Ratio), "scale.ratio")
	}
	for _, ro := range sc.Runs {
		t.row("", fmt.Sprintf("%s: api / largest worker peak RSS", benchPlural(ro.Workers, "worker")), fmt.Sprintf("%.0f / %.0f MiB", ro.APIPeakRSSMiB, ro.WorkerPeakRSSMiB), "")
	}
}
