package app

import (
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// newScheduler builds the scheduler of cleanup policies (`licenseops
// scheduler`). LICENSEOPS_SCHEDULER_SYNC_INTERVAL (default 10s) is how often
// it reads the enabled policies again, so a new, edited or disabled policy
// applies without a restart. Several schedulers may run; each tick still
// runs once.
func newScheduler(cfg Config, store *storage.Store, rdb redis.UniversalClient, log *slog.Logger) (*worker.Scheduler, error) {
	scfg := cfg.Scheduler
	scfg.Logger = log
	return worker.NewScheduler(scfg, store, rdb)
}
