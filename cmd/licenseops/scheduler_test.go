package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// `licenseops scheduler` as NewApp wires it: it registers the enabled
// cleanup policies as periodic tasks.
func TestSchedulerProcess(t *testing.T) {
	t.Parallel()
	cfg := loadConfig()
	cfg.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
	cfg.RedisURL = testenv.Redis(t)
	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	token, err := store.CreateToken(ctx, "p", "admin", "global_admin")
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.Authenticate(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.CreateCustomer(ctx, p.PartnerKey, licensing.Customer{ID: "c1", Name: "C1", Directory: licensing.Directory{Kind: "local"}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := store.CreateCleanupPolicy(ctx, licensing.CleanupPolicy{PartnerKey: p.PartnerKey, CustomerKey: c.Key, Name: "nightly",
		Schedule: "0 2 * * *", TimeZone: "Europe/Warsaw", Rule: licensing.CleanupRule{Kind: licensing.RuleDisabledAccounts},
		DryRun: true, Enabled: true, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}

	app, err := NewApp(ctx, cfg, "scheduler", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	if app.api != nil || app.worker != nil {
		t.Fatalf("the scheduler process runs an api or a worker too")
	}
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	// The scheduler publishes its entries at its first heartbeat.
	deadline := time.Now().Add(60 * time.Second)
	for {
		entries, err := inspector.SchedulerEntries()
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 1 {
			e := entries[0]
			payload, err := jobs.ParseCleanupPayload(e.Task.Payload())
			if err != nil || payload.PolicyID != pol.ID || e.Spec != "CRON_TZ=Europe/Warsaw 0 2 * * *" || e.Task.Type() != jobs.TypeCleanupRun {
				t.Fatalf("scheduler entry %+v (%v), want the policy's", e, err)
			}
			return
		}
		if len(entries) > 1 || time.Now().After(deadline) {
			t.Fatalf("scheduler entries %+v, want the one policy", entries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSchedulerRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	_, stderr, err := runBinary(t, []string{"DATABASE_URL=" + emptyDatabase(t), "REDIS_URL=" + testenv.Redis(t)}, "scheduler")
	if err == nil || !strings.Contains(stderr, "licenseops migrate") {
		t.Fatalf("scheduler against an unmigrated database: err %v, stderr %q; want a failure that says to run licenseops migrate", err, stderr)
	}
}
