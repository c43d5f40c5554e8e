package console_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/console"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
)

// fixture is a real stack (Postgres, Redis, intake, optionally workers)
// with the console served by an httptest server, and a tenant "contoso"
// seeded through the API.
type fixture struct {
	t     testing.TB
	b     *testapp.Bundle
	admin *testapp.Client
	con   *console.Console
	srv   *httptest.Server
	// users are the IDs of the seeded users in import order; names maps
	// them to display names.
	users []string
	names map[string]string
}

type fixtureOptions struct {
	workers    int
	users      int
	config     console.Config
	noHoldings bool
}

var firstNames = []string{"Ada", "Alan", "Barbara", "Charles", "Dennis", "Edsger", "Frances", "Grace", "Hedy", "Ivan",
	"John", "Katherine", "Linus", "Margaret", "Niklaus", "Radia", "Shafi", "Tim", "Vint", "Whitfield"}
var lastNames = []string{"Lovelace", "Turing", "Liskov", "Shannon", "Ritchie", "Dijkstra", "Allen", "Hopper", "Lamarr",
	"Sutherland", "Backus", "Johnson", "Torvalds", "Hamilton", "Wirth", "Perlman", "Goldwasser", "Berners-Lee", "Cerf", "Diffie"}

// displayName is user i's name: first names cycle fastest, so that the
// first page sorted by name holds users from all over the import.
func displayName(i int) string {
	return fmt.Sprintf("%s %s %03d", firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)], i)
}

// products of the tenant: names, and the rules the tests rely on.
var products = map[string]client.ProductRequest{
	"E3":      {Name: "Office 365 E3", Excludes: []string{"E5"}},
	"E5":      {Name: "Office 365 E5"},
	"PBI":     {Name: "Power BI Pro"},
	"PROJECT": {Name: "Project Plan 3"},
	"VISIO":   {Name: "Visio Plan 2", Requires: []string{"E5"}},
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	if o.users == 0 {
		o.users = 120
	}
	b := testapp.New(t, testapp.Options{Workers: o.workers})
	f := &fixture{t: t, b: b, admin: b.Client("p", licensing.RoleGlobalAdmin), names: map[string]string{}}
	imports := make([]client.UserImport, o.users)
	old := time.Now().Add(-200 * 24 * time.Hour)
	for i := range imports {
		id := fmt.Sprintf("u%03d", i)
		imports[i] = client.UserImport{ID: id, UserPrincipalName: id + "@contoso.example", DisplayName: displayName(i)}
		f.names[id] = displayName(i)
		if i%40 == 7 {
			imports[i].AccountEnabled = new(false)
		}
		recent := time.Now().Add(-time.Hour)
		imports[i].LastSignInAt = &recent
		if i%30 == 11 {
			imports[i].LastSignInAt = &old
		}
	}
	f.users = f.admin.Seed(seed.Tenant{
		Customer: client.CustomerRequest{ID: "contoso", Name: "Contoso Ltd", DefaultUsageLocation: new("PL")},
		Products: products,
		Users:    imports,
		Seats:    map[string]int{"E3": 60, "E5": 3, "PBI": 100, "PROJECT": 10, "VISIO": 5},
	})
	cfg := o.config
	if cfg.BuyMoreURL == "" {
		cfg.BuyMoreURL = "https://partner.example.com/customers/{customer_id}/subscriptions/{sku_id}/buy-more"
	}
	if cfg.Logger == nil {
		cfg.Logger = b.Log
	}
	con, err := console.New(cfg, b.Intake, b.Store, b.Redis)
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	f.con = con
	f.srv = httptest.NewServer(con.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// holdings gives E5 to three users (no E5 seat left), Power BI to
// twelve, and E3 to some others, through the API, and waits for them.
// It needs a worker; it returns the E5 holders.
func (f *fixture) holdings() []string {
	f.t.Helper()
	e5 := []string{f.byName("Ada Lovelace 000"), f.byName("Alan Lovelace 001"), f.byName("Barbara Lovelace 002")}
	pbi := append(append([]string{}, e5[:2]...), f.users[20:30]...)
	f.assign(e5, "E5")
	f.assign(pbi, "PBI")
	f.assign(f.users[60:70], "E3")
	return e5
}

func (f *fixture) byName(name string) string {
	for id, n := range f.names {
		if n == name {
			return id
		}
	}
	f.t.Fatalf("no user named %q", name)
	return ""
}

func (f *fixture) assign(users []string, skus ...string) {
	f.t.Helper()
	var acc struct{ ID string }
	f.admin.Must(http.StatusAccepted, "POST", "/v1/customers/contoso/license-operations",
		map[string]any{"user_ids": users, "assign": skus}).JSON(f.t, &acc)
	if op := f.admin.WaitOperation(acc.ID, 60*time.Second); op.Failed != 0 {
		f.t.Fatalf("setup assignment failed: %+v", op)
	}
}

// browser is a cookie-keeping HTTP client of the console that does not
// follow redirects, so that tests see them.
type browser struct {
	t    testing.TB
	f    *fixture
	hc   *http.Client
	csrf string
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: f.t, f: f, hc: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	Status int
	Header http.Header
	Body   string
}

func (p page) has(s string) bool { return strings.Contains(p.Body, s) }

func (b *browser) do(method, path string, form url.Values, headers ...string) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, b.f.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := page{Status: resp.StatusCode, Header: resp.Header, Body: string(raw)}
	if m := csrfMeta.FindStringSubmatch(p.Body); m != nil {
		b.csrf = html.UnescapeString(m[1])
	}
	return p
}

var (
	csrfMeta  = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
	csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

func (b *browser) get(path string) page { b.t.Helper(); return b.do("GET", path, nil) }

// post sends a form with the session's CSRF token.
func (b *browser) post(path string, form url.Values, headers ...string) page {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", b.csrf)
	}
	return b.do("POST", path, form, headers...)
}

func (b *browser) mustStatus(p page, want int, what string) page {
	b.t.Helper()
	if p.Status != want {
		b.t.Fatalf("%s: status %d, want %d\n%s", what, p.Status, want, truncate(p.Body, 3000))
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// postSignIn fetches the sign-in form and posts token with the form's CSRF
// field (and headers, as name, value pairs); it returns the answer as is.
func (b *browser) postSignIn(token string, headers ...string) page {
	b.t.Helper()
	form := b.mustStatus(b.get("/console/sign-in"), 200, "sign-in page")
	m := csrfInput.FindStringSubmatch(form.Body)
	if m == nil {
		b.t.Fatalf("sign-in form has no CSRF field")
	}
	return b.do("POST", "/console/sign-in", url.Values{"csrf": {html.UnescapeString(m[1])}, "token": {token}}, headers...)
}

// signIn signs in with token and returns the customers page.
func (b *browser) signIn(token string) page {
	b.t.Helper()
	p := b.postSignIn(token)
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/customers" {
		b.t.Fatalf("sign in: %d %s\n%s", p.Status, p.Header.Get("Location"), truncate(p.Body, 2000))
	}
	return b.mustStatus(b.get("/console/customers"), 200, "customers")
}
