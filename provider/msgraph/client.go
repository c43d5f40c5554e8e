// Package msgraph is the Microsoft Graph license directory: a small typed
// client of the five Graph v1.0 calls licenseops needs (assignLicense, a
// user's assignedLicenses, PATCH usageLocation, subscribedSkus, and the user
// list), signed in per tenant with the OAuth2 client credentials flow.
//
// It classifies every failure as a *provider.Error and does not retry
// throttled or transient calls itself: the worker's task retries do, waiting
// what Graph's Retry-After says. The one retry it makes is after a 401, with
// a fresh token, because an access token can be rejected before it expires.
// Per tenant it bounds the calls in flight and paces writes to stay under
// Graph's write quota, so a tenant-wide rollout runs at Graph's pace.
package msgraph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
)

// Client is the Microsoft Graph directory. It is safe for concurrent use;
// make one per process and share it, since the per-tenant limits and tokens
// live in it.
type Client struct {
	cfg    Config
	http   *http.Client
	origin string // scheme://host of BaseURL: nextLinks must stay on it, since they carry the token

	mu      sync.Mutex
	tenants map[string]*tenant
	// appWrites paces the app's writes across tenants in this process,
	// when no WriteLimiter is set.
	appWrites *rate.Limiter
}

var _ provider.Directory = (*Client)(nil)

// tenant is the per-tenant state, created on first use.
type tenant struct {
	inflight chan struct{} // a semaphore of MaxInFlight slots
	writes   *rate.Limiter // nil when Config.WriteLimiter paces writes
	tokens   *tokenCache
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.BaseURL) // validated
	return &Client{
		cfg:       cfg,
		appWrites: rate.NewLimiter(rate.Limit(cfg.AppRatePerSecond), max(1, int(cfg.AppRatePerSecond))),
		http:      &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout},
		origin:    u.Scheme + "://" + u.Host,
		tenants:   make(map[string]*tenant),
	}, nil
}

// String describes the client without its secret.
func (c *Client) String() string { return "msgraph.Client{" + c.cfg.String() + "}" }

// Format prints String for every verb: fmt would otherwise print the
// unexported config field by field for %d or %#v, secret included.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

func (c *Client) tenant(id string) *tenant {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[id]
	if t == nil {
		t = &tenant{
			inflight: make(chan struct{}, c.cfg.MaxInFlight),
			tokens:   newTokenCache(c.cfg, strings.ReplaceAll(c.cfg.TokenURL, "{tenant}", url.PathEscape(id))),
		}
		if c.cfg.WriteLimiter == nil {
			// One second's worth of burst: Graph's quota is counted over
			// 150 s, so a short burst is harmless, and a long one is what
			// the pacing exists to prevent.
			t.writes = rate.NewLimiter(rate.Limit(c.cfg.RatePerSecond), max(1, int(c.cfg.RatePerSecond)))
		}
		c.tenants[id] = t
	}
	return t
}

// call makes one Graph request for the tenant: it waits for the write pace
// (writes only) and a slot in flight, then sends with the tenant's token,
// decoding a 2xx answer into out (when not nil).
func (c *Client) call(ctx context.Context, tenantID, method, u string, body, out any) error {
	if tenantID == "" || strings.ContainsAny(tenantID, "/?#") {
		return invalid("tenant ID %q is not a Microsoft Entra tenant ID", tenantID)
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return invalid("encode request: %v", err)
		}
	}
	t := c.tenant(tenantID)
	// The pace before the slot: a write waiting for its turn must not hold
	// a slot that a read (the resume check of another user) could use.
	if method != http.MethodGet && !c.cfg.PacedByCaller {
		if err := c.waitWrite(ctx, tenantID, t); err != nil {
			return err
		}
	}
	select {
	case t.inflight <- struct{}{}:
	case <-ctx.Done():
		return transportError(ctx, ctx.Err(), c.cfg.Timeout)
	}
	defer func() { <-t.inflight }()

	for attempt := 0; ; attempt++ {
		tok, err := t.tokens.token(ctx, c.http)
		if err != nil {
			return tokenError(ctx, tenantID, err, c.cfg.Timeout, time.Now())
		}
		err = c.roundTrip(ctx, tenantID, method, u, tok, payload, out)
		var pe *provider.Error
		if attempt == 0 && errors.As(err, &pe) && pe.Status == http.StatusUnauthorized {
			// Entra ID can invalidate a token before its expiry (signing
			// key rollover, revoked consent); one fresh token tells which.
			t.tokens.invalidate(tok)
			continue
		}
		return err
	}
}

// Headers of Graph's identity service about its quotas.
const (
	// HeaderThrottleLimitPercentage is sent once the app has used more than
	// 0.8 of a limit: the share used, 0.8 to 1.8.
	HeaderThrottleLimitPercentage = "x-ms-throttle-limit-percentage"
	// HeaderThrottleScope names the limit a 429 is about:
	// <Scope>/<Limit>/<ApplicationId>/<TenantId>, Scope being
	// Tenant_Application, Tenant or Application.
	HeaderThrottleScope = "x-ms-throttle-scope"
)

// reportPressure passes x-ms-throttle-limit-percentage on to
// Config.OnThrottleLimit, with whether the limit is the app's across all
// tenants (a 429 whose x-ms-throttle-scope says Application).
func (c *Client) reportPressure(tenantID string, h http.Header) {
	if c.cfg.OnThrottleLimit == nil {
		return
	}
	v := strings.TrimSpace(h.Get(HeaderThrottleLimitPercentage))
	if v == "" {
		return
	}
	share, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || math.IsNaN(share) || share <= 0 {
		return
	}
	if share > 5 || strings.HasSuffix(v, "%") {
		share /= 100 // a percentage rather than Graph's documented share
	}
	appWide := strings.HasPrefix(h.Get(HeaderThrottleScope), "Application/")
	c.cfg.OnThrottleLimit(tenantID, share, appWide)
}

func (c *Client) waitWrite(ctx context.Context, tenantID string, t *tenant) error {
	var err error
	if t.writes != nil {
		if err = c.appWrites.Wait(ctx); err == nil {
			err = t.writes.Wait(ctx)
		}
	} else {
		err = c.cfg.WriteLimiter.Wait(ctx, tenantID)
	}
	if err == nil {
		return nil
	}
	e := transportError(ctx, err, c.cfg.Timeout)
	if ctx.Err() == nil {
		// rate.Limiter refuses at once when the wait would outlast ctx's deadline.
		e.Message = "Waiting for the tenant's write quota took too long: " + err.Error()
	}
	return e
}

// maxErrorBody bounds what is read of an error answer; Graph's are small.
const maxErrorBody = 64 << 10

func (c *Client) roundTrip(ctx context.Context, tenantID, method, u, token string, payload []byte, out any) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return invalid("build request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(ctx, err, c.cfg.Timeout)
	}
	defer resp.Body.Close()
	c.reportPressure(tenantID, resp.Header)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return classify(resp.StatusCode, resp.Header, b, time.Now())
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			var ne net.Error
			if ctx.Err() != nil || errors.As(err, &ne) {
				return transportError(ctx, err, c.cfg.Timeout)
			}
			return &provider.Error{Kind: provider.Transient, Code: licensing.CodeProviderError, Status: resp.StatusCode, Err: err,
				Message: "Microsoft Graph sent an answer that is not the JSON expected: " + err.Error()}
		}
	}
	// Drain what is left so the connection goes back to the pool.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return nil
}

// invalid is the error of a call that licenseops itself got wrong: permanent,
// because sending it again cannot succeed.
func invalid(format string, args ...any) *provider.Error {
	return &provider.Error{Kind: provider.Permanent, Code: licensing.CodeProviderError,
		Message: "licenseops made an invalid Microsoft Graph call: " + fmt.Sprintf(format, args...)}
}
