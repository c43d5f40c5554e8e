package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Client is a small client of the licenseops HTTP API acting as one token,
// for the developer tools and the seeder.
type Client struct {
	Base  string
	Token string
	// RateLimitRetries is how many 429 answers a call waits out (the
	// Retry-After they ask for) before it returns the last as its error.
	RateLimitRetries int
	HTTP             *http.Client
}

// sharedTransport lets every Client of the process share connections.
var sharedTransport = &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}

// NewClient returns a client of the api at base acting as token.
func NewClient(base, token string) *Client {
	return &Client{Base: base, Token: token, RateLimitRetries: 20, HTTP: &http.Client{Transport: sharedTransport, Timeout: 5 * time.Minute}}
}

// APIError is a non-2xx answer with the API's error body.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Call sends in as JSON (unless nil) and decodes a 2xx answer's JSON into
// out (unless nil); anything else is an *APIError.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	var payload []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		payload = b
	}
	return c.CallRaw(ctx, method, path, payload, out)
}

// CallRaw is Call with a body already encoded (nil for none).
func (c *Client) CallRaw(ctx context.Context, method, path string, payload []byte, out any) error {
	resp, err := c.send(ctx, method, path, payload, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// Download writes the body of a GET with Accept accept to w.
func (c *Client) Download(ctx context.Context, path, accept string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, path, nil, accept)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

func (c *Client) send(ctx context.Context, method, path string, payload []byte, accept string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		var body io.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 300 {
			return resp, nil
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
		_ = resp.Body.Close()
		apiErr := &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		if resp.StatusCode != http.StatusTooManyRequests || attempt >= c.RateLimitRetries {
			return nil, fmt.Errorf("%s %s: %w", method, path, apiErr)
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}
