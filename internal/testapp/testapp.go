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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/intake"
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
	Redis       *redis.Client
	API         *api.Server
	Intake      *intake.Service // creates the operations of the API and of the workers' cleanup runs
	Workers     []*worker.Worker
	Log         *slog.Logger
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
	ropts, err := redis.ParseURL(b.RedisURL)
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	ropts.PoolSize = 100
	b.Redis = redis.NewClient(ropts)
	t.Cleanup(func() { _ = b.Redis.Close() })
	if opts.APIConfig.Registry == nil {
		opts.APIConfig.Registry = prometheus.NewRegistry()
	}
	svc, err := intake.New(intake.Config{Logger: b.Log, Registerer: opts.APIConfig.Registry}, store, b.Redis)
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

// Client is an HTTP client of the bundle's API with one token.
type Client struct {
	b     *Bundle
	Token string
}

// Client returns a client acting as a new token of partner with role.
func (b *Bundle) Client(partner, role string) *Client {
	return &Client{b: b, Token: b.Token(partner, role)}
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

// Do sends a request; body may be nil, a []byte/string (sent raw), or a value (sent as JSON).
func (c *Client) Do(method, path string, body any, headers ...string) *Response {
	c.b.T.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(v)
	case string:
		rd = bytes.NewReader([]byte(v))
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			c.b.T.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.b.API.URL()+path, rd)
	if err != nil {
		c.b.T.Fatalf("request: %v", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
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

// WaitOperation polls an operation until it is finished or the timeout passes.
func (c *Client) WaitOperation(id string, timeout time.Duration) licensing.Operation {
	c.b.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var op licensing.Operation
		c.Must(http.StatusOK, "GET", "/v1/operations/"+id, nil).JSON(c.b.T, &op)
		if op.FinishedAt != nil {
			return op
		}
		if time.Now().After(deadline) {
			c.b.T.Fatalf("operation %s not finished after %v: %+v", id, timeout, op)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
