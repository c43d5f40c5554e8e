package main

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
)

// Config is everything read from the environment and flags. Only package
// main reads configuration; the other packages receive values.
type Config struct {
	DatabaseURL string
	RedisURL    string
	Addr        string
	MetricsAddr string
	// MetricsAddrSet is true when the operator chose MetricsAddr (flag or
	// environment); the default falls back to a free port when taken.
	MetricsAddrSet bool
	// PProf serves net/http/pprof on a worker's metrics listener.
	PProf           bool
	BuyMoreURL      string
	Concurrency     int
	DBMaxConns      int
	InteractiveMax  int
	SweepInterval   time.Duration
	EnqueueGrace    time.Duration
	StallAfter      time.Duration
	ShutdownTimeout time.Duration
	// The scheduler's policy re-read and directory sync intervals.
	SchedulerSyncInterval time.Duration
	DirectorySyncEvery    time.Duration
	LogFormat             string
	LogLevel              string
	// Microsoft Graph (customers with directory kind msgraph). Credentials
	// are read by msgraph.LoadCredentials from the environment or a file.
	GraphBaseURL     string
	GraphTokenURL    string
	GraphRate        float64
	GraphMaxInFlight int
	// Per-token API rate limit, shared by all api processes through Redis.
	RateLimit      int
	RateLimitBurst int
	// Getenv reads secrets that are never copied into Config (Graph
	// credentials); nil means os.Getenv. The demo injects its own.
	Getenv func(string) string
	// envErr lists the settings that did not parse (see checkEnv).
	envErr error
}

// Defaults of the environment variables.
const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/licenseops?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
)

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

// checkEnv reports every setting of the environment that does not parse.
func checkEnv(getenv func(string) string) error {
	return configFrom(getenv).envErr
}

// loadConfig reads the environment. A value that does not parse is left at
// its default here; commands that serve call checkEnv first (main.run).
func loadConfig() *Config { return configFrom(os.Getenv) }

func configFrom(getenv func(string) string) *Config {
	e := &envReader{getenv: getenv}
	c := &Config{
		DatabaseURL:           e.str("DATABASE_URL", defaultDatabaseURL),
		RedisURL:              e.str("REDIS_URL", defaultRedisURL),
		Addr:                  e.str("LICENSEOPS_ADDR", "127.0.0.1:8080"),
		MetricsAddr:           e.str("LICENSEOPS_METRICS_ADDR", "127.0.0.1:9091"),
		BuyMoreURL:            e.str("LICENSEOPS_BUY_MORE_URL", ""),
		Concurrency:           e.count("LICENSEOPS_WORKER_CONCURRENCY", 256),
		DBMaxConns:            e.count("LICENSEOPS_DB_MAX_CONNS", 20),
		InteractiveMax:        e.count("LICENSEOPS_INTERACTIVE_MAX", 100),
		SweepInterval:         e.duration("LICENSEOPS_SWEEP_INTERVAL", time.Second),
		EnqueueGrace:          e.duration("LICENSEOPS_ENQUEUE_GRACE", 30*time.Second),
		StallAfter:            e.duration("LICENSEOPS_STALL_AFTER", 5*time.Minute),
		ShutdownTimeout:       e.duration("LICENSEOPS_SHUTDOWN_TIMEOUT", 20*time.Second),
		SchedulerSyncInterval: e.duration("LICENSEOPS_SCHEDULER_SYNC_INTERVAL", 10*time.Second),
		DirectorySyncEvery:    e.signedDuration("LICENSEOPS_DIRECTORY_SYNC_EVERY", time.Hour),
		LogFormat:             e.str("LICENSEOPS_LOG_FORMAT", ""),
		LogLevel:              e.str("LICENSEOPS_LOG_LEVEL", "info"),
		GraphBaseURL:          e.str("LICENSEOPS_GRAPH_BASE_URL", ""),
		GraphTokenURL:         e.str("LICENSEOPS_GRAPH_TOKEN_URL", ""),
		GraphRate:             e.rate("LICENSEOPS_GRAPH_RATE", 0),
		GraphMaxInFlight:      e.count("LICENSEOPS_GRAPH_MAX_IN_FLIGHT", 0),
		RateLimit:             e.integer("LICENSEOPS_RATE_LIMIT", 50),
		RateLimitBurst:        e.count("LICENSEOPS_RATE_LIMIT_BURST", 0),
		PProf:                 e.boolean("LICENSEOPS_PPROF"),
	}
	_, c.MetricsAddrSet = e.value("LICENSEOPS_METRICS_ADDR")
	c.envErr = errors.Join(e.errs...)
	return c
}

// bindFlags binds the flags a serving mode has: the api's listen address
// for api and all, the worker's for worker, its concurrency for worker and
// all; the scheduler has none.
func (c *Config) bindFlags(fs *flag.FlagSet, mode string) {
	if mode == "api" || mode == "all" {
		fs.StringVar(&c.Addr, "addr", c.Addr, "HTTP listen address of the API (env LICENSEOPS_ADDR)")
	}
	if mode == "worker" {
		fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address of the worker's /metrics, /healthz, /readyz; :0 picks a free port (env LICENSEOPS_METRICS_ADDR)")
	}
	if mode == "worker" || mode == "all" {
		fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "tasks a worker handles at once (env LICENSEOPS_WORKER_CONCURRENCY)")
	}
}

// newLogger logs text to a terminal and JSON otherwise (or as LICENSEOPS_LOG_FORMAT says).
func (c *Config) newLogger(w io.Writer) *slog.Logger {
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

func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errUsage
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
