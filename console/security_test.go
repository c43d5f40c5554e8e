package console_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licenseops/licenseops/console"
	"github.com/licenseops/licenseops/licensing"
)

// lockedBuffer is a log sink for a logger shared by request goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecurityHeadersOnEveryAnswer checks the headers of pages, error
// pages, fragments, JSON and static files alike.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 3})
	b := f.browser()
	paths := []string{"/console/sign-in", "/console/no-such-page", "/console/static/console.js", "/console/customers"}
	check := func(path string, p page) {
		t.Helper()
		h := p.Header
		if got := h.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") ||
			!strings.Contains(got, "frame-ancestors 'none'") || strings.Contains(got, "unsafe-") {
			t.Errorf("%s: CSP %q", path, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	for _, path := range paths {
		check(path, b.get(path))
	}
	b.signIn(f.b.Token("p", licensing.RoleReader))
	for _, path := range []string{"/console/customers", "/console/customers/contoso/users", "/console/customers/contoso/manage",
		"/console/customers/contoso/operations", "/console/customers/contoso/licenses", "/console/customers/nobody/users"} {
		p := b.get(path)
		check(path, p)
		if cc := p.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store for a signed-in page", path, cc)
		}
		// No inline script or style for the CSP to refuse.
		for _, inline := range []string{"<script>", "style=", "<style", "onclick=", "onchange=", "javascript:"} {
			if p.has(inline) {
				t.Errorf("%s has inline code %q", path, inline)
			}
		}
	}
}

// TestSecureCookieOverTLS serves the console over TLS itself: the session
// cookie is Secure (with the __Host- prefix) without any setting.
func TestSecureCookieOverTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 1})
	srv := httptest.NewTLSServer(f.con.Handler())
	t.Cleanup(srv.Close)
	b := f.browser()
	b.f = &fixture{t: t, b: f.b, srv: srv}
	hc := srv.Client()
	hc.Jar, hc.CheckRedirect = b.hc.Jar, b.hc.CheckRedirect
	b.hc = hc
	p := b.postSignIn(f.b.Token("p", licensing.RoleReader))
	c := sessionCookie(t, p.Header)
	if !c.Secure || c.Name != "__Host-lops_session" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("cookie over TLS: %+v", c)
	}
	// Without TrustProxy, a client's X-Forwarded-Proto does not count.
	b2 := f.browser()
	p = b2.postSignIn(f.b.Token("p", licensing.RoleReader), "X-Forwarded-Proto", "https")
	if c := sessionCookie(t, p.Header); c.Secure {
		t.Fatalf("X-Forwarded-Proto trusted without TrustProxy: %+v", c)
	}
}

// TestSessionLifetime ends a session past its absolute lifetime, however
// recently it was used, and keeps the idle TTL within what is left.
func TestSessionLifetime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 1})
	b := f.browser()
	b.signIn(f.b.Token("p", licensing.RoleReader))
	ctx := context.Background()
	keys, err := f.b.Redis.Keys(ctx, "licenseops:console:session:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("session keys %v (%v)", keys, err)
	}
	// Signed in 23 h 30 min ago: the TTL shrinks to the half hour left.
	if err := f.b.Redis.HSet(ctx, keys[0], "created", time.Now().Add(-23*time.Hour-30*time.Minute).Unix()).Err(); err != nil {
		t.Fatal(err)
	}
	b.mustStatus(b.get("/console/customers"), 200, "customers")
	if ttl := f.b.Redis.TTL(ctx, keys[0]).Val(); ttl > 31*time.Minute || ttl <= 0 {
		t.Fatalf("TTL %v, want at most the 30 minutes left of 24 h", ttl)
	}
	// Signed in 25 h ago: over.
	if err := f.b.Redis.HSet(ctx, keys[0], "created", time.Now().Add(-25*time.Hour).Unix()).Err(); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/console/customers"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/console/sign-in") {
		t.Fatalf("a session past 24 h: %d %s", p.Status, p.Header.Get("Location"))
	}
	if n := f.b.Redis.Exists(ctx, keys[0]).Val(); n != 0 {
		t.Fatalf("the expired session is still stored")
	}
	// The script's progress calls get an error, not a redirect to a page.
	if p := b.get("/console/operations/00000000-0000-0000-0000-000000000000/progress"); p.Status != http.StatusUnauthorized {
		t.Fatalf("progress without a session: %d", p.Status)
	}
}

// TestRateLimit charges page requests to the token's budget, the one the
// JSON API charges (the same Redis key), and refuses past it.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 1, config: console.Config{RateLimitPerSecond: 1, RateLimitBurst: 2}})
	token := f.b.Token("p", licensing.RoleReader)
	b := f.browser()
	b.signIn(token) // the sign-in form is not charged; the customers page after it is
	var refused page
	for range 20 {
		if p := b.get("/console/customers"); p.Status == http.StatusTooManyRequests {
			refused = p
			break
		}
	}
	if refused.Status != http.StatusTooManyRequests {
		t.Fatalf("20 requests at a rate of 1/s with bursts of 2 were all served")
	}
	if s, err := strconv.Atoi(refused.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", refused.Header.Get("Retry-After"))
	}
	if !refused.has("Too many requests. Wait ") {
		t.Errorf("refusal page:\n%s", refused.Body)
	}
	var id int64
	if err := f.b.DB.Get(&id, `SELECT id FROM tokens WHERE hash = sha256($1::bytea)`, []byte(token)); err != nil {
		t.Fatal(err)
	}
	if n := f.b.Redis.Exists(context.Background(), "rate:licenseops:token:"+strconv.FormatInt(id, 10)).Val(); n != 1 {
		t.Errorf("the console does not charge the API's budget of the token")
	}
}

// TestNoTokenInLogsOrURLs signs in with a wrong and a right token and walks
// the pages: no log line and no URL holds the token.
func TestNoTokenInLogsOrURLs(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	f := newFixture(t, fixtureOptions{users: 3, config: console.Config{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}})
	token := f.b.Token("p", licensing.RoleGlobalAdmin)
	b := f.browser()
	m := csrfInput.FindStringSubmatch(b.get("/console/sign-in").Body)
	wrong := token + "x"
	if p := b.do("POST", "/console/sign-in", url.Values{"csrf": {m[1]}, "token": {wrong}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", p.Status)
	}
	var locations []string
	p := b.do("POST", "/console/sign-in", url.Values{"csrf": {m[1]}, "token": {token}})
	locations = append(locations, p.Header.Get("Location"))
	for _, path := range []string{"/console/customers", "/console/customers/contoso/users", "/console/customers/contoso/licenses"} {
		p := b.mustStatus(b.get(path), 200, path)
		if strings.Contains(p.Body, token) {
			t.Errorf("%s shows the token", path)
		}
	}
	locations = append(locations, b.post("/console/sign-out", nil).Header.Get("Location"))
	if !strings.Contains(logs.String(), "console sign-in") {
		t.Fatalf("the sign-in is not logged:\n%s", logs.String())
	}
	for _, secret := range []string{token, wrong, token[len(token)-12:]} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a log line holds the token:\n%s", logs.String())
		}
		for _, l := range locations {
			if strings.Contains(l, secret) {
				t.Errorf("a redirect holds the token: %s", l)
			}
		}
	}
}

// TestOperationWhileQueued: with no worker the operation stays queued, and
// its page shows progress and follows it (data-running), no report yet.
func TestOperationWhileQueued(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 4})
	b := f.browser()
	b.signIn(f.b.Token("p", licensing.RoleSalesAgent))
	// Manage licenses without a selection: a message, and Save refused.
	if p := b.mustStatus(b.get("/console/customers/contoso/manage"), 200, "manage without selection"); !p.has("No users are selected.") {
		t.Errorf("manage without a selection:\n%s", p.Body)
	}
	if r := b.post("/console/customers/contoso/manage", url.Values{"action": {"save"}, "sku": {"PBI"}, "act": {"assign"}}); r.Status != 400 || !r.has("No users are selected.") {
		t.Errorf("save without a selection: %d", r.Status)
	}
	// An unknown selection change and a malformed form are refused.
	if r := b.post("/console/customers/contoso/selection", url.Values{"op": {"steal"}}); r.Status != 400 {
		t.Errorf("unknown selection change: %d", r.Status)
	}
	if r := b.post("/console/customers/contoso/manage", url.Values{"action": {"save"}, "sku": {"PBI", "E5"}, "act": {"assign"}}); r.Status != 400 {
		t.Errorf("skus without acts: %d", r.Status)
	}
	b.selectUsers(f.users...)
	r := b.post("/console/customers/contoso/manage", url.Values{"action": {"save"}, "sku": {"PBI"}, "act": {"assign"}})
	loc := r.Header.Get("Location")
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/operations/") {
		t.Fatalf("save: %d %s\n%s", r.Status, loc, r.Body)
	}
	p := b.mustStatus(b.get(loc), 200, "confirmation while queued")
	for _, want := range []string{"License update in progress", `data-running="1"`, "0 of 4 users done · 0 failures so far",
		`<progress id="op-progress" max="4" value="0"`} {
		if !p.has(want) {
			t.Errorf("queued confirmation lacks %q", want)
		}
	}
	if p.has(`class="grid report"`) {
		t.Errorf("a queued operation shows a report")
	}
	ops := b.get("/console/customers/contoso/operations")
	if !ops.has(`href="`+loc+`"`) || !ops.has("<progress") {
		t.Errorf("operations page lacks the running operation with its progress")
	}
}

// TestSessionCookieSetByNoOtherPath keeps sessions out of the language
// switch and the static files: only a sign-in sets one.
func TestSessionCookieSetByNoOtherPath(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 1})
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/", "/console/", "/console/sign-in", "/console/lang/pl?next=/console/", "/console/static/console.css"} {
		resp, err := hc.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		for _, c := range resp.Cookies() {
			if strings.HasSuffix(c.Name, "lops_session") {
				t.Errorf("%s set a session cookie", path)
			}
		}
	}
}

// TestSignInRateLimit counts sign-in attempts per client address, before
// the token is looked up: past the budget even the right token is refused,
// with Retry-After and a message in the page's language.
func TestSignInRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 1, config: console.Config{RateLimitPerSecond: 100, RateLimitBurst: 100}})
	token := f.b.Token("p", licensing.RoleReader)
	b := f.browser()
	var refused page
	for i := range 40 {
		p := b.postSignIn("lo_wrong-" + strconv.Itoa(i))
		if p.Status == http.StatusTooManyRequests {
			refused = p
			break
		}
		if p.Status != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: status %d", i, p.Status)
		}
	}
	if refused.Status != http.StatusTooManyRequests {
		t.Fatalf("40 wrong tokens from one address were all looked up")
	}
	if s, err := strconv.Atoi(refused.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", refused.Header.Get("Retry-After"))
	}
	if !refused.has("Too many sign-in attempts from this address.") {
		t.Errorf("refusal page:\n%s", truncate(refused.Body, 2000))
	}
	if p := b.postSignIn(token); p.Status != http.StatusTooManyRequests {
		t.Errorf("the right token past the budget: status %d, want 429", p.Status)
	}
}
