// Package graphsim simulates the parts of Microsoft Graph and Microsoft
// Entra ID's token endpoint that licenseops uses, for many tenants in memory:
// client credentials tokens bound to a tenant, assignLicense with Graph's
// all-or-nothing rules and error bodies, users with $select, $top and
// @odata.nextLink paging, PATCH usageLocation, and subscribedSkus with seat
// counts that move as licenses are assigned.
//
// Knobs (Config) add latency, throttling with Retry-After, 5xx answers,
// calls that never answer, and a per-tenant write quota like Graph's, with
// seedable randomness, so tests and benchmarks can put the msgraph client
// and the worker through a storm and then compare the directory (Tenant)
// with Postgres.
//
// Routes, relative to the simulator's root URL:
//
//	POST  /{tenant}/oauth2/v2.0/token        client_credentials grant
//	POST  /v1.0/users/{id}/assignLicense
//	GET   /v1.0/users/{id}                   $select
//	GET   /v1.0/users/{id}/licenseDetails    service plans of each license, "Disabled" when off
//	PATCH /v1.0/users/{id}                   usageLocation, accountEnabled, displayName
//	GET   /v1.0/users                        $select, $top (default 100, max 999), $skiptoken
//	GET   /v1.0/subscribedSkus
//	GET|PUT /_sim/config, GET /_sim/stats, GET /_sim/tenants/{id},
//	POST /_sim/seed, POST /_sim/expire-tokens   (no authentication)
package graphsim

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// GraphURL returns the Graph base URL (msgraph.Config.BaseURL) of a
// simulator served at root.
func GraphURL(root string) string { return root + "/v1.0" }

// TokenURL returns the token URL template (msgraph.Config.TokenURL) of a
// simulator served at root.
func TokenURL(root string) string { return root + "/{tenant}/oauth2/v2.0/token" }

// Simulator is the simulated Graph, an http.Handler. It is safe for
// concurrent use; its state lives as long as it does.
type Simulator struct {
	mux *http.ServeMux

	mu      sync.RWMutex // guards cfg and the tenants map (each tenant has its own lock)
	cfg     Config
	tenants map[string]*tenant

	rngMu sync.Mutex
	rng   *rand.Rand

	tokens tokenStore
	stats  counters

	appsMu sync.Mutex
	apps   map[string]*appQuota // by client ID

	closed    chan struct{} // releases hanging calls
	closeOnce sync.Once
}

// New returns a simulator with cfg's knobs and no tenants. It panics on an
// invalid cfg (ratios out of range), which is a bug in the caller.
func New(cfg Config) *Simulator {
	s := &Simulator{tenants: make(map[string]*tenant), closed: make(chan struct{})}
	s.tokens.byToken = make(map[string]tokenEntry)
	if err := s.SetConfig(cfg); err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.handleToken)
	assign := s.graph(true, handleAssignLicense)
	mux.HandleFunc("POST /v1.0/users/{id}/assignLicense", func(w http.ResponseWriter, r *http.Request) {
		s.stats.assignLicense.Add(1)
		assign(w, r)
	})
	mux.HandleFunc("GET /v1.0/users/{id}", s.graph(false, handleGetUser))
	mux.HandleFunc("GET /v1.0/users/{id}/licenseDetails", s.graph(false, handleLicenseDetails))
	mux.HandleFunc("PATCH /v1.0/users/{id}", s.graph(true, handlePatchUser))
	mux.HandleFunc("GET /v1.0/users", s.graph(false, handleListUsers))
	mux.HandleFunc("GET /v1.0/subscribedSkus", s.graph(false, handleSubscribedSKUs))
	mux.HandleFunc("POST /v1.0/directoryObjects/getByIds", s.graph(false, handleGetByIDs))
	s.adminRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeGraphError(w, http.StatusNotFound, "Request_UnsupportedQuery", "The simulator does not serve "+r.Method+" "+r.URL.Path+".")
	})
	s.mux = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close releases calls hanging in a simulated timeout, so that the HTTP
// server serving the simulator can shut down at once.
func (s *Simulator) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

// Config returns the current knobs.
func (s *Simulator) Config() Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg
}

// SetConfig replaces the knobs (defaults applied) and restarts the random
// sequence from cfg.RandSeed.
func (s *Simulator) SetConfig(cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	s.rngMu.Lock()
	s.rng = rand.New(rand.NewPCG(cfg.RandSeed, cfg.RandSeed^0x9e3779b97f4a7c15)) // #nosec G404 -- fault draws must repeat from a seed; nothing secret comes from them
	s.rngMu.Unlock()
	return nil
}

// ExpireTokens makes every issued access token invalid, as a key rollover
// in Entra ID does; callers must fetch new ones.
func (s *Simulator) ExpireTokens() { s.tokens.expireAll() }

// graphHandler serves one Graph endpoint for an authenticated tenant.
type graphHandler func(w http.ResponseWriter, r *http.Request, t *tenant)

type fault int

const (
	noFault fault = iota
	faultThrottle
	faultError
	faultTimeout
)

// graph wraps a Graph endpoint: counts the call, checks the bearer token,
// waits the latency, injects the drawn fault, enforces the write quota.
func (s *Simulator) graph(write bool, h graphHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.stats.requests.Add(1)
		s.stats.enter()
		defer s.stats.leave()
		sw := &statusWriter{ResponseWriter: w}
		defer func() { s.stats.count(sw.status) }()

		t, ok := s.authenticate(sw, r)
		if !ok {
			return
		}
		cfg := s.Config()
		f, delay, err503 := s.draw(cfg)
		if !s.wait(r.Context(), delay) {
			return // the client gave up
		}
		switch f {
		case faultThrottle:
			s.stats.throttled.Add(1)
			writeThrottled(sw, cfg.RetryAfter, "Too many requests. Please retry again later.")
			return
		case faultError:
			s.stats.serverErrors.Add(1)
			if err503 {
				sw.Header().Set("Retry-After", retryAfterSeconds(cfg.RetryAfter))
				writeGraphError(sw, http.StatusServiceUnavailable, "serviceNotAvailable", "Service unavailable.")
			} else {
				writeGraphError(sw, http.StatusInternalServerError, "generalException", "An unexpected error occurred.")
			}
			return
		case faultTimeout:
			s.stats.timeouts.Add(1)
			h(discardWriter{header: make(http.Header)}, r, t)
			s.hang(r.Context(), cfg.HangFor)
			writeGraphError(sw, http.StatusGatewayTimeout, "UnknownError", "The request timed out.")
			return
		}
		if write && !s.takeWrite(sw, cfg, t, time.Now()) {
			return
		}
		h(sw, r, t)
	}
}

// takeWrite spends a write of the tenant's and the app's quotas, or
// answers 429 naming the quota exceeded (x-ms-throttle-scope) and returns
// false. Above 0.8 of either quota used over the last second, the answer
// carries x-ms-throttle-limit-percentage, as Graph's identity service's do.
func (s *Simulator) takeWrite(w http.ResponseWriter, cfg Config, t *tenant, now time.Time) bool {
	app := s.app(t.clientID)
	scope := func(kind string) string { return kind + "/Write/" + t.clientID + "/" + t.id }
	d, ok, refund := t.takeWrite(cfg.WriteQuotaPerSecond, now)
	if !ok {
		s.refuseWrite(w, scope("Tenant_Application"), t.writeShare(cfg.WriteQuotaPerSecond, now, false), d,
			"Too many requests. The tenant's write quota is exceeded.")
		return false
	}
	if d, ok := app.take(cfg.AppWriteQuotaPerSecond, now); !ok {
		refund() // nothing was written to the tenant
		s.refuseWrite(w, scope("Application"), app.writeShare(cfg.AppWriteQuotaPerSecond, now, false), d,
			"Too many requests. The application's write quota is exceeded.")
		return false
	}
	share := max(t.writeShare(cfg.WriteQuotaPerSecond, now, true), app.writeShare(cfg.AppWriteQuotaPerSecond, now, true))
	if share > 0.8 {
		s.stats.limitWarnings.Add(1)
		setLimitPercentage(w, share)
	}
	return true
}

// refuseWrite answers a write over a quota as Graph does: 429 with the
// quota's scope, the share of it used and when to come back.
func (s *Simulator) refuseWrite(w http.ResponseWriter, scope string, share float64, wait time.Duration, message string) {
	s.stats.quotaExceeded.Add(1)
	w.Header().Set("x-ms-throttle-scope", scope)
	w.Header().Set("x-ms-throttle-information", "WriteLimitExceeded")
	setLimitPercentage(w, max(share, 1))
	writeThrottled(w, wait, message)
}

// setLimitPercentage sets x-ms-throttle-limit-percentage: Graph sends the
// share of the limit used, 0.8 to 1.8.
func setLimitPercentage(w http.ResponseWriter, share float64) {
	w.Header().Set("x-ms-throttle-limit-percentage", strconv.FormatFloat(min(share, 1.8), 'f', 2, 64))
}

// draw picks this call's fault and latency from the seeded source.
func (s *Simulator) draw(cfg Config) (f fault, delay time.Duration, err503 bool) {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	delay = cfg.Latency
	if cfg.Jitter > 0 {
		delay += time.Duration(s.rng.Int64N(int64(cfg.Jitter) + 1))
	}
	switch u := s.rng.Float64(); {
	case u < cfg.ThrottleRatio:
		f = faultThrottle
	case u < cfg.ThrottleRatio+cfg.ErrorRatio:
		f, err503 = faultError, s.rng.IntN(2) == 0
	case u < cfg.ThrottleRatio+cfg.ErrorRatio+cfg.TimeoutRatio:
		f = faultTimeout
	}
	return f, delay, err503
}

// wait sleeps d unless the client leaves first; it reports whether to go on.
func (s *Simulator) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

func (s *Simulator) hang(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.closed:
	}
}

// Stats are the simulator's call counters, for tests to check what the
// client met. Graph calls are counted once in Requests and once by outcome.
type Stats struct {
	Requests      int64 `json:"requests"`       // Graph calls
	Succeeded     int64 `json:"succeeded"`      // 2xx
	BadRequests   int64 `json:"bad_requests"`   // 400: refused changes and invalid calls
	NotFound      int64 `json:"not_found"`      // 404
	Unauthorized  int64 `json:"unauthorized"`   // 401: missing, unknown or expired token
	Throttled     int64 `json:"throttled"`      // 429 drawn by ThrottleRatio
	QuotaExceeded int64 `json:"quota_exceeded"` // 429 beyond WriteQuotaPerSecond or AppWriteQuotaPerSecond
	// LimitWarnings are the writes answered with x-ms-throttle-limit-percentage.
	LimitWarnings int64 `json:"limit_warnings"`
	ServerErrors  int64 `json:"server_errors"`  // 500 and 503 drawn by ErrorRatio
	Timeouts      int64 `json:"timeouts"`       // calls left unanswered by TimeoutRatio
	Tokens        int64 `json:"tokens"`         // access tokens issued
	TokenFailures int64 `json:"token_failures"` // refused token requests
	PeakInFlight  int64 `json:"peak_in_flight"` // most Graph calls in progress at once
	// AssignLicense counts the assignLicense calls, whatever their answer,
	// so that a test can tell that a change was refused without calling.
	AssignLicense int64 `json:"assign_license"`
}

// Stats returns the counters so far.
func (s *Simulator) Stats() Stats { return s.stats.snapshot() }

type counters struct {
	requests, succeeded, badRequests, notFound, unauthorized atomic.Int64
	throttled, quotaExceeded, serverErrors, timeouts         atomic.Int64
	tokens, tokenFailures, inFlight, peakInFlight            atomic.Int64
	limitWarnings, assignLicense                             atomic.Int64
}

func (c *counters) enter() {
	n := c.inFlight.Add(1)
	for p := c.peakInFlight.Load(); n > p && !c.peakInFlight.CompareAndSwap(p, n); p = c.peakInFlight.Load() {
	}
}

func (c *counters) leave() { c.inFlight.Add(-1) }

// count counts a finished call by the status it answered (faults are
// counted where they are injected).
func (c *counters) count(status int) {
	switch {
	case status >= 200 && status < 300:
		c.succeeded.Add(1)
	case status == http.StatusBadRequest:
		c.badRequests.Add(1)
	case status == http.StatusNotFound:
		c.notFound.Add(1)
	case status == http.StatusUnauthorized:
		c.unauthorized.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		Requests: c.requests.Load(), Succeeded: c.succeeded.Load(), BadRequests: c.badRequests.Load(),
		NotFound: c.notFound.Load(), Unauthorized: c.unauthorized.Load(), Throttled: c.throttled.Load(),
		QuotaExceeded: c.quotaExceeded.Load(), LimitWarnings: c.limitWarnings.Load(), ServerErrors: c.serverErrors.Load(), Timeouts: c.timeouts.Load(),
		Tokens: c.tokens.Load(), TokenFailures: c.tokenFailures.Load(), PeakInFlight: c.peakInFlight.Load(),
		AssignLicense: c.assignLicense.Load(),
	}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// discardWriter swallows the answer of a call that is made to time out.
type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// writeGraphError writes Graph's error body.
func writeGraphError(w http.ResponseWriter, status int, code, message string) {
	now := time.Now().UTC()
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": message,
		"innerError": map[string]string{"date": now.Format("2006-01-02T15:04:05"), "request-id": requestID(now)},
	}})
}

// writeThrottled writes Graph's 429, Retry-After in whole seconds.
func writeThrottled(w http.ResponseWriter, after time.Duration, message string) {
	w.Header().Set("Retry-After", retryAfterSeconds(after))
	writeGraphError(w, http.StatusTooManyRequests, "TooManyRequests", message)
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var requestSeq atomic.Int64

// requestID is unique per answer, like Graph's request-id, for logs.
func requestID(now time.Time) string {
	return strconv.FormatInt(now.UnixNano(), 36) + "-" + strconv.FormatInt(requestSeq.Add(1), 36)
}
