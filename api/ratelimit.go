package api

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/licensing"
)

// rateLimiter caps the requests of each token. The counters (a GCRA, one
// key per token) live in Redis, so every api process charges the same
// budget and adding processes does not multiply what a token may do.
type rateLimiter struct {
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	log     *slog.Logger
	errors  prometheus.Counter
}

// rateLimitTimeout bounds the Redis round trip, so a slow Redis delays
// requests by at most this much.
const rateLimitTimeout = time.Second

func newRateLimiter(rdb redis.UniversalClient, perSecond, burst int, log *slog.Logger, errors prometheus.Counter) *rateLimiter {
	return &rateLimiter{
		limiter: redis_rate.NewLimiter(rdb),
		limit:   redis_rate.Limit{Rate: perSecond, Burst: burst, Period: time.Second},
		log:     log,
		errors:  errors,
	}
}

// rateLimitKey is the Redis key of a token's budget (redis_rate prefixes
// "rate:"). Token IDs never repeat, so a revoked token's key simply expires.
func rateLimitKey(tokenID int64) string {
	return "licenseops:token:" + strconv.FormatInt(tokenID, 10)
}

// allow charges one request to p's token. Over the limit it sets
// Retry-After and returns RateLimited. When Redis cannot answer, the request
// is let through: the limit protects the service from a runaway client,
// and refusing every request while Redis is briefly away would be the
// bigger outage. A nil limiter allows everything.
func (l *rateLimiter) allow(ctx context.Context, w http.ResponseWriter, p *licensing.Principal) error {
	if l == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, rateLimitTimeout)
	defer cancel()
	res, err := l.limiter.Allow(ctx, rateLimitKey(p.TokenID), l.limit)
	if err != nil {
		l.errors.Inc()
		l.log.WarnContext(ctx, "rate limit check failed; request let through", "token_id", p.TokenID, "error", err)
		return nil
	}
	if res.Allowed > 0 {
		return nil
	}
	wait := retryAfterSeconds(res.RetryAfter)
	w.Header().Set("Retry-After", strconv.Itoa(wait))
	e := licensing.Errorf(licensing.CodeRateLimited,
		"token %q is over its rate limit of %d requests per second (bursts of %d); retry after %d s, and spread requests out or use fewer, larger ones",
		p.TokenName, l.limit.Rate, l.limit.Burst, wait)
	e.Details = map[string]int{"retry_after_seconds": wait}
	return e
}

// retryAfterSeconds rounds a wait up to whole seconds, as Retry-After needs,
// and never below 1: "0" would invite an immediate retry that fails again.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
