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

	"github.com/licenseops/licenseops/internal/redisconf"
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

// Ready serves /readyz: 200 when Postgres and Redis answer and Redis has a
// primary that takes writes, 503 otherwise. It says how Redis is deployed
// (single, sentinel, cluster), so that a person reading it after a
// failover sees which kind of primary it looked for.
// It also counts the live workers (asynq servers with a heartbeat), which
// does not change the status: an api may start before its workers, but a
// person asking why operations stay queued sees it at once.
func Ready(db Pinger, rdb redis.UniversalClient) http.Handler {
	insp := asynq.NewInspectorFromRedisClient(rdb)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		rep, status := licensing.Readiness{Postgres: "ok", Redis: "ok", RedisMode: string(redisconf.ModeOf(rdb))}, http.StatusOK
		if err := db.Ping(ctx); err != nil {
			rep.Postgres, status = err.Error(), http.StatusServiceUnavailable
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			rep.Redis, status = err.Error(), http.StatusServiceUnavailable
		} else {
			rep.RedisPrimary = "ok"
			if err := redisconf.CheckPrimary(ctx, rdb); err != nil {
				// Redis answers, but writes would fail: not ready.
				rep.RedisPrimary, status = err.Error(), http.StatusServiceUnavailable
			}
			rep.Workers = workers(insp)
		}
		write(w, status, rep)
	})
}

// workers counts the live workers; nil when Redis does not say.
func workers(insp *asynq.Inspector) *licensing.WorkersAlive {
	servers, err := insp.Servers()
	if err != nil {
		return nil
	}
	alive := &licensing.WorkersAlive{Alive: len(servers)}
	for _, s := range servers {
		alive.Concurrency += s.Concurrency
	}
	if len(servers) == 0 {
		alive.Message = "no worker is running: operations are accepted but stay queued until `licenseops worker` runs"
	}
	return alive
}

func write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
