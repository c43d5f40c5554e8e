// Package ratelimit caps requests per API token, and sign-in attempts per
// client address, for the JSON API and the console alike. The counters (a
// GCRA per key, go-redis/redis_rate) live in Redis, so every api process
// charges the same budget and adding processes does not multiply it.
package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limiter charges requests to budgets in Redis. A nil *Limiter allows
// everything (limiting turned off).
type Limiter struct {
	limiter *redis_rate.Limiter
	// Token is the budget of each API token, shared by the API and the console.
	Token redis_rate.Limit
	log   *slog.Logger
	// OnError counts checks Redis could not answer (may be nil).
	OnError func()
}

// timeout bounds the Redis round trip, so a slow Redis delays requests by
// at most this much.
const timeout = time.Second

// New returns a limiter with a token budget of perSecond requests and
// bursts of burst, or nil when perSecond is 0 or less.
func New(rdb redis.UniversalClient, perSecond, burst int, log *slog.Logger) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	return &Limiter{
		limiter: redis_rate.NewLimiter(rdb),
		Token:   redis_rate.Limit{Rate: perSecond, Burst: burst, Period: time.Second},
		log:     log,
	}
}

// Decision is the outcome of a charge: allowed, or the whole seconds to
// wait (at least 1, as Retry-After needs: "0" would invite an immediate
// retry that fails again).
type Decision struct {
	Allowed    bool
	RetryAfter int
}

// tokenKey is the Redis key of a token's budget (redis_rate prefixes
// "rate:"). Token IDs never repeat, so a revoked token's key simply expires.
func tokenKey(tokenID int64) string { return "licenseops:token:" + strconv.FormatInt(tokenID, 10) }

// AllowToken charges one request to a token's budget.
func (l *Limiter) AllowToken(ctx context.Context, tokenID int64) Decision {
	if l == nil {
		return Decision{Allowed: true}
	}
	return l.allow(ctx, tokenKey(tokenID), l.Token, "token_id", tokenID)
}

// SignIn is the budget of sign-in attempts from one client address: 30 a
// minute, enough for an office behind one address signing in at nine,
// hopeless for guessing a token (tokens carry 256 random bits), and it
// keeps a script from hammering the token lookup.
var SignIn = redis_rate.Limit{Rate: 30, Burst: 30, Period: time.Minute}

// AllowSignIn charges one sign-in attempt to the client address's budget.
func (l *Limiter) AllowSignIn(ctx context.Context, addr string) Decision {
	if l == nil {
		return Decision{Allowed: true}
	}
	return l.allow(ctx, "licenseops:sign-in:"+addr, SignIn, "client", addr)
}

// allow charges key. When Redis cannot answer, the request is let through:
// the limit protects the service from a runaway client, and refusing every
// request while Redis is briefly away would be the bigger outage.
func (l *Limiter) allow(ctx context.Context, key string, limit redis_rate.Limit, attrs ...any) Decision {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := l.limiter.Allow(ctx, key, limit)
	if err != nil {
		if l.OnError != nil {
			l.OnError()
		}
		l.log.WarnContext(ctx, "rate limit check failed; request let through", append(attrs, "error", err)...)
		return Decision{Allowed: true}
	}
	if res.Allowed > 0 {
		return Decision{Allowed: true}
	}
	return Decision{RetryAfter: RetryAfterSeconds(res.RetryAfter)}
}

// RetryAfterSeconds rounds a wait up to whole seconds, never below 1.
func RetryAfterSeconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }
