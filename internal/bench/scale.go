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
// scenario, in the order measured.
var benchScaleWorkers = []int{1, 2, 3}

type benchScale struct {
	Users int `json:"users"`
	// Runs are the rollouts, one per number of workers (Workers says how many).
	Runs []*benchRollout `json:"runs"`
	// Ratio is the users/s of the most workers ÷ the users/s of one.
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
	for _, w := range benchScaleWorkers {
		sku := fmt.Sprintf("BENCH_W%d", w)
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

func (r *benchRunner) targetsScale() {
	sc := r.rep.Scale
	if sc == nil || len(sc.Runs) < 2 || sc.Runs[0].UsersPerS <= 0 {
		return
	}
	first, last := sc.Runs[0], sc.Runs[len(sc.Runs)-1]
	sc.Ratio = last.UsersPerS / first.UsersPerS
	var noise float64
	for _, ro := range sc.Runs {
		noise = max(noise, ro.CPU.Noise())
	}
	r.addTarget("scale.ratio", fmt.Sprintf("%d workers ÷ %d", last.Workers, first.Workers), sc.Ratio, "", "≥ 1.00", sc.Ratio >= 1,
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
	sub := []string{title, fmt.Sprintf("    to %s users,", benchInt(sc.Users)), fmt.Sprintf("    %s workers", strings.Join(counts, ", "))}
	for i, ro := range sc.Runs {
		scenario := ""
		if i < len(sub) {
			scenario = sub[i]
		}
		t.row(scenario, fmt.Sprintf("%s: end to end", benchPlural(ro.Workers, "worker")), benchRate(ro.UsersPerS, "users/s")+fmt.Sprintf(" (others %.2f cores)", ro.CPU.Noise()), "")
	}
	if _, ok := t.targets["scale.ratio"]; ok {
		first, last := sc.Runs[0], sc.Runs[len(sc.Runs)-1]
		t.row("", fmt.Sprintf("%d workers ÷ %d", last.Workers, first.Workers), fmt.Sprintf("%.2f", sc.Ratio), "scale.ratio")
	}
	for _, ro := range sc.Runs {
		t.row("", fmt.Sprintf("%s: api / largest worker peak RSS", benchPlural(ro.Workers, "worker")), fmt.Sprintf("%.0f / %.0f MiB", ro.APIPeakRSSMiB, ro.WorkerPeakRSSMiB), "")
	}
}
