package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/internal/testapp"
)

// hostileCase is a request the API must refuse with status and code, and
// whose message must mention says.
type hostileCase struct {
	name         string
	method, path string
	body         any
	status       int
	code, says   string
}

// refuseAll sends every case and then checks that none of them changed
// anything the partner can read, the audit log included.
func refuseAll(t *testing.T, c *testapp.Client, customer string, cases []hostileCase) {
	t.Helper()
	paths := []string{
		"/v1/customers", "/v1/products", "/v1/audit",
		"/v1/customers/" + customer + "/users?page_size=500", "/v1/customers/" + customer + "/subscriptions",
		"/v1/customers/" + customer + "/operations",
	}
	before := map[string][]byte{}
	for _, p := range paths {
		before[p] = c.Must(http.StatusOK, "GET", p, nil).Body
	}
	for _, tc := range cases {
		r := c.Do(tc.method, tc.path, tc.body)
		if r.Status != tc.status || r.ErrorCode() != tc.code || !strings.Contains(string(r.Body), tc.says) {
			t.Errorf("%s: %d %s, want %d %s mentioning %q", tc.name, r.Status, truncateBody(r.Body), tc.status, tc.code, tc.says)
		}
	}
	for _, p := range paths {
		if after := c.Must(http.StatusOK, "GET", p, nil).Body; !bytes.Equal(after, before[p]) {
			t.Errorf("%s changed by refused requests:\nbefore %s\nafter  %s", p, truncateBody(before[p]), truncateBody(after))
		}
	}
}

func truncateBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// ids returns n distinct user IDs.
func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%06d", i)
	}
	return out
}

func TestSizeLimits(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	seedTenant(t, c, "big", 3, map[string]int{"E5": 5})
	ops := "/v1/customers/big/license-operations"
	bigString := strings.Repeat("a", 17<<20)
	importRows := make([]map[string]string, 200_001)
	for i := range importRows {
		importRows[i] = map[string]string{"id": fmt.Sprint(i), "user_principal_name": "x"}
	}
	refuseAll(t, c, "big", []hostileCase{
		{"100,001 users", "POST", ops, map[string]any{"user_ids": ids(100_001), "assign": []string{"E5"}}, 413, "TooLarge", "100000"},
		{"200,001 entries, 3 distinct", "POST", ops, map[string]any{"user_ids": repeatIDs(200_001, 3), "assign": []string{"E5"}}, 413, "TooLarge", "100000"},
		{"100,001 users in a summary", "POST", "/v1/customers/big/license-summary", map[string]any{"user_ids": ids(100_001)}, 413, "TooLarge", "100000"},
		{"31 SKUs", "POST", ops, map[string]any{"user_ids": ids(1), "assign": ids(31)}, 413, "TooLarge", "30"},
		{"17 MB operation", "POST", ops, `{"user_ids":["` + bigString + `"],"assign":["E5"]}`, 413, "TooLarge", "split"},
		{"2 MB product", "PUT", "/v1/products/HUGE", `{"name":"` + bigString[:2<<20] + `"}`, 413, "TooLarge", "split"},
		{"2 MB customer", "POST", "/v1/customers", `{"id":"x","name":"` + bigString[:2<<20] + `"}`, 413, "TooLarge", "split"},
		{"200,001 imported users", "POST", "/v1/customers/big/users/import", map[string]any{"users": importRows}, 413, "TooLarge", "200000"},
	})
	// The largest operation the contract promises is taken (it fails only
	// because these users do not exist, after the size checks).
	if r := c.Do("POST", ops, map[string]any{"user_ids": ids(100_000), "assign": []string{"E5"}}); r.Status != 422 || r.ErrorCode() != "UnknownUsers" {
		t.Fatalf("100,000 users: %d %s, want 422 UnknownUsers", r.Status, truncateBody(r.Body))
	}
}

// repeatIDs returns n entries cycling through the first distinct IDs of ids.
func repeatIDs(n, distinct int) []string {
	base := ids(distinct)
	out := make([]string, n)
	for i := range out {
		out[i] = base[i%distinct]
	}
	return out
}

// The contract: "duplicate user IDs count once; up to 100,000 users". The limit is
// on distinct users, so a full selection with a repeat is taken, and one
// more distinct user is refused.
func TestUserLimitCountsDistinctUsers(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	seedTenant(t, c, "full", 0, map[string]int{"E5": 200_000})
	// 100,001 users straight into Postgres: the import API would be slower
	// and is not what this test is about.
	if _, err := b.DB.Exec(`
		INSERT INTO users (customer_key, id, user_principal_name, display_name, usage_location)
		SELECT c.customer_key, 'u' || lpad(n::text, 6, '0'), 'u' || n || '@x', 'User ' || n, 'PL'
		FROM customers c, generate_series(0, 100000) AS n WHERE c.id = 'full'`); err != nil {
		t.Fatal(err)
	}
	ops := "/v1/customers/full/license-operations"
	all := ids(100_001)

	refuseAll(t, c, "full", []hostileCase{
		{"100,001 distinct users", "POST", ops, map[string]any{"user_ids": all, "assign": []string{"E5"}}, 413, "TooLarge", "100000"},
		{"100,001 distinct users, repeated", "POST", ops, map[string]any{"user_ids": append(slices.Clone(all), all[:1000]...), "assign": []string{"E5"}}, 413, "TooLarge", "100000"},
	})

	withRepeat := append(slices.Clone(all[:100_000]), all[0], all[99_999])
	var acc struct{ Total int }
	c.Must(http.StatusAccepted, "POST", ops, map[string]any{"user_ids": withRepeat, "assign": []string{"E5"}}).JSON(t, &acc)
	if acc.Total != 100_000 {
		t.Fatalf("100,000 distinct users and 2 repeats: total %d, want 100000", acc.Total)
	}
	// The license summary counts the same way.
	summary := "/v1/customers/full/license-summary"
	c.Must(http.StatusOK, "POST", summary, map[string]any{"user_ids": withRepeat})
	refuseAll(t, c, "full", []hostileCase{
		{"summary of 100,001 distinct users, repeated", "POST", summary, map[string]any{"user_ids": append(slices.Clone(all), all[:1000]...)}, 413, "TooLarge", "100000"},
	})
}

// Field names are exact: encoding/json would take "USER_IDS" (or "aſſign",
// with U+017F) for "user_ids" and let a repeated key win silently; the API
// refuses both with the contract's 400, in every body and at every depth.
func TestStrictFieldNames(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	seedTenant(t, c, "strict", 2, map[string]int{"E5": 5})
	ops := "/v1/customers/strict/license-operations"
	refuseAll(t, c, "strict", []hostileCase{
		{"upper-case field", "POST", ops, `{"USER_IDS":["u00000"],"assign":["E5"]}`, 400, "InvalidRequest", `USER_IDS`},
		{"capitalized field", "POST", ops, `{"user_ids":["u00000"],"Assign":["E5"]}`, 400, "InvalidRequest", `case-sensitive: use \"assign\"`},
		{"field with a long s", "POST", ops, `{"user_ids":["u00000"],"aſſign":["E5"]}`, 400, "InvalidRequest", `aſſign`},
		{"repeated field", "POST", ops, `{"user_ids":["u00000"],"assign":["E5"],"user_ids":["u00001"]}`, 400, "InvalidRequest", `\"user_ids\" appears more than once`},
		{"repeated field, escaped", "POST", ops, `{"user_ids":["u00000"],"assign":["E5"],"user\u005fids":["u00001"]}`, 400, "InvalidRequest", "more than once"},
		{"repeated false", "POST", ops, `{"user_ids":["u00000"],"assign":["E5"],"allow_partial":true,"allow_partial":false}`, 400, "InvalidRequest", "allow_partial"},
		{"summary", "POST", "/v1/customers/strict/license-summary", `{"User_Ids":["u00000"]}`, 400, "InvalidRequest", "User_Ids"},
		{"nested field", "POST", "/v1/customers", `{"id":"x","name":"n","directory":{"KIND":"local"}}`, 400, "InvalidRequest", `\"KIND\" in directory`},
		{"field in a list", "POST", "/v1/customers/strict/users/import",
			`{"users":[{"id":"a","user_principal_name":"a@x"},{"id":"b","user_principal_name":"b@x","Display_Name":"B"}]}`, 400, "InvalidRequest", `\"Display_Name\" in users[1]`},
		{"repeated in a list", "POST", "/v1/customers/strict/users/import",
			`{"users":[{"id":"a","user_principal_name":"a@x","id":"b"}]}`, 400, "InvalidRequest", `\"id\" in users[0] appears more than once`},
		{"product", "PUT", "/v1/products/P2", `{"name":"n","Requires":["E5"]}`, 400, "InvalidRequest", "Requires"},
		{"seats", "PUT", "/v1/customers/strict/subscriptions/E5", `{"total":10,"total":1}`, 400, "InvalidRequest", "total"},
		{"usage location", "PATCH", "/v1/customers/strict/users/u00000", `{"Usage_Location":"DE"}`, 400, "InvalidRequest", "Usage_Location"},
		{"cleanup rule", "POST", "/v1/customers/strict/cleanup-policies",
			`{"name":"n","schedule":"0 2 * * *","time_zone":"UTC","rule":{"kind":"disabled_accounts","Kind":"inactive"}}`, 400, "InvalidRequest", `\"Kind\" in rule`},
	})
	// A key spelled with an escape is still exactly the field's name.
	c.Must(http.StatusAccepted, "POST", ops, `{"user\u005fids":["u00000"],"assign":["E5"]}`)
}

func TestPagingLimits(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	seedTenant(t, c, "paged", 3, nil)
	var cases []hostileCase
	for _, list := range []string{"/v1/customers/paged/users", "/v1/customers/paged/operations", "/v1/audit"} {
		for _, q := range []string{"page=0", "page=-1", "page=x", "page=1.5", "page=99999999999999999999",
			"page=1000000000&page_size=500", "page_size=0", "page_size=501", "page_size=-5", "page_size=", "page_size=1e3"} {
			if q == "page_size=" {
				continue // empty means the default
			}
			cases = append(cases, hostileCase{list + "?" + q, "GET", list + "?" + q, nil, 400, "InvalidRequest", "page"})
		}
		c.Must(http.StatusOK, "GET", list+"?page=3&page_size=500", nil)
	}
	refuseAll(t, c, "paged", cases)
}

func TestIDAndCountryLimits(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	seedTenant(t, c, "ids", 3, map[string]int{"E5": 5})
	long := strings.Repeat("x", 129)
	cases := []hostileCase{
		// IDs in bodies.
		{"customer id too long", "POST", "/v1/customers", map[string]any{"id": long, "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id empty", "POST", "/v1/customers", map[string]any{"id": "", "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id with slash", "POST", "/v1/customers", map[string]any{"id": "a/b", "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id of 129 characters", "POST", "/v1/customers", map[string]any{"id": strings.Repeat("é", 129), "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id with tab", "POST", "/v1/customers", map[string]any{"id": "a\tb", "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id with line break", "POST", "/v1/customers", map[string]any{"id": "a\nb", "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id with ideographic space", "POST", "/v1/customers", map[string]any{"id": "a\u3000b", "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id with zero-width space", "POST", "/v1/customers", map[string]any{"id": "a\u200bb", "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id with NBSP", "POST", "/v1/customers", map[string]any{"id": "a\u00a0b", "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id with control", "POST", "/v1/customers", map[string]any{"id": "a\u0007", "name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"customer id with NUL", "POST", "/v1/customers", `{"id":"a\u0000","name":"n"}`, 400, "InvalidRequest", "not a valid ID"},
		{"customer id not UTF-8", "POST", "/v1/customers", "{\"id\":\"a\xff\",\"name\":\"n\"}", 400, "InvalidRequest", "UTF-8"},
		{"operation users not UTF-8", "POST", "/v1/customers/ids/license-operations", "{\"user_ids\":[\"u\xfe\",\"u\xff\"],\"assign\":[\"E5\"]}", 400, "InvalidRequest", "UTF-8"},
		{"customer id of wrong type", "POST", "/v1/customers", `{"id":7,"name":"n"}`, 400, "InvalidRequest", "id"},
		{"requires with slash", "PUT", "/v1/products/P1", map[string]any{"name": "n", "requires": []string{"a/b"}}, 400, "InvalidRequest", "not a valid ID"},
		{"import id too long", "POST", "/v1/customers/ids/users/import",
			map[string]any{"users": []map[string]any{{"id": "ok", "user_principal_name": "ok@x"}, {"id": long, "user_principal_name": "x@x"}}},
			400, "InvalidRequest", "users[1].id"},
		{"operation user with tab", "POST", "/v1/customers/ids/license-operations", map[string]any{"user_ids": []string{"u00000", "u\t1"}, "assign": []string{"E5"}}, 400, "InvalidRequest", "not a valid ID"},
		// IDs in paths.
		{"path customer too long", "GET", "/v1/customers/" + long, nil, 400, "InvalidRequest", "not a valid ID"},
		{"path customer with encoded slash", "GET", "/v1/customers/a%2Fb", nil, 400, "InvalidRequest", "not a valid ID"},
		{"path customer with tab", "GET", "/v1/customers/a%09b/users", nil, 400, "InvalidRequest", "not a valid ID"},
		{"path customer with space is an ID, of nobody", "GET", "/v1/customers/a%20b/users", nil, 404, "NotFound", "customer"},
		{"path user too long", "PATCH", "/v1/customers/ids/users/" + long, map[string]any{"usage_location": "PL"}, 400, "InvalidRequest", "not a valid ID"},
		{"path SKU too long", "PUT", "/v1/products/" + long, map[string]any{"name": "n"}, 400, "InvalidRequest", "not a valid ID"},
		{"path subscription SKU bad", "PUT", "/v1/customers/ids/subscriptions/a%0Ab", map[string]int{"total": 1}, 400, "InvalidRequest", "not a valid ID"},
		{"path operation not a UUID", "GET", "/v1/operations/" + long, nil, 404, "NotFound", "operation"},
		// Country codes.
		{"default location UK", "POST", "/v1/customers", map[string]any{"id": "c", "name": "n", "default_usage_location": "UK"}, 400, "InvalidRequest", "ISO 3166"},
		{"allowed location EU", "PUT", "/v1/products/P1", map[string]any{"name": "n", "allowed_locations": []string{"PL", "EU"}}, 400, "InvalidRequest", "ISO 3166"},
		{"prohibited location three letters", "PUT", "/v1/products/P1", map[string]any{"name": "n", "prohibited_locations": []string{"POL"}}, 400, "InvalidRequest", "ISO 3166"},
		{"import location XK", "POST", "/v1/customers/ids/users/import",
			map[string]any{"users": []map[string]any{{"id": "new", "user_principal_name": "n@x", "usage_location": "XK"}}}, 400, "InvalidRequest", "ISO 3166"},
		{"patch location ZZ", "PATCH", "/v1/customers/ids/users/u00000", map[string]any{"usage_location": "ZZ"}, 400, "InvalidRequest", "ISO 3166"},
		{"patch location empty", "PATCH", "/v1/customers/ids/users/u00000", map[string]any{"usage_location": ""}, 400, "InvalidRequest", "ISO 3166"},
		{"patch location digits", "PATCH", "/v1/customers/ids/users/u00000", map[string]any{"usage_location": "12"}, 400, "InvalidRequest", "ISO 3166"},
		{"operation location Cyrillic", "POST", "/v1/customers/ids/license-operations",
			map[string]any{"user_ids": []string{"u00000"}, "assign": []string{"E5"}, "usage_location": "РL"}, 400, "InvalidRequest", "ISO 3166"},
		// Other values.
		{"negative seats", "PUT", "/v1/customers/ids/subscriptions/E5", map[string]int{"total": -1}, 400, "InvalidRequest", "total"},
		{"too many seats", "PUT", "/v1/customers/ids/subscriptions/E5", map[string]int{"total": 10_000_001}, 400, "InvalidRequest", "total"},
		{"seats overflow", "PUT", "/v1/customers/ids/subscriptions/E5", `{"total": 99999999999999999999}`, 400, "InvalidRequest", "total"},
		{"long search", "GET", "/v1/customers/ids/users?q=" + strings.Repeat("q", 257), nil, 400, "InvalidRequest", "q"},
	}
	refuseAll(t, c, "ids", cases)
	// The boundaries themselves are accepted: 128 characters (of one byte
	// or of two), a lower-case code.
	c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": long[:128], "name": "n", "default_usage_location": "de"})
	c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": strings.Repeat("é", 128), "name": "n"})
	// The contract: an ID is "1–128 printable characters without /", and the
	// plain space is printable: an ID with spaces works in bodies and paths.
	for _, id := range []string{"a b", " lead", "trail ", "=x+y@z"} {
		c.Must(http.StatusCreated, "POST", "/v1/customers", map[string]any{"id": id, "name": "spaced"})
		var got struct{ ID string }
		c.Must(http.StatusOK, "GET", "/v1/customers/"+url.PathEscape(id), nil).JSON(t, &got)
		if got.ID != id {
			t.Errorf("customer %q read back as %q", id, got.ID)
		}
	}
	c.Must(http.StatusOK, "PUT", "/v1/products/Office%20E5", map[string]any{"name": "spaced SKU"})
	c.Must(http.StatusOK, "PUT", "/v1/customers/a%20b/subscriptions/Office%20E5", map[string]int{"total": 1})
	c.Must(http.StatusOK, "POST", "/v1/customers/ids/users/import",
		map[string]any{"users": []map[string]any{{"id": "Jan Kowalski", "user_principal_name": "jan@x"}}})
	c.Must(http.StatusOK, "PATCH", "/v1/customers/ids/users/Jan%20Kowalski", map[string]any{"usage_location": "PL"})
	var u struct {
		UsageLocation string `json:"usage_location"`
	}
	c.Must(http.StatusOK, "PATCH", "/v1/customers/ids/users/u00000", map[string]any{"usage_location": "gb"}).JSON(t, &u)
	if u.UsageLocation != "GB" {
		t.Fatalf("usage_location %q, want GB", u.UsageLocation)
	}
}
