package console_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/console"
	"github.com/licenseops/licenseops/licensing"
)

func TestSignInSessionAndSignOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 5})
	token := f.b.Token("p", licensing.RoleGlobalAdmin)
	b := f.browser()

	// Not signed in: pages send to the sign-in form.
	if p := b.get("/console/customers"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/console/sign-in") {
		t.Fatalf("customers without a session: %d %s", p.Status, p.Header.Get("Location"))
	}
	if p := b.get("/"); p.Status != http.StatusFound || p.Header.Get("Location") != "/console/" {
		t.Fatalf("/: %d %s", p.Status, p.Header.Get("Location"))
	}
	form := b.mustStatus(b.get("/console/sign-in"), 200, "sign-in page")
	for _, want := range []string{`<label for="token">API token</label>`, `>Sign in</button>`} {
		if !form.has(want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
	csp := form.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "script-src 'self'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %s", csp)
	}
	preCSRF := csrfInput.FindStringSubmatch(form.Body)[1]

	// A sign-in form posted without its CSRF token is refused.
	if p := b.do("POST", "/console/sign-in", url.Values{"token": {token}}); p.Status != http.StatusForbidden {
		t.Fatalf("sign-in without CSRF: %d", p.Status)
	}
	// A wrong token: the form again, with a message and nothing else.
	p := b.do("POST", "/console/sign-in", url.Values{"csrf": {preCSRF}, "token": {"lops_wrong"}})
	if p.Status != http.StatusUnauthorized || !p.has("That token is not valid") || !p.has(`id="token"`) {
		t.Fatalf("wrong token: %d\n%s", p.Status, p.Body)
	}
	if p.has("lops_wrong") {
		t.Fatalf("the wrong token is echoed back")
	}
	for _, c := range p.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "lops_session=") {
			t.Fatalf("a failed sign-in set a session: %s", c)
		}
	}

	// The right token: a session cookie, HttpOnly and SameSite=Strict.
	p = b.do("POST", "/console/sign-in", url.Values{"csrf": {preCSRF}, "token": {token}})
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/customers" {
		t.Fatalf("sign in: %d %s", p.Status, p.Header.Get("Location"))
	}
	first := sessionCookie(t, p.Header)
	if !first.HttpOnly || first.SameSite != http.SameSiteStrictMode || first.Secure {
		t.Fatalf("session cookie over plain HTTP: %+v", first)
	}
	if strings.Contains(first.Value, token) || strings.Contains(p.Header.Get("Location"), token) {
		t.Fatalf("the token leaks into the cookie or URL")
	}
	// Redis holds the session under the ID's hash, not the ID.
	keys, err := f.b.Redis.Keys(context.Background(), "licenseops:console:session:*").Result()
	if err != nil || len(keys) != 1 || strings.Contains(keys[0], first.Value) {
		t.Fatalf("session keys %v (%v)", keys, err)
	}
	if ttl := f.b.Redis.TTL(context.Background(), keys[0]).Val(); ttl <= 7*time.Hour || ttl > 8*time.Hour {
		t.Fatalf("session idle TTL %v, want 8 h", ttl)
	}
	home := b.mustStatus(b.get("/console/customers"), 200, "customers")
	if !home.has("Contoso Ltd") || !home.has(`>Sign out</button>`) {
		t.Fatalf("customers page:\n%s", home.Body)
	}

	// Signing in with a session cookie already set (planted, or an old
	// one) gives a new session ID and ends the old session.
	b4 := f.browser()
	m := csrfInput.FindStringSubmatch(b4.get("/console/sign-in").Body)
	b4.hc.Jar.SetCookies(mustURL(f.srv.URL), []*http.Cookie{{Name: first.Name, Value: first.Value, Path: "/"}})
	p = b4.do("POST", "/console/sign-in", url.Values{"csrf": {m[1]}, "token": {token}})
	if second := sessionCookie(t, p.Header); second.Value == first.Value {
		t.Fatalf("sign-in kept the session ID")
	}
	if p := b.get("/console/customers"); p.Status != http.StatusSeeOther {
		t.Fatalf("the session before a new sign-in still works: %d", p.Status)
	}
	b.signIn(token)

	// Sign out without the CSRF token is refused; with it, the session ends.
	if p := b.do("POST", "/console/sign-out", url.Values{}); p.Status != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: %d", p.Status)
	}
	if p := b.post("/console/sign-out", nil); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/sign-in" {
		t.Fatalf("sign out: %d %s", p.Status, p.Header.Get("Location"))
	}
	if p := b.get("/console/customers"); p.Status != http.StatusSeeOther {
		t.Fatalf("signed out, customers: %d", p.Status)
	}

	// Revoking the token ends its sessions at once.
	b3 := f.browser()
	b3.signIn(token)
	var id int64
	if err := f.b.DB.Get(&id, `SELECT id FROM tokens WHERE hash = sha256($1::bytea)`, []byte(token)); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Store.RevokeToken(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if p := b3.get("/console/customers"); p.Status != http.StatusSeeOther {
		t.Fatalf("revoked token's session: %d", p.Status)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func sessionCookie(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if strings.HasSuffix(c.Name, "lops_session") && c.Value != "" {
			return c
		}
	}
	t.Fatalf("no session cookie in %v", h.Values("Set-Cookie"))
	return nil
}

func TestSecureCookieBehindProxy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 1, config: console.Config{TrustProxy: true}})
	token := f.b.Token("p", licensing.RoleReader)
	b := f.browser()
	form := b.get("/console/sign-in")
	m := csrfInput.FindStringSubmatch(form.Body)
	p := b.do("POST", "/console/sign-in", url.Values{"csrf": {m[1]}, "token": {token}}, "X-Forwarded-Proto", "https")
	c := sessionCookie(t, p.Header)
	if !c.Secure || c.Name != "__Host-lops_session" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie behind a TLS proxy: %+v", c)
	}
}

func TestCustomersAndForeignObjects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 3, workers: 1})
	// Another partner with a customer and an operation of its own.
	other := f.b.Client("q", licensing.RoleGlobalAdmin)
	other.Must(200, "PUT", "/v1/products/E5", map[string]any{"name": "E5"})
	other.Must(201, "POST", "/v1/customers", map[string]any{"id": "fabrikam", "name": "Fabrikam", "default_usage_location": "US"})
	other.Must(200, "POST", "/v1/customers/fabrikam/users/import", map[string]any{"users": []map[string]any{{"id": "x1", "user_principal_name": "x1@f.example"}}})
	other.Must(200, "PUT", "/v1/customers/fabrikam/subscriptions/E5", map[string]any{"total": 1})
	var acc struct{ ID string }
	other.Must(202, "POST", "/v1/customers/fabrikam/license-operations", map[string]any{"user_ids": []string{"x1"}, "assign": []string{"E5"}}).JSON(t, &acc)

	b := f.browser()
	home := b.signIn(f.b.Token("p", licensing.RoleReader))
	if !home.has(`<a href="/console/customers/contoso/users">Contoso Ltd</a>`) || home.has("Fabrikam") {
		t.Fatalf("customers page:\n%s", home.Body)
	}
	for _, path := range []string{
		"/console/customers/fabrikam/users", "/console/customers/fabrikam/manage", "/console/customers/fabrikam/operations",
		"/console/customers/fabrikam/licenses", "/console/customers/nobody/users",
		"/console/operations/" + acc.ID, "/console/operations/" + acc.ID + "/progress", "/console/operations/" + acc.ID + "/report.csv",
		"/console/operations/00000000-0000-0000-0000-000000000000", "/console/no-such-page",
	} {
		p := b.get(path)
		if p.Status != http.StatusNotFound || !p.has("not yours to see") || p.has("fabrikam") && !strings.Contains(path, "fabrikam") {
			t.Errorf("%s: %d, want the 404 page", path, p.Status)
		}
	}
	if p := b.post("/console/customers/fabrikam/selection", url.Values{"op": {"add"}, "user": {"x1"}}); p.Status != http.StatusNotFound {
		t.Errorf("selecting a foreign customer's user: %d", p.Status)
	}
}

var userBox = regexp.MustCompile(`<input type="checkbox" class="select-user" id="u-([^"]+)" value="[^"]+" aria-label="([^"]+)"( checked)?>`)

func TestUsersPagingSearchAndSelection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 120})
	b := f.browser()
	b.signIn(f.b.Token("p", licensing.RoleHelpdeskAgent))
	p := b.mustStatus(b.get("/console/customers/contoso/users"), 200, "users")
	boxes := userBox.FindAllStringSubmatch(p.Body, -1)
	if len(boxes) != console.PageSize {
		t.Fatalf("%d user boxes on page 1, want %d", len(boxes), console.PageSize)
	}
	for i := 1; i < len(boxes); i++ {
		if boxes[i-1][2] > boxes[i][2] {
			t.Fatalf("users not sorted by name: %q before %q", boxes[i-1][2], boxes[i][2])
		}
	}
	for _, want := range []string{`aria-label="Select all on this page"`, `>Next</a>`, `>Last</a>`, `Selected users (0)`,
		`Select all 120 matching users`, `<label for="q">Search users</label>`, `Page 1 of 3`} {
		if !p.has(want) {
			t.Errorf("users page lacks %s", want)
		}
	}
	if !p.has(`<span class="chip">`) && false {
		t.Error("no licenses shown")
	}

	// Select two users of page 1 (as the page's script does) and one of page 2.
	sel := func(op string, ids ...string) int {
		t.Helper()
		r := b.post("/console/customers/contoso/selection", url.Values{"op": {op}, "user": ids}, "Accept", "application/json")
		b.mustStatus(r, 200, "selection "+op)
		var out struct {
			Count int
			Text  string
		}
		if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
			t.Fatal(err)
		}
		if out.Text != fmt.Sprintf("Selected users (%d)", out.Count) {
			t.Fatalf("selection text %q", out.Text)
		}
		return out.Count
	}
	if n := sel("add", boxes[0][1], boxes[1][1]); n != 2 {
		t.Fatalf("selected %d", n)
	}
	p2 := b.get("/console/customers/contoso/users?page=2")
	boxes2 := userBox.FindAllStringSubmatch(p2.Body, -1)
	if n := sel("add", boxes2[0][1], "no-such-user"); n != 3 {
		t.Fatalf("selected %d after page 2 (unknown users are ignored)", n)
	}
	// Without the CSRF token a change is refused.
	if r := b.do("POST", "/console/customers/contoso/selection", url.Values{"op": {"add"}, "user": {boxes[5][1]}}); r.Status != http.StatusForbidden {
		t.Fatalf("selection without CSRF: %d", r.Status)
	}
	// The selection survives paging back.
	p = b.get("/console/customers/contoso/users?page=1")
	checked := 0
	for _, m := range userBox.FindAllStringSubmatch(p.Body, -1) {
		if m[3] != "" {
			checked++
		}
	}
	if checked != 2 || !p.has("Selected users (3)") {
		t.Fatalf("page 1 after paging: %d checked", checked)
	}
	// Searching narrows the list and keeps the selection.
	name := f.names[boxes2[0][1]]
	s := b.get("/console/customers/contoso/users?q=" + url.QueryEscape(name))
	sb := userBox.FindAllStringSubmatch(s.Body, -1)
	if len(sb) != 1 || sb[0][3] == "" || !s.has("Select the 1 matching user") {
		t.Fatalf("search %q: %v", name, sb)
	}
	// Selected users shows the selection only.
	v := b.get("/console/customers/contoso/users?view=selected")
	if got := len(userBox.FindAllStringSubmatch(v.Body, -1)); got != 3 {
		t.Fatalf("selected view has %d users", got)
	}
	// Select all matching a search, then the whole customer, then clear.
	r := b.post("/console/customers/contoso/selection", url.Values{"op": {"all"}, "q": {"Ada "}, "back": {"/console/customers/contoso/users?q=Ada+"}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/customers/contoso/users?q=Ada+" {
		t.Fatalf("select all matching: %d %s", r.Status, r.Header.Get("Location"))
	}
	if n := sel("remove"); n != 3+6-2 {
		t.Fatalf("after selecting the 6 Adas: %d", n)
	}
	b.post("/console/customers/contoso/selection", url.Values{"op": {"all"}, "back": {"https://evil.example/"}})
	if n := sel("remove", boxes[0][1]); n != 119 {
		t.Fatalf("all users less one: %d", n)
	}
	r = b.post("/console/customers/contoso/selection", url.Values{"op": {"clear"}, "back": {"//evil.example/x"}})
	if r.Header.Get("Location") != "/console/" {
		t.Fatalf("open redirect: %s", r.Header.Get("Location"))
	}
	if n := sel("remove"); n != 0 {
		t.Fatalf("after clear: %d", n)
	}
}

func TestSelectionLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 12, config: console.Config{MaxSelection: 10}})
	b := f.browser()
	b.signIn(f.b.Token("p", licensing.RoleReader))
	r := b.post("/console/customers/contoso/selection", url.Values{"op": {"all"}})
	if r.Status != http.StatusRequestEntityTooLarge || !r.has("up to 10 users") {
		t.Fatalf("selecting 12 of at most 10: %d", r.Status)
	}
}

var (
	triBox   = regexp.MustCompile(`(?s)<input type="checkbox" class="tri" id="(p-\d+)" data-start="(\w+)"[^>]*?(checked )?aria-checked="(\w+)"[^>]*>\s*<label for="p-\d+">([^<]+)</label>`)
	holderRe = regexp.MustCompile(`<summary>(\d+ of \d+)</summary>`)
)

// selectUsers selects users by ID as the users page's script does.
func (b *browser) selectUsers(ids ...string) {
	b.t.Helper()
	if b.csrf == "" {
		b.get("/console/customers")
	}
	b.mustStatus(b.post("/console/customers/contoso/selection", url.Values{"op": {"add"}, "user": ids}, "Accept", "application/json"), 200, "select")
}

func TestManageLicensesPreviewAndSave(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{workers: 1})
	e5 := f.holdings()  // E5: three holders, no seat left
	noE5 := f.users[20] // holds Power BI like the first two E5 holders
	b := f.browser()
	b.signIn(f.b.Token("p", licensing.RoleGlobalAdmin))
	b.selectUsers(e5[0], e5[1], noE5)

	p := b.mustStatus(b.get("/console/customers/contoso/manage"), 200, "manage")
	states := map[string][2]string{}
	for _, m := range triBox.FindAllStringSubmatch(p.Body, -1) {
		states[m[5]] = [2]string{m[2], m[4]}
	}
	want := map[string][2]string{
		"Office 365 E3": {"none", "false"}, "Office 365 E5": {"some", "mixed"}, "Power BI Pro": {"all", "true"},
		"Project Plan 3": {"none", "false"}, "Visio Plan 2": {"none", "false"},
	}
	for name, w := range want {
		if states[name] != w {
			t.Errorf("%s: state %v, want %v", name, states[name], w)
		}
	}
	if got := holderRe.FindAllStringSubmatch(p.Body, -1); len(got) != 2 || got[0][1] != "2 of 3" || got[1][1] != "3 of 3" {
		t.Errorf("holders: %v", got)
	}
	if !p.has(`class="buy-more">Buy more</a>`) || strings.Count(p.Body, `class="buy-more"`) != 1 {
		t.Errorf("Buy more should show for E5 (0 seats) only")
	}
	if !p.has("3 selected users") || !p.has(`<li class="user-box" title="u000@contoso.example">Ada Lovelace 000</li>`) {
		t.Errorf("selected users boxes missing")
	}
	if !p.has(`<label for="usage-location">Usage location</label>`) || !p.has(`value="save" class="primary">Save</button>`) {
		t.Errorf("admin sees no usage location or Save")
	}

	form := func(action string, acts map[string]string, extra ...string) url.Values {
		v := url.Values{"action": {action}}
		for _, sku := range []string{"E3", "E5", "PBI", "PROJECT", "VISIO"} {
			a := acts[sku]
			if a == "" {
				a = "keep"
			}
			v.Add("sku", sku)
			v.Add("act", a)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	// Nothing changed: the form again with a message.
	if r := b.post("/console/customers/contoso/manage", form("save", nil)); r.Status != 400 || !r.has("Nothing to change") {
		t.Fatalf("empty save: %d", r.Status)
	}
	// A bad usage location: the message next to the field.
	r := b.post("/console/customers/contoso/manage", form("preview", map[string]string{"PROJECT": "assign"}, "usage_location", "Poland"))
	if r.Status != 400 || !regexp.MustCompile(`(?s)id="usage-location".*aria-invalid="true".*id="usage-location-error" role="alert">Enter a two-letter`).MatchString(r.Body) {
		t.Fatalf("bad usage location: %d\n%s", r.Status, r.Body)
	}
	// Preview: E5 to all needs a seat that is not there.
	r = b.mustStatus(b.post("/console/customers/contoso/manage", form("preview", map[string]string{"E5": "assign"})), 200, "preview")
	for _, w := range []string{"Saving as it is would be refused", "Of 3 users, 2 would succeed and 1 would fail.",
		`<span class="code">CountViolation</span> — 1 user: ` + f.names[noE5]} {
		if !r.has(w) {
			t.Errorf("preview lacks %q", w)
		}
	}
	// The posted change stays on the page.
	if !strings.Contains(r.Body, `name="act" value="assign"`) {
		t.Errorf("preview lost the change")
	}
	// Save without Allow partial: refused for lack of seats, with Buy more.
	r = b.post("/console/customers/contoso/manage", form("save", map[string]string{"E5": "assign"}))
	if r.Status != http.StatusConflict || !r.has("Not enough seats") || !r.has("Office 365 E5: 1 needed, 0 available.") {
		t.Fatalf("save short of seats: %d\n%s", r.Status, r.Body)
	}
	// With Allow partial: saved, on to the confirmation.
	r = b.post("/console/customers/contoso/manage", form("save", map[string]string{"E5": "assign", "PROJECT": "assign"},
		"allow_partial", "1", "usage_location", "de", "key", "k1"))
	loc := r.Header.Get("Location")
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/operations/") {
		t.Fatalf("save: %d %s\n%s", r.Status, loc, r.Body)
	}
	// The same form posted twice (a double click) is one operation.
	r2 := b.post("/console/customers/contoso/manage", form("save", map[string]string{"E5": "assign", "PROJECT": "assign"},
		"allow_partial", "1", "usage_location", "de", "key", "k1"))
	if r2.Header.Get("Location") != loc {
		t.Fatalf("double save: %s, then %s", loc, r2.Header.Get("Location"))
	}
	opID := strings.TrimPrefix(loc, "/console/operations/")
	op := f.admin.WaitOperation(opID, 60*time.Second)
	if op.Total != 3 || op.Failed != 1 || *op.UsageLocation != "DE" || op.Source != licensing.SourceAPI {
		t.Fatalf("operation: %+v", op)
	}
	c := b.mustStatus(b.get(loc), 200, "confirmation")
	for _, w := range []string{"License update completed with errors", `<span class="code">CountViolation</span>`,
		"Download CSV", `href="/console/customers/contoso/users">Back to users</a>`, `<span class="chip">Project Plan 3</span>`} {
		if !c.has(w) {
			t.Errorf("confirmation lacks %q", w)
		}
	}
	pr := b.get(loc + "/progress")
	var prog struct {
		Done, Total, Failed int
		Finished            bool
	}
	if err := json.Unmarshal([]byte(pr.Body), &prog); err != nil || prog.Done != 3 || !prog.Finished || prog.Failed != 1 {
		t.Fatalf("progress %s (%v)", pr.Body, err)
	}
	if frag := b.get(loc + "/results"); !frag.has("License update completed with errors") || frag.has("<html") {
		t.Fatalf("results fragment:\n%s", frag.Body)
	}
	csvPage := b.get(loc + "/report.csv")
	recs, err := csv.NewReader(strings.NewReader(csvPage.Body)).ReadAll()
	if err != nil || len(recs) != 4 || recs[0][0] != "user_id" {
		t.Fatalf("CSV: %v %v", recs, err)
	}
	failed := 0
	for _, rec := range recs[1:] {
		if rec[8] == "CountViolation" {
			failed++
			if rec[0] != noE5 {
				t.Errorf("CountViolation for %s, want %s", rec[0], noE5)
			}
		}
	}
	if failed != 1 {
		t.Errorf("CSV failures: %d", failed)
	}
	// The operations list links to it.
	ops := b.mustStatus(b.get("/console/customers/contoso/operations"), 200, "operations")
	if !ops.has(`href="`+loc+`"`) || !ops.has("completed with errors") {
		t.Errorf("operations page lacks the operation")
	}
	// The licenses overview: E5 is full, disabled and inactive holders counted.
	lic := b.mustStatus(b.get("/console/customers/contoso/licenses"), 200, "licenses")
	if !lic.has("Office 365 E5") || !lic.has("Buy more") || !lic.has("Held by disabled accounts") {
		t.Errorf("licenses page:\n%s", lic.Body)
	}
}

func TestRolesOnManageLicenses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 5})
	save := url.Values{"action": {"save"}, "sku": {"PBI"}, "act": {"assign"}}

	reader := f.browser()
	reader.signIn(f.b.Token("p", licensing.RoleReader))
	reader.selectUsers(f.users[0], f.users[1])
	p := reader.mustStatus(reader.get("/console/customers/contoso/manage"), 200, "reader manage")
	if p.has(`value="save"`) || !p.has(`disabled aria-describedby="save-reason">Save</button>`) || !p.has("can view licenses but not change them") {
		t.Errorf("reader's Save is not disabled with its reason")
	}
	if p.has(`id="usage-location"`) {
		t.Errorf("reader sees the usage location field")
	}
	if r := reader.post("/console/customers/contoso/manage", save); r.Status != http.StatusForbidden {
		t.Errorf("reader saved: %d", r.Status)
	}
	if r := reader.post("/console/customers/contoso/manage", url.Values{"action": {"preview"}, "sku": {"PBI"}, "act": {"assign"}}); r.Status != 200 {
		t.Errorf("reader preview: %d", r.Status)
	}

	help := f.browser()
	help.signIn(f.b.Token("p", licensing.RoleHelpdeskAgent))
	help.selectUsers(f.users[0])
	p = help.get("/console/customers/contoso/manage")
	if !p.has(`value="save" class="primary">Save</button>`) || p.has(`id="usage-location"`) {
		t.Errorf("helpdesk agent: Save and no usage location expected")
	}
	withLoc := url.Values{"action": {"save"}, "sku": {"PBI"}, "act": {"assign"}, "usage_location": {"PL"}}
	if r := help.post("/console/customers/contoso/manage", withLoc); r.Status != http.StatusForbidden {
		t.Errorf("helpdesk agent set a usage location: %d", r.Status)
	}
	// Without a CSRF token the form is refused whatever the role.
	if r := help.do("POST", "/console/customers/contoso/manage", save); r.Status != http.StatusForbidden || !r.has("did not come from this console") {
		t.Errorf("save without CSRF: %d", r.Status)
	}

	uma := f.browser()
	uma.signIn(f.b.Token("p", licensing.RoleUserManagementAdmin))
	uma.selectUsers(f.users[0])
	if p := uma.get("/console/customers/contoso/manage"); !p.has(`id="usage-location"`) {
		t.Errorf("user management admin lacks the usage location field")
	}
}

func TestLanguages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 2})
	b := f.browser()
	p := b.do("GET", "/console/sign-in", nil, "Accept-Language", "pl-PL,pl;q=0.9,en;q=0.5")
	if !p.has(`<html lang="pl">`) || !p.has(">Token API</label>") || !p.has(">Zaloguj</button>") {
		t.Fatalf("Polish sign-in:\n%s", p.Body)
	}
	if p := b.do("GET", "/console/sign-in", nil, "Accept-Language", "de-DE"); !p.has(`<html lang="en">`) {
		t.Fatalf("German falls back to English")
	}
	// The switch sets the language and goes back; only to console paths.
	r := b.get("/console/lang/pl?next=" + url.QueryEscape("/console/sign-in"))
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/sign-in" {
		t.Fatalf("switch: %d %s", r.Status, r.Header.Get("Location"))
	}
	if p := b.get("/console/sign-in"); !p.has(`<html lang="pl">`) {
		t.Fatalf("switch did not stick")
	}
	if r := b.get("/console/lang/en?next=" + url.QueryEscape("https://evil.example/")); r.Header.Get("Location") != "/console/" {
		t.Fatalf("switch redirects off-site: %s", r.Header.Get("Location"))
	}
	b.signIn(f.b.Token("p", licensing.RoleReader))
	b.get("/console/lang/pl?next=/console/customers")
	if p := b.get("/console/customers/contoso/users"); !p.has("Zaznacz wszystkich na tej stronie") || !p.has("Wybrani użytkownicy (0)") {
		t.Fatalf("Polish users page:\n%s", p.Body)
	}
	// The console's own errors are in the page's language too.
	if p := b.do("POST", "/console/customers/contoso/selection", url.Values{"op": {"clear"}}); p.Status != http.StatusForbidden ||
		!p.has("Formularz wygasł albo nie pochodzi z tej konsoli.") {
		t.Fatalf("Polish CSRF refusal: %d\n%s", p.Status, p.Body)
	}
}

func TestStaticAndEscaping(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{users: 1})
	f.admin.Must(200, "POST", "/v1/customers/contoso/users/import", map[string]any{"users": []map[string]any{
		{"id": "evil", "user_principal_name": "evil@contoso.example", "display_name": `<script>alert(1)</script>`}}})
	b := f.browser()
	b.signIn(f.b.Token("p", licensing.RoleReader))
	p := b.get("/console/customers/contoso/users")
	if p.has("<script>alert(1)") || !p.has("&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("display name not escaped")
	}
	for _, path := range []string{"/console/static/console.css", "/console/static/console.js"} {
		if s := b.get(path); s.Status != 200 || s.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d", path, s.Status)
		}
	}
	if s := b.get("/console/static/"); s.Status != 404 {
		t.Errorf("static folder listing: %d", s.Status)
	}
}
