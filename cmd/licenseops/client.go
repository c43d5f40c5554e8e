package main

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

// apiClient is a small client of the licenseops HTTP API, used by the demo
// exactly as an outside client would use the API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(base, token string) *apiClient {
	return &apiClient{base: base, token: token, http: &http.Client{Timeout: 2 * time.Minute}}
}

// apiError is a non-2xx answer with the contract's error body.
type apiError struct {
	Status  int
	Code    string
	Message string
	// Details is the error body's optional details, undecoded (filled by call and stream).
	Details json.RawMessage
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// do sends body as JSON (when not nil) and decodes a JSON answer into out (when not nil).
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return &apiError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// download writes the body of a GET to w.
func (c *apiClient) download(ctx context.Context, path, accept string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", accept)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// callOptions are the extras of call beyond do.
type callOptions struct {
	// idempotencyKey, when set, is sent as Idempotency-Key.
	idempotencyKey string
	// accept, when set, is sent as Accept.
	accept string
}

// maxRateLimitRetries bounds how often call waits out a 429 before giving up.
const maxRateLimitRetries = 20

// call is do for the command-line client: it waits out 429 RateLimited
// answers (Retry-After) and retries, which is safe because the rate limit
// refuses a request before it does anything, and it keeps the error's
// details so that commands can show them.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any, opts callOptions) error {
	resp, err := c.send(ctx, method, path, body, opts)
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

// stream sends a GET and returns the body of its 2xx answer for the caller
// to read and close; a non-2xx answer is an *apiError.
func (c *apiClient) stream(ctx context.Context, path, accept string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil, callOptions{accept: accept})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// send does one request with 429 retries and turns non-2xx answers into *apiError.
func (c *apiClient) send(ctx context.Context, method, path string, body any, opts callOptions) (*http.Response, error) {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		payload = b
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd) // #nosec G704 -- the operator names the API's URL (--url or LICENSEOPS_URL)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if opts.accept != "" {
			req.Header.Set("Accept", opts.accept)
		}
		if opts.idempotencyKey != "" {
			req.Header.Set("Idempotency-Key", opts.idempotencyKey)
		}
		resp, err := c.http.Do(req) // #nosec G704 -- the request above, to the operator's API
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 300 {
			return resp, nil
		}
		apiErr := readAPIError(resp)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || attempt >= maxRateLimitRetries {
			return nil, apiErr
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

// readAPIError decodes the contract's error body of a non-2xx answer.
func readAPIError(resp *http.Response) *apiError {
	var e struct {
		Error struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
	out := &apiError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, Details: e.Error.Details}
	if out.Code == "" {
		out.Code = http.StatusText(resp.StatusCode)
		out.Message = "the answer has no error body; is " + resp.Request.URL.Host + " a licenseops API?"
	}
	return out
}
