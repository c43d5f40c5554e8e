package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/storage"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// licenseops builds the licenseops binary that the bench runs as api and
// worker.
func licenseops(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "licenseops")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := stack.Build(ctx, exe, "github.com/licenseops/licenseops/cmd/licenseops"); err != nil {
		t.Fatal(err)
	}
	return exe
}

// The bench, in-process with small numbers, against the test servers: every
// scenario runs (api and worker as processes of the licenseops binary) and every
// figure of the JSON is present and positive. Timing is not checked.
func TestBench(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts api and worker processes several times")
	}
	out := filepath.Join(t.TempDir(), "bench.json")
	o, err := ParseFlags([]string{"--users", "2000", "--graph-users", "500", "--concurrency", "64", "--out", out, "--profile", "1s"})
	if err != nil {
		t.Fatal(err)
	}
	var table, progress bytes.Buffer
	o.Exe = licenseops(t)
	o.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
	o.RedisURL = testenv.Redis(t)
	o.Stdout, o.Stderr = &table, &progress
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := Run(ctx, o); err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, progress.String(), table.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	figures := []string{
		"machine.cores",
		"baseline.enqueue_per_s", "baseline.process_per_s",
		"rollout.intake_s", "rollout.last_item_s", "rollout.users_per_s", "rollout.ratio_to_baseline",
		"rollout.api_peak_rss_mib", "rollout.worker_peak_rss_mib",
		"change.intake_s", "change.last_item_s", "change.users_per_s", "change.ratio_to_baseline",
		"change.api_peak_rss_mib", "change.worker_peak_rss_mib",
		"interactive.operations", "interactive.p50_ms", "interactive.p99_ms",
		"graph.users_per_s", "graph.bound_per_s", "graph.ratio_to_bound",
		"graph.api_peak_rss_mib", "graph.worker_peak_rss_mib",
		"baseline.concurrency", "scale.ratio_most_to_one", "watch.ratio", "watch.polls",
		"watch.alone.users_per_s", "watch.watched.users_per_s", "watch.watched_again.users_per_s", "watch.alone_again.users_per_s",
		"report_download.json.api_peak_rss_mib", "report_download.json.rows",
		"report_download.csv.api_peak_rss_mib", "report_download.csv.rows", "report_download.csv.bytes",
		"fairness.b_last_item_s", "fairness.b_users_per_s", "fairness.a_users_per_s", "fairness.interactive.p99_ms",
	}
	for _, path := range figures {
		v, ok := lookupJSON(doc, path)
		if n, isNum := v.(float64); !ok || !isNum || n <= 0 {
			t.Errorf("%s = %v (present: %v), want a positive number", path, v, ok)
		}
	}
	// --profile: a CPU profile of the worker per rollout, gzipped protobuf.
	profiles, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "bench-*-worker.cpu.pprof"))
	if len(profiles) != 13 {
		t.Errorf("worker profiles %v, want one for each rollout: (b), (c), (e), 6 of scale and 4 of watch", profiles)
	}
	for _, p := range profiles {
		if b, err := os.ReadFile(p); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s is not a gzipped profile (%d bytes, %v)", p, len(b), err)
		}
	}
	if s, _ := lookupJSON(doc, "machine.go_version"); s == "" || s == nil {
		t.Errorf("machine.go_version missing")
	}
	// Correctness, not speed: every user of every rollout succeeded.
	for _, sc := range []struct {
		name  string
		users float64
	}{{"rollout", 2000}, {"change", 2000}, {"graph", 500}, {"fairness", 3000}} {
		succeeded, _ := lookupJSON(doc, sc.name+".succeeded")
		failed, _ := lookupJSON(doc, sc.name+".failed")
		if succeeded != sc.users || failed != 0.0 {
			t.Errorf("%s: succeeded %v, failed %v; want %v and 0", sc.name, succeeded, failed, sc.users)
		}
	}
	// The baseline is the best of its concurrencies.
	runs, _ := lookupJSON(doc, "baseline.runs")
	if list, _ := runs.([]any); len(list) != 3 {
		t.Errorf("baseline.runs = %v, want one per concurrency of 20, 50 and 256", runs)
	} else {
		best, _ := lookupJSON(doc, "baseline.process_per_s")
		for _, run := range list {
			if v := run.(map[string]any)["process_per_s"].(float64); v > best.(float64) {
				t.Errorf("baseline.process_per_s = %v, less than a run's %v", best, v)
			}
		}
	}
	// Scale-out: one run per number of workers, each complete.
	scaleRuns, _ := lookupJSON(doc, "scale.runs")
	if list, _ := scaleRuns.([]any); len(list) != 6 {
		t.Errorf("scale.runs = %v, want 6", scaleRuns)
	} else {
		for i, run := range list {
			m := run.(map[string]any)
			if m["workers"] != float64([]int{1, 2, 3, 3, 2, 1}[i]) || m["succeeded"] != 2000.0 {
				t.Errorf("scale run %d: workers %v, succeeded %v", i, m["workers"], m["succeeded"])
			}
		}
	}
	// The test servers are not durable (fsync off): no timing target is
	// judged, and the table says so.
	if mode, _ := lookupJSON(doc, "settings.postgres.mode"); mode != "not durable" {
		t.Errorf("settings.postgres.mode = %v, want not durable", mode)
	}
	// The checker ran after every scenario and found nothing.
	for _, key := range []string{"b", "c", "e", "scale", "watch", "report", "fair"} {
		if clean, _ := lookupJSON(doc, "checks."+key+".clean"); clean != true {
			t.Errorf("checks.%s.clean = %v", key, clean)
		}
	}
	if dc, _ := lookupJSON(doc, "graph.directory_consumed"); dc != 500.0 {
		t.Errorf("graph.directory_consumed = %v, want 500: the simulator did not get every license", dc)
	}
	targets, _ := lookupJSON(doc, "targets")
	if list, _ := targets.([]any); len(list) < 20 {
		t.Errorf("targets = %v, want one per target figure", targets)
	} else {
		for _, tg := range list {
			m := tg.(map[string]any)
			want := verdictSmall // 2,000 users
			switch {
			case m["noise_cores"].(float64) >= 0:
				want = verdictNotDurable
			case strings.HasSuffix(m["id"].(string), ".check"):
				want = verdictMet
			}
			if m["verdict"] != want || m["met"] != (want == verdictMet) {
				t.Errorf("target %v: verdict %v, met %v; want %q", m["id"], m["verdict"], m["met"], want)
			}
		}
	}
	// One table, with each target's verdict.
	for _, want := range []string{"(a) bare asynq", "← best: the baseline", "(b) rollout", "(c) change", "(d) interactive", "(e) Graph simulator",
		"(scale) rollout", "3 workers ÷ 1 (means)", "(watch) rollout", "watched ÷ alone (means)", "(report) 5 clients download", "csv: api peak RSS",
		"(fair) B's 1,000 users", "two-user change p50 / p99", "licenseops check", "≤ 1 s", "≥ 1.00", "≥ 0.60", "≥ 0.80", "NOT DURABLE", "not durable", "small run"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestBenchFlags(t *testing.T) {
	t.Parallel()
	o, err := ParseFlags([]string{"--only", "report, d, a", "--users", "10"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Only, ",") != "a,d,report" || o.Users != 10 || o.GraphUsers != 20_000 || o.Concurrency != defaultConcurrency() ||
		fmt.Sprint(o.BaselineConcurrency) != "[20 50 256]" || o.FastUnsafePostgres {
		t.Fatalf("options = %+v", o)
	}
	o, err = ParseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Only, ",") != "a,b,d,c,e,scale,watch,report,fair" || o.Users != 100_000 {
		t.Fatalf("default options = %+v", o)
	}
	o, err = ParseFlags([]string{"--baseline-concurrency", "64", "--fast-unsafe-postgres"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(o.BaselineConcurrency) != "[64]" || !o.FastUnsafePostgres {
		t.Fatalf("options = %+v", o)
	}
	for _, bad := range [][]string{{"--only", "x"}, {"--only", "b,zz"}, {"--users", "0"}, {"--users", "100001"}, {"extra"},
		{"--baseline-concurrency", "0"}, {"--baseline-concurrency", "a"}} {
		if _, err := ParseFlags(bad); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseFlags(%q) = %v, want a usage error", bad, err)
		}
	}
}

// lookupJSON follows a dotted path through decoded JSON objects.
func lookupJSON(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for key := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// A target is judged only on durable Postgres, at its size and on a quiet
// machine; memory and the checker do not depend on the CPU.
func TestBenchVerdicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		durable bool
		j       benchJudge
		within  bool
		want    string
	}{
		{true, benchJudge{AtScale: true, Timing: true, Noise: 0.1}, true, verdictMet},
		{true, benchJudge{AtScale: true, Timing: true, Noise: 0.1}, false, verdictNotMet},
		{true, benchJudge{AtScale: true, Timing: true, Noise: 0.51}, true, verdictNoisy},
		{true, benchJudge{AtScale: true, Timing: true, Noise: 0.9}, false, verdictNoisy},
		{true, benchJudge{AtScale: false, Timing: true}, true, verdictSmall},
		{false, benchJudge{AtScale: true, Timing: true}, true, verdictNotDurable},
		{false, benchJudge{AtScale: true}, true, verdictMet},              // memory: durability and noise do not matter
		{true, benchJudge{AtScale: true, Noise: 3}, false, verdictNotMet}, // noise is for timing only
		{false, benchJudge{AtScale: false}, true, verdictSmall},
	} {
		r := &benchRunner{rep: &Report{}}
		r.rep.Settings.Postgres.Durable = tc.durable
		r.addTarget("x", "x", 1, "", "", tc.within, tc.j)
		got := r.rep.Targets[0]
		if got.Verdict != tc.want || got.Met != (tc.want == verdictMet) {
			t.Errorf("durable %v, %+v, within %v: verdict %q (met %v), want %q", tc.durable, tc.j, tc.within, got.Verdict, got.Met, tc.want)
		}
	}
}

// The noise is what other processes and the hypervisor took, not the
// bench's own processes or the kernel's work on its behalf.
func TestBenchCPUNoise(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	// Two CPUs, 10 s: 2,000 ticks in all.
	start := benchCPUSample{at: t0, haveMachine: true, haveUs: true}
	end := benchCPUSample{at: t0.Add(10 * time.Second), haveMachine: true, haveUs: true,
		total: 2000, procs: 1500, steal: 100, irq: 50, ours: 900, workers: 400, api: 100, postgres: 300, kernel: 100}
	u := end.usageSince(start)
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("bench", u.BenchTreeCores, 0.9)
	near("kernel", u.KernelCores, 0.15)
	near("steal", u.StealCores, 0.1)
	near("others", u.OtherCores, 0.5) // 1,500 in processes − 900 ours − 100 kernel threads
	near("noise", u.Noise(), 0.6)
	if !u.Noisy() {
		t.Error("0.6 cores of noise is not noisy")
	}
	// The machine's own counters of a live system: a window that parses.
	w := benchStartWindow(nil)
	busy := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(busy) {
	}
	if u := w.stop(); u.Seconds <= 0 || u.BenchTreeCores < 0 || u.OtherCores < 0 || u.Cores < 1 {
		t.Errorf("live window = %+v", u)
	}
}
