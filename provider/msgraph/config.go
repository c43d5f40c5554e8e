package msgraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultBaseURL  = "https://graph.microsoft.com/v1.0"
	DefaultTokenURL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token" // #nosec G101 -- an endpoint, not a credential
	DefaultScope    = "https://graph.microsoft.com/.default"
	// DefaultRatePerSecond is the per-tenant rate of writes. Graph's
	// identity write quota per application and tenant pair is 3,000 requests
	// per 150 seconds, which is 20 per second; staying at it lets a tenant-wide
	// rollout run at Graph's pace instead of living on 429s and their
	// Retry-After waits.
	DefaultRatePerSecond = 20
	// DefaultAppRatePerSecond is the rate of writes of the app across all
	// its tenants: Graph's identity write quota per application is 70,000
	// requests per 5 minutes, about 233 per second. Twenty tenants rolling
	// out at once share it (about 11.7 each) instead of living on 429s.
	DefaultAppRatePerSecond = 70_000.0 / 300
	// DefaultMaxInFlight bounds the calls in flight per tenant. At 20 writes
	// a second and a few hundred milliseconds per call, about six calls are
	// in flight at any moment (Little's law); eight leaves headroom without
	// letting a slow tenant tie up the worker's connections.
	DefaultMaxInFlight = 8
	// DefaultTimeout bounds one HTTP request, token requests included.
	DefaultTimeout = 30 * time.Second
	// DefaultPageSize is the $top of ListUsers: Graph's maximum, so that a
	// 100,000-user tenant takes about a hundred calls.
	DefaultPageSize = 999
)

// Environment variables read by LoadCredentials.
const (
	EnvClientID        = "LICENSEOPS_GRAPH_CLIENT_ID"
	EnvClientSecret    = "LICENSEOPS_GRAPH_CLIENT_SECRET"
	EnvCredentialsFile = "LICENSEOPS_GRAPH_CREDENTIALS_FILE"
)

// Secret is a credential. Every way of printing, logging or encoding it
// shows "[redacted]"; only Reveal returns the value, so that a secret can
// reach a log line only through code that asks for it by name.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (s Secret) GoString() string { return redacted }

// Format prints "[redacted]" for every verb, so that %x, %q or %d cannot
// print the value either.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON encodes "[redacted]".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// LogValue logs "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Credentials identify the app registration that licenseops signs in as,
// with the client credentials flow. They come from the environment or a file
// named there (LoadCredentials), never from Postgres.
type Credentials struct {
	ClientID     string
	ClientSecret Secret
}

// ErrNoCredentials means that no Graph credentials are configured at all:
// the caller may run without the msgraph directory.
var ErrNoCredentials = errors.New("msgraph: no credentials: set " + EnvClientID + " and " + EnvClientSecret + ", or " + EnvCredentialsFile)

// LoadCredentials reads the credentials from LICENSEOPS_GRAPH_CLIENT_ID and
// LICENSEOPS_GRAPH_CLIENT_SECRET, or from the JSON file
// {"client_id", "client_secret"} named by LICENSEOPS_GRAPH_CREDENTIALS_FILE
// (a mounted secret). Setting both ways is an error, because which one wins
// would be a guess. getenv is os.Getenv in production.
func LoadCredentials(getenv func(string) string) (Credentials, error) {
	id, secret, file := getenv(EnvClientID), getenv(EnvClientSecret), getenv(EnvCredentialsFile)
	switch {
	case file != "" && (id != "" || secret != ""):
		return Credentials{}, fmt.Errorf("msgraph: set either %s or %s and %s, not both", EnvCredentialsFile, EnvClientID, EnvClientSecret)
	case file != "":
		return readCredentialsFile(file)
	case id == "" && secret == "":
		return Credentials{}, ErrNoCredentials
	case id == "" || secret == "":
		return Credentials{}, fmt.Errorf("msgraph: set both %s and %s", EnvClientID, EnvClientSecret)
	}
	return Credentials{ClientID: id, ClientSecret: Secret(secret)}, nil
}

func readCredentialsFile(path string) (Credentials, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the operator names the file in the environment
	if err != nil {
		return Credentials{}, fmt.Errorf("msgraph: read credentials file: %w", err)
	}
	var f struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	// The decoder's error is left out on purpose: a syntax error can quote
	// part of the file, and the file holds the secret.
	if json.Unmarshal(b, &f) != nil {
		return Credentials{}, fmt.Errorf(`msgraph: credentials file %s is not JSON of the form {"client_id": "…", "client_secret": "…"}`, path)
	}
	if f.ClientID == "" || f.ClientSecret == "" {
		return Credentials{}, fmt.Errorf("msgraph: credentials file %s needs both client_id and client_secret", path)
	}
	return Credentials{ClientID: f.ClientID, ClientSecret: Secret(f.ClientSecret)}, nil
}

// WriteLimiter paces writes to one tenant. The default is in-process (a
// token bucket per tenant); set Config.WriteLimiter to one shared by all
// worker processes, for instance through Redis, so that N processes together
// stay under Graph's quota instead of each using all of it.
type WriteLimiter interface {
	// Wait blocks until the tenant may receive one more write, or ctx ends.
	Wait(ctx context.Context, tenantID string) error
}

// Config configures a Client. Zero values take the defaults of WithDefaults.
type Config struct {
	// BaseURL is Graph's service root, DefaultBaseURL unless tests point it
	// at the simulator.
	BaseURL string
	// TokenURL is the token endpoint with "{tenant}" where the tenant ID goes.
	TokenURL string
	// Credentials of the app registration.
	Credentials
	// Scopes requested with each token; DefaultScope grants the app's
	// consented application permissions.
	Scopes []string
	// Timeout bounds one HTTP request, token requests included.
	Timeout time.Duration
	// MaxInFlight bounds the calls in flight per tenant, reads included.
	MaxInFlight int
	// RatePerSecond paces writes (assignLicense, PATCH) per tenant; see
	// DefaultRatePerSecond for why 20. Reads have a quota over a hundred
	// times larger and are bounded by MaxInFlight only.
	RatePerSecond float64
	// AppRatePerSecond paces the writes of the app across all tenants; see
	// DefaultAppRatePerSecond. It is applied by the shared pacer (the
	// worker's, through Redis) and by the in-process pacing.
	AppRatePerSecond float64
	// WriteLimiter, when set, replaces the in-process RatePerSecond pacing.
	WriteLimiter WriteLimiter
	// PacedByCaller means the caller admits writes at the tenant's pace
	// before calling (the worker does, without holding a worker slot while
	// a tenant is over its pace): the client then does not pace them again.
	PacedByCaller bool
	// OnThrottleLimit, when set, is told the share of a limit Graph says the
	// app has used (x-ms-throttle-limit-percentage, sent above 0.8), and
	// whether the limit is the app's across tenants rather than the
	// tenant's, so that the pace can slow down before Graph answers 429.
	OnThrottleLimit func(tenantID string, share float64, appWide bool)
	// PageSize is the $top of ListUsers, 1–999.
	PageSize int
	// NoSignInActivity leaves signInActivity out of ListUsers. Graph serves
	// it only to apps with AuditLog.Read.All in tenants with Entra ID P1;
	// ListUsers falls back without it on a 403, and this saves that call
	// when no tenant has it.
	NoSignInActivity bool
	// Transport carries the requests; nil means a clone of
	// http.DefaultTransport that keeps enough idle connections for every
	// tenant's calls in flight, since they all go to one host.
	Transport http.RoundTripper
}

// WithDefaults returns the config with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.TokenURL == "" {
		c.TokenURL = DefaultTokenURL
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{DefaultScope}
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	c = c.WithPacingDefaults()
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 256
		c.Transport = t
	}
	return c
}

// WithPacingDefaults returns the config with the write rates at their
// defaults when unset, for a caller that paces the writes itself.
func (c Config) WithPacingDefaults() Config {
	if c.RatePerSecond <= 0 {
		c.RatePerSecond = DefaultRatePerSecond
	}
	if c.AppRatePerSecond <= 0 {
		c.AppRatePerSecond = DefaultAppRatePerSecond
	}
	return c
}

func (c Config) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("msgraph: BaseURL %q is not an http(s) URL", c.BaseURL)
	}
	if !strings.Contains(c.TokenURL, "{tenant}") {
		return fmt.Errorf("msgraph: TokenURL %q has no {tenant} placeholder", c.TokenURL)
	}
	if u, err := url.Parse(strings.ReplaceAll(c.TokenURL, "{tenant}", "t")); err != nil || u.Host == "" {
		return fmt.Errorf("msgraph: TokenURL %q is not an http(s) URL", c.TokenURL)
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		return errors.New("msgraph: ClientID and ClientSecret are required (see LoadCredentials)")
	}
	if c.PageSize > 999 {
		return fmt.Errorf("msgraph: PageSize %d is above Graph's maximum of 999", c.PageSize)
	}
	return nil
}

// String describes the config with the secret redacted, so that logging a
// Config (with %v, %+v or %s) is safe.
func (c Config) String() string {
	limiter := fmt.Sprintf("%g/s, app %g/s", c.RatePerSecond, c.AppRatePerSecond)
	switch {
	case c.PacedByCaller:
		limiter = "caller"
	case c.WriteLimiter != nil:
		limiter = "shared"
	}
	return fmt.Sprintf("msgraph.Config{BaseURL: %s, TokenURL: %s, ClientID: %s, ClientSecret: %s, Scopes: %v, Timeout: %s, MaxInFlight: %d, WriteRate: %s, PageSize: %d, NoSignInActivity: %t}",
		c.BaseURL, c.TokenURL, c.ClientID, redacted, c.Scopes, c.Timeout, c.MaxInFlight, limiter, c.PageSize, c.NoSignInActivity)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue logs the config with the secret redacted.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }
