// Package app wires a licenseops process together: one Postgres pool, one
// Redis client, and the parts a mode runs (the HTTP API, a worker, the
// cleanup scheduler), started and closed in order. The command line, the
// demo, the benchmark and the tests all build processes through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/console"
	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/health"
	"github.com/licenseops/licenseops/internal/redisconf"
	"github.com/licenseops/licenseops/internal/tenantrate"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/provider/msgraph"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// Mode is what a process serves.
type Mode string

// The serving modes.
const (
	ModeAPI       Mode = "api"
	ModeWorker    Mode = "worker"
	ModeScheduler Mode = "scheduler"
	// ModeAll is the api and a worker in one process (small installs).
	ModeAll Mode = "all"
)

// Modes lists the serving modes.
func Modes() []Mode { return []Mode{ModeAPI, ModeWorker, ModeScheduler, ModeAll} }

// serves reports whether a process of mode m runs part p (ModeAPI or ModeWorker).
func (m Mode) serves(p Mode) bool { return m == p || (m == ModeAll && p != ModeScheduler) }

// App is a running licenseops process: api, worker or both, wired to one
// Postgres pool and one Redis client.
type App struct {
	cfg     Config
	log     *slog.Logger
	store   *storage.Store
	rdb     redis.UniversalClient
	intake  *intake.Service // one per process, shared by api and worker
	api     *api.Server
	worker  *worker.Worker
	metrics *http.Server
	// MetricsURL is where the worker's /metrics listens (when it runs).
	MetricsURL string
	// scheduler enqueues the ticks of cleanup policies (mode "scheduler").
	scheduler *worker.Scheduler
}

// Open connects to Postgres and Redis and builds the parts of mode. Start
// starts them; Close stops them.
func Open(ctx context.Context, cfg Config, mode Mode, log *slog.Logger) (*App, error) {
	a := &App{cfg: cfg, log: log}
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL, MaxOpenConns: cfg.DBMaxConns})
	if err != nil {
		return nil, fmt.Errorf("%w (DATABASE_URL=%s)", err, RedactURL(cfg.DatabaseURL))
	}
	a.store = store
	if err := store.CheckMigrated(ctx); err != nil {
		_ = store.Close() // the setup error is the one to report
		return nil, err
	}
	rdb, rconf, err := redisconf.Open(cfg.RedisURL, RedisPoolSize(cfg.Worker.Concurrency))
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	a.rdb = rdb
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		_ = a.close()
		return nil, fmt.Errorf("connect to redis (%s, %s): %w; check that it runs and that REDIS_URL or LICENSEOPS_REDIS_* point to it", rconf.Mode, rconf, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if mode.serves(ModeAPI) || mode.serves(ModeWorker) {
		icfg := cfg.Intake
		icfg.Logger, icfg.Registerer = log, reg
		if a.intake, err = intake.New(icfg, store, a.rdb); err != nil {
			_ = a.close()
			return nil, err
		}
	}
	if mode.serves(ModeAPI) {
		// Queue depth, latency and processed/failed counts, read from Redis at
		// each scrape and served by the api so queue state has one scrape
		// target (asynq's x/metrics collector, with Prometheus-clean names).
		reg.MustRegister(api.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(a.rdb)))
		apiCfg := cfg.API
		apiCfg.Logger, apiCfg.Registry = log, reg
		apiCfg = apiCfg.WithDefaults() // the console shares its buy-more URL and rate limits
		con, err := console.New(console.Config{BuyMoreURL: apiCfg.BuyMoreURL, RateLimitPerSecond: apiCfg.RateLimitPerSecond,
			RateLimitBurst: apiCfg.RateLimitBurst, TrustProxy: cfg.ConsoleTrustProxy, Logger: log}, a.intake, store, a.rdb)
		if err != nil {
			_ = a.close()
			return nil, err
		}
		apiCfg.Console = con.Handler()
		a.api, err = api.New(apiCfg, a.intake, store, a.rdb)
		if err != nil {
			_ = a.close()
			return nil, err
		}
	}
	if mode.serves(ModeWorker) {
		dirs, pacer, err := directories(cfg, log, a.rdb)
		if err != nil {
			_ = a.close()
			return nil, err
		}
		wcfg := cfg.Worker
		wcfg.Directories, wcfg.Logger, wcfg.Registerer, wcfg.Intake = dirs, log, reg, a.intake
		if pacer != nil {
			wcfg.Pacer = pacer
		}
		a.worker, err = worker.New(wcfg, store, a.rdb)
		if err != nil {
			_ = a.close()
			return nil, err
		}
		if mode == ModeWorker {
			a.metrics = &http.Server{Handler: serviceMux(reg, store, a.rdb, cfg.PProf), ReadHeaderTimeout: 5 * time.Second,
				ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
		}
	}
	if mode == ModeScheduler {
		if a.scheduler, err = newScheduler(cfg, store, a.rdb, log); err != nil {
			_ = a.close()
			return nil, err
		}
	}
	return a, nil
}

// RedisPoolSize is the Redis connection pool of a process whose worker
// handles concurrency tasks at once. Handlers hold a connection only for a
// moment; a bounded pool keeps hundreds of concurrent tasks from opening
// hundreds of connections.
func RedisPoolSize(concurrency int) int { return min(max(concurrency/2, 64), 256) }

// directories builds the external license directories. With rdb, writes to
// a tenant are paced across every worker process through Redis
// (LICENSEOPS_GRAPH_RATE per tenant and LICENSEOPS_GRAPH_APP_RATE across
// tenants, not per process) by the worker, which admits each user's change
// before it takes a place in a batch (the returned pacer); without (the
// checker, which only reads), in this process.
func directories(cfg Config, log *slog.Logger, rdb redis.UniversalClient) (map[string]provider.Directory, worker.Pacer, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	creds, err := msgraph.LoadCredentials(getenv)
	if errors.Is(err, msgraph.ErrNoCredentials) {
		log.Info("no Microsoft Graph credentials: customers on directory msgraph will wait until they are configured")
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	gcfg := cfg.Graph.WithPacingDefaults()
	gcfg.Credentials = creds
	var pacer worker.Pacer
	if rdb != nil {
		limiter, err := tenantrate.NewWithConfig(rdb, tenantrate.Config{PerSecond: gcfg.RatePerSecond, AppPerSecond: gcfg.AppRatePerSecond})
		if err != nil {
			return nil, nil, err
		}
		pacer = GraphPacer{limiter}
		gcfg.PacedByCaller = true
		gcfg.OnThrottleLimit = func(tenantID string, share float64, appWide bool) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := limiter.ReportPressure(ctx, tenantID, share, appWide); err != nil {
				log.Warn("could not record Graph's throttle pressure", "tenant_id", tenantID, "error", err)
			}
		}
	}
	client, err := msgraph.New(gcfg)
	if err != nil {
		return nil, nil, err
	}
	log.Info("Microsoft Graph directory configured", "graph", client.String())
	return map[string]provider.Directory{"msgraph": client}, pacer, nil
}

// GraphPacer is the worker's Pacer on a tenantrate.Limiter.
type GraphPacer struct{ Limiter *tenantrate.Limiter }

// Admit implements worker.Pacer.
func (p GraphPacer) Admit(ctx context.Context, tenantID, ticket string, writes int) (worker.Admission, error) {
	a, err := p.Limiter.Admit(ctx, tenantID, ticket, writes)
	return worker.Admission{Go: a.Go, Reserved: a.Reserved, Wait: a.Wait}, err
}

// serviceMux serves /metrics, /healthz and /readyz for a worker process.
func serviceMux(reg *prometheus.Registry, store *storage.Store, rdb redis.UniversalClient, withPProf bool) http.Handler {
	mux := http.NewServeMux()
	if withPProf {
		// Off by default: profiles show internals and cost CPU while taken.
		// The listener is the worker's metrics one (127.0.0.1 by default).
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", health.Live)
	mux.Handle("GET /readyz", health.Ready(store, rdb))
	return mux
}

// Start starts every part of the app.
func (a *App) Start() error {
	if a.api != nil {
		if err := a.api.Open(); err != nil {
			return fmt.Errorf("listen on %s: %w (set --addr or LICENSEOPS_ADDR)", a.cfg.API.Addr, err)
		}
		a.log.Info("api listening", "addr", a.api.Addr())
	}
	if a.metrics != nil {
		ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
		if errors.Is(err, syscall.EADDRINUSE) && !a.cfg.MetricsAddrSet {
			// Another worker on this host has the default port: take any
			// free one rather than refuse to start a second worker.
			host, _, _ := net.SplitHostPort(a.cfg.MetricsAddr)
			if ln, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err == nil {
				a.log.Warn("the default metrics port is taken, probably by another worker on this host; listening on a free port instead (set LICENSEOPS_METRICS_ADDR for a fixed one that Prometheus can scrape)",
					"default", a.cfg.MetricsAddr, "addr", ln.Addr().String())
			}
		}
		if err != nil {
			return fmt.Errorf("worker metrics listener on %s: %w (set --metrics-addr or LICENSEOPS_METRICS_ADDR, :0 for any free port)", a.cfg.MetricsAddr, err)
		}
		a.MetricsURL = "http://" + ln.Addr().String()
		go func() { _ = a.metrics.Serve(ln) }()
		a.log.Info("worker metrics listening", "addr", ln.Addr().String())
	}
	if a.worker != nil {
		if err := a.worker.Start(); err != nil {
			return err
		}
		a.log.Info("worker started", "concurrency", a.cfg.Worker.Concurrency)
	}
	if a.scheduler != nil {
		if err := a.scheduler.Start(); err != nil {
			return fmt.Errorf("start scheduler: %w", err)
		}
		a.log.Info("scheduler started")
	}
	return nil
}

// APIURL is the base URL of the api (when it runs).
func (a *App) APIURL() string { return a.api.URL() }

// Close shuts down in order: HTTP, then the asynq server, then Redis and Postgres.
func (a *App) Close(ctx context.Context) error {
	var errs []error
	if a.api != nil {
		errs = append(errs, a.api.Close(ctx))
	}
	if a.metrics != nil {
		errs = append(errs, a.metrics.Shutdown(ctx))
	}
	if a.worker != nil {
		a.worker.Shutdown()
	}
	if a.scheduler != nil {
		a.scheduler.Shutdown()
	}
	if a.intake != nil {
		errs = append(errs, a.intake.Close(ctx))
	}
	errs = append(errs, a.close())
	return errors.Join(errs...)
}

func (a *App) close() error {
	var errs []error
	if a.rdb != nil {
		errs = append(errs, a.rdb.Close())
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	return errors.Join(errs...)
}

// Run is a serving process's life: open, start, wait for ctx to end, close
// in order within the shutdown timeout.
func Run(ctx context.Context, cfg Config, mode Mode, log *slog.Logger) error {
	app, err := Open(ctx, cfg, mode, log)
	if err != nil {
		return err
	}
	if err := app.Start(); err != nil {
		_ = app.Close(context.Background())
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Worker.ShutdownTimeout+10*time.Second)
	defer cancel()
	return app.Close(shutdownCtx)
}

// Migrate creates the database when it does not exist yet, then migrates
// it to the newest version, which it returns.
func Migrate(ctx context.Context, dbURL string) (int64, error) {
	store, err := storage.Open(ctx, storage.Config{URL: dbURL, MaxOpenConns: 2})
	if errors.Is(err, storage.ErrNoDatabase) {
		if cerr := storage.CreateDatabase(ctx, dbURL); cerr != nil {
			return 0, fmt.Errorf("database does not exist and could not be created: %w", cerr)
		}
		store, err = storage.Open(ctx, storage.Config{URL: dbURL, MaxOpenConns: 2})
	}
	if err != nil {
		return 0, fmt.Errorf("%w (DATABASE_URL=%s)", err, RedactURL(dbURL))
	}
	defer store.Close()
	return store.Migrate(ctx)
}

// RedactURL hides the password of a connection URL in messages.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// QuietRedisLogs routes go-redis's own log lines (pool dial failures,
// printed to stderr by default ahead of licenseops' own message) to the
// default slog logger at debug level: the error they describe reaches the
// caller anyway and is reported there once, with what to do. go-redis keeps
// its logger in a global, so call this once at process start, before any
// Redis client exists.
func QuietRedisLogs() { redis.SetLogger(redisLogger{}) }

type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
