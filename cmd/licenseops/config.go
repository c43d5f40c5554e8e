package main

import (
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
	DatabaseURL     string
	RedisURL        string
	Addr            string
	MetricsAddr     string
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

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
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
		GraphRate:        float64(envInt("LICENSEOPS_GRAPH_RATE", 0)),
		GraphMaxInFlight: envInt("LICENSEOPS_GRAPH_MAX_IN_FLIGHT", 0),
		RateLimit:        envInt("LICENSEOPS_RATE_LIMIT", 50),
		RateLimitBurst:   envInt("LICENSEOPS_RATE_LIMIT_BURST", 0),
	}
	if fs != nil {
		fs.StringVar(&c.Addr, "addr", c.Addr, "HTTP listen address of the API (env LICENSEOPS_ADDR)")
		fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address of a worker's /metrics, /healthz, /readyz; :0 picks a free port (env LICENSEOPS_METRICS_ADDR)")
		fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "tasks a worker handles at once (env LICENSEOPS_WORKER_CONCURRENCY)")
	}
	return c
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
