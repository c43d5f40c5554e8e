package app

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// /readyz says whether a worker is alive: an api alone accepts operations
// that would stay queued, and the person asking why sees it there.
func TestReadyzCountsWorkers(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
	cfg.RedisURL = testenv.Redis(t)
	cfg.API.Addr = "127.0.0.1:0"
	for _, c := range []struct {
		mode  Mode
		alive int
	}{{ModeAPI, 0}, {ModeAll, 1}} {
		a, err := Open(context.Background(), cfg, c.mode, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		// A worker's first heartbeat reaches Redis a moment after Start:
		// ask again until the count is what it should be, or 30 s passed.
		var rep licensing.Readiness
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			rep, err = client.New(a.APIURL(), "").Readyz(context.Background())
			if err != nil || (rep.Workers != nil && rep.Workers.Alive == c.alive) || time.Now().After(deadline) {
				break
			}
		}
		_ = a.Close(context.Background())
		if err != nil {
			t.Fatalf("%s: /readyz: %v", c.mode, err)
		}
		if rep.Postgres != "ok" || rep.Redis != "ok" || rep.RedisMode != "single" || rep.RedisPrimary != "ok" || rep.Workers == nil || rep.Workers.Alive != c.alive {
			t.Errorf("%s: /readyz %+v (workers %+v), want postgres, redis and its primary ok, mode single and %d workers alive", c.mode, rep, rep.Workers, c.alive)
		}
		if (rep.Workers.Message != "") != (c.alive == 0) {
			t.Errorf("%s: workers message %q with %d alive", c.mode, rep.Workers.Message, rep.Workers.Alive)
		}
	}
}
