package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/licensing"
)

// The console's page benchmarks (`make bench-console`), served over HTTP
// by the real handler on real Postgres and Redis: the Manage-licenses page
// for 10,000 selected users (the bar: under 1 s) and a users page (under
// 200 ms). A quarter of the users hold Power BI, so that the page counts
// and lists holders of a mixed product. The figures are reported, not
// asserted: a test must not fail on a busy machine's timing.

const benchUsers = 10_000

func benchFixture(b *testing.B) (*fixture, *browser) {
	b.Helper()
	f := newFixture(b, fixtureOptions{users: benchUsers, workers: 2})
	var acc struct{ ID string }
	f.admin.Must(http.StatusAccepted, "POST", "/v1/customers/contoso/license-operations",
		map[string]any{"user_ids": f.users[:benchUsers/4], "assign": []string{"PBI"}, "allow_partial": true}).JSON(b, &acc)
	f.admin.WaitOperation(acc.ID, 5*time.Minute)
	br := f.browser()
	br.signIn(f.b.Token("p", licensing.RoleGlobalAdmin))
	return f, br
}

func BenchmarkConsolePages(b *testing.B) {
	_, br := benchFixture(b)
	r := br.post("/console/customers/contoso/selection", url.Values{"op": {"all"}, "back": {"/console/customers/contoso/users"}})
	if r.Status != http.StatusSeeOther {
		b.Fatalf("select all: %d", r.Status)
	}
	b.Run("ManageLicenses10000Selected", func(b *testing.B) {
		for b.Loop() {
			p := br.get("/console/customers/contoso/manage")
			if p.Status != 200 || !p.has("10,000 selected users") && !p.has("10000 selected users") {
				b.Fatalf("manage: %d", p.Status)
			}
		}
	})
	b.Run("UsersPage", func(b *testing.B) {
		for b.Loop() {
			if p := br.get("/console/customers/contoso/users?page=77"); p.Status != 200 || !p.has("Page 77 of 200") {
				b.Fatalf("users page: %d", p.Status)
			}
		}
	})
	b.Run("UsersPageSearch", func(b *testing.B) {
		for b.Loop() {
			if p := br.get("/console/customers/contoso/users?q=" + url.QueryEscape("Grace")); p.Status != 200 || !strings.Contains(p.Body, "Grace") {
				b.Fatalf("search: %d", p.Status)
			}
		}
	})
	b.Run("SelectedUsersPage", func(b *testing.B) {
		for b.Loop() {
			if p := br.get("/console/customers/contoso/users?view=selected&page=3"); p.Status != 200 {
				b.Fatalf("selected users: %d", p.Status)
			}
		}
	})
}
