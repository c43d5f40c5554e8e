package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// A bad numeric setting stops the process with a message naming it and a
// good value, instead of the default being used silently.
func TestCheckEnv(t *testing.T) {
	cases := []struct {
		env     map[string]string
		wantBad []string // variable names the error must name; none for valid
	}{
		{env: map[string]string{}},
		{env: map[string]string{"LICENSEOPS_GRAPH_RATE": "6.5", "LICENSEOPS_SWEEP_INTERVAL": "250ms", "LICENSEOPS_RATE_LIMIT": "-1",
			"LICENSEOPS_DIRECTORY_SYNC_EVERY": "-1s", "LICENSEOPS_WORKER_CONCURRENCY": "64"}},
		{env: map[string]string{"LICENSEOPS_SWEEP_INTERVAL": "5"}, wantBad: []string{"LICENSEOPS_SWEEP_INTERVAL"}},
		{env: map[string]string{"LICENSEOPS_GRAPH_RATE": "fast", "LICENSEOPS_WORKER_CONCURRENCY": "0", "LICENSEOPS_STALL_AFTER": "-5m"},
			wantBad: []string{"LICENSEOPS_GRAPH_RATE", "LICENSEOPS_WORKER_CONCURRENCY", "LICENSEOPS_STALL_AFTER"}},
		{env: map[string]string{"LICENSEOPS_GRAPH_APP_RATE": "0", "LICENSEOPS_BULK_MIN": "-1"},
			wantBad: []string{"LICENSEOPS_GRAPH_APP_RATE", "LICENSEOPS_BULK_MIN"}},
		{env: map[string]string{"LICENSEOPS_RATE_LIMIT": "1.5", "LICENSEOPS_DIRECTORY_SYNC_EVERY": "hourly", "LICENSEOPS_PPROF": "yes"},
			wantBad: []string{"LICENSEOPS_RATE_LIMIT", "LICENSEOPS_DIRECTORY_SYNC_EVERY", "LICENSEOPS_PPROF"}},
	}
	for _, c := range cases {
		_, err := FromEnv(func(k string) string { return c.env[k] })
		if len(c.wantBad) == 0 {
			if err != nil {
				t.Errorf("%v: %v, want valid", c.env, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%v: valid, want %v refused", c.env, c.wantBad)
			continue
		}
		for _, name := range c.wantBad {
			if !strings.Contains(err.Error(), name+"=") {
				t.Errorf("%v: error %q does not name %s", c.env, err, name)
			}
		}
		if n := strings.Count(err.Error(), "is not valid"); n != len(c.wantBad) {
			t.Errorf("%v: %d problems reported, want %d: %v", c.env, n, len(c.wantBad), err)
		}
	}
	if got := DefaultConfig().Graph.RatePerSecond; got != 0 {
		t.Errorf("Graph rate unset = %v, want 0 (the directory's default)", got)
	}
	cfg, err := FromEnv(func(k string) string { return map[string]string{"LICENSEOPS_GRAPH_RATE": "6.5"}[k] })
	if err != nil || cfg.Graph.RatePerSecond != 6.5 {
		t.Errorf("Graph rate = %v (%v), want 6.5 (a fraction of Graph's quota per worker)", cfg.Graph.RatePerSecond, err)
	}
	if _, err := FromEnv(func(k string) string { return map[string]string{"LICENSEOPS_BULK_MIN": "50"}[k] }); err == nil ||
		!strings.Contains(err.Error(), "LICENSEOPS_BULK_MIN=50") {
		t.Errorf("a bulk size below the interactive size: %v, want an error naming LICENSEOPS_BULK_MIN", err)
	}
	cfg, err = FromEnv(func(k string) string { return map[string]string{"LICENSEOPS_GRAPH_APP_RATE": "100.5"}[k] })
	if err != nil || cfg.Graph.AppRatePerSecond != 100.5 {
		t.Errorf("Graph app rate = %v (%v), want 100.5", cfg.Graph.AppRatePerSecond, err)
	}
	if DefaultConfig().API.WebhookAllowHTTP {
		t.Error("webhooks may use plain http to any host by default")
	}
	cfg, err = FromEnv(func(k string) string { return map[string]string{"LICENSEOPS_WEBHOOK_ALLOW_HTTP": "true"}[k] })
	if err != nil || !cfg.API.WebhookAllowHTTP {
		t.Errorf("LICENSEOPS_WEBHOOK_ALLOW_HTTP=true: %v (%v), want the api to allow http webhooks", cfg.API.WebhookAllowHTTP, err)
	}
	if _, err := FromEnv(func(k string) string { return map[string]string{"LICENSEOPS_WEBHOOK_ALLOW_HTTP": "yes"}[k] }); err == nil {
		t.Error("LICENSEOPS_WEBHOOK_ALLOW_HTTP=yes was accepted; want true or false")
	}
}

// Every default is the one its package states, and the settings that
// follow another (the rate limit's burst) still follow it when only the
// first is set.
func TestDefaultsComeFromThePackages(t *testing.T) {
	d := DefaultConfig()
	if want := (worker.Config{}).WithDefaults(); d.Worker.Concurrency != want.Concurrency || d.Worker.Sweep != want.Sweep ||
		d.Worker.ShutdownTimeout != want.ShutdownTimeout {
		t.Errorf("worker defaults %+v, want the worker package's %+v", d.Worker, want)
	}
	if want := (api.Config{}).WithDefaults(); d.API.Addr != want.Addr || d.API.RateLimitPerSecond != want.RateLimitPerSecond {
		t.Errorf("api defaults %+v, want the api package's %+v", d.API, want)
	}
	cfg, err := FromEnv(func(k string) string { return map[string]string{"LICENSEOPS_RATE_LIMIT": "10"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.API.WithDefaults().RateLimitBurst; got != 20 {
		t.Errorf("burst with LICENSEOPS_RATE_LIMIT=10 = %d, want 20 (twice the rate)", got)
	}
}

// A second worker on a host whose default metrics port is taken starts on a
// free port; a port the operator chose is never swapped for another.
func TestWorkerMetricsPortFallback(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	newWorker := func(addrSet bool) (*App, error) {
		cfg := DefaultConfig()
		cfg.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
		cfg.RedisURL = testenv.Redis(t)
		cfg.MetricsAddr, cfg.MetricsAddrSet = taken.Addr().String(), addrSet
		app, err := Open(context.Background(), cfg, ModeWorker, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = app.Close(context.Background()) })
		return app, app.Start()
	}
	app, err := newWorker(false)
	if err != nil {
		t.Fatalf("worker with the default metrics port taken: %v, want it to start on a free port", err)
	}
	if app.MetricsURL == "" || strings.HasSuffix(app.MetricsURL, taken.Addr().String()) {
		t.Fatalf("metrics at %q, want a free port other than %s", app.MetricsURL, taken.Addr())
	}
	if _, err := newWorker(true); err == nil || !strings.Contains(err.Error(), "LICENSEOPS_METRICS_ADDR") {
		t.Fatalf("worker with a chosen metrics port taken: %v, want a refusal that names LICENSEOPS_METRICS_ADDR", err)
	}
}

// Each serving mode offers the flags that do something in it, no others.
func TestServeFlagsPerMode(t *testing.T) {
	want := map[Mode][]string{
		ModeAPI:       {"addr"},
		ModeWorker:    {"metrics-addr", "concurrency"},
		ModeAll:       {"addr", "concurrency"},
		ModeScheduler: nil,
	}
	for mode, flags := range want {
		cfg := DefaultConfig()
		fs := flag.NewFlagSet(string(mode), flag.ContinueOnError)
		cfg.BindFlags(fs, mode)
		var got []string
		fs.VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
		slices.Sort(got)
		flags = slices.Sorted(slices.Values(flags))
		if !slices.Equal(got, flags) {
			t.Errorf("%s has flags %v, want %v", mode, got, flags)
		}
	}
}

// Workers pace Graph writes per tenant and per app through Redis, shared by
// all of them, before the directory is called (the client does not pace
// again); the checker, which only reads, paces in process.
func TestGraphWritesPacedPerTenantAcrossWorkers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Getenv = func(k string) string {
		return map[string]string{"LICENSEOPS_GRAPH_CLIENT_ID": "app", "LICENSEOPS_GRAPH_CLIENT_SECRET": "s3cret"}[k]
	}
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		rdb  redis.UniversalClient
		want string
	}{{rdb, "WriteRate: caller"}, {nil, "WriteRate: 20/s, app 233.3"}} {
		dirs, pacer, err := directories(cfg, log, c.rdb)
		if err != nil {
			t.Fatal(err)
		}
		if (pacer != nil) != (c.rdb != nil) {
			t.Errorf("with Redis %v: pacer %v", c.rdb != nil, pacer)
		}
		if got := fmt.Sprint(dirs["msgraph"]); !strings.Contains(got, c.want) {
			t.Errorf("directory %s, want %s", got, c.want)
		}
	}
}

// The Redis settings of the environment become one URL of their mode, and a
// bad one stops the process with the other bad values, saying what to set.
func TestRedisFromEnv(t *testing.T) {
	cfg, err := FromEnv(func(k string) string {
		return map[string]string{"LICENSEOPS_REDIS_SENTINELS": "s1:26379,s2:26379,s3:26379", "LICENSEOPS_REDIS_MASTER": "mymaster",
			"LICENSEOPS_REDIS_PASSWORD": "pw"}[k]
	})
	if want := "redis-sentinel://:pw@s1:26379,s2:26379,s3:26379/mymaster/0"; err != nil || cfg.RedisURL != want {
		t.Errorf("sentinels: RedisURL = %q, %v; want %q", cfg.RedisURL, err, want)
	}
	_, err = FromEnv(func(k string) string {
		return map[string]string{"LICENSEOPS_REDIS_CLUSTER": "n1:7000", "REDIS_URL": "redis://r/0", "LICENSEOPS_PPROF": "yes"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "set only one of REDIS_URL") || !strings.Contains(err.Error(), "LICENSEOPS_PPROF=") {
		t.Errorf("REDIS_URL and a cluster: %v, want both problems reported", err)
	}
	_, err = FromEnv(func(k string) string { return map[string]string{"REDIS_URL": "redis-cluster://n1/2"}[k] })
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL: ") || !strings.Contains(err.Error(), "remove /2") {
		t.Errorf("a cluster URL with a database: %v, want an error naming REDIS_URL and what to do", err)
	}
}
