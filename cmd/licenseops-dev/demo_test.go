package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/storage"
)

func TestMain(m *testing.M) { testenv.Run(m) }

func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return testenv.RunBinary(t, ".", env, args...)
}

// check runs the invariant checker of `licenseops check` on the database.
func check(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{URL: dbURL, MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := app.DefaultConfig()
	cfg.Getenv = func(string) string { return "" } // no Graph: the database's invariants
	problems, err := app.Check(ctx, store, cfg, "", "", "")
	if err != nil || len(problems) > 0 {
		t.Fatalf("check after the demo: %v %v", err, problems)
	}
}

// `licenseops-dev demo`, the binary as `make demo` runs it, small: it
// finishes, says what it assigns and revokes, prints plain progress lines
// (its output is not a terminal) and the seats, writes the report as JSON
// and CSV with one row per user, and leaves the invariants intact — on the
// local directory and on the Graph simulator.
func TestDemo(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the demo binary")
	}
	for _, c := range []struct {
		directory string
		users     int
	}{{"local", 600}, {"graphsim", 300}} {
		t.Run(c.directory, func(t *testing.T) {
			t.Parallel()
			dbURL := testenv.Postgres(t, storage.MigrateURL)
			env := []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + testenv.Redis(t)}
			dir := t.TempDir()
			stdout, stderr, err := runBinary(t, env, "demo", "--users", strconv.Itoa(c.users), "--directory", c.directory, "--out", dir)
			if err != nil {
				t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			for _, want := range []string{"Seats before the rollout", "Assigning O365_E5 and revoking O365_E3 for all", "rollout: " + strconv.Itoa(c.users) + " of " + strconv.Itoa(c.users) + " users done",
				"completed", "Seats after the rollout", "Demo finished"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("demo output lacks %q:\n%s", want, stdout)
				}
			}
			if strings.Contains(stdout, "\r") || strings.Contains(stdout, "users/hr") {
				t.Errorf("demo output to a file has carriage returns or a rate in users/hr:\n%q", stdout)
			}
			jsons, _ := filepath.Glob(filepath.Join(dir, "report-*.json"))
			csvs, _ := filepath.Glob(filepath.Join(dir, "report-*.csv"))
			if len(jsons) != 1 || len(csvs) != 1 {
				t.Fatalf("report files %v %v, want one JSON and one CSV in %s", jsons, csvs, dir)
			}
			raw, err := os.ReadFile(jsons[0])
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Results []struct {
					UserID string `json:"user_id"`
					Status string `json:"status"`
				} `json:"results"`
			}
			if err := json.Unmarshal(raw, &rep); err != nil {
				t.Fatal(err)
			}
			statuses := map[string]int{}
			for _, r := range rep.Results {
				statuses[r.Status]++
			}
			if len(rep.Results) != c.users || statuses["succeeded"] == 0 || statuses["failed"] == 0 || statuses["succeeded"]+statuses["failed"] != c.users {
				t.Fatalf("JSON report: %d rows by status %v; want %d rows, all final, some of each (the demo tenant has rule failures and too few seats)",
					len(rep.Results), statuses, c.users)
			}
			f, err := os.Open(csvs[0])
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil || len(rows) != c.users+1 {
				t.Fatalf("CSV report: %d rows (%v), want a header and %d users", len(rows), err, c.users)
			}
			check(t, dbURL)
		})
	}
}
