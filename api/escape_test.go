package api_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/internal/testapp"
)

// Answers are JSON for programs, not HTML: <, > and & come through as they
// are, never as \u003c, \u003e and \u0026, from every writer: plain answers
// and errors, the stored answer of an operation (first and replayed) and the
// streamed report.
func TestJSONAnswersAreNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p1", "global_admin")
	const cid = "R&D <lab>"
	seedTenant(t, c, cid, 3, map[string]int{"E5": 5})
	path := "/v1/customers/" + url.PathEscape(cid)

	literal := func(what string, r *testapp.Response, want ...string) {
		t.Helper()
		for _, esc := range []string{`\u003c`, `\u003e`, `\u0026`} {
			if bytes.Contains(r.Body, []byte(esc)) {
				t.Errorf("%s: the body has %s: %s", what, esc, r.Body)
			}
		}
		for _, w := range want {
			if !bytes.Contains(r.Body, []byte(w)) {
				t.Errorf("%s: the body lacks %s literally: %s", what, w, r.Body)
			}
		}
	}

	anon := b.Client("p1", "reader")
	anon.Token = ""
	r := anon.Do("GET", "/v1/customers", nil)
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %d %s", r.Status, r.Body)
	}
	literal("401 message", r, "Bearer <token>")

	r = c.Must(http.StatusOK, "GET", path+"/users?page=1&page_size=1", nil)
	literal("page links", r, "?page=2&page_size=1")
	literal("customer", c.Must(http.StatusOK, "GET", path, nil), `"id":"R&D <lab>"`)

	body := `{"user_ids":["u00000","u00001"],"assign":["E5"]}`
	first := c.Must(http.StatusAccepted, "POST", path+"/license-operations", body, "Idempotency-Key", "k<&>")
	literal("202 answer", first, `"customer_id":"R&D <lab>"`)
	replay := c.Must(http.StatusAccepted, "POST", path+"/license-operations", body, "Idempotency-Key", "k<&>")
	if !bytes.Equal(replay.Body, first.Body) {
		t.Fatalf("replay = %s, want the first answer %s", replay.Body, first.Body)
	}
	var acc struct{ ID string }
	first.JSON(t, &acc)
	rep := c.Must(http.StatusOK, "GET", "/v1/operations/"+acc.ID+"/report", nil)
	literal("report", rep, `"customer_id":"R&D <lab>"`)
	var parsed report
	rep.JSON(t, &parsed)
	if parsed.Operation.CustomerID != cid || len(parsed.Results) != 2 {
		t.Fatalf("report = %+v", parsed)
	}

	r = c.Do("POST", path+"/license-operations", `{"user_ids":["u00000"],"assign":["<E5>&"]}`)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "<E5>&") {
		t.Fatalf("unknown SKU <E5>&: %d %s", r.Status, r.Body)
	}
	literal("422 message", r, "<E5>&")
}
