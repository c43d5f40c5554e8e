package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/licenseops/licenseops/client"
)

// The client commands talk to the HTTP API through the SDK (package
// client): one request path that waits out 429s, *client.Error for the
// API's error body, client.WaitOperation to follow an operation.

const defaultAPIURL = "http://127.0.0.1:8080"

// rateLimitRetries is how many 429 answers a request waits out: a
// 100,000-user rollout reads the user list in bursts beyond a token's limit.
const rateLimitRetries = 20

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
func (f *connFlags) client() *client.Client {
	return client.New(f.url, f.token, client.WithUserAgent("licenseops-cli"), client.WithMaxRateLimitRetries(rateLimitRetries))
}

// apiError returns the API error that err is or wraps.
func apiError(err error) (*client.Error, bool) {
	var ae *client.Error
	ok := errors.As(err, &ae)
	return ae, ok
}

// liveWorkers reads what the api's /readyz says about the workers; nil
// when it does not say (an older api, or Redis away).
func liveWorkers(ctx context.Context, c *client.Client) *client.WorkersAlive {
	rd, err := c.Readyz(ctx)
	if err != nil {
		return nil
	}
	return rd.Workers
}

// operationPreview is the API's answer to a dry run of a license
// operation: the seats of each SKU to assign and each user's predicted row.
type operationPreview struct {
	Total        int `json:"total"`
	WouldSucceed int `json:"would_succeed"`
	WouldFail    int `json:"would_fail"`
	SKUs         []struct {
		SKU        string `json:"sku_id"`
		Needed     int    `json:"needed"`
		Available  int    `json:"available"`
		BuyMoreURL string `json:"buy_more_url"`
	} `json:"skus"`
	Results []client.ReportRow `json:"results"`
}

// previewOperation asks the API for a dry run of req: the operation's
// request with "dry_run": true, checked and refused as the real one would
// be, nothing written. The SDK has no typed method for it yet, so it goes
// through the SDK's Do and CheckResponse, waiting out 429s as the typed
// methods do.
func previewOperation(ctx context.Context, c *client.Client, cid string, req client.OperationRequest) (*operationPreview, error) {
	body, err := json.Marshal(struct {
		client.OperationRequest
		DryRun bool `json:"dry_run"`
	}{req, true})
	if err != nil {
		return nil, err
	}
	path := "/v1/customers/" + url.PathEscape(cid) + "/license-operations"
	for attempt := 0; ; attempt++ {
		resp, err := c.Do(ctx, http.MethodPost, path, bytes.NewReader(body), nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusTooManyRequests && attempt < rateLimitRetries {
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			_ = resp.Body.Close()
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		if err := client.CheckResponse(resp); err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var pv operationPreview
		if err := json.NewDecoder(resp.Body).Decode(&pv); err != nil {
			return nil, fmt.Errorf("POST %s (dry run): decode the answer: %w", path, err)
		}
		return &pv, nil
	}
}
