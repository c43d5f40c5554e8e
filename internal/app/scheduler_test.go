package app

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/url"
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

// `licenseops scheduler` as Open wires it: it registers the enabled
// cleanup policies as periodic tasks.
func TestSchedulerProcess(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
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

	a, err := Open(ctx, cfg, ModeScheduler, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	if a.api != nil || a.worker != nil {
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

// Every mode refuses a database without the schema, saying what to run.
func TestOpenRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
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
	t.Cleanup(func() { _, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, _ := url.Parse(migrated)
	cfg := DefaultConfig()
	cfg.RedisURL = testenv.Redis(t)
	log := slog.New(slog.DiscardHandler)
	for _, mode := range Modes() {
		u.Path = "/" + name
		cfg.DatabaseURL = u.String()
		if a, err := Open(context.Background(), cfg, mode, log); err == nil || !strings.Contains(err.Error(), "licenseops migrate") {
			if a != nil {
				_ = a.Close(context.Background())
			}
			t.Errorf("%s against an unmigrated database: %v; want a refusal that says to run licenseops migrate", mode, err)
		}
		// A database that does not exist at all says the same: migrate creates it.
		u.Path = "/missing_" + name
		cfg.DatabaseURL = u.String()
		if _, err := Open(context.Background(), cfg, mode, log); err == nil || !strings.Contains(err.Error(), "licenseops migrate") {
			t.Errorf("%s against a missing database: %v; want a refusal that says to run licenseops migrate", mode, err)
		}
	}
}
