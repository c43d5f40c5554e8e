package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
)

// tokenInfo finds the token of partner named name.
func tokenInfo(t *testing.T, b *testapp.Bundle, partner, name string) licensing.TokenInfo {
	t.Helper()
	tokens, err := b.Store.ListTokens(context.Background(), partner)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		if tok.Name == name {
			return tok
		}
	}
	t.Fatalf("no token %q of partner %s in %+v", name, partner, tokens)
	return licensing.TokenInfo{}
}

func TestTokenLastUsedAt(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "reader")
	if tok := tokenInfo(t, b, "p", "reader-token"); tok.LastUsedAt != nil {
		t.Fatalf("a new token has last_used_at %v", tok.LastUsedAt)
	}
	c.Must(http.StatusOK, "GET", "/v1/customers", nil)
	used := tokenInfo(t, b, "p", "reader-token").LastUsedAt
	if used == nil {
		t.Fatal("last_used_at not set by a request")
	}
	// Used within the minute: not written again, which keeps
	// authentication a read. A time in the future stands for "just now"
	// without depending on how fast the test runs.
	db := b.DB
	if _, err := db.Exec(`UPDATE tokens SET last_used_at = now() + interval '1 hour' WHERE name = 'reader-token'`); err != nil {
		t.Fatal(err)
	}
	recent := tokenInfo(t, b, "p", "reader-token").LastUsedAt
	c.Must(http.StatusOK, "GET", "/v1/customers", nil)
	if got := tokenInfo(t, b, "p", "reader-token").LastUsedAt; !got.Equal(*recent) {
		t.Fatalf("last_used_at rewritten within the minute: %v, was %v", got, recent)
	}
	// Last used over a minute ago: refreshed.
	if _, err := db.Exec(`UPDATE tokens SET last_used_at = now() - interval '2 minutes' WHERE name = 'reader-token'`); err != nil {
		t.Fatal(err)
	}
	stale := tokenInfo(t, b, "p", "reader-token").LastUsedAt
	c.Must(http.StatusOK, "GET", "/v1/customers", nil)
	if got := tokenInfo(t, b, "p", "reader-token").LastUsedAt; !got.After(*stale) {
		t.Fatalf("last_used_at not refreshed: %v, was %v", got, stale)
	}
}

func TestRevokedTokenRefusedAtOnce(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	other := b.Client("p", "reader")
	c.Must(http.StatusOK, "GET", "/v1/customers", nil)
	if err := b.Store.RevokeToken(context.Background(), tokenInfo(t, b, "p", "global_admin-token").ID); err != nil {
		t.Fatal(err)
	}
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/v1/customers", ""},
		{"POST", "/v1/customers", `{"id":"after-revoke","name":"x"}`},
	} {
		var body any
		if rq.body != "" {
			body = rq.body
		}
		if r := c.Do(rq.method, rq.path, body); r.Status != http.StatusUnauthorized || r.ErrorCode() != "Unauthenticated" {
			t.Errorf("revoked token %s %s: %d %s, want 401 Unauthenticated", rq.method, rq.path, r.Status, r.Body)
		}
	}
	// The partner's other tokens still work, and the refused POST created nothing.
	var cs struct{ Customers []struct{ ID string } }
	other.Must(http.StatusOK, "GET", "/v1/customers", nil).JSON(t, &cs)
	if len(cs.Customers) != 0 {
		t.Fatalf("a revoked token created %+v", cs.Customers)
	}
	if tok := tokenInfo(t, b, "p", "global_admin-token"); tok.RevokedAt == nil {
		t.Fatal("revoked_at not set")
	}
	// Revoking twice says the token is not there to revoke.
	if err := b.Store.RevokeToken(context.Background(), tokenInfo(t, b, "p", "global_admin-token").ID); err == nil {
		t.Fatal("revoking a revoked token succeeded")
	}
}

func TestMissingOrUnknownToken(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	for _, tc := range []struct{ name, token, header string }{
		{"no header", "", ""},
		{"unknown token", "lops_forged", ""},
		{"not bearer", "", "Basic dXNlcjpwYXNz"},
		{"empty bearer", "", "Bearer "},
	} {
		anon := *c
		anon.Token = tc.token
		var headers []string
		if tc.header != "" {
			headers = []string{"Authorization", tc.header}
		}
		if r := anon.Do("GET", "/v1/customers", nil, headers...); r.Status != http.StatusUnauthorized || r.ErrorCode() != "Unauthenticated" {
			t.Errorf("%s: %d %s, want 401 Unauthenticated", tc.name, r.Status, r.Body)
		}
	}
}
