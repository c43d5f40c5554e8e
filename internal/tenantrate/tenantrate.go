// Package tenantrate paces the writes to each tenant of an external license
// directory across every worker process, through Redis, so that a tenant's
// write quota (Microsoft Graph's) holds however many workers run. It uses
// go-redis/redis_rate (GCRA), the library behind the api's per-token limit.
package tenantrate

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// keyPrefix names a tenant's budget (redis_rate adds "rate:").
const keyPrefix = "licenseops:directory-writes:"

// Limiter is a msgraph.WriteLimiter shared by every process on one Redis.
type Limiter struct {
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
}

// New paces each tenant to perSecond writes (a fraction is fine), with
// bursts of up to one second's worth.
func New(rdb redis.UniversalClient, perSecond float64) (*Limiter, error) {
	if perSecond <= 0 || math.IsInf(perSecond, 0) || math.IsNaN(perSecond) {
		return nil, fmt.Errorf("tenantrate: rate %v is not a positive number", perSecond)
	}
	// GCRA spaces requests by Period/Rate, so a fractional rate is exact
	// as hundredths over 100 s.
	rate := max(1, int(math.Round(perSecond*100)))
	return &Limiter{
		limiter: redis_rate.NewLimiter(rdb),
		limit:   redis_rate.Limit{Rate: rate, Period: 100 * time.Second, Burst: max(1, int(math.Ceil(perSecond)))},
	}, nil
}

// Wait blocks until the tenant may receive one more write, or ctx ends. An
// error from Redis is returned: the caller's write fails as transient and is
// retried, rather than going out unpaced.
func (l *Limiter) Wait(ctx context.Context, tenantID string) error {
	for {
		res, err := l.limiter.Allow(ctx, keyPrefix+tenantID, l.limit)
		if err != nil {
			return fmt.Errorf("tenant write quota (Redis): %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		t := time.NewTimer(res.RetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
