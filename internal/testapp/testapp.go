// Package testapp assembles a real licenseops stack for tests: a fresh
// database and Redis from internal/testenv, the storage layer, and
// optionally the HTTP API and workers, all in-process.
package testapp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/redisconf"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
	"github.com/licenseops/licenseops/worker"
)

// Options choose what to start.
type Options struct {
	// Workers is the number of worker instances (separate asynq servers) to start.
	Workers int
	// WorkerConfig is the base config of every worker.
	WorkerConfig worker.Config
	// NoAPI skips the HTTP API.
	NoAPI bool
	// IntakeConfig is the base config of the intake (the api's and the
	// workers' cleanup runs').
	IntakeConfig intake.Config
	// APIConfig is the base config of the API. Its Registry, when set, also
	// gets the intake's metrics, as `licenseops api` serves them.
	APIConfig api.Config
}

// Bundle is a running stack.
type Bundle struct {
	T           testing.TB
	DatabaseURL string
	RedisURL    string
	Store       *storage.Store
	// DB is a connection of the test's own to the bundle's database, for
	// asserting what the API does not show (rows, locks, constraints).
	DB      *sqlx.DB
	Redis   redis.UniversalClient
	API     *api.Server
	Intake  *intake.Service // creates the operations of the API and of the workers' cleanup runs
	Workers []*worker.Worker
	Log     *slog.Logger
}

// New starts a stack for t and stops it when t ends.
func New(t testing.TB, opts Options) *Bundle {
	t.Helper()
	b := &Bundle{T: t, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if testing.Verbose() {
		b.Log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	b.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
	b.RedisURL = testenv.Redis(t)
	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{URL: b.DatabaseURL, MaxOpenConns: 20})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	b.Store = store
	t.Cleanup(func() { _ = store.Close() })
	if b.DB, err = sqlx.Open("postgres", b.DatabaseURL); err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { _ = b.DB.Close() })
	if b.Redis, _, err = redisconf.Open(b.RedisURL, 100); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Redis.Close() })
	if opts.APIConfig.Registry == nil {
		opts.APIConfig.Registry = prometheus.NewRegistry()
	}
	icfg := opts.IntakeConfig
	icfg.Logger, icfg.Registerer = b.Log, opts.APIConfig.Registry
	svc, err := intake.New(icfg, store, b.Redis)
	if err != nil {
		t.Fatalf("intake: %v", err)
	}
	b.Intake = svc
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = svc.Close(ctx)
	})
	if !opts.NoAPI {
		cfg := opts.APIConfig
		cfg.Addr, cfg.Logger = "127.0.0.1:0", b.Log
		srv, err := api.New(cfg, svc, store, b.Redis)
		if err != nil {
			t.Fatalf("api: %v", err)
		}
		if err := srv.Open(); err != nil {
			t.Fatalf("api open: %v", err)
		}
		b.API = srv
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.Close(ctx)
		})
	}
	for range opts.Workers {
		b.StartWorker(opts.WorkerConfig)
	}
	return b
}

// StartWorker starts one more worker instance and stops it when the test ends.
func (b *Bundle) StartWorker(cfg worker.Config) *worker.Worker {
	b.T.Helper()
	if cfg.Logger == nil {
		cfg.Logger = b.Log
	}
	if cfg.Intake == nil {
		cfg.Intake = b.Intake
	}
	if cfg.Sweep.Interval == 0 {
		cfg.Sweep.Interval = 100 * time.Millisecond
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 2 * time.Second
	}
	w, err := worker.New(cfg, b.Store, b.Redis)
	if err != nil {
		b.T.Fatalf("worker: %v", err)
	}
	if err := w.Start(); err != nil {
		b.T.Fatalf("worker start: %v", err)
	}
	b.Workers = append(b.Workers, w)
	b.T.Cleanup(w.Shutdown)
	return w
}

// Token creates a token for partner with role.
func (b *Bundle) Token(partner, role string) string {
	b.T.Helper()
	tok, err := b.Store.CreateToken(context.Background(), partner, role+"-token", role)
	if err != nil {
		b.T.Fatalf("create token: %v", err)
	}
	return tok
}

// Client is a client of the bundle's API acting as one token: the SDK's
// *client.Client with its typed methods, plus raw helpers for tests of the
// wire. Do, Must and WaitOperation are the helpers; the SDK's own are
// c.Client.Do and c.Client.WaitOperation.
type Client struct {
	*client.Client
	b        *Bundle
	madeWith string // the token of the embedded client
	// Token is the token Do and Must send; "" sends none. A copy of a
	// Client with another Token sends that one from its raw helpers, while
	// its typed methods keep the token it was made with.
	Token string
}

// Client returns a client acting as a new token of partner with role.
func (b *Bundle) Client(partner, role string) *Client {
	return b.ClientWithToken(b.Token(partner, role))
}

// ClientWithToken returns a client of the bundle's API that sends token
// ("" for none).
func (b *Bundle) ClientWithToken(token string) *Client {
	return &Client{Client: b.newClient(token), b: b, madeWith: token, Token: token}
}

func (b *Bundle) newClient(token string) *client.Client {
	if b.API == nil {
		b.T.Fatalf("testapp: the bundle has no API (Options.NoAPI) to make a client of")
	}
	return client.New(b.API.URL(), token, client.WithUserAgent("licenseops-tests"))
}

// Response is an API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// ErrorCode returns error.code of an error body ("" when there is none).
func (r *Response) ErrorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// raw is the SDK client that sends c.Token: the embedded one, unless Token
// was changed on a copy.
func (c *Client) raw() *client.Client {
	if c.Client == nil || c.Token != c.madeWith {
		return c.b.newClient(c.Token)
	}
	return c.Client
}

// Do sends a request through the SDK's raw request path and returns the
// answer whatever its status; body may be nil, a []byte/string (sent raw),
// or a value (sent as JSON); headers are name, value pairs.
func (c *Client) Do(method, path string, body any, headers ...string) *Response {
	c.b.T.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(v)
	case string:
		rd = strings.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			c.b.T.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	resp, err := c.raw().Do(context.Background(), method, path, rd, h)
	if err != nil {
		c.b.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.b.T.Fatalf("read body: %v", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Must sends a request and fails the test unless the status is want.
func (c *Client) Must(want int, method, path string, body any, headers ...string) *Response {
	c.b.T.Helper()
	r := c.Do(method, path, body, headers...)
	if r.Status != want {
		c.b.T.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, truncate(r.Body))
	}
	return r
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// WaitOperation polls an operation with the SDK's WaitOperation until it is
// finished, and fails the test when that takes longer than timeout.
func (c *Client) WaitOperation(id string, timeout time.Duration) licensing.Operation {
	c.b.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	op, err := c.raw().WaitOperation(ctx, id, client.WaitOptions{Interval: 50 * time.Millisecond})
	if err != nil {
		c.b.T.Fatalf("operation %s not finished after %v: %v (last read %+v)", id, timeout, err, op)
	}
	return op
}

// Seed creates a tenant through the API with the seeder of internal/seed
// and returns its users' IDs, failing the test on error.
func (c *Client) Seed(tn seed.Tenant) []string {
	c.b.T.Helper()
	ids, err := seed.Seed(context.Background(), c.raw(), tn)
	if err != nil {
		c.b.T.Fatalf("seed %s: %v", tn.Customer.ID, err)
	}
	return ids
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
