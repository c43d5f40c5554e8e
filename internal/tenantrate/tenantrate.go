// Package tenantrate paces the writes to each tenant of an external license
// directory across every worker process, through Redis, so that Microsoft
// Graph's write quotas hold however many workers run: each tenant's own
// (per app and tenant), and the app's across all its tenants.
//
// It hands out slots rather than making callers wait for them. A worker
// asks Admit for a user's writes; a slot due soon is taken at once (the
// caller sleeps until it), a later one is reserved for the task under a
// ticket and the task goes back to the queue until then, so that a task
// whose tenant is over its quota does not hold a worker slot that another
// tenant's task could use. Slots are handed out in the order they are
// asked for (GCRA with reservations), so a tenant's tasks come back spaced
// at its pace instead of all at once.
package tenantrate

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys in Redis. A tenant's pace is one key (its theoretical arrival time,
// GCRA's TAT), a reserved slot one key per ticket, the tenants writing
// lately a sorted set, and the pressure Graph reported one key per tenant
// and one for the app. One script reads a tenant's keys with the app's
// (the active tenants, the app's pressure), so in Redis Cluster they must
// share a hash slot: every key has the hash tag {licenseops:directory-writes},
// and one primary of a cluster paces every tenant.
const (
	keyPrefix      = "{licenseops:directory-writes}:"
	ticketPrefix   = "{licenseops:directory-writes}:ticket:"
	activeKey      = "{licenseops:directory-writes}:active"
	pressurePrefix = "{licenseops:directory-writes}:pressure:"
	appPressureKey = "{licenseops:directory-writes}:pressure-app"
	// noTicketKey stands for "no ticket" in the script's keys: an empty
	// key would hash to another slot than the others.
	noTicketKey = "{licenseops:directory-writes}:no-ticket"
)

// Defaults of Config.
const (
	// DefaultHold is the longest a caller is told to sleep for its slot
	// instead of going back to the queue. asynq schedules a retry to the
	// second (it truncates the time), so a task can come back up to a
	// second before its slot: it then sleeps the rest.
	DefaultHold = time.Second
	// DefaultHorizon is how far ahead slots are reserved. Further out, the
	// caller is told to come back later without a reservation, so that a
	// change of pace (more tenants sharing the app's quota, Graph reporting
	// pressure) applies to the tail of a long backlog within this time.
	DefaultHorizon = 30 * time.Second
	// activeWindow is how long a tenant counts as writing after it last
	// asked for a slot, for its share of the app's quota.
	activeWindow = 5 * time.Second
	// ticketSlack keeps a ticket after its slot for a task that comes back
	// late (a busy queue); a ticket nobody redeems expires.
	ticketSlack = 2 * time.Minute
	// pressureTTL is how long a reported pressure slows a tenant down after
	// the last answer that reported it.
	pressureTTL = 10 * time.Second
	// PressureThreshold is the share of its limit above which Graph's
	// x-ms-throttle-limit-percentage slows the pace down.
	PressureThreshold = 0.8
)

// Config configures a Limiter.
type Config struct {
	// PerSecond is each tenant's rate of writes (a fraction is fine), with
	// bursts of up to one second's worth.
	PerSecond float64
	// AppPerSecond is the rate of writes of the app across all tenants;
	// each tenant writing gets an equal share of it when the shares are
	// below PerSecond. 0 means no app-wide limit.
	AppPerSecond float64
	// Hold and Horizon: see DefaultHold and DefaultHorizon.
	Hold, Horizon time.Duration
}

// Limiter paces the writes to each tenant, shared by every process on one
// Redis. It is a msgraph.WriteLimiter (Wait) and the worker's pacer (Admit).
type Limiter struct {
	rdb redis.UniversalClient
	cfg Config
}

// New paces each tenant to perSecond writes (a fraction is fine), with
// bursts of up to one second's worth, and no app-wide limit.
func New(rdb redis.UniversalClient, perSecond float64) (*Limiter, error) {
	return NewWithConfig(rdb, Config{PerSecond: perSecond})
}

// NewWithConfig returns a Limiter for cfg.
func NewWithConfig(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	if !positive(cfg.PerSecond) {
		return nil, fmt.Errorf("tenantrate: rate %v is not a positive number", cfg.PerSecond)
	}
	if cfg.AppPerSecond != 0 && !positive(cfg.AppPerSecond) {
		return nil, fmt.Errorf("tenantrate: app rate %v is not a positive number", cfg.AppPerSecond)
	}
	if cfg.Hold <= 0 {
		cfg.Hold = DefaultHold
	}
	if cfg.Horizon <= 0 {
		cfg.Horizon = DefaultHorizon
	}
	if cfg.Horizon < cfg.Hold {
		return nil, fmt.Errorf("tenantrate: horizon %v is shorter than hold %v", cfg.Horizon, cfg.Hold)
	}
	return &Limiter{rdb: rdb, cfg: cfg}, nil
}

func positive(f float64) bool { return f > 0 && !math.IsInf(f, 0) && !math.IsNaN(f) }

// Admission is Admit's answer.
type Admission struct {
	// Go: the writes may be sent after sleeping Wait (at most Hold).
	// Otherwise the caller should come back after Wait: its slot is
	// reserved under its ticket when Reserved, else (beyond the horizon)
	// it asks again then.
	Go       bool
	Reserved bool
	Wait     time.Duration
}

// admitScript reserves a slot for ARGV[2] writes to a tenant, or redeems
// the slot reserved earlier under the ticket. Times are microseconds of
// Redis's clock, so that hosts whose clocks differ share one timeline.
//
// KEYS: 1 the tenant's TAT, 2 the ticket (noTicketKey for none), 3 the active
// tenants, 4 the tenant's pressure, 5 the app's pressure.
// ARGV: 1 tenant, 2 writes, 3 tenant interval, 4 app interval (0: none),
// 5 burst (writes), 6 hold, 7 horizon, 8 active window, 9 ticket slack,
// 10 pressure threshold, 11 "1" when KEYS[2] is a ticket.
// Returns {state, wait}: state 1 go, 0 reserved, 2 come back later.
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold, horizon = tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[8]))
local hasTicket = ARGV[11] == '1'
if hasTicket then
  local ticket = redis.call('GET', KEYS[2])
  if ticket then
    local wait = tonumber(ticket) - now
    if wait <= hold then
      redis.call('DEL', KEYS[2])
      return {1, math.max(wait, 0)}
    end
    return {0, wait}
  end
end
local interval = tonumber(ARGV[3])
local app = tonumber(ARGV[4])
if app > 0 then
  interval = math.max(interval, app * redis.call('ZCARD', KEYS[3]))
end
local pressure = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'), tonumber(redis.call('GET', KEYS[5]) or '0'))
local threshold = tonumber(ARGV[10])
if pressure > threshold then
  interval = interval * pressure / threshold
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local slot = math.max(now, tat - (tonumber(ARGV[5]) - 1) * interval)
local wait = slot - now
if wait > horizon then
  return {2, wait - horizon}
end
local newTat = tat + interval * tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%d', newTat), 'PX', math.ceil((newTat - now) / 1000) + 1000)
if wait <= hold or not hasTicket then
  return {1, wait}
end
redis.call('SET', KEYS[2], string.format('%d', slot), 'PX', math.ceil((wait + tonumber(ARGV[9])) / 1000))
return {0, wait}
`)

// Admit asks for the slot of writes writes to tenant for the task that
// holds ticket (its task ID: a task that comes back redeems the slot it
// reserved instead of reserving another). An error from Redis is
// returned: the caller's task fails as transient and is retried, rather
// than writing unpaced.
func (l *Limiter) Admit(ctx context.Context, tenantID, ticket string, writes int) (Admission, error) {
	var ticketKey string
	if ticket != "" {
		ticketKey = ticketPrefix + tenantID + ":" + ticket
	}
	return l.admit(ctx, tenantID, ticketKey, writes, l.cfg.Hold, l.cfg.Horizon)
}

func (l *Limiter) admit(ctx context.Context, tenantID, ticketKey string, writes int, hold, horizon time.Duration) (Admission, error) {
	appInterval := int64(0)
	if l.cfg.AppPerSecond > 0 {
		appInterval = micros(l.cfg.AppPerSecond)
	}
	hasTicket := "1"
	if ticketKey == "" {
		ticketKey, hasTicket = noTicketKey, "0"
	}
	res, err := admitScript.Run(ctx, l.rdb,
		[]string{keyPrefix + tenantID, ticketKey, activeKey, pressurePrefix + tenantID, appPressureKey},
		tenantID, max(writes, 1), micros(l.cfg.PerSecond), appInterval, max(1, int(math.Ceil(l.cfg.PerSecond))),
		hold.Microseconds(), horizon.Microseconds(), activeWindow.Microseconds(), ticketSlack.Microseconds(),
		strconv.FormatFloat(PressureThreshold, 'f', -1, 64), hasTicket).Int64Slice()
	if err != nil {
		return Admission{}, fmt.Errorf("tenant write quota (Redis): %w", err)
	}
	wait := time.Duration(res[1]) * time.Microsecond
	return Admission{Go: res[0] == 1, Reserved: res[0] == 0, Wait: max(wait, 0)}, nil
}

// micros is the interval between writes at perSecond, in microseconds.
func micros(perSecond float64) int64 { return int64(math.Round(1e6 / perSecond)) }

// Wait blocks until the tenant may receive one more write, or ctx ends; it
// reserves the write's slot and sleeps until it. An error from Redis is
// returned: the caller's write fails as transient and is retried, rather
// than going out unpaced.
func (l *Limiter) Wait(ctx context.Context, tenantID string) error {
	const forever = 24 * time.Hour
	a, err := l.admit(ctx, tenantID, "", 1, forever, forever)
	if err != nil {
		return err
	}
	if a.Wait <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(a.Wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ReportPressure records the share of its limit that Graph says the app
// has used (x-ms-throttle-limit-percentage, 0.8 to 1.8), for the tenant
// or, when appWide, for every tenant. Above PressureThreshold the pace is
// slowed in proportion (at 1.0, to 80 %) until the answers stop reporting
// it for pressureTTL.
func (l *Limiter) ReportPressure(ctx context.Context, tenantID string, share float64, appWide bool) error {
	if !positive(share) {
		return nil
	}
	key := pressurePrefix + tenantID
	if appWide {
		key = appPressureKey
	}
	if err := l.rdb.Set(ctx, key, strconv.FormatFloat(share, 'f', 3, 64), pressureTTL).Err(); err != nil {
		return fmt.Errorf("tenant write pressure (Redis): %w", err)
	}
	return nil
}
