package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/storage"
)

func TestMain(m *testing.M) { testenv.Run(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the licenseops binary once per test run, for tests that
// run it as a real process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "licenseops-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "licenseops")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	exe := binary(t) // built before the clock starts
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
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

func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	dbURL := emptyDatabase(t)
	for mode, addr := range map[string]string{"api": "--addr", "worker": "--metrics-addr"} {
		_, stderr, err := runBinary(t, []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + testenv.Redis(t)}, mode, addr, "127.0.0.1:0")
		if err == nil || !strings.Contains(stderr, "licenseops migrate") {
			t.Fatalf("%s against an unmigrated database: err %v, stderr %q; want a failure that says to run licenseops migrate", mode, err, stderr)
		}
	}
	// After migrate, token create works and prints the token alone.
	if _, stderr, err := runBinary(t, []string{"DATABASE_URL=" + dbURL}, "migrate"); err != nil {
		t.Fatalf("migrate: %v %s", err, stderr)
	}
	stdout, stderr, err := runBinary(t, []string{"DATABASE_URL=" + dbURL}, "token", "create", "--partner", "acme", "--role", "reader")
	if err != nil {
		t.Fatalf("token create: %v %s", err, stderr)
	}
	token := strings.TrimSuffix(stdout, "\n")
	if !strings.HasPrefix(token, "lops_") || strings.ContainsAny(token, " \n") || len(token) < 40 {
		t.Fatalf("token create printed %q, want the token alone on one line", stdout)
	}
	if _, _, err := runBinary(t, []string{"DATABASE_URL=" + dbURL}, "token", "create", "--partner", "acme", "--role", "emperor"); err == nil {
		t.Fatalf("token create accepted an unknown role")
	}
}

// The whole process as `licenseops all` wires it, driven over HTTP.
func TestAllInOneProcess(t *testing.T) {
	t.Parallel()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
	cfg.RedisURL = testenv.Redis(t)
	cfg.API.Addr = "127.0.0.1:0"
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
	proc, err := app.Open(ctx, cfg, app.ModeAll, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer proc.Close(context.Background())
	c := newAPIClient(proc.APIURL(), token)
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
	op, err := watch(ctx, c, acc.ID, &buf, progressOptions{})
	must(err)
	if op.Status != "completed_with_errors" || op.Succeeded != 1 || op.Failed != 1 {
		t.Fatalf("operation = %+v", op)
	}
	resp, err := c.http.Get(proc.APIURL() + "/readyz")
	must(err)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz = %d", resp.StatusCode)
	}
}
