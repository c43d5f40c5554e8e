package api_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/testapp"
)

// openAPI starts one more api process on the bundle's Postgres and Redis.
func openAPI(t *testing.T, b *testapp.Bundle, cfg api.Config, rdb redis.UniversalClient) *api.Server {
	t.Helper()
	cfg.Addr, cfg.Logger = "127.0.0.1:0", b.Log
	srv, err := api.New(cfg, b.Intake, b.Store, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	return srv
}

// getAs sends GET path to the api at base with token.
func getAs(t *testing.T, base, token, path string) *testapp.Response {
	t.Helper()
	resp, err := client.New(base, token).Do(context.Background(), http.MethodGet, path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &testapp.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// A token over its limit gets 429 RateLimited with Retry-After, from every
// api process, while the partner's other tokens are not held back.
func TestRateLimitPerTokenAcrossProcesses(t *testing.T) {
	t.Parallel()
	cfg := api.Config{RateLimitPerSecond: 1, RateLimitBurst: 1}
	b := testapp.New(t, testapp.Options{APIConfig: cfg})
	second := openAPI(t, b, cfg, b.Redis)
	c := b.Client("p", "reader")
	other := b.Client("p", "reader")

	// Budget: one request now, then one a second. A few tries absorb a
	// machine so slow that a second passes between two requests.
	var limited *testapp.Response
	sharedSeen := false
	for try := 0; try < 10 && !sharedSeen; try++ {
		r := getAs(t, b.API.URL(), c.Token, "/v1/customers")
		if r.Status == http.StatusOK {
			continue
		}
		limited = r
		// The other process charges the same budget.
		sharedSeen = getAs(t, second.URL(), c.Token, "/v1/customers").Status == http.StatusTooManyRequests
	}
	if limited == nil {
		t.Fatal("ten requests in a row at a limit of 1/s were all allowed")
	}
	if !sharedSeen {
		t.Fatal("the second api process never refused a token the first one had limited: the budget is not shared")
	}
	if limited.Status != http.StatusTooManyRequests || limited.ErrorCode() != "RateLimited" {
		t.Fatalf("over the limit: %d %s, want 429 RateLimited", limited.Status, limited.Body)
	}
	wait, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	if err != nil || wait < 1 {
		t.Fatalf("Retry-After %q, want whole seconds ≥ 1", limited.Header.Get("Retry-After"))
	}
	if msg := errorMessage(t, limited); !strings.Contains(msg, "retry after "+strconv.Itoa(wait)) {
		t.Fatalf("message %q does not say when to retry", msg)
	}
	// The limit is per token.
	if r := getAs(t, second.URL(), other.Token, "/v1/customers"); r.Status != http.StatusOK {
		t.Fatalf("another token of the partner: %d %s, want 200", r.Status, r.Body)
	}
	// An unknown token is refused before it can spend anyone's budget.
	if r := getAs(t, b.API.URL(), "lops_unknown", "/v1/customers"); r.Status != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", r.Status)
	}
}

// Without Redis the limit cannot be checked: requests that do not need
// Redis still succeed, and the failure is counted.
func TestRateLimitLetsRequestsThroughWithoutRedis(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{NoAPI: true})
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { dead.Close() })
	srv := openAPI(t, b, api.Config{RateLimitPerSecond: 1, RateLimitBurst: 1}, dead)
	token := b.Token("p", "reader")
	for range 3 {
		if r := getAs(t, srv.URL(), token, "/v1/customers"); r.Status != http.StatusOK {
			t.Fatalf("without Redis: %d %s, want 200", r.Status, r.Body)
		}
	}
	metrics := getAs(t, srv.URL(), "", "/metrics")
	if !strings.Contains(string(metrics.Body), "licenseops_rate_limit_errors_total 3") {
		t.Fatalf("rate limit errors not counted:\n%s", metrics.Body)
	}
}

func TestRateLimitConfigDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in               api.Config
		perSecond, burst int
	}{
		{api.Config{}, 50, 100},
		{api.Config{RateLimitPerSecond: 10}, 10, 20},
		{api.Config{RateLimitPerSecond: 10, RateLimitBurst: 15}, 10, 15},
		{api.Config{RateLimitPerSecond: -1}, -1, 0},
	} {
		got := tc.in.WithDefaults()
		if got.RateLimitPerSecond != tc.perSecond || got.RateLimitBurst != tc.burst {
			t.Errorf("%+v.WithDefaults(): %d/s burst %d, want %d/s burst %d",
				tc.in, got.RateLimitPerSecond, got.RateLimitBurst, tc.perSecond, tc.burst)
		}
	}
}
