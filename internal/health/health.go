// Package health serves /healthz and /readyz for every licenseops process,
// so that the api and a worker's metrics listener answer the same way.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/licensing"
)

// Pinger is a dependency that answers when it is reachable (Postgres).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Live serves /healthz: the process is up.
func Live(w http.ResponseWriter, _ *http.Request) {
	write(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Ready serves /readyz: 200 when Postgres and Redis answer, 503 otherwise.
// It also counts the live workers (asynq servers with a heartbeat), which
// does not change the status: an api may start before its workers, but a
// person asking why operations stay queued sees it at once.
func Ready(db Pinger, rdb redis.UniversalClient) http.Handler {
	insp := asynq.NewInspectorFromRedisClient(rdb)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		rep, status := licensing.Readiness{Postgres: "ok", Redis: "ok"}, http.StatusOK
		if err := db.Ping(ctx); err != nil {
			rep.Postgres, status = err.Error(), http.StatusServiceUnavailable
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			rep.Redis, status = err.Error(), http.StatusServiceUnavailable
		} else if servers, err := insp.Servers(); err == nil {
			rep.Workers = &licensing.WorkersAlive{Alive: len(servers)}
			for _, s := range servers {
				rep.Workers.Concurrency += s.Concurrency
			}
			if len(servers) == 0 {
				rep.Workers.Message = "no worker is running: operations are accepted but stay queued until `licenseops worker` runs"
			}
		}
		write(w, status, rep)
	})
}

func write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
