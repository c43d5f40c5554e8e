package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"

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
