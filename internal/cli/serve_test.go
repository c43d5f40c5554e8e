package cli

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/storage"
)

// The api and a worker as `licenseops api` and `licenseops worker` wire
// them: after a rollout, each one's /metrics passes `promtool check metrics`
// and carries its metrics, and the worker serves /healthz and /readyz.
func TestServedMetricsPassPromtool(t *testing.T) {
	t.Parallel()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
	cfg.RedisURL = testenv.Redis(t)
	cfg.API.Addr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Worker.Sweep.Interval = 100 * time.Millisecond
	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL})
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.CreateToken(ctx, "p", "admin", "global_admin")
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	apps := map[app.Mode]*app.App{}
	for _, mode := range []app.Mode{app.ModeAPI, app.ModeWorker} {
		a, err := app.Open(ctx, cfg, mode, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close(context.Background()) })
		apps[mode] = a
	}
	e := &apiEnv{t: t, url: apps[app.ModeAPI].APIURL(), token: token, c: client.New(apps[app.ModeAPI].APIURL(), token)}
	must := e.must
	e.seed(2, map[string]int{"E5": 1}, nil, nil)
	acc, err := e.c.CreateOperation(ctx, "c1", client.OperationRequest{UserIDs: []string{userID(0), userID(1)}, Assign: []string{"E5"}, AllowPartial: true}, "")
	must(err)
	_, err = e.c.WaitOperation(ctx, acc.ID, client.WaitOptions{Interval: 50 * time.Millisecond})
	must(err)

	get := func(url string) string {
		t.Helper()
		resp, err := http.Get(url)
		must(err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		must(err)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", url, resp.StatusCode, b)
		}
		return string(b)
	}
	get(apps[app.ModeWorker].MetricsURL + "/healthz")
	get(apps[app.ModeWorker].MetricsURL + "/readyz")
	deadline := time.Now().Add(30 * time.Second)
	var workerText string
	for {
		workerText = get(apps[app.ModeWorker].MetricsURL + "/metrics")
		// The backlog gauges appear with the sweeper's first pass, which may
		// come after the worker finished this small operation itself.
		if strings.Contains(workerText, `licenseops_operations_finished_total{status="completed_with_errors"} 1`) &&
			strings.Contains(workerText, "licenseops_items_pending{") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker never counted the operation as finished and measured the backlog:\n%s", workerText)
		}
		time.Sleep(50 * time.Millisecond)
	}
	apiText := get(apps[app.ModeAPI].APIURL() + "/metrics")
	for name, text := range map[string]string{"api": apiText, "worker": workerText} {
		want := map[string][]string{
			"api":    {"licenseops_http_requests_total{", "asynq_queue_tasks{", "asynq_queue_latency_seconds{", "go_goroutines"},
			"worker": {`licenseops_items_finished_total{code="CountViolation",status="failed"} 1`, "licenseops_items_pending{", "process_cpu_seconds_total"},
		}[name]
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("the %s's /metrics lacks %s", name, w)
			}
		}
		path, err := exec.LookPath("promtool")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("promtool is not installed and CI=true: run scripts/ensure-ops-tools.sh")
			}
			t.Logf("promtool is not installed; skipping `promtool check metrics` (scripts/ensure-ops-tools.sh installs it)")
			continue
		}
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on the %s's /metrics: %v\n%s", name, err, out)
		}
	}
}

// The whole process as `licenseops all` wires it, driven over HTTP.
func TestAllInOneProcess(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	ctx := context.Background()
	e.seed(2, map[string]int{"E5": 1}, nil, nil)
	acc, err := e.c.CreateOperation(ctx, "c1", client.OperationRequest{UserIDs: []string{userID(0), userID(1)}, Assign: []string{"E5"}, AllowPartial: true}, "")
	e.must(err)
	op, err := e.c.WaitOperation(ctx, acc.ID, client.WaitOptions{Interval: 50 * time.Millisecond})
	e.must(err)
	if op.Status != "completed_with_errors" || op.Succeeded != 1 || op.Failed != 1 {
		t.Fatalf("operation = %+v", op)
	}
	resp, err := http.Get(e.url + "/readyz")
	e.must(err)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz = %d", resp.StatusCode)
	}
}

// emptyDatabase creates a database with no schema on the test server.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	migrated := testenv.Postgres(t, storage.MigrateURL)
	db, err := sql.Open("postgres", migrated)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := fmt.Sprintf("empty_%d", time.Now().UnixNano())
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(migrated)
	u.Path = "/" + name
	t.Cleanup(func() { _, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	return u.String()
}

// runWithEnv runs a command in-process as main does, with the environment vars.
func runWithEnv(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, args, &Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }})
	return code, stdout.String(), stderr.String()
}

func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	dbURL := emptyDatabase(t)
	vars := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": testenv.Redis(t)}
	for mode, addr := range map[string]string{"api": "--addr", "worker": "--metrics-addr"} {
		code, _, stderr := runWithEnv(t, vars, mode, addr, "127.0.0.1:0")
		if code != ExitError || strings.Count(stderr, "licenseops migrate") != 1 {
			t.Fatalf("%s against an unmigrated database: exit status %d, stderr %q; want 1 and one message that says to run licenseops migrate", mode, code, stderr)
		}
	}
	// After migrate, token create works and prints the token alone.
	if code, _, stderr := runWithEnv(t, vars, "migrate"); code != ExitOK || !strings.Contains(stderr, "database migrated to version") {
		t.Fatalf("migrate: %d %s", code, stderr)
	}
	code, stdout, stderr := runWithEnv(t, vars, "token", "create", "--partner", "acme", "--role", "reader")
	if code != ExitOK {
		t.Fatalf("token create: %d %s", code, stderr)
	}
	token := strings.TrimSuffix(stdout, "\n")
	if !strings.HasPrefix(token, "lops_") || strings.ContainsAny(token, " \n") || len(token) < 40 {
		t.Fatalf("token create printed %q, want the token alone on one line", stdout)
	}
	if code, _, stderr := runWithEnv(t, vars, "token", "create", "--partner", "acme", "--role", "emperor"); code != ExitUsage || !strings.Contains(stderr, "--role must be one of") {
		t.Fatalf("token create with an unknown role: exit status %d, stderr %q", code, stderr)
	}
	code, stdout, _ = runWithEnv(t, vars, "token", "list", "--partner", "acme")
	if code != ExitOK || !strings.Contains(stdout, "acme") || !strings.Contains(stdout, "reader") {
		t.Fatalf("token list: %d\n%s", code, stdout)
	}
}

// A database that does not exist: every command that opens it says once to
// run licenseops migrate, which creates it.
func TestMissingDatabaseSaysMigrateOnce(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse(testenv.Postgres(t, storage.MigrateURL))
	u.Path = "/no_such_database"
	vars := map[string]string{"DATABASE_URL": u.String(), "REDIS_URL": testenv.Redis(t)}
	for _, args := range [][]string{{"api", "--addr", "127.0.0.1:0"}, {"token", "list"}, {"check"}} {
		code, _, stderr := runWithEnv(t, vars, args...)
		if code != ExitError || strings.Count(stderr, "licenseops migrate") != 1 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q against a missing database: exit status %d, stderr %q; want 1 and one line that says to run licenseops migrate", args, code, stderr)
		}
	}
}
