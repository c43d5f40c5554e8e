package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/internal/testapp"
)

// A known path with a method it does not take is a 405 MethodNotAllowed in
// the contract's error body, with an Allow header listing the methods it
// takes, before any token is looked at; an unknown path stays a 404.
func TestWrongMethodIsMethodNotAllowed(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	anon := b.Client("p1", "reader")
	anon.Token = ""

	// The methods of every path of the route table, and of the service endpoints.
	methods := map[string][]string{"/healthz": {"GET"}, "/readyz": {"GET"}, "/metrics": {"GET"}}
	for _, rt := range api.RouteTable() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		methods[path] = append(methods[path], method)
	}
	ids := map[string]string{"cid": "acme", "uid": "u1", "sku_id": "E5", "oid": "00000000-0000-4000-8000-000000000001",
		"pid": "00000000-0000-4000-8000-000000000002", "wid": "00000000-0000-4000-8000-000000000003"}
	for pattern := range methods {
		_, path := fillPath(t, "X "+pattern, ids)
		// Every pattern that matches the path adds its method:
		// …/users/import is also …/users/{uid}.
		var want []string
		for other, ms := range methods {
			if pathMatches(other, path) {
				want = append(want, ms...)
			}
		}
		if slices.Contains(want, "GET") {
			want = append(want, "HEAD") // a GET route answers HEAD too
		}
		slices.Sort(want)
		want = slices.Compact(want)
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			if slices.Contains(want, m) {
				continue
			}
			r := anon.Do(m, path, nil)
			if r.Status != http.StatusMethodNotAllowed || r.ErrorCode() != "MethodNotAllowed" {
				t.Errorf("%s %s: %d %s, want 405 MethodNotAllowed", m, path, r.Status, r.Body)
				continue
			}
			if allow := r.Header.Get("Allow"); allow != strings.Join(want, ", ") {
				t.Errorf("%s %s: Allow %q, want %q", m, path, allow, strings.Join(want, ", "))
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s %s: Content-Type %q, want the contract's JSON error body", m, path, ct)
			}
			if msg := errorMessage(t, r); !strings.Contains(msg, m) || !strings.Contains(msg, strings.Join(want, ", ")) ||
				!strings.Contains(msg, "docs/api.md") {
				t.Errorf("%s %s: message %q should name the method, the allowed ones and docs/api.md", m, path, msg)
			}
		}
	}

	// The methods of a path come from every route on it.
	if r := anon.Do("DELETE", "/v1/customers/acme/users/u1", nil); r.Header.Get("Allow") != "GET, HEAD, PATCH" {
		t.Errorf("DELETE of a user: %d, Allow %q, want GET, HEAD, PATCH", r.Status, r.Header.Get("Allow"))
	}

	// Unknown paths stay 404, whatever the method, without an Allow header.
	for _, req := range [][2]string{{"GET", "/v1/nope"}, {"POST", "/v1/customers/acme/nope"}, {"DELETE", "/"}, {"GET", "/v1/operations"}} {
		r := anon.Do(req[0], req[1], nil)
		if r.Status != http.StatusNotFound || r.ErrorCode() != "NotFound" || r.Header.Get("Allow") != "" {
			t.Errorf("%s %s: %d Allow %q %s, want 404 NotFound without Allow", req[0], req[1], r.Status, r.Header.Get("Allow"), r.Body)
		}
	}
	// The right method still reaches the route (and its token check).
	if r := anon.Do("GET", "/v1/customers/acme", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("GET of a customer without a token: %d %s, want 401", r.Status, r.Body)
	}
	// A path to clean is still redirected to its clean form.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for p, clean := range map[string]string{"/v1//customers": "/v1/customers", "/v1/./nope": "/v1/nope"} {
		resp, err := client.Get(b.API.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != clean {
			t.Errorf("GET %s: %d to %q, want a redirect to %s", p, resp.StatusCode, resp.Header.Get("Location"), clean)
		}
	}
}

// pathMatches reports whether a route's path pattern matches path, a
// wildcard standing for one segment.
func pathMatches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i, p := range ps {
		if !(strings.HasPrefix(p, "{") && xs[i] != "") && p != xs[i] {
			return false
		}
	}
	return true
}
