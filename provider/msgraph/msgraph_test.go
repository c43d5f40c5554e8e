package msgraph_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/provider/msgraph"
)

const (
	contoso  = "contoso"
	fabrikam = "fabrikam"
	clientID = "licenseops-app"
	secret   = "hunter2-very-secret-value"
	skuE3    = "6fd2c87f-b296-42f0-b197-1e91e994b900"
	skuE5    = "c7df2760-2c81-4ef7-b578-5b5392b571df"
	skuAddon = "addon-0000-0000-0000-000000000001"
	skuCN    = "blocked-in-cn-0000-000000000002"
	skuOne   = "one-seat-0000-0000-000000000003"
)

var signedIn = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

type bundle struct {
	sim    *graphsim.Simulator
	root   string
	client *msgraph.Client
}

// setup serves a simulator with two tenants and returns a client pointed at
// it. wrap, when not nil, wraps the simulator's handler (to watch calls).
func setup(t testing.TB, simCfg graphsim.Config, edit func(*msgraph.Config), wrap func(http.Handler) http.Handler) bundle {
	t.Helper()
	sim := graphsim.New(simCfg)
	var h http.Handler = sim
	if wrap != nil {
		h = wrap(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	for _, id := range []string{contoso, fabrikam} {
		err := sim.AddTenant(graphsim.TenantSeed{
			ID: id, ClientID: clientID, ClientSecret: secret,
			SKUs: []graphsim.SKUSeed{
				{ID: skuE3, PartNumber: "ENTERPRISEPACK", Enabled: 10, Excludes: []string{skuE5}},
				{ID: skuE5, PartNumber: "ENTERPRISEPREMIUM", Enabled: 5},
				{ID: skuAddon, PartNumber: "ADDON", Enabled: 10, Requires: []string{skuE3}},
				{ID: skuCN, PartNumber: "NOT_IN_CN", Enabled: 10, ProhibitedLocations: []string{"CN"}},
				{ID: skuOne, PartNumber: "ONE", Enabled: 1},
			},
			Users: []graphsim.UserSeed{
				{ID: "u1", UserPrincipalName: "u1@" + id + ".com", DisplayName: "One", UsageLocation: "PL", AccountEnabled: true, LastSignInAt: &signedIn, Licenses: []string{skuE3, skuOne}},
				{ID: "u2", UserPrincipalName: "u2@" + id + ".com", DisplayName: "Two", UsageLocation: "PL", AccountEnabled: true},
				{ID: "u3", UserPrincipalName: "u3@" + id + ".com", DisplayName: "Three", AccountEnabled: false},
				{ID: "u4", UserPrincipalName: "u4@" + id + ".com", DisplayName: "Four", UsageLocation: "CN", AccountEnabled: true},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := msgraph.Config{
		BaseURL: graphsim.GraphURL(srv.URL), TokenURL: graphsim.TokenURL(srv.URL),
		Credentials: msgraph.Credentials{ClientID: clientID, ClientSecret: secret},
		Timeout:     5 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := msgraph.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return bundle{sim: sim, root: srv.URL, client: c}
}

func (b bundle) licenses(t testing.TB, tenant, user string) []string {
	t.Helper()
	u, ok := b.sim.User(tenant, user)
	if !ok {
		t.Fatalf("no user %s", user)
	}
	return u.Licenses
}

func (b bundle) consumed(t testing.TB, tenant, sku string) int {
	t.Helper()
	st, _ := b.sim.Tenant(tenant)
	for _, k := range st.SKUs {
		if k.ID == sku {
			return k.Consumed
		}
	}
	t.Fatalf("no SKU %s", sku)
	return 0
}

func add(skus ...string) []provider.AddLicense {
	var out []provider.AddLicense
	for _, s := range skus {
		out = append(out, provider.AddLicense{SKU: s})
	}
	return out
}

// providerError asserts that err is a *provider.Error and returns it.
func providerError(t *testing.T, err error) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
	}
	return pe
}

func TestTokenFlow(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, nil, nil)
	ctx := context.Background()
	for range 3 {
		if _, err := b.client.UserLicenses(ctx, contoso, "u1"); err != nil {
			t.Fatal(err)
		}
	}
	if st := b.sim.Stats(); st.Tokens != 1 {
		t.Fatalf("three calls to one tenant fetched %d tokens, want 1", st.Tokens)
	}
	// A token is bound to its tenant: the second tenant needs its own, and
	// the first tenant's token does not read the second's users.
	held, err := b.client.UserLicenses(ctx, fabrikam, "u1")
	if err != nil || !slices.Equal(held, []string{skuE3, skuOne}) {
		t.Fatalf("fabrikam u1: %v %v", held, err)
	}
	if st := b.sim.Stats(); st.Tokens != 2 {
		t.Fatalf("two tenants fetched %d tokens, want 2", st.Tokens)
	}
}

func TestTokenRefreshedAfter401(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, nil, nil)
	ctx := context.Background()
	if _, err := b.client.UserLicenses(ctx, contoso, "u1"); err != nil {
		t.Fatal(err)
	}
	b.sim.ExpireTokens() // Entra ID rolled its keys: the cached token is refused
	if err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Add: add(skuE3)}); err != nil {
		t.Fatalf("apply after token invalidation: %v", err)
	}
	if st := b.sim.Stats(); st.Tokens != 2 || st.Unauthorized != 1 {
		t.Fatalf("stats %+v, want 2 tokens and one 401", st)
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		changes  []provider.Change // applied in order, all must succeed
		user     string
		want     []string
		consumed map[string]int
	}{
		{"assign", []provider.Change{{UserID: "u2", Add: add(skuE5)}}, "u2", []string{skuE5}, map[string]int{skuE5: 1}},
		{"revoke", []provider.Change{{UserID: "u1", Remove: []string{skuOne}}}, "u1", []string{skuE3}, map[string]int{skuOne: 0}},
		{"assign and revoke in one call", []provider.Change{{UserID: "u1", Add: add(skuE5), Remove: []string{skuE3}}}, "u1", []string{skuE5, skuOne}, map[string]int{skuE3: 0, skuE5: 1}},
		{"assign twice", []provider.Change{{UserID: "u2", Add: add(skuE5)}, {UserID: "u2", Add: add(skuE5)}}, "u2", []string{skuE5}, map[string]int{skuE5: 1}},
		{"revoke twice", []provider.Change{{UserID: "u1", Remove: []string{skuOne}}, {UserID: "u1", Remove: []string{skuOne}}}, "u1", []string{skuE3}, map[string]int{skuOne: 0}},
		{"swap repeated", []provider.Change{
			{UserID: "u1", Add: add(skuE5), Remove: []string{skuE3}},
			{UserID: "u1", Add: add(skuE5), Remove: []string{skuE3}},
		}, "u1", []string{skuE5, skuOne}, map[string]int{skuE3: 0, skuE5: 1}},
		{"disabled plans", []provider.Change{{UserID: "u2", Add: []provider.AddLicense{{SKU: skuE3, DisabledPlans: []string{"plan-x"}}}}}, "u2", []string{skuE3}, map[string]int{skuE3: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, graphsim.Config{}, nil, nil)
			for i, ch := range tt.changes {
				if err := b.client.Apply(context.Background(), contoso, ch); err != nil {
					t.Fatalf("change %d: %v", i, err)
				}
			}
			if got := b.licenses(t, contoso, tt.user); !slices.Equal(got, tt.want) {
				t.Fatalf("licenses %v, want %v", got, tt.want)
			}
			for sku, n := range tt.consumed {
				if got := b.consumed(t, contoso, sku); got != n {
					t.Errorf("consumed %s = %d, want %d", sku, got, n)
				}
			}
		})
	}

	t.Run("empty change makes no call", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{}, nil, nil)
		if err := b.client.Apply(context.Background(), contoso, provider.Change{UserID: "u1"}); err != nil {
			t.Fatal(err)
		}
		if st := b.sim.Stats(); st.Requests != 0 || st.Tokens != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("disabled plans reach Graph", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{}, nil, nil)
		ch := provider.Change{UserID: "u2", Add: []provider.AddLicense{{SKU: skuE3, DisabledPlans: []string{"plan-x"}}}}
		if err := b.client.Apply(context.Background(), contoso, ch); err != nil {
			t.Fatal(err)
		}
		if u, _ := b.sim.User(contoso, "u2"); !slices.Equal(u.DisabledPlans[skuE3], []string{"plan-x"}) {
			t.Fatalf("disabled plans %v", u.DisabledPlans)
		}
	})
}

func TestApplyRevokingUnheldReadsTheUser(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, nil, nil)
	ctx := context.Background()
	// Graph refuses to remove what the user does not hold; Apply reads the
	// user, drops that SKU, and sends the rest.
	err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Add: add(skuE3), Remove: []string{skuE5}})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.licenses(t, contoso, "u2"); !slices.Equal(got, []string{skuE3}) {
		t.Fatalf("licenses %v", got)
	}
	if st := b.sim.Stats(); st.Requests != 3 || st.BadRequests != 1 || st.Succeeded != 2 {
		t.Fatalf("stats %+v, want POST (400), GET, POST", st)
	}
	// Nothing left to send after dropping: no second POST.
	if err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Remove: []string{skuE5}}); err != nil {
		t.Fatal(err)
	}
	if st := b.sim.Stats(); st.Requests != 5 {
		t.Fatalf("stats %+v, want POST (400) and GET only", st)
	}
}

func TestApplyRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ch     provider.Change
		code   licensing.Code
		status int
	}{
		{"usage location missing", provider.Change{UserID: "u3", Add: add(skuE3)}, licensing.CodeUsageLocationMissing, 400},
		{"not enough licenses", provider.Change{UserID: "u2", Add: add(skuOne)}, licensing.CodeCountViolation, 400},
		{"dependency", provider.Change{UserID: "u2", Add: add(skuAddon)}, licensing.CodeDependencyViolation, 400},
		{"revoke of a prerequisite nothing needs", provider.Change{UserID: "u1", Remove: []string{skuE3}}, "", 0},
		{"mutually exclusive", provider.Change{UserID: "u1", Add: add(skuE5)}, licensing.CodeMutuallyExclusiveViolation, 400},
		{"prohibited in usage location", provider.Change{UserID: "u4", Add: add(skuCN)}, licensing.CodeProhibitedInUsageLocationViolation, 400},
		{"unknown user", provider.Change{UserID: "ghost", Add: add(skuE3)}, licensing.CodeProviderError, 404},
		{"unknown SKU", provider.Change{UserID: "u2", Add: add("no-such-sku")}, licensing.CodeProviderError, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, graphsim.Config{}, nil, nil)
			before, _ := b.sim.Tenant(contoso)
			err := b.client.Apply(context.Background(), contoso, tt.ch)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			pe := providerError(t, err)
			if pe.Kind != provider.Permanent || pe.Code != tt.code || pe.Status != tt.status || !provider.IsPermanent(err) {
				t.Fatalf("got %v, want permanent %s (HTTP %d)", err, tt.code, tt.status)
			}
			if _, ok := provider.RetryAfter(err); ok {
				t.Fatal("a permanent error has a RetryAfter")
			}
			if after, _ := b.sim.Tenant(contoso); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("a refused change changed the tenant:\n%v\n%v", before, after)
			}
		})
	}
}

func TestThrottled(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{ThrottleRatio: 1, RetryAfter: 3 * time.Second}, nil, nil)
	err := b.client.Apply(context.Background(), contoso, provider.Change{UserID: "u2", Add: add(skuE3)})
	pe := providerError(t, err)
	if pe.Kind != provider.Throttled || pe.Code != licensing.CodeProviderThrottled || pe.Status != 429 || pe.RetryAfter != 3*time.Second {
		t.Fatalf("got %+v", pe)
	}
	if d, ok := provider.RetryAfter(fmt.Errorf("task: %w", err)); !ok || d != 3*time.Second {
		t.Fatalf("RetryAfter through wrapping = %s, %t", d, ok)
	}
	if provider.IsPermanent(err) {
		t.Fatal("throttled is permanent")
	}
	if st := b.sim.Stats(); st.Throttled != 1 {
		t.Fatalf("the client retried by itself: %+v", st)
	}
}

func TestWriteQuotaThrottles(t *testing.T) {
	t.Parallel()
	// The simulator allows one write per thousand seconds; the client's own
	// pacing is set far above it, as when several processes share a quota.
	b := setup(t, graphsim.Config{WriteQuotaPerSecond: 0.001}, func(c *msgraph.Config) { c.RatePerSecond = 1e6 }, nil)
	ctx := context.Background()
	if err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Add: add(skuE3)}); err != nil {
		t.Fatal(err)
	}
	err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Add: add(skuE5)})
	if d, ok := provider.RetryAfter(err); !ok || d < time.Second {
		t.Fatalf("over quota: %v (retry after %s)", err, d)
	}
}

func TestTimeoutIsTransientAndRetrySafe(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{TimeoutRatio: 1}, func(c *msgraph.Config) { c.Timeout = 300 * time.Millisecond }, nil)
	ctx := context.Background()
	// The token endpoint is not faulted, so the token is fetched; the
	// assignLicense call is applied by the simulator and never answered.
	ch := provider.Change{UserID: "u1", Add: add(skuE5), Remove: []string{skuE3}}
	err := b.client.Apply(ctx, contoso, ch)
	pe := providerError(t, err)
	if pe.Kind != provider.Transient || pe.Code != licensing.CodeProviderError || pe.Status != 0 || provider.IsPermanent(err) {
		t.Fatalf("got %+v", pe)
	}
	if _, ok := provider.RetryAfter(err); ok {
		t.Fatal("a timeout has a RetryAfter")
	}
	// The retry after the lost answer finds E3 already gone and E5 held.
	if err := b.sim.SetConfig(graphsim.Config{}); err != nil {
		t.Fatal(err)
	}
	if err := b.client.Apply(ctx, contoso, ch); err != nil {
		t.Fatalf("retry after a lost answer: %v", err)
	}
	if got := b.licenses(t, contoso, "u1"); !slices.Equal(got, []string{skuE5, skuOne}) {
		t.Fatalf("licenses %v", got)
	}
	if b.consumed(t, contoso, skuE5) != 1 || b.consumed(t, contoso, skuE3) != 0 {
		t.Fatal("seats leaked")
	}
}

func TestServerErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{ErrorRatio: 1}, nil, nil)
	for range 6 {
		_, err := b.client.SubscribedSKUs(context.Background(), contoso)
		pe := providerError(t, err)
		switch {
		case pe.Status == 503 && pe.Kind == provider.Throttled && pe.RetryAfter == time.Second:
		case pe.Status == 500 && pe.Kind == provider.Transient:
		default:
			t.Fatalf("got %+v", pe)
		}
	}
}

func TestBadCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		edit   func(*msgraph.Config)
		tenant string
		status int
		aadsts string
	}{
		{"wrong secret", func(c *msgraph.Config) { c.ClientSecret = "wrong-" + secret }, contoso, 401, "AADSTS7000215"},
		{"unknown app", func(c *msgraph.Config) { c.ClientID = "other-app" }, contoso, 400, "AADSTS700016"},
		{"unknown tenant", nil, "woodgrove", 400, "AADSTS90002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, graphsim.Config{}, tt.edit, nil)
			err := b.client.Apply(context.Background(), tt.tenant, provider.Change{UserID: "u2", Add: add(skuE3)})
			pe := providerError(t, err)
			if pe.Kind != provider.Permanent || pe.Code != licensing.CodeProviderError || pe.Status != tt.status {
				t.Fatalf("got %+v", pe)
			}
			if !strings.Contains(pe.Message, tt.aadsts) || !strings.Contains(pe.Message, msgraph.EnvClientSecret) {
				t.Fatalf("message %q does not say what to fix", pe.Message)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the secret: %v", err)
			}
			if st := b.sim.Stats(); st.Requests != 0 {
				t.Fatalf("Graph was called without a token: %+v", st)
			}
		})
	}
}

func TestListUsers(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, func(c *msgraph.Config) { c.PageSize = 5 }, nil)
	var more []graphsim.UserSeed
	for i := range 23 {
		more = append(more, graphsim.UserSeed{ID: fmt.Sprintf("x%02d", i), DisplayName: fmt.Sprint(i), AccountEnabled: i%2 == 0})
	}
	if err := b.sim.AddUsers(contoso, more...); err != nil {
		t.Fatal(err)
	}
	var users []provider.User
	pages := 0
	err := b.client.ListUsers(context.Background(), contoso, func(p []provider.User) error {
		pages++
		if len(p) > 5 {
			t.Errorf("page of %d users, PageSize is 5", len(p))
		}
		users = append(users, p...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages != 6 || len(users) != 27 {
		t.Fatalf("%d pages, %d users; want 6 and 27", pages, len(users))
	}
	var ids []string
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 27 {
		t.Fatalf("users out of order or repeated: %v", ids)
	}
	byID := map[string]provider.User{}
	for _, u := range users {
		byID[u.ID] = u
	}
	u1 := byID["u1"]
	if u1.UserPrincipalName != "u1@contoso.com" || u1.DisplayName != "One" || u1.UsageLocation != "PL" || !u1.AccountEnabled ||
		!slices.Equal(u1.Licenses, []string{skuE3, skuOne}) || u1.LastSignInAt == nil || !u1.LastSignInAt.Equal(signedIn) {
		t.Fatalf("u1 = %+v", u1)
	}
	if u3 := byID["u3"]; u3.UsageLocation != "" || u3.AccountEnabled || u3.LastSignInAt != nil || len(u3.Licenses) != 0 {
		t.Fatalf("u3 = %+v", u3)
	}
}

func TestListUsersWithoutPremium(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, nil, nil)
	err := b.sim.AddTenant(graphsim.TenantSeed{ID: "basic", ClientID: clientID, ClientSecret: secret, NoPremium: true,
		Users: []graphsim.UserSeed{{ID: "b1", UsageLocation: "US", AccountEnabled: true, LastSignInAt: &signedIn}}})
	if err != nil {
		t.Fatal(err)
	}
	var users []provider.User
	err = b.client.ListUsers(context.Background(), "basic", func(p []provider.User) error { users = append(users, p...); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].ID != "b1" || users[0].UsageLocation != "US" || users[0].LastSignInAt != nil {
		t.Fatalf("users %+v", users)
	}
	if st := b.sim.Stats(); st.Requests != 2 {
		t.Fatalf("stats %+v, want the refused call and one without signInActivity", st)
	}
}

func TestListUsersStopsOnPageError(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, func(c *msgraph.Config) { c.PageSize = 1; c.NoSignInActivity = true }, nil)
	stop := errors.New("stop")
	calls := 0
	err := b.client.ListUsers(context.Background(), contoso, func([]provider.User) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err %v after %d pages", err, calls)
	}
}

func TestSubscribedSKUs(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, nil, nil)
	ctx := context.Background()
	skus, err := b.client.SubscribedSKUs(ctx, contoso)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]provider.SubscribedSKU{}
	for _, s := range skus {
		got[s.SKU] = s
	}
	if e3 := got[skuE3]; len(skus) != 5 || e3.PartNumber != "ENTERPRISEPACK" || e3.Enabled != 10 || e3.Consumed != 1 || e3.Available() != 9 {
		t.Fatalf("skus %+v", skus)
	}
	// Seats cancelled below what is assigned: nothing available, not a negative count.
	if err := b.sim.SetSeats(contoso, skuE3, 0); err != nil {
		t.Fatal(err)
	}
	skus, _ = b.client.SubscribedSKUs(ctx, contoso)
	for _, s := range skus {
		if s.SKU == skuE3 && (s.Enabled != 0 || s.Consumed != 1 || s.Available() != 0) {
			t.Fatalf("E3 after cancelling seats: %+v, available %d", s, s.Available())
		}
	}
}

func TestUsageLocationThenAssign(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, nil, nil)
	ctx := context.Background()
	ch := provider.Change{UserID: "u3", Add: add(skuE3)}
	if err := b.client.Apply(ctx, contoso, ch); providerError(t, err).Code != licensing.CodeUsageLocationMissing {
		t.Fatalf("before the location: %v", err)
	}
	if err := b.client.SetUsageLocation(ctx, contoso, "u3", "DE"); err != nil {
		t.Fatal(err)
	}
	if err := b.client.Apply(ctx, contoso, ch); err != nil {
		t.Fatal(err)
	}
	held, err := b.client.UserLicenses(ctx, contoso, "u3")
	if err != nil || !slices.Equal(held, []string{skuE3}) {
		t.Fatalf("held %v, %v", held, err)
	}
	if u, _ := b.sim.User(contoso, "u3"); u.UsageLocation != "DE" {
		t.Fatalf("location %q", u.UsageLocation)
	}
	if err := b.client.SetUsageLocation(ctx, contoso, "u3", "Germany"); !provider.IsPermanent(err) {
		t.Fatalf("invalid location: %v", err)
	}
}

// tenantWatcher counts Graph calls in progress per tenant, learning each
// access token's tenant from the token endpoint's answers.
type tenantWatcher struct {
	mu      sync.Mutex
	tenants map[string]string // access token → tenant
	now     map[string]int
	peak    map[string]int
}

func (w *tenantWatcher) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &tok)
			w.mu.Lock()
			w.tenants[tok.AccessToken] = strings.Split(r.URL.Path, "/")[1]
			w.mu.Unlock()
			for k, v := range rec.Header() {
				rw.Header()[k] = v
			}
			rw.WriteHeader(rec.Code)
			_, _ = rw.Write(rec.Body.Bytes())
			return
		}
		w.mu.Lock()
		tenant := w.tenants[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		w.now[tenant]++
		w.peak[tenant] = max(w.peak[tenant], w.now[tenant])
		w.mu.Unlock()
		defer func() {
			w.mu.Lock()
			w.now[tenant]--
			w.mu.Unlock()
		}()
		next.ServeHTTP(rw, r)
	})
}

func TestLimiterBoundsCallsInFlightPerTenant(t *testing.T) {
	t.Parallel()
	w := &tenantWatcher{tenants: map[string]string{}, now: map[string]int{}, peak: map[string]int{}}
	const maxInFlight = 3
	b := setup(t, graphsim.Config{Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond},
		func(c *msgraph.Config) { c.MaxInFlight = maxInFlight; c.RatePerSecond = 1e6 }, w.wrap)
	ctx := context.Background()
	var wg sync.WaitGroup
	var failures atomic.Int64
	for _, tenant := range []string{contoso, fabrikam} {
		for i := range 40 {
			wg.Go(func() {
				var err error
				if i%2 == 0 {
					_, err = b.client.UserLicenses(ctx, tenant, "u1")
				} else {
					err = b.client.Apply(ctx, tenant, provider.Change{UserID: "u1", Add: add(skuE3)})
				}
				if err != nil {
					failures.Add(1)
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, tenant := range []string{contoso, fabrikam} {
		if p := w.peak[tenant]; p < 1 || p > maxInFlight {
			t.Errorf("tenant %s: %d calls in flight at once, limit %d", tenant, p, maxInFlight)
		}
	}
	if p := w.peak[""]; p != 0 {
		t.Errorf("%d calls with a token of no known tenant", p)
	}
}

// countingLimiter is a WriteLimiter that counts the writes it paced.
type countingLimiter struct{ waits atomic.Int64 }

func (l *countingLimiter) Wait(ctx context.Context, tenantID string) error {
	l.waits.Add(1)
	return ctx.Err()
}

func TestSharedWriteLimiterPacesWritesOnly(t *testing.T) {
	t.Parallel()
	l := &countingLimiter{}
	b := setup(t, graphsim.Config{}, func(c *msgraph.Config) { c.WriteLimiter = l }, nil)
	ctx := context.Background()
	_ = b.client.SetUsageLocation(ctx, contoso, "u2", "PL")
	_ = b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Add: add(skuE3)})
	_, _ = b.client.UserLicenses(ctx, contoso, "u2")
	_, _ = b.client.SubscribedSKUs(ctx, contoso)
	if n := l.waits.Load(); n != 2 {
		t.Fatalf("limiter paced %d calls, want the 2 writes", n)
	}
}

func TestCallerCancellation(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{Latency: time.Minute}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for b.sim.Stats().Requests == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := b.client.UserLicenses(ctx, contoso, "u1")
	if pe := providerError(t, err); pe.Kind != provider.Transient || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %+v", pe)
	}
}

// BenchmarkApply measures the client against the simulator with no
// latency: the client's own cost per call (JSON, token cache, limiter,
// HTTP), plus the simulator's.
func BenchmarkApply(b *testing.B) {
	bb := setup(b, graphsim.Config{}, func(c *msgraph.Config) { c.RatePerSecond = 1e9; c.MaxInFlight = 64 }, nil)
	users := make([]graphsim.UserSeed, 256)
	for i := range users {
		users[i] = graphsim.UserSeed{ID: fmt.Sprintf("bench-%03d", i), UsageLocation: "PL", AccountEnabled: true}
	}
	if err := bb.sim.AddUsers(contoso, users...); err != nil {
		b.Fatal(err)
	}
	if err := bb.sim.SetSeats(contoso, skuE3, len(users)+10); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine toggles its own user between assigned and revoked.
		user := users[int(next.Add(1)-1)%len(users)].ID
		held := false
		for pb.Next() {
			ch := provider.Change{UserID: user, Add: add(skuE3)}
			if held {
				ch = provider.Change{UserID: user, Remove: []string{skuE3}}
			}
			if err := bb.client.Apply(ctx, contoso, ch); err != nil {
				b.Error(err)
				return
			}
			held = !held
		}
	})
}

// A client whose caller paces the writes does not pace them again.
func TestPacedByCallerSkipsTheLimiter(t *testing.T) {
	t.Parallel()
	l := &countingLimiter{}
	b := setup(t, graphsim.Config{}, func(c *msgraph.Config) { c.WriteLimiter, c.PacedByCaller = l, true }, nil)
	if err := b.client.Apply(context.Background(), contoso, provider.Change{UserID: "u2", Add: add(skuE3)}); err != nil {
		t.Fatal(err)
	}
	if n := l.waits.Load(); n != 0 {
		t.Fatalf("limiter paced %d writes of a client paced by its caller", n)
	}
}

// pressure is a report of OnThrottleLimit.
type pressure struct {
	tenant  string
	share   float64
	appWide bool
}

// Above 0.8 of a write quota used, the simulator's answers carry
// x-ms-throttle-limit-percentage, and the client reports it with the
// tenant; a 429 of the app's quota across tenants is reported as app-wide.
func TestThrottleLimitPercentageIsReported(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []pressure
	b := setup(t, graphsim.Config{WriteQuotaPerSecond: 5, AppWriteQuotaPerSecond: 8}, func(c *msgraph.Config) {
		c.RatePerSecond = 1e6
		c.OnThrottleLimit = func(tenant string, share float64, appWide bool) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, pressure{tenant, share, appWide})
		}
	}, nil)
	ctx := context.Background()
	// Five writes to contoso use its quota of 5/s: the fifth is at 1.0.
	for range 5 {
		if err := b.client.SetUsageLocation(ctx, contoso, "u2", "PL"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	tenantReports := slices.Clone(got)
	mu.Unlock()
	if len(tenantReports) == 0 || tenantReports[len(tenantReports)-1] != (pressure{contoso, 1, false}) {
		t.Fatalf("reports after 5 writes at a quota of 5/s: %+v, want the last {contoso 1 false}", tenantReports)
	}
	for _, p := range tenantReports {
		if p.share <= 0.8 {
			t.Fatalf("reported %+v: Graph sends the header above 0.8 only", p)
		}
	}
	// Writes to fabrikam go over the app's 8/s before fabrikam's own 5/s:
	// the 4th, or a later one if the app's budget refilled meanwhile.
	var throttled error
	for i := 0; i < 5 && throttled == nil; i++ {
		throttled = b.client.SetUsageLocation(ctx, fabrikam, "u2", "PL")
	}
	if pe := providerError(t, throttled); pe.Kind != provider.Throttled {
		t.Fatalf("the app's writes beyond 8 in a second = %+v, want throttled", pe)
	}
	mu.Lock()
	defer mu.Unlock()
	if last := got[len(got)-1]; last.tenant != fabrikam || !last.appWide || last.share < 1 {
		t.Fatalf("the app's 429 was reported as %+v, want app-wide, at 1 or more", last)
	}
	if st := b.sim.Stats(); st.LimitWarnings == 0 || st.QuotaExceeded != 1 {
		t.Fatalf("simulator stats %+v, want warnings and one 429", st)
	}
}

// Service plans: subscribedSkus lists a SKU's plans; assignLicense with a
// plan the SKU does not bundle is a permanent UnknownServicePlans; a held
// SKU assigned again with other plans has them updated without a seat;
// the user's disabled plans read back through UserDisabledPlans and
// ListUsers.
func TestServicePlans(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{}, nil, nil)
	ctx := context.Background()
	const sku = "0000pppp-0000-4000-8000-000000000001"
	if err := b.sim.AddSKUs(contoso, graphsim.SKUSeed{ID: sku, PartNumber: "PLANS", Enabled: 3,
		ServicePlans: []graphsim.ServicePlanSeed{{ID: "p-teams", Name: "TEAMS1"}, {ID: "p-sway", Name: "SWAY"}}}); err != nil {
		t.Fatal(err)
	}
	skus, err := b.client.SubscribedSKUs(ctx, contoso)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range skus {
		if k.SKU == sku && !slices.Equal(k.ServicePlans, []provider.ServicePlan{{ID: "p-teams", Name: "TEAMS1"}, {ID: "p-sway", Name: "SWAY"}}) {
			t.Fatalf("service plans %v", k.ServicePlans)
		}
	}
	err = b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Add: []provider.AddLicense{{SKU: sku, DisabledPlans: []string{"p-nope"}}}})
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Kind != provider.Permanent || pe.Code != licensing.CodeUnknownServicePlans || !strings.Contains(pe.Message, "p-nope") {
		t.Fatalf("unknown plan: %v, want a permanent UnknownServicePlans naming p-nope", err)
	}
	for _, plans := range [][]string{{"p-teams"}, {"p-sway", "p-teams"}} {
		if err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Add: []provider.AddLicense{{SKU: sku, DisabledPlans: plans}}}); err != nil {
			t.Fatal(err)
		}
		got, err := b.client.UserDisabledPlans(ctx, contoso, "u2")
		if err != nil || !slices.Equal(got[sku], plans) {
			t.Fatalf("UserDisabledPlans = %v, %v; want %s: %v", got, err, sku, plans)
		}
	}
	if n := b.consumed(t, contoso, sku); n != 1 {
		t.Fatalf("consumed %d, want 1: an update of plans takes no seat", n)
	}
	var listed map[string][]string
	if err := b.client.ListUsers(ctx, contoso, func(page []provider.User) error {
		for _, u := range page {
			if u.ID == "u2" {
				listed = u.DisabledPlans
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed[sku], []string{"p-sway", "p-teams"}) {
		t.Fatalf("ListUsers disabled plans %v", listed)
	}
}
