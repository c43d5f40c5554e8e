package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"golang.org/x/term"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/redisconf"
	"github.com/licenseops/licenseops/provider/msgraph"
	"github.com/licenseops/licenseops/worker"
)

// Config is everything a licenseops process is configured with. Only this
// package reads configuration (the environment and the serving flags); the
// other packages receive their part of it. Every tunable's default is stated
// once, in the WithDefaults of the package that uses it; DefaultConfig
// collects them.
type Config struct {
	DatabaseURL string
	// RedisURL is Redis of any mode (internal/redisconf): REDIS_URL, or
	// the URL LICENSEOPS_REDIS_SENTINELS or _CLUSTER and the other
	// LICENSEOPS_REDIS_ settings make.
	RedisURL string
	// DBMaxConns bounds the Postgres pool of the process.
	DBMaxConns int
	// MetricsAddr is where a worker serves /metrics, /healthz and /readyz.
	MetricsAddr string
	// MetricsAddrSet is true when the operator chose MetricsAddr (flag or
	// environment); the default falls back to a free port when taken.
	MetricsAddrSet bool
	// PProf serves net/http/pprof on a worker's metrics listener.
	PProf     bool
	LogFormat string
	LogLevel  string

	// API is the HTTP API's part (listen address, buy-more URL, rate limit).
	API api.Config
	// ConsoleTrustProxy marks the web console's session cookies Secure
	// when a proxy in front says the request came over HTTPS
	// (X-Forwarded-Proto); the console takes the rest from API.
	ConsoleTrustProxy bool
	// Intake is the part of operation intake, shared by the api and the
	// worker's cleanup runs (queue threshold, limits, enqueue parallelism).
	Intake intake.Config
	// Worker is the worker's part (concurrency, sweeps, shutdown).
	Worker worker.Config
	// Scheduler is the cleanup scheduler's part.
	Scheduler worker.SchedulerConfig
	// Graph is Microsoft Graph's part (customers with directory kind
	// msgraph); its zero fields take msgraph's defaults. Credentials are
	// read by msgraph.LoadCredentials through Getenv, never copied here.
	Graph msgraph.Config
	// Getenv reads secrets that are never copied into Config (Graph
	// credentials); nil means os.Getenv. The demo injects its own.
	Getenv func(string) string
}

// Defaults of the connection settings.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/licenseops?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	DefaultMetricsAddr = "127.0.0.1:9091"
	defaultDBMaxConns  = 20
)

// DefaultConfig is the configuration of a process given no settings: each
// package's own defaults.
func DefaultConfig() Config {
	apiCfg := api.Config{}.WithDefaults()
	apiCfg.Logger, apiCfg.Registry = nil, nil
	// The burst follows the rate unless it is set (RateLimitBurst 0 means
	// twice the rate), so it is left to the api to derive.
	apiCfg.RateLimitBurst = 0
	in := intake.Config{}.WithDefaults()
	in.Logger, in.Registerer = nil, nil
	w := worker.Config{}.WithDefaults()
	w.Logger, w.Registerer = nil, nil
	sched := worker.SchedulerConfig{}.WithDefaults()
	sched.Logger = nil
	return Config{
		DatabaseURL: DefaultDatabaseURL,
		RedisURL:    DefaultRedisURL,
		DBMaxConns:  defaultDBMaxConns,
		MetricsAddr: DefaultMetricsAddr,
		LogLevel:    "info",
		API:         apiCfg,
		Intake:      in,
		Worker:      w,
		Scheduler:   sched,
	}
}

// envReader reads settings from the environment. Each numeric or boolean
// reader checks its value as it reads it and records what is wrong, naming
// the variable and what a good value looks like, so that a bad value stops
// the process at startup instead of the default being used silently (a
// rate of "6.5" read as an integer, "5" for a duration).
type envReader struct {
	getenv func(string) string
	errs   []error
}

// value returns the variable's value and whether it is set (non-empty).
func (e *envReader) value(name string) (string, bool) {
	v := e.getenv(name)
	return v, v != ""
}

func (e *envReader) bad(name, v, want string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q is not valid: set it to %s, or unset it for the default", name, v, want))
}

func (e *envReader) str(name, def string) string {
	if v, ok := e.value(name); ok {
		return v
	}
	return def
}

// count reads a whole number above 0.
func (e *envReader) count(name string, def int) int {
	v, ok := e.value(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		e.bad(name, v, "a whole number above 0, e.g. 8")
		return def
	}
	return n
}

// integer reads a whole number; the settings read so turn off when negative.
func (e *envReader) integer(name string, def int) int {
	v, ok := e.value(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.bad(name, v, "a whole number, e.g. 50 (negative turns it off)")
		return def
	}
	return n
}

// rate reads a number above 0, fractions allowed.
func (e *envReader) rate(name string, def float64) float64 {
	v, ok := e.value(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		e.bad(name, v, "a number above 0, e.g. 20 or 6.5")
		return def
	}
	return f
}

// duration reads a duration above 0 with its unit.
func (e *envReader) duration(name string, def time.Duration) time.Duration {
	v, ok := e.value(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.bad(name, v, "a duration above 0 with its unit, e.g. 500ms, 30s or 5m")
		return def
	}
	return d
}

// signedDuration reads a duration; the settings read so turn off when negative.
func (e *envReader) signedDuration(name string, def time.Duration) time.Duration {
	v, ok := e.value(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.bad(name, v, "a duration with its unit, e.g. 1h (negative turns it off)")
		return def
	}
	return d
}

// boolean reads true or false.
func (e *envReader) boolean(name string) bool {
	v, ok := e.value(name)
	if ok && v != "true" && v != "false" {
		e.bad(name, v, "true or false")
	}
	return v == "true"
}

// FromEnv is DefaultConfig with the settings of the environment applied.
// A value that does not parse is an error naming the variable and what a
// good value looks like, so that a bad value stops the process at startup
// instead of the default being used silently; every bad value is reported
// at once.
func FromEnv(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	e := &envReader{getenv: getenv}
	c.DatabaseURL = e.str("DATABASE_URL", c.DatabaseURL)
	if u, err := redisconf.URLFromEnv(getenv, c.RedisURL); err != nil {
		e.errs = append(e.errs, err)
	} else {
		c.RedisURL = u
	}
	c.DBMaxConns = e.count("LICENSEOPS_DB_MAX_CONNS", c.DBMaxConns)
	c.MetricsAddr = e.str("LICENSEOPS_METRICS_ADDR", c.MetricsAddr)
	_, c.MetricsAddrSet = e.value("LICENSEOPS_METRICS_ADDR")
	c.PProf = e.boolean("LICENSEOPS_PPROF")
	c.LogFormat = e.str("LICENSEOPS_LOG_FORMAT", c.LogFormat)
	c.LogLevel = e.str("LICENSEOPS_LOG_LEVEL", c.LogLevel)

	c.API.Addr = e.str("LICENSEOPS_ADDR", c.API.Addr)
	c.API.BuyMoreURL = e.str("LICENSEOPS_BUY_MORE_URL", c.API.BuyMoreURL)
	c.API.RateLimitPerSecond = e.integer("LICENSEOPS_RATE_LIMIT", c.API.RateLimitPerSecond)
	c.API.RateLimitBurst = e.count("LICENSEOPS_RATE_LIMIT_BURST", c.API.RateLimitBurst)
	c.ConsoleTrustProxy = e.boolean("LICENSEOPS_CONSOLE_TRUST_PROXY")
	c.API.WebhookAllowHTTP = e.boolean("LICENSEOPS_WEBHOOK_ALLOW_HTTP")

	interactiveMax := e.count("LICENSEOPS_INTERACTIVE_MAX", c.Intake.InteractiveMax)
	c.Intake.InteractiveMax, c.Worker.InteractiveMax = interactiveMax, interactiveMax
	c.Intake.AggregateMin = e.integer("LICENSEOPS_AGGREGATE_MIN", c.Intake.AggregateMin)
	c.Intake.BulkMin = e.count("LICENSEOPS_BULK_MIN", c.Intake.BulkMin)
	if c.Intake.BulkMin <= c.Intake.InteractiveMax {
		e.errs = append(e.errs, fmt.Errorf("LICENSEOPS_BULK_MIN=%d is not above LICENSEOPS_INTERACTIVE_MAX=%d: an operation cannot be both interactive and bulk; raise LICENSEOPS_BULK_MIN",
			c.Intake.BulkMin, c.Intake.InteractiveMax))
	}
	c.Worker.Concurrency = e.count("LICENSEOPS_WORKER_CONCURRENCY", c.Worker.Concurrency)
	c.Worker.ShutdownTimeout = e.duration("LICENSEOPS_SHUTDOWN_TIMEOUT", c.Worker.ShutdownTimeout)
	c.Worker.Sweep.Interval = e.duration("LICENSEOPS_SWEEP_INTERVAL", c.Worker.Sweep.Interval)
	c.Worker.Sweep.EnqueueGrace = e.duration("LICENSEOPS_ENQUEUE_GRACE", c.Worker.Sweep.EnqueueGrace)
	c.Worker.Sweep.StallAfter = e.duration("LICENSEOPS_STALL_AFTER", c.Worker.Sweep.StallAfter)

	c.Scheduler.SyncInterval = e.duration("LICENSEOPS_SCHEDULER_SYNC_INTERVAL", c.Scheduler.SyncInterval)
	c.Scheduler.DirectorySyncEvery = e.signedDuration("LICENSEOPS_DIRECTORY_SYNC_EVERY", c.Scheduler.DirectorySyncEvery)

	c.Graph.BaseURL = e.str("LICENSEOPS_GRAPH_BASE_URL", c.Graph.BaseURL)
	c.Graph.TokenURL = e.str("LICENSEOPS_GRAPH_TOKEN_URL", c.Graph.TokenURL)
	c.Graph.RatePerSecond = e.rate("LICENSEOPS_GRAPH_RATE", c.Graph.RatePerSecond)
	c.Graph.AppRatePerSecond = e.rate("LICENSEOPS_GRAPH_APP_RATE", c.Graph.AppRatePerSecond)
	c.Graph.MaxInFlight = e.count("LICENSEOPS_GRAPH_MAX_IN_FLIGHT", c.Graph.MaxInFlight)
	c.Getenv = getenv
	return c, errors.Join(e.errs...)
}

// BindFlags binds the flags a serving mode has: the api's listen address
// for api and all, the worker's for worker, its concurrency for worker and
// all; the scheduler has none.
func (c *Config) BindFlags(fs *flag.FlagSet, mode Mode) {
	if mode.serves(ModeAPI) {
		fs.StringVar(&c.API.Addr, "addr", c.API.Addr, "HTTP listen address of the API (env LICENSEOPS_ADDR)")
	}
	if mode == ModeWorker {
		fs.Func("metrics-addr", "listen address of the worker's /metrics, /healthz, /readyz; :0 picks a free port (env LICENSEOPS_METRICS_ADDR, default "+c.MetricsAddr+")",
			func(v string) error { c.MetricsAddr, c.MetricsAddrSet = v, true; return nil })
	}
	if mode.serves(ModeWorker) {
		fs.IntVar(&c.Worker.Concurrency, "concurrency", c.Worker.Concurrency, "tasks a worker handles at once (env LICENSEOPS_WORKER_CONCURRENCY)")
	}
}

// NewLogger logs text to a terminal and JSON otherwise (or as LICENSEOPS_LOG_FORMAT says).
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	format := c.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
