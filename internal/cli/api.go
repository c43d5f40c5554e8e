package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/internal/health"
	"github.com/licenseops/licenseops/licensing"
)

// The client of the HTTP API the client commands use, until the SDK
// (package client) takes its place: one request path (send) that waits
// out 429s and turns non-2xx answers into *apiError, and a typed function
// per endpoint the commands read.

const defaultAPIURL = "http://127.0.0.1:8080"

// connFlags are the flags every client command has.
type connFlags struct {
	url, token string
	env        func(string) string
}

func (f *connFlags) bind(fs *flag.FlagSet, env *Env) {
	u := env.Getenv("LICENSEOPS_URL")
	if u == "" {
		u = defaultAPIURL
	}
	f.env = env.Getenv
	fs.StringVar(&f.url, "url", u, "base URL of the licenseops API (env LICENSEOPS_URL)")
	// The environment's token is read after parsing, so that -h never prints it.
	fs.StringVar(&f.token, "token", "", "API token (default: env LICENSEOPS_TOKEN)")
}

// validate checks the flags; its errors are usage errors.
func (f *connFlags) validate() error {
	if f.token == "" {
		f.token = f.env("LICENSEOPS_TOKEN")
	}
	if f.token == "" {
		return errors.New("no API token: set LICENSEOPS_TOKEN or pass --token (create one with licenseops token create)")
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q is not an http(s) URL", f.url)
	}
	return nil
}

// client returns a client of the API; call validate first.
func (f *connFlags) client() *apiClient {
	return newAPIClient(strings.TrimRight(f.url, "/"), f.token)
}

// apiClient is a client of the licenseops HTTP API acting as one token.
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
	StatusCode int
	Code       string
	Message    string
	// Details is the error body's optional details, undecoded.
	Details json.RawMessage
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.StatusCode, e.Message)
}

// apiCode is the contract's error code of err, or "".
func apiCode(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// maxRateLimitRetries bounds how often a request waits out a 429 before giving up.
const maxRateLimitRetries = 20

// call sends body as JSON (when not nil) and decodes a JSON answer into
// out (when not nil); idempotencyKey, when set, is sent as Idempotency-Key.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any, idempotencyKey string) error {
	h := http.Header{}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := c.send(ctx, method, path, body, h)
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
// to read and close.
func (c *apiClient) stream(ctx context.Context, path, accept string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil, http.Header{"Accept": {accept}})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// send does one request, waiting out 429 RateLimited answers
// (Retry-After), which is safe because the rate limit refuses a request
// before it does anything; a non-2xx answer is an *apiError.
func (c *apiClient) send(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
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
		for k, v := range header {
			req.Header[k] = v
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
	out := &apiError{StatusCode: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, Details: e.Error.Details}
	if out.Code == "" {
		out.Code = http.StatusText(resp.StatusCode)
		out.Message = "the answer has no error body; is " + resp.Request.URL.Host + " a licenseops API?"
	}
	return out
}

// Types of the API's answers that the commands read.
type (
	userPage struct {
		Users      []licensing.User `json:"users"`
		Page       int              `json:"page"`
		PageSize   int              `json:"page_size"`
		Total      int              `json:"total"`
		TotalPages int              `json:"total_pages"`
	}
	operationPage struct {
		Operations []licensing.Operation `json:"operations"`
		Page       int                   `json:"page"`
		Total      int                   `json:"total"`
		TotalPages int                   `json:"total_pages"`
	}
	subscriptionInfo struct {
		SKU        string  `json:"sku_id"`
		Name       string  `json:"name"`
		Total      int     `json:"total"`
		Consumed   int     `json:"consumed"`
		Available  int     `json:"available"`
		BuyMoreURL *string `json:"buy_more_url"`
	}
	licenseSummary struct {
		Users []struct {
			ID  string `json:"id"`
			UPN string `json:"user_principal_name"`
		} `json:"users"`
		Products []struct {
			SKU             string   `json:"sku_id"`
			Name            string   `json:"name"`
			Total           int      `json:"total"`
			Available       int      `json:"available"`
			State           string   `json:"state"`
			AssignedUserIDs []string `json:"assigned_user_ids"`
			BuyMoreURL      *string  `json:"buy_more_url"`
		} `json:"products"`
	}
	operationRequest struct {
		UserIDs       []string `json:"user_ids"`
		Assign        []string `json:"assign"`
		Revoke        []string `json:"revoke"`
		UsageLocation string   `json:"usage_location,omitempty"`
		AllowPartial  bool     `json:"allow_partial"`
	}
	acceptedOperation struct {
		ID    string `json:"id"`
		Total int    `json:"total"`
	}
)

func customerPath(cid string) string { return "/v1/customers/" + url.PathEscape(cid) }

func operationPath(id string) string { return "/v1/operations/" + url.PathEscape(id) }

func pageQuery(page, size int) url.Values {
	return url.Values{"page": {strconv.Itoa(page)}, "page_size": {strconv.Itoa(size)}}
}

func (c *apiClient) getCustomer(ctx context.Context, cid string) (licensing.Customer, error) {
	var out licensing.Customer
	err := c.call(ctx, http.MethodGet, customerPath(cid), nil, &out, "")
	return out, err
}

func (c *apiClient) listProducts(ctx context.Context) ([]licensing.Product, error) {
	var out struct {
		Products []licensing.Product `json:"products"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/products", nil, &out, "")
	return out.Products, err
}

func (c *apiClient) listUsers(ctx context.Context, cid, q string, page, size int) (userPage, error) {
	v := pageQuery(page, size)
	if q != "" {
		v.Set("q", q)
	}
	var p userPage
	err := c.call(ctx, http.MethodGet, customerPath(cid)+"/users?"+v.Encode(), nil, &p, "")
	return p, err
}

func (c *apiClient) getUser(ctx context.Context, cid, id string) (licensing.User, error) {
	var u licensing.User
	err := c.call(ctx, http.MethodGet, customerPath(cid)+"/users/"+url.PathEscape(id), nil, &u, "")
	return u, err
}

func (c *apiClient) listSubscriptions(ctx context.Context, cid string) ([]subscriptionInfo, error) {
	var out struct {
		Subscriptions []subscriptionInfo `json:"subscriptions"`
	}
	err := c.call(ctx, http.MethodGet, customerPath(cid)+"/subscriptions", nil, &out, "")
	return out.Subscriptions, err
}

func (c *apiClient) licenseSummary(ctx context.Context, cid string, ids []string) (licenseSummary, error) {
	var sum licenseSummary
	err := c.call(ctx, http.MethodPost, customerPath(cid)+"/license-summary", map[string]any{"user_ids": ids}, &sum, "")
	return sum, err
}

func (c *apiClient) createOperation(ctx context.Context, cid string, req operationRequest, idempotencyKey string) (acceptedOperation, error) {
	var acc acceptedOperation
	err := c.call(ctx, http.MethodPost, customerPath(cid)+"/license-operations", req, &acc, idempotencyKey)
	return acc, err
}

func (c *apiClient) getOperation(ctx context.Context, id string) (licensing.Operation, error) {
	var op licensing.Operation
	err := c.call(ctx, http.MethodGet, operationPath(id), nil, &op, "")
	return op, err
}

func (c *apiClient) listOperations(ctx context.Context, cid string, page, size int) (operationPage, error) {
	var p operationPage
	err := c.call(ctx, http.MethodGet, customerPath(cid)+"/operations?"+pageQuery(page, size).Encode(), nil, &p, "")
	return p, err
}

// reportCSV streams an operation's report as CSV; the caller closes it.
func (c *apiClient) reportCSV(ctx context.Context, id string) (io.ReadCloser, error) {
	return c.stream(ctx, operationPath(id)+"/report", "text/csv")
}

// workers reads what /readyz says about the workers; nil when it does not
// say (an older api, or Redis away).
func (c *apiClient) workers(ctx context.Context) *health.Workers {
	resp, err := c.send(ctx, http.MethodGet, "/readyz", nil, nil)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var rep health.Report
	if json.NewDecoder(resp.Body).Decode(&rep) != nil {
		return nil
	}
	return rep.Workers
}

// waitOptions say how waitOperation polls (the shape of the SDK's
// WaitOptions).
type waitOptions struct {
	// Interval is the time between two reads of the operation.
	Interval time.Duration
	// Progress is called with every read of the operation, the finished one last.
	Progress func(licensing.Operation)
	// Stalled is called when no user of the operation has finished for
	// StallAfter, again only after the operation has moved.
	Stalled    func(op licensing.Operation, idle time.Duration)
	StallAfter time.Duration
}

// waitOperation polls an operation until it has finished and returns it.
// When ctx ends first, or a read fails, it returns the operation as last
// read with the error: the operation goes on on the server either way.
func (c *apiClient) waitOperation(ctx context.Context, id string, opts waitOptions) (licensing.Operation, error) {
	var last licensing.Operation
	done, movedAt, stallReported := -1, time.Now(), false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-timer.C:
		}
		op, err := c.getOperation(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		last = op
		if opts.Progress != nil {
			opts.Progress(op)
		}
		if op.FinishedAt != nil {
			return op, nil
		}
		now := time.Now()
		if n := op.Succeeded + op.Failed; n != done {
			done, movedAt, stallReported = n, now, false
		} else if idle := now.Sub(movedAt); opts.Stalled != nil && !stallReported && idle >= opts.StallAfter {
			stallReported = true
			opts.Stalled(op, idle)
		}
		timer.Reset(opts.Interval)
	}
}
