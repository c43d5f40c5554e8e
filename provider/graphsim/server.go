package graphsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Server serves a Simulator over HTTP. The simulator's methods (Seed,
// Tenant, SetConfig, Stats …) are available on the Server.
type Server struct {
	*Simulator
	http *http.Server
	url  string
}

// NewServer returns a server of a new simulator with cfg's knobs.
func NewServer(cfg Config) *Server {
	return &Server{Simulator: New(cfg)}
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("graphsim: listen on %s: %w", addr, err)
	}
	s.url = "http://" + ln.Addr().String()
	s.http = &http.Server{
		Handler:           s.Simulator,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A simulated timeout hangs up to HangFor before answering; the
		// write timeout must not cut it short of its own bound.
		WriteTimeout: s.Config().HangFor + time.Minute,
		IdleTimeout:  2 * time.Minute,
	}
	go func() { _ = s.http.Serve(ln) }()
	return nil
}

// URL is the root URL, such as http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// GraphURL is the Graph base URL to give the msgraph client.
func (s *Server) GraphURL() string { return GraphURL(s.url) }

// TokenURL is the token URL template to give the msgraph client.
func (s *Server) TokenURL() string { return TokenURL(s.url) }

// Close releases hanging calls and shuts the HTTP server down, waiting up
// to five seconds for calls in progress.
func (s *Server) Close() error {
	s.Simulator.Close()
	if s.http == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		return errors.Join(err, s.http.Close())
	}
	return nil
}

// Run serves a simulator on addr until ctx is done: the body of
// "licenseops-dev graphsim". seedFile, when not empty, is loaded first. It logs
// the URLs to give licenseops (LICENSEOPS_GRAPH_BASE_URL and _TOKEN_URL, or
// however the caller names them).
func Run(ctx context.Context, addr, seedFile string, cfg Config, log *slog.Logger) error {
	s := NewServer(cfg)
	if seedFile != "" {
		f, err := os.Open(seedFile) // #nosec G304 -- the operator names the seed file on the command line
		if err != nil {
			return fmt.Errorf("graphsim: open seed: %w", err)
		}
		err = s.Seed(f)
		_ = f.Close() // read-only: nothing to lose
		if err != nil {
			return err
		}
	}
	if err := s.Start(addr); err != nil {
		return err
	}
	c := s.Config()
	log.Info("graph simulator listening", "url", s.URL(), "graph_url", s.GraphURL(), "token_url", s.TokenURL(),
		"tenants", s.tenantCount(), "latency", c.Latency, "jitter", c.Jitter, "throttle", c.ThrottleRatio,
		"errors", c.ErrorRatio, "timeouts", c.TimeoutRatio, "write_quota", c.WriteQuotaPerSecond)
	<-ctx.Done()
	log.Info("graph simulator shutting down", "stats", s.Stats())
	return s.Close()
}

func (s *Simulator) tenantCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tenants)
}
