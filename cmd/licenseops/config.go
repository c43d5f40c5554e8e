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
	LogFormat       string
	LogLevel        string
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
}

// Defaults of the environment variables.
const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/licenseops?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
)

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// numericEnv lists every numeric (and boolean) setting with its kind, so that checkEnv can
// refuse a bad value at startup instead of the env* readers silently using
// the default (a rate of "6.5" read as an integer, "5" for a duration).
var numericEnv = []struct{ name, kind string }{
	{"LICENSEOPS_WORKER_CONCURRENCY", "count"},
	{"LICENSEOPS_DB_MAX_CONNS", "count"},
	{"LICENSEOPS_INTERACTIVE_MAX", "count"},
	{"LICENSEOPS_SWEEP_INTERVAL", "duration"},
	{"LICENSEOPS_ENQUEUE_GRACE", "duration"},
	{"LICENSEOPS_STALL_AFTER", "duration"},
	{"LICENSEOPS_SHUTDOWN_TIMEOUT", "duration"},
	{"LICENSEOPS_GRAPH_RATE", "rate"},
	{"LICENSEOPS_GRAPH_MAX_IN_FLIGHT", "count"},
	{"LICENSEOPS_RATE_LIMIT", "integer"},
	{"LICENSEOPS_RATE_LIMIT_BURST", "count"},
	{"LICENSEOPS_SCHEDULER_SYNC_INTERVAL", "duration"},
	{"LICENSEOPS_DIRECTORY_SYNC_EVERY", "signed duration"},
	{"LICENSEOPS_PPROF", "bool"},
}

// checkEnv validates the numeric settings of the environment, naming each
// bad one and what a good value looks like.
func checkEnv(getenv func(string) string) error {
	var errs []error
	for _, e := range numericEnv {
		v := getenv(e.name)
		if v == "" {
			continue
		}
		var bad string
		switch e.kind {
		case "count":
			if n, err := strconv.Atoi(v); err != nil || n <= 0 {
				bad = "a whole number above 0, e.g. 8"
			}
		case "integer":
			if _, err := strconv.Atoi(v); err != nil {
				bad = "a whole number, e.g. 50 (negative turns it off)"
			}
		case "rate":
			if f, err := strconv.ParseFloat(v, 64); err != nil || f <= 0 {
				bad = "a number above 0, e.g. 20 or 6.5"
			}
		case "duration":
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				bad = "a duration above 0 with its unit, e.g. 500ms, 30s or 5m"
			}
		case "bool":
			if v != "true" && v != "false" {
				bad = "true or false"
			}
		case "signed duration":
			if _, err := time.ParseDuration(v); err != nil {
				bad = "a duration with its unit, e.g. 1h (negative turns it off)"
			}
		}
		if bad != "" {
			errs = append(errs, fmt.Errorf("%s=%q is not valid: set it to %s, or unset it for the default", e.name, v, bad))
		}
	}
	return errors.Join(errs...)
}

// loadConfig reads the environment, then binds the flags of a command to it.
func loadConfig(fs *flag.FlagSet) *Config {
	c := &Config{
		DatabaseURL:      env("DATABASE_URL", defaultDatabaseURL),
		RedisURL:         env("REDIS_URL", defaultRedisURL),
		Addr:             env("LICENSEOPS_ADDR", "127.0.0.1:8080"),
		MetricsAddr:      env("LICENSEOPS_METRICS_ADDR", "127.0.0.1:9091"),
		BuyMoreURL:       env("LICENSEOPS_BUY_MORE_URL", ""),
		Concurrency:      envInt("LICENSEOPS_WORKER_CONCURRENCY", 256),
		DBMaxConns:       envInt("LICENSEOPS_DB_MAX_CONNS", 20),
		InteractiveMax:   envInt("LICENSEOPS_INTERACTIVE_MAX", 100),
		SweepInterval:    envDuration("LICENSEOPS_SWEEP_INTERVAL", time.Second),
		EnqueueGrace:     envDuration("LICENSEOPS_ENQUEUE_GRACE", 30*time.Second),
		StallAfter:       envDuration("LICENSEOPS_STALL_AFTER", 5*time.Minute),
		ShutdownTimeout:  envDuration("LICENSEOPS_SHUTDOWN_TIMEOUT", 20*time.Second),
		LogFormat:        env("LICENSEOPS_LOG_FORMAT", ""),
		LogLevel:         env("LICENSEOPS_LOG_LEVEL", "info"),
		GraphBaseURL:     env("LICENSEOPS_GRAPH_BASE_URL", ""),
		GraphTokenURL:    env("LICENSEOPS_GRAPH_TOKEN_URL", ""),
		GraphRate:        envFloat("LICENSEOPS_GRAPH_RATE", 0),
		GraphMaxInFlight: envInt("LICENSEOPS_GRAPH_MAX_IN_FLIGHT", 0),
		RateLimit:        envInt("LICENSEOPS_RATE_LIMIT", 50),
		RateLimitBurst:   envInt("LICENSEOPS_RATE_LIMIT_BURST", 0),
	}
	_, c.MetricsAddrSet = os.LookupEnv("LICENSEOPS_METRICS_ADDR")
	c.PProf = os.Getenv("LICENSEOPS_PPROF") == "true"
	if fs != nil {
		c.bindFlags(fs, "all")
	}
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
