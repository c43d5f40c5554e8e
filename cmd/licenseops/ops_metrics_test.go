package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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
	c := newAPIClient(apps[app.ModeAPI].APIURL(), token)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.do(ctx, "PUT", "/v1/products/E5", map[string]any{"name": "E5"}, nil))
	must(c.do(ctx, "POST", "/v1/customers", map[string]any{"id": "c1", "name": "C1", "default_usage_location": "US"}, nil))
	must(c.do(ctx, "POST", "/v1/customers/c1/users/import", map[string]any{"users": []map[string]any{
		{"id": "a", "user_principal_name": "a@x"}, {"id": "b", "user_principal_name": "b@x"}}}, nil))
	must(c.do(ctx, "PUT", "/v1/customers/c1/subscriptions/E5", map[string]int{"total": 1}, nil))
	var acc struct{ ID string }
	must(c.do(ctx, "POST", "/v1/customers/c1/license-operations", map[string]any{"user_ids": []string{"a", "b"}, "assign": []string{"E5"}, "allow_partial": true}, &acc))
	var buf bytes.Buffer
	_, err = watch(ctx, c, acc.ID, &buf, progressOptions{})
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
		if strings.Contains(workerText, `licenseops_operations_finished_total{status="completed_with_errors"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker never counted the operation as finished:\n%s", workerText)
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
