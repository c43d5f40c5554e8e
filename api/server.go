// Package api is licenseops' HTTP interface: every route in one table with
// the permission it needs, strict JSON in and the contract's error body out.
// It writes to Postgres and enqueues tasks; it never processes them.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/licenseops/licenseops/internal/ratelimit"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/health"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// Config configures the API server.
type Config struct {
	// Addr is the listen address; ":0" picks a free port (tests).
	Addr string
	// BuyMoreURL is the template of buy_more_url with {customer_id} and {sku_id}.
	BuyMoreURL string
	// RateLimitPerSecond is how many requests a token may make per second,
	// counted in Redis so that every api process shares one budget per
	// token. 0 means the default, 50, so that a Config that does not
	// mention limits still has one; a negative value turns limiting off.
	RateLimitPerSecond int
	// RateLimitBurst is how many requests a token may make at once after
	// being idle; 0 means twice RateLimitPerSecond.
	RateLimitBurst int
	// PruneInterval is how often expired idempotency keys are deleted; 0
	// means every 10 minutes, a negative value never.
	PruneInterval time.Duration
	// Logger receives the server's logs; only internal errors are errors.
	Logger *slog.Logger
	// Registry is where the API's metrics are registered and served from.
	Registry *prometheus.Registry
	// WebhookAllowHTTP lets webhooks use plain http to any host, not only
	// to loopback ones (test setups whose receivers have no certificate).
	WebhookAllowHTTP bool
	// Console, when set, serves the web console under /console/ (and "/"
	// as a redirect to it) beside the API in the same process.
	Console http.Handler
}

// WithDefaults returns the config with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.BuyMoreURL == "" {
		c.BuyMoreURL = "https://partner.example.com/customers/{customer_id}/subscriptions/{sku_id}/buy-more"
	}
	if c.RateLimitPerSecond == 0 {
		c.RateLimitPerSecond = 50
	}
	if c.RateLimitBurst <= 0 {
		c.RateLimitBurst = 2 * max(c.RateLimitPerSecond, 0)
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	return c
}

// Server serves the licenseops HTTP API.
type Server struct {
	cfg      Config
	intake   *intake.Service
	store    *storage.Store
	rdb      redis.UniversalClient
	client   *asynq.Client // enqueues directory syncs
	log      *slog.Logger
	http     *http.Server
	listener net.Listener
	metrics  *metrics
	limiter  *ratelimit.Limiter // nil when rate limiting is off
	pruner   *pruner            // nil when pruning is off
}

// New builds the server. Open starts listening. Operations are created by
// svc, which the process may share with a worker; closing it is the
// caller's job, after the server's.
func New(cfg Config, svc *intake.Service, store *storage.Store, rdb redis.UniversalClient) (*Server, error) {
	cfg = cfg.WithDefaults()
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, intake: svc, store: store, rdb: rdb, log: cfg.Logger, metrics: m,
		client: asynq.NewClientFromRedisClient(rdb)}
	if s.limiter = ratelimit.New(rdb, cfg.RateLimitPerSecond, cfg.RateLimitBurst, cfg.Logger); s.limiter != nil {
		s.limiter.OnError = m.rateLimitErrors.Inc
	}
	if cfg.PruneInterval > 0 {
		s.pruner = &pruner{store: store, interval: cfg.PruneInterval, log: cfg.Logger}
	}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Open starts listening and serving in the background.
func (s *Server) Open() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.listener = ln
	if s.pruner != nil {
		s.pruner.start()
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "error", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on (after Open).
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the base URL of the server (after Open).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops accepting requests and lets running ones finish. The
// enqueues of the operations they created run on in the intake service
// until it is closed.
func (s *Server) Close(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if s.pruner != nil {
		s.pruner.stop()
	}
	return err
}

// permission is what a route needs; roles grant permissions (the roles
// table of the API reference, docs/api.md).
type permission int

const (
	permNone    permission = iota // service endpoints, no token
	permRead                      // read everything of the partner
	permOperate                   // create license operations
	permUsers                     // usage locations, user import
	permSales                     // customers, seat totals
	permCatalog                   // products, cleanup policies, webhooks
	permAudit                     // read the audit log
)

var permissionNames = map[permission]string{
	permRead: "read", permOperate: "create license operations", permUsers: "manage users",
	permSales: "manage customers and seats", permCatalog: "define products or manage cleanup policies and webhooks",
	permAudit: "read the audit log",
}

// rolePermissions is the permission table of the contract. The audit log shows
// every partner user's changes, so only the two admin roles may read it.
var rolePermissions = map[string][]permission{
	licensing.RoleGlobalAdmin:         {permRead, permOperate, permUsers, permSales, permCatalog, permAudit},
	licensing.RoleAdminAgent:          {permRead, permOperate, permUsers, permSales, permCatalog, permAudit},
	licensing.RoleUserManagementAdmin: {permRead, permOperate, permUsers},
	licensing.RoleHelpdeskAgent:       {permRead, permOperate},
	licensing.RoleSalesAgent:          {permRead, permOperate, permSales},
	licensing.RoleReader:              {permRead},
}

func rolesWith(p permission) []string {
	var out []string
	for _, role := range licensing.Roles() {
		for _, q := range rolePermissions[role] {
			if q == p {
				out = append(out, role)
			}
		}
	}
	return out
}

func allowed(role string, p permission) bool {
	for _, q := range rolePermissions[role] {
		if q == p {
			return true
		}
	}
	return false
}

// handlerFunc is an authenticated handler; a returned error becomes the
// contract's error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error

type route struct {
	pattern string
	perm    permission
	handle  handlerFunc
}

// routes is every endpoint of the API with the permission it needs.
func (s *Server) routes() []route {
	return []route{
		{"PUT /v1/products/{sku_id}", permCatalog, s.putProduct},
		{"GET /v1/products", permRead, s.listProducts},
		{"POST /v1/customers", permSales, s.createCustomer},
		{"GET /v1/customers", permRead, s.listCustomers},
		{"GET /v1/customers/{cid}", permRead, s.getCustomer},
		{"PATCH /v1/customers/{cid}", permSales, s.patchCustomer},
		{"POST /v1/customers/{cid}/users/import", permUsers, s.importUsers},
		{"POST /v1/customers/{cid}/sync", permUsers, s.syncCustomer},
		{"GET /v1/customers/{cid}/users", permRead, s.listUsers},
		{"GET /v1/customers/{cid}/users/{uid}", permRead, s.getUser},
		{"PATCH /v1/customers/{cid}/users/{uid}", permUsers, s.patchUser},
		{"PUT /v1/customers/{cid}/subscriptions/{sku_id}", permSales, s.putSubscription},
		{"GET /v1/customers/{cid}/subscriptions", permRead, s.listSubscriptions},
		{"POST /v1/customers/{cid}/license-summary", permRead, s.licenseSummary},
		{"POST /v1/customers/{cid}/license-operations", permOperate, s.createOperation},
		{"GET /v1/customers/{cid}/operations", permRead, s.listOperations},
		{"GET /v1/operations/{oid}", permRead, s.getOperation},
		{"GET /v1/operations/{oid}/report", permRead, s.getReport},
		{"POST /v1/operations/{oid}/cancel", permOperate, s.cancelOperation},
		{"POST /v1/operations/{oid}/undo", permOperate, s.undoOperation},
		{"POST /v1/customers/{cid}/cleanup-policies", permCatalog, s.createCleanupPolicy},
		{"GET /v1/customers/{cid}/cleanup-policies", permRead, s.listCleanupPolicies},
		{"GET /v1/customers/{cid}/cleanup-policies/{pid}", permRead, s.getCleanupPolicy},
		{"PATCH /v1/customers/{cid}/cleanup-policies/{pid}", permCatalog, s.patchCleanupPolicy},
		{"DELETE /v1/customers/{cid}/cleanup-policies/{pid}", permCatalog, s.deleteCleanupPolicy},
		{"POST /v1/customers/{cid}/cleanup-policies/{pid}/run", permCatalog, s.runCleanupPolicy},
		{"GET /v1/customers/{cid}/cleanup-policies/{pid}/runs", permRead, s.listCleanupRuns},
		{"POST /v1/webhooks", permCatalog, s.createWebhook},
		{"GET /v1/webhooks", permRead, s.listWebhooks},
		{"GET /v1/webhooks/{wid}", permRead, s.getWebhook},
		{"DELETE /v1/webhooks/{wid}", permCatalog, s.deleteWebhook},
		{"GET /v1/webhooks/{wid}/deliveries", permRead, s.listWebhookDeliveries},
		{"GET /v1/audit", permAudit, s.listAudit},
	}
}

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.instrument(rt.pattern, s.authorize(rt)))
	}
	mux.Handle("GET /healthz", s.instrument("GET /healthz", http.HandlerFunc(health.Live)))
	mux.Handle("GET /readyz", s.instrument("GET /readyz", health.Ready(s.store, s.rdb)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	if s.cfg.Console != nil {
		mux.Handle("/console/", s.instrument("/console/", s.cfg.Console))
		mux.Handle("GET /{$}", s.instrument("GET /", s.cfg.Console))
	}
	// No catch-all "/": it would match every path with every method and
	// hide the ServeMux's own 405. Requests that no pattern matches go to
	// unmatched instead, which answers in the contract's error body.
	unmatched := s.instrument("unmatched", s.unmatched(mux))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			unmatched.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// unmatched answers a request that no route's pattern matches. The ServeMux
// already knows which: a path that some pattern matches with another method
// is a 405 with an Allow header listing those methods, any other path a 404.
// Its handler for the request is run against a probe to learn which, and its
// plain-text answer is replaced by the contract's error body. Anything else
// it answers (a redirect to the cleaned path) goes out as it is.
func (s *Server) unmatched(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _ := mux.Handler(r)
		probe := &probeWriter{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			allow := probe.header.Get("Allow")
			w.Header().Set("Allow", allow)
			s.writeError(w, r, licensing.Errorf(licensing.CodeMethodNotAllowed,
				"method %s is not allowed on %s; use %s (see the API reference, docs/api.md)", r.Method, r.URL.Path, allow))
		case http.StatusNotFound:
			s.writeError(w, r, licensing.Errorf(licensing.CodeNotFound, "no endpoint %s %s; see the API reference, docs/api.md", r.Method, r.URL.Path))
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// probeWriter records the status and headers of an answer and drops its body.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

func (p *probeWriter) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

// authorize authenticates the bearer token, charges the request to the
// token's rate limit and checks the route's permission. Forbidden requests
// are charged too: a token hammering a route it may not use still costs a
// database lookup each time.
func (s *Server) authorize(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		secret, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || secret == "" {
			s.writeError(w, r, licensing.Errorf(licensing.CodeUnauthenticated,
				"send a token as `Authorization: Bearer <token>`; create one with `licenseops token create`"))
			return
		}
		p, err := s.store.Authenticate(r.Context(), secret)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if p == nil {
			s.writeError(w, r, licensing.Errorf(licensing.CodeUnauthenticated, "the token is unknown or revoked; ask an administrator for a new one"))
			return
		}
		if err := s.allowToken(r.Context(), w, p); err != nil {
			s.writeError(w, r, err)
			return
		}
		if !allowed(p.Role, rt.perm) {
			s.writeError(w, r, licensing.Errorf(licensing.CodeForbidden,
				"your role %s may not %s; this needs one of the roles %s", p.Role, permissionNames[rt.perm], strings.Join(rolesWith(rt.perm), ", ")))
			return
		}
		if err := rt.handle(w, r, p); err != nil {
			s.writeError(w, r, err)
		}
	})
}
