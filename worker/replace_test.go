package worker_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	seeder "github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/worker"
)

// replaceTenant seeds customer with n users in the US and seats of E3,
// E5, VISIO and PROJ; E5 excludes VISIO. It gives E3 to the users of e3 and
// VISIO to those of visio, outside any operation (seats counted).
func replaceTenant(t *testing.T, b *testapp.Bundle, c *testapp.Client, customer string, n, e5 int, e3, visio []int) []string {
	t.Helper()
	users := c.Seed(seeder.Tenant{
		Customer: client.CustomerRequest{ID: customer, Name: customer, DefaultUsageLocation: new("US")},
		Products: map[string]client.ProductRequest{"E5": {Name: "E5", Excludes: []string{"VISIO"}}},
		Users:    seeder.Users(seeder.IDs("user-%05d", n)),
		Seats:    map[string]int{"E3": n, "E5": e5, "VISIO": n, "PROJ": n},
	})
	give(b, customer, "E3", users, e3...)
	give(b, customer, "VISIO", users, visio...)
	return users
}

// give gives sku to the users of which (indexes in users) outside any
// operation, as a directory sync would, the seats counted.
func give(b *testapp.Bundle, customer, sku string, users []string, which ...int) {
	for _, i := range which {
		b.DB.MustExec(`
			WITH ins AS (INSERT INTO assignments (customer_key, user_id, sku_id)
				SELECT customer_key, $2, $3 FROM customers WHERE id = $1)
			UPDATE subscriptions s SET consumed = consumed + 1
			FROM customers c WHERE c.customer_key = s.customer_key AND c.id = $1 AND s.sku_id = $3`, customer, users[i], sku)
	}
}

// reportChanges returns each user's "+assigned -revoked" from an
// operation's report ("" when nothing changed).
func reportChanges(t *testing.T, c *testapp.Client, id string) map[string]string {
	t.Helper()
	var rep struct {
		Results []struct {
			UserID   string   `json:"user_id"`
			Assigned []string `json:"assigned"`
			Revoked  []string `json:"revoked"`
		}
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+id+"/report", nil).JSON(t, &rep)
	out := map[string]string{}
	for _, r := range rep.Results {
		out[r.UserID] = signed(r.Assigned, r.Revoked)
	}
	return out
}

func signed(assigned, revoked []string) string {
	s := ""
	for _, a := range assigned {
		s += "+" + a
	}
	for _, r := range revoked {
		s += "-" + r
	}
	return s
}

// grantedMasks returns the seat grants of an operation's items by user.
func grantedMasks(t *testing.T, b *testapp.Bundle, id string) map[string]int {
	t.Helper()
	var rows []struct {
		UserID string `db:"user_id"`
		Mask   int    `db:"granted_mask"`
	}
	if err := b.DB.Select(&rows, `SELECT user_id, granted_mask FROM operation_items WHERE operation_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.UserID] = r.Mask
	}
	return out
}

// Replace E3 with E5 where held, on a mixed selection: the holders get
// E5 and lose E3, all or nothing (user 3 holds VISIO, which E5 excludes,
// and keeps E3); users without E3 succeed with nothing changed and get no
// E5. The seats of E5 suffice only for the holders that can take it, so
// intake must not count the others. The dry run predicts the same; the
// undo swaps back.
func TestReplaceWhereHeld(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := replaceTenant(t, b, c, "repl", 6, 3, []int{0, 1, 2, 3}, []int{3, 5})
	body := map[string]any{"user_ids": users, "replace": []map[string]string{{"from": "E3", "to": "E5"}}}
	want := map[string]string{users[0]: "+E5-E3", users[1]: "+E5-E3", users[2]: "+E5-E3", users[3]: "", users[4]: "", users[5]: ""}

	var pv struct {
		WouldSucceed int `json:"would_succeed"`
		WouldFail    int `json:"would_fail"`
		SKUs         []licensing.SeatShortage
		Results      []struct {
			UserID   string `json:"user_id"`
			Assigned []string
			Revoked  []string
			Error    *struct{ Code string }
		}
	}
	dry := map[string]any{"dry_run": true}
	for k, v := range body {
		dry[k] = v
	}
	c.Must(http.StatusOK, "POST", "/v1/customers/repl/license-operations", dry).JSON(t, &pv)
	if pv.WouldSucceed != 5 || pv.WouldFail != 1 || len(pv.SKUs) != 1 || pv.SKUs[0] != (licensing.SeatShortage{SKU: "E5", Needed: 3, Available: 3}) {
		t.Fatalf("dry run = %+v, want 5 to succeed, 1 to fail, 3 of 3 E5 seats needed", pv)
	}
	for _, r := range pv.Results {
		if got := signed(r.Assigned, r.Revoked); got != want[r.UserID] {
			t.Errorf("dry run: %s would change %q, want %q", r.UserID, got, want[r.UserID])
		}
		if (r.Error != nil) != (r.UserID == users[3]) || (r.Error != nil && r.Error.Code != "MutuallyExclusiveViolation") {
			t.Errorf("dry run: %s error %+v", r.UserID, r.Error)
		}
	}

	op := change(t, c, "repl", body)
	if op.Succeeded != 5 || op.Failed != 1 || len(op.Assign) != 0 || len(op.Revoke) != 0 ||
		!slices.Equal(op.Replace, []licensing.Replacement{{From: "E3", To: "E5"}}) {
		t.Fatalf("operation = %+v, want 5 succeeded, 1 failed, replace E3→E5 and nothing else", op)
	}
	var got struct {
		Replace []licensing.Replacement `json:"replace"`
		Assign  []string                `json:"assign"`
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+op.ID, nil).JSON(t, &got)
	if len(got.Replace) != 1 || got.Replace[0].From != "E3" || got.Replace[0].To != "E5" || len(got.Assign) != 0 {
		t.Fatalf("GET operation = %+v, want replace [E3→E5] and assign []", got)
	}
	changes := reportChanges(t, c, op.ID)
	codes := reportCodes(t, c, op.ID)
	for i, u := range users {
		if changes[u] != want[u] {
			t.Errorf("report: %s changed %q, want %q", u, changes[u], want[u])
		}
		wantCode := "succeeded"
		if i == 3 {
			wantCode = "failed MutuallyExclusiveViolation"
		}
		if codes[u] != wantCode {
			t.Errorf("report: %s is %q, want %q", u, codes[u], wantCode)
		}
	}
	wantHeld(t, b, "repl", "after the replace", users, []string{"E5", "E5", "E5", "E3,VISIO", "", "VISIO"})
	wantSeats(t, b, "E5", 3)
	wantSeats(t, b, "E3", 1)
	noProblems(t, b)

	// Its undo gives E3 back to the users it swapped, and only to them.
	if u := undo(t, c, op.ID, nil); u.Total != 3 || u.Succeeded != 3 {
		t.Fatalf("undo = %+v, want the 3 swapped users", u)
	}
	wantHeld(t, b, "repl", "after the undo", users, []string{"E3", "E3", "E3", "E3,VISIO", "", "VISIO"})
	wantSeats(t, b, "E5", 0)
	wantSeats(t, b, "E3", 4)
	noProblems(t, b)
}

// With seats for everyone, intake grants E5 seats without reading each
// user's rules: still only to the holders of E3. A replace goes with an
// ordinary assign, which every user gets.
func TestReplaceGrantsOnlyHolders(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := replaceTenant(t, b, c, "grant", 4, 4, []int{0, 2}, nil)
	op := change(t, c, "grant", map[string]any{"user_ids": users, "assign": []string{"PROJ"},
		"replace": []map[string]string{{"from": "E3", "to": "E5"}}})
	if op.Succeeded != 4 || !slices.Equal(op.Assign, []string{"PROJ"}) {
		t.Fatalf("operation = %+v", op)
	}
	// Stored: assign [PROJ E5] (the replace target last), so E5 is bit 2.
	masks := grantedMasks(t, b, op.ID)
	for i, u := range users {
		if want := map[bool]int{true: 0b11, false: 0b01}[i%2 == 0]; masks[u] != want {
			t.Errorf("%s was granted %b, want %b", u, masks[u], want)
		}
	}
	wantHeld(t, b, "grant", "after the replace", users, []string{"E5,PROJ", "PROJ", "E5,PROJ", "PROJ"})
	wantSeats(t, b, "E5", 2)
	wantSeats(t, b, "E3", 0)
	wantSeats(t, b, "PROJ", 4)
	noProblems(t, b)
}

// Whether a user holds the SKU to replace is decided when its item is
// applied: a user who loses E3 after intake does not get E5 (its grant
// goes back), one who gains E3 after intake gets E5 from a free seat.
func TestReplaceDecidedAtApply(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := replaceTenant(t, b, c, "late", 3, 3, []int{0, 1}, nil)
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/late/license-operations",
		map[string]any{"user_ids": users, "replace": []map[string]string{{"from": "E3", "to": "E5"}}}).JSON(t, &acc)
	// Before any worker runs, user 1 loses E3 and user 2 gets it, outside
	// any operation (as a directory sync would), the seats counted.
	b.DB.MustExec(`
		WITH del AS (DELETE FROM assignments WHERE user_id = $1 AND sku_id = 'E3')
		UPDATE subscriptions SET consumed = consumed - 1 WHERE sku_id = 'E3'`, users[1])
	give(b, "late", "E3", users, 2)
	b.StartWorker(worker.Config{})
	op := c.WaitOperation(acc.ID, 30*time.Second)
	if op.Succeeded != 3 {
		t.Fatalf("operation = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	changes := reportChanges(t, c, op.ID)
	for i, want := range []string{"+E5-E3", "", "+E5-E3"} {
		if changes[users[i]] != want {
			t.Errorf("%s changed %q, want %q", users[i], changes[users[i]], want)
		}
		if held, _ := holds(t, b, "late", users[i]); held != map[bool]string{true: "E5", false: ""}[want != ""] {
			t.Errorf("%s holds %q", users[i], held)
		}
	}
	wantSeats(t, b, "E5", 2)
	wantSeats(t, b, "E3", 0)
	noProblems(t, b)
}

// Replace where held on Microsoft Graph: the directory's holders of E3
// get E5 instead; the others are not touched in the directory.
func TestReplaceGraph(t *testing.T) {
	t.Parallel()
	users := graphUsers(4)
	users[0].Licenses, users[2].Licenses = []string{"E3"}, []string{"E3"}
	b, c, sim := startGraph(t, graphsim.TenantSeed{SKUs: []graphsim.SKUSeed{
		{ID: "E3", PartNumber: "STANDARDPACK", Enabled: 4}, {ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: 2},
	}, Users: users}, graphOptions{})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(users))
	var ids []string
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	op := change(t, c, "graph", map[string]any{"user_ids": ids, "replace": []map[string]string{{"from": "E3", "to": "E5"}}})
	if op.Succeeded != 4 {
		t.Fatalf("operation = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	changes := reportChanges(t, c, op.ID)
	state, _ := sim.Tenant(graphTenantID)
	for i, u := range state.Users {
		want, wantChange := []string{}, ""
		if i%2 == 0 {
			want, wantChange = []string{"E5"}, "+E5-E3"
		}
		if !slices.Equal(nonNilSKUs(u.Licenses), want) {
			t.Errorf("%s holds %v in the directory, want %v", u.ID, u.Licenses, want)
		}
		if changes[u.ID] != wantChange {
			t.Errorf("%s changed %q, want %q", u.ID, changes[u.ID], wantChange)
		}
	}
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}

func nonNilSKUs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// A scheduled replace grants seats when it starts, to the holders only:
// two seats of E5 suffice for the two holders of E3 among four users.
func TestReplaceScheduled(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := replaceTenant(t, b, c, "later", 4, 2, []int{0, 2}, nil)
	var acc licensing.Operation
	c.Must(http.StatusAccepted, "POST", "/v1/customers/later/license-operations", map[string]any{"user_ids": users,
		"replace": []map[string]string{{"from": "E3", "to": "E5"}}, "not_before": time.Now().Add(time.Second).Format(time.RFC3339Nano)}).JSON(t, &acc)
	if acc.Status != licensing.StatusScheduled {
		t.Fatalf("accepted %+v, want scheduled", acc)
	}
	op := c.WaitOperation(acc.ID, time.Minute)
	if op.Succeeded != 4 || !slices.Equal(op.Replace, []licensing.Replacement{{From: "E3", To: "E5"}}) {
		t.Fatalf("operation = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	wantHeld(t, b, "later", "after the start", users, []string{"E5", "", "E5", ""})
	wantSeats(t, b, "E5", 2)
	noProblems(t, b)
}
