package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
	if len(profiles) != 3 {
		t.Errorf("worker profiles %v, want one for each of (b), (c) and (e)", profiles)
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
	if dc, _ := lookupJSON(doc, "graph.directory_consumed"); dc != 500.0 {
		t.Errorf("graph.directory_consumed = %v, want 500: the simulator did not get every license", dc)
	}
	targets, _ := lookupJSON(doc, "targets")
	if list, _ := targets.([]any); len(list) < 10 {
		t.Errorf("targets = %v, want one per target figure", targets)
	}
	// One table, with each target's verdict.
	for _, want := range []string{"(a) bare asynq", "(b) rollout", "(c) change", "(d) interactive", "(e) Graph simulator", "(f) fairness", "≤ 2 s", "≥ 0.80"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestBenchFlags(t *testing.T) {
	t.Parallel()
	o, err := ParseFlags([]string{"--only", "d, a", "--users", "10"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Only, ",") != "a,d" || o.Users != 10 || o.GraphUsers != 20_000 || o.Concurrency != defaultConcurrency() {
		t.Fatalf("options = %+v", o)
	}
	for _, bad := range [][]string{{"--only", "x"}, {"--users", "0"}, {"--users", "100001"}, {"extra"}} {
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
