package client

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is the User-Agent of a Client made without WithUserAgent.
const DefaultUserAgent = "licenseops-go-client"

// DefaultMaxRateLimitRetries is how many 429 RateLimited answers a Client
// made without WithMaxRateLimitRetries waits out per call.
const DefaultMaxRateLimitRetries = 10

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// defaultHTTPClient is shared by every Client made without WithHTTPClient,
// so that they share one connection pool. It puts no bound on a whole
// exchange, since a report of 100,000 rows may take a while to stream;
// contexts bound calls, and the answer's headers must come within five
// minutes (an intake of 100,000 users takes seconds).
var defaultHTTPClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 5 * time.Minute
	return t
}()}

// Client is a client of the licenseops HTTP API acting as one token. It is
// safe for concurrent use.
type Client struct {
	baseURL    string
	token      string
	http       *http.Client
	userAgent  string
	maxRetries int
}

// Option configures a Client made by New.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc, for a timeout,
// a proxy or a transport of one's own. A nil hc keeps the default.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithUserAgent sets the User-Agent header of every request, for example
// "licenseops-cli/1.4"; the default is DefaultUserAgent.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// WithMaxRateLimitRetries sets how many 429 RateLimited answers a call waits
// out before it returns the last as its *Error; 0 returns the first. The
// default is DefaultMaxRateLimitRetries.
func WithMaxRateLimitRetries(n int) Option {
	return func(c *Client) { c.maxRetries = max(n, 0) }
}

// New returns a client of the API at baseURL (for example
// "https://licenseops.example.com", or one with a path prefix behind a
// proxy) that authenticates with token. An empty token sends no
// Authorization header.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		baseURL:    strings.TrimRight(baseURL, "/"),
		token:      token,
		http:       defaultHTTPClient,
		userAgent:  DefaultUserAgent,
		maxRetries: DefaultMaxRateLimitRetries,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// BaseURL returns the base URL the client sends requests to, without a
// trailing slash.
func (c *Client) BaseURL() string { return c.baseURL }

// Do sends one request to path (starting with "/", for example
// "/v1/customers?page=2", joined to the base URL as it is, so its segments
// must already be escaped) with the client's token and User-Agent, then
// header, which may add headers or replace those. A non-nil body is sent
// with Content-Type application/json unless header sets another. Do
// neither retries nor interprets the status: the caller reads and closes
// the answer's body, whatever it is (CheckResponse reads an error). It is
// the request path of every typed method, for tests of the wire and for
// endpoints this package does not know.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body) // #nosec G704 -- the caller names the API's URL (New)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	return c.http.Do(req) // #nosec G704 -- the request above, to the caller's API
}

// call is the typed request path: in (when not nil) is sent as JSON, a 2xx
// answer is decoded into out (when not nil), anything else is an *Error.
func (c *Client) call(ctx context.Context, method, path string, in, out any, header http.Header) error {
	resp, err := c.send(ctx, method, path, in, header)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return &DecodeError{Method: method, Path: path, Err: err}
	}
	return nil
}

// send does the request of call and returns its 2xx answer for the caller
// to read and close. 429 answers are waited out and retried up to the
// client's limit; every other non-2xx answer, and the last 429, is an *Error.
func (c *Client) send(ctx context.Context, method, path string, in any, header http.Header) (*http.Response, error) {
	var payload []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		payload = b
	}
	h := http.Header{"Accept": {"application/json"}}
	for k, vs := range header {
		h[http.CanonicalHeaderKey(k)] = vs
	}
	for attempt := 0; ; attempt++ {
		var body io.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
		}
		resp, err := c.Do(ctx, method, path, body, h)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		apiErr := readError(resp, c.baseURL)
		if resp.StatusCode != http.StatusTooManyRequests || attempt >= c.maxRetries {
			return nil, apiErr
		}
		t := time.NewTimer(retryAfter(resp.Header.Get("Retry-After"), time.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date;
// without one, or with one in the past, it is one second.
func retryAfter(v string, now time.Time) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return time.Second
}

// CheckResponse returns nil for a 2xx answer, leaving its body to the
// caller, and otherwise the answer as an *Error, having read and closed
// its body: the typed methods' reading of errors, for answers of Do.
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	base := ""
	if resp.Request != nil && resp.Request.URL != nil {
		base = resp.Request.URL.Scheme + "://" + resp.Request.URL.Host
	}
	return readError(resp, base)
}

// readError turns a non-2xx answer of the API at baseURL into an *Error
// and closes its body.
func readError(resp *http.Response, baseURL string) *Error {
	defer closeBody(resp)
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Error *struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	e := &Error{StatusCode: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil && body.Error.Code != "" {
		e.Code, e.Message, e.Details = body.Error.Code, body.Error.Message, body.Error.Details
		if string(e.Details) == "null" {
			e.Details = nil
		}
		return e
	}
	e.Message = "the answer has no licenseops error body"
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		e.Message += " (Content-Type " + ct + ")"
	}
	if baseURL != "" {
		e.Message += "; is " + baseURL + " the licenseops API?"
	}
	return e
}

// closeBody drains a little of what is left of the body, so that the
// connection can be reused, and closes it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
