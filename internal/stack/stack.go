// Package stack starts a whole licenseops installation for the developer
// tools and the tests that need one: Postgres and Redis (private servers
// from internal/localdb, or the ones given), the database migrated, a
// global_admin token, and licenseops itself, either in this process
// (internal/app, the api and a worker in one) or as real processes of a
// licenseops binary, api and workers apart, as in production.
//
//	s, err := stack.Start(ctx, stack.Options{Exe: "bin/licenseops"})
//	if err != nil { … }
//	defer s.Close()
//	w, _ := s.StartWorker(ctx)
//	api, _ := s.StartAPI(ctx)
//	c := s.Client() // the SDK's client of api.URL, acting as s.Token
//	…
//	_ = w.Kill() // as a crash would; s.StartWorker(ctx) brings another
//
// The demo runs licenseops in process; the benchmark and the fault suite run
// processes, since they kill workers and measure their memory.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/localdb"
	"github.com/licenseops/licenseops/internal/redisconf"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// Options configure Start.
type Options struct {
	// DatabaseURL and RedisURL are the servers to use. When either is
	// empty, Start starts private Postgres and Redis (localdb) and uses
	// them for what is not given. The database is created if it does not
	// exist, and migrated.
	DatabaseURL string
	RedisURL    string
	// Database is the name of the database on a private Postgres
	// (default "licenseops").
	Database string
	// Servers configure the private servers.
	Servers localdb.Options
	// Partner is the partner of the token Start creates (default "dev");
	// the token's role is global_admin.
	Partner string

	// InProcess starts licenseops in this process, in Mode, configured by
	// Config with the stack's servers and an api on a free port of
	// 127.0.0.1.
	InProcess bool
	// Mode is what the in-process licenseops serves (default app.ModeAll,
	// the api and a worker in one; app.ModeAPI for an api whose
	// operations no worker takes).
	Mode app.Mode
	// Config is the configuration of an in-process licenseops; nil means
	// app.DefaultConfig().
	Config *app.Config
	// Log is the in-process licenseops' logger; nil discards.
	Log *slog.Logger

	// Exe is the licenseops binary that StartAPI, StartWorker and Run run.
	Exe string
	// Env is added to the environment of every process, after the
	// stack's own settings (so it may override the log level, say). The
	// processes inherit this process's environment without DATABASE_URL,
	// REDIS_URL and the LICENSEOPS_ variables: only what the stack and Env
	// set configures licenseops. (PG* variables pass, so that the
	// processes connect to Postgres as the stack itself does.)
	Env []string
	// LogDir, when set, receives each process's output in NAME.log, as
	// well as the tail every process keeps in memory (Proc.Tail).
	LogDir string
	// StopTimeout is how long Proc.Stop waits after SIGTERM before it
	// kills (default 30 s: a worker with tasks in hand waits up to
	// LICENSEOPS_SHUTDOWN_TIMEOUT, 20 s by default).
	StopTimeout time.Duration

	// Logf, when set, is told what the stack is doing that takes a while
	// (starting private servers).
	Logf func(format string, args ...any)
}

// Stack is a running installation.
type Stack struct {
	// DatabaseURL and RedisURL are the stack's servers.
	DatabaseURL string
	RedisURL    string
	// Servers are the private servers, nil when both URLs were given.
	Servers *localdb.Servers
	// Partner and Token are the partner and its global_admin token.
	Partner string
	Token   string
	// URL is the base URL of the api: the in-process one, else the last
	// api process started.
	URL string
	// App is the in-process licenseops (Options.InProcess), else nil.
	App *app.App
	// Store is a small connection pool of the stack's own to the
	// database, and Redis a client of its own, for what the API does not
	// show.
	Store *storage.Store
	Redis redis.UniversalClient

	o     Options
	insp  *asynq.Inspector
	mu    sync.Mutex
	procs []*Proc
	seq   map[string]int
}

// Start starts the servers (unless given), migrates, creates the token and,
// with Options.InProcess, starts licenseops in this process. On error,
// what was started is stopped again.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Database == "" {
		o.Database = "licenseops"
	}
	if o.Partner == "" {
		o.Partner = "dev"
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if o.Mode == "" {
		o.Mode = app.ModeAll
	}
	s := &Stack{DatabaseURL: o.DatabaseURL, RedisURL: o.RedisURL, Partner: o.Partner, o: o, seq: map[string]int{}}
	defer func() {
		if err != nil {
			_ = s.Close() // the start error is the one to report
		}
	}()
	if s.DatabaseURL == "" || s.RedisURL == "" {
		s.logf("starting private Postgres and Redis (set DATABASE_URL and REDIS_URL to use your own)")
		if s.Servers, err = localdb.Start(ctx, o.Servers); err != nil {
			return nil, err
		}
		if s.DatabaseURL == "" {
			s.DatabaseURL = s.Servers.PostgresURL(o.Database)
		}
		if s.RedisURL == "" {
			s.RedisURL = s.Servers.RedisURL(0)
		}
	}
	if _, err := app.Migrate(ctx, s.DatabaseURL); err != nil {
		return nil, err
	}
	if s.Store, err = storage.Open(ctx, storage.Config{URL: s.DatabaseURL, MaxOpenConns: 4}); err != nil {
		return nil, err
	}
	if s.Token, err = s.CreateToken(ctx, "stack", "global_admin"); err != nil {
		return nil, err
	}
	var rconf redisconf.Config
	if s.Redis, rconf, err = redisconf.Open(s.RedisURL, 0); err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if err := s.Redis.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("connect to redis (%s): %w; check that it runs", rconf, err)
	}
	s.insp = asynq.NewInspectorFromRedisClient(s.Redis)
	if o.InProcess {
		if err := s.startApp(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Stack) logf(format string, args ...any) {
	if s.o.Logf != nil {
		s.o.Logf(format, args...)
	}
}

// CreateToken creates another token of the stack's partner, named name,
// with role.
func (s *Stack) CreateToken(ctx context.Context, name, role string) (string, error) {
	return s.Store.CreateToken(ctx, s.Partner, name, role)
}

// startApp opens and starts licenseops in this process.
func (s *Stack) startApp(ctx context.Context) error {
	cfg := app.DefaultConfig()
	if s.o.Config != nil {
		cfg = *s.o.Config
	}
	cfg.DatabaseURL, cfg.RedisURL = s.DatabaseURL, s.RedisURL
	cfg.API.Addr = "127.0.0.1:0"
	log := s.o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a, err := app.Open(ctx, cfg, s.o.Mode, log)
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		_ = a.Close(context.Background())
		return err
	}
	s.App, s.URL = a, a.APIURL()
	return nil
}

// Client returns a client of the api at s.URL that acts as s.Token.
func (s *Stack) Client(opts ...client.Option) *client.Client { return s.ClientAs(s.Token, opts...) }

// ClientAs returns a client of the api at s.URL that acts as token. Its
// requests share a pool of connections with the stack's other clients
// (unless opts give another HTTP client) large enough for many at once.
func (s *Stack) ClientAs(token string, opts ...client.Option) *client.Client {
	s.mu.Lock()
	url := s.URL
	s.mu.Unlock()
	return client.New(url, token, append([]client.Option{client.WithHTTPClient(HTTPClient), client.WithUserAgent("licenseops-dev")}, opts...)...)
}

// HTTPClient is the HTTP client of the stack's clients: one pool of up to
// 256 connections per api, which many clients polling at once reuse
// instead of opening a connection per request. Like the SDK's own, it
// bounds no whole exchange (a report streams for as long as it takes) but
// the wait for an answer's headers.
var HTTPClient = &http.Client{Transport: &http.Transport{
	Proxy: http.ProxyFromEnvironment, MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
	ResponseHeaderTimeout: 5 * time.Minute,
}}

// Procs returns the processes started so far, running or not, in order.
func (s *Stack) Procs() []*Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.procs)
}

// Close stops everything the stack started: its processes (killed), the
// in-process licenseops, its connections and the private servers.
func (s *Stack) Close() error {
	var errs []error
	for _, p := range s.Procs() {
		p.Kill()
	}
	if s.App != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, s.App.Close(ctx))
		cancel()
		s.App = nil
	}
	if s.Redis != nil {
		errs = append(errs, s.Redis.Close())
		s.Redis = nil
	}
	if s.Store != nil {
		errs = append(errs, s.Store.Close())
		s.Store = nil
	}
	errs = append(errs, s.Servers.Stop())
	return errors.Join(errs...)
}

// StopProcesses stops every running process (SIGTERM, at once), the api
// and the workers alike, and waits for them. The error names those that had
// to be killed.
func (s *Stack) StopProcesses() error {
	var wg sync.WaitGroup
	procs := s.Procs()
	errs := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() { errs[i] = p.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StartAPI starts an api process on a free port of 127.0.0.1, env added to
// its environment, and waits until it answers /readyz. s.URL becomes its
// URL.
func (s *Stack) StartAPI(ctx context.Context, env ...string) (*Proc, error) {
	p, err := s.startServing(ctx, "api", env, "--addr", waitReady)
	if err == nil {
		s.mu.Lock()
		s.URL = p.URL
		s.mu.Unlock()
	}
	return p, err
}

// StartWorker starts a worker process, env added to its environment, with
// its /metrics (and /debug/pprof with LICENSEOPS_PPROF=true) on a free port
// of 127.0.0.1 (Proc.URL). It waits until the worker's asynq server has
// registered in Redis and a sweeper has swept once: before that, the first
// sweep on a Redis takes every pending item for lost and enqueues it again,
// which a long-running installation never does.
func (s *Stack) StartWorker(ctx context.Context, env ...string) (*Proc, error) {
	return s.startServing(ctx, "worker", env, "--metrics-addr", s.waitWorker)
}

// Restart starts a process like p (an api or a worker, with the same extra
// environment) after killing p if it still runs.
func (s *Stack) Restart(ctx context.Context, p *Proc) (*Proc, error) {
	p.Kill()
	if p.kind == "api" {
		return s.StartAPI(ctx, p.extra...)
	}
	return s.StartWorker(ctx, p.extra...)
}

// startServing starts the binary in mode kind listening on a free address
// given with addrFlag, and waits until ready says it is. A process that
// exits before it is ready, probably because another took its port, is
// started again, up to three times.
func (s *Stack) startServing(ctx context.Context, kind string, extra []string, addrFlag string, ready func(context.Context, *Proc) error) (*Proc, error) {
	s.mu.Lock()
	s.seq[kind]++
	name := fmt.Sprintf("%s-%d", kind, s.seq[kind])
	s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		p, err := s.spawn(name, kind, extra, kind, addrFlag, addr)
		if err != nil {
			return nil, err
		}
		p.URL = "http://" + addr
		err = ready(ctx, p)
		if err == nil {
			return p, nil
		}
		exited := p.Exited()
		p.Kill()
		if attempt == 3 || !exited || ctx.Err() != nil {
			return nil, fmt.Errorf("%s did not start: %w", name, err)
		}
	}
}

// env is the environment of a process: ours without what configures
// licenseops, then the stack's settings, Options.Env and extra.
func (s *Stack) env(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "LICENSEOPS_") || name == "DATABASE_URL" || name == "REDIS_URL" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "DATABASE_URL="+s.DatabaseURL, "REDIS_URL="+s.RedisURL,
		"LICENSEOPS_LOG_LEVEL=warn", "LICENSEOPS_LOG_FORMAT=text")
	env = append(env, s.o.Env...)
	return append(env, extra...)
}

// waitWorker waits until the worker p has registered its asynq server and
// a sweeper has set the epoch key.
func (s *Stack) waitWorker(ctx context.Context, p *Proc) error {
	registered := func() bool {
		servers, err := s.insp.Servers()
		if err != nil {
			return false
		}
		for _, srv := range servers {
			if srv.PID == p.Pid() {
				return true
			}
		}
		return false
	}
	err := poll(ctx, p, time.Minute, func() (bool, error) { return registered(), nil })
	if err != nil {
		return fmt.Errorf("the worker's queue server did not register: %w", err)
	}
	err = poll(ctx, p, 15*time.Second, func() (bool, error) {
		n, err := s.Redis.Exists(ctx, worker.EpochKey).Result()
		return n == 1, err
	})
	if err != nil {
		return fmt.Errorf("no sweep: %w", err)
	}
	return nil
}

// waitReady waits until the api p answers /readyz with 200: it reaches
// Postgres and Redis.
func waitReady(ctx context.Context, p *Proc) error {
	c := client.New(p.URL, "", client.WithHTTPClient(&http.Client{Timeout: 2 * time.Second}))
	var last error
	err := poll(ctx, p, time.Minute, func() (bool, error) {
		_, last = c.Readyz(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%s/readyz: %w (last answer: %v)", p.URL, err, last)
	}
	return nil
}

// poll calls cond every 20 ms until it is true or fails, p exits, ctx ends
// or timeout passes.
func poll(ctx context.Context, p *Proc, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if p.Exited() {
			return p.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s\n%s", timeout, p.Tail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
