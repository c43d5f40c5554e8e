package worker_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	seeder "github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/worker"
)

// undoTenant seeds customer with n users (no usage location of their own;
// the customer's default is US) and seats of E3 and E5.
func undoTenant(t *testing.T, c *testapp.Client, customer string, n, e3, e5 int) []string {
	t.Helper()
	return c.Seed(seeder.Tenant{
		Customer: client.CustomerRequest{ID: customer, Name: customer, DefaultUsageLocation: new("US")},
		Users:    seeder.Users(seeder.IDs("user-%05d", n)),
		Seats:    map[string]int{"E3": e3, "E5": e5},
	})
}

// change runs a license operation to its end and returns it.
func change(t *testing.T, c *testapp.Client, customer string, body map[string]any) licensing.Operation {
	t.Helper()
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/customers/"+customer+"/license-operations", body).JSON(t, &acc)
	return c.WaitOperation(acc.ID, 30*time.Second)
}

// undo undoes operation id (body may be nil) and runs the undo to its end.
func undo(t *testing.T, c *testapp.Client, id string, body any) licensing.Operation {
	t.Helper()
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/operations/"+id+"/undo", body).JSON(t, &acc)
	op := c.WaitOperation(acc.ID, 30*time.Second)
	if op.Source != licensing.SourceUndo || op.UndoOf == nil || *op.UndoOf != id {
		t.Fatalf("undo = %+v, want source undo and undo_of %s", op, id)
	}
	return op
}

// holds returns what user of customer holds, "E3,E5", and its usage
// location ("" for none).
func holds(t *testing.T, b *testapp.Bundle, customer, user string) (string, string) {
	t.Helper()
	var skus, loc string
	if err := b.DB.QueryRow(`
		SELECT COALESCE(string_agg(a.sku_id, ',' ORDER BY a.sku_id), ''), COALESCE(min(u.usage_location), '')
		FROM users u JOIN customers c USING (customer_key)
		LEFT JOIN assignments a ON a.customer_key = u.customer_key AND a.user_id = u.id
		WHERE c.id = $1 AND u.id = $2`, customer, user).Scan(&skus, &loc); err != nil {
		t.Fatal(err)
	}
	return skus, loc
}

// wantHeld checks that users[i] of customer holds want[i] ("E3,E5", "" for
// nothing); when says at which point of the test, for the message.
func wantHeld(t *testing.T, b *testapp.Bundle, customer, when string, users, want []string) {
	t.Helper()
	for i, w := range want {
		if held, _ := holds(t, b, customer, users[i]); held != w {
			t.Errorf("%s %s holds %q, want %q", when, users[i], held, w)
		}
	}
}

// reportCodes returns each user's status and error code ("succeeded",
// "failed ChangedSince") from an operation's report.
func reportCodes(t *testing.T, c *testapp.Client, id string) map[string]string {
	t.Helper()
	var rep struct {
		Results []struct {
			UserID string `json:"user_id"`
			Status string
			Error  *struct{ Code, Message string }
		}
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+id+"/report", nil).JSON(t, &rep)
	out := map[string]string{}
	for _, r := range rep.Results {
		out[r.UserID] = r.Status
		if r.Error != nil {
			out[r.UserID] += " " + r.Error.Code
			if r.Error.Message == "" {
				t.Errorf("user %s failed %s without a message", r.UserID, r.Error.Code)
			}
		}
	}
	return out
}

func wantSeats(t *testing.T, b *testapp.Bundle, sku string, consumed int) {
	t.Helper()
	if s := seats(t, b, sku); s.Consumed != consumed || s.Assignments != consumed || s.Reserved != 0 {
		t.Fatalf("%s seats = %+v, want %d consumed and assigned, none reserved", sku, s, consumed)
	}
}

// An undo of a swap gives every user back what it had: E5 goes, E3
// comes back, with exact seats and a clean checker. Users the swap did
// not change are not part of the undo.
func TestUndoSwap(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := undoTenant(t, c, "swap", 5, 5, 5)
	change(t, c, "swap", map[string]any{"user_ids": users[:4], "assign": []string{"E3"}})
	swap := change(t, c, "swap", map[string]any{"user_ids": users, "assign": []string{"E5"}, "revoke": []string{"E3"}})
	if swap.Succeeded != 5 {
		t.Fatalf("swap = %+v", swap)
	}
	wantSeats(t, b, "E3", 0)
	wantSeats(t, b, "E5", 5)

	op := undo(t, c, swap.ID, nil)
	if op.Total != 5 || op.Succeeded != 5 || op.Status != licensing.StatusCompleted ||
		!slices.Equal(op.Assign, []string{"E3"}) || !slices.Equal(op.Revoke, []string{"E5"}) {
		t.Fatalf("undo = %+v, want 5 users, +E3 -E5", op)
	}
	for i, u := range users {
		want := "E3"
		if i == 4 { // held nothing before the swap
			want = ""
		}
		if got, _ := holds(t, b, "swap", u); got != want {
			t.Errorf("%s holds %q after the undo, want %q", u, got, want)
		}
	}
	wantSeats(t, b, "E3", 4)
	wantSeats(t, b, "E5", 0)
	var got struct {
		Source string  `json:"source"`
		UndoOf *string `json:"undo_of"`
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+op.ID, nil).JSON(t, &got)
	if got.Source != "undo" || got.UndoOf == nil || *got.UndoOf != swap.ID {
		t.Fatalf("GET undo = %+v", got)
	}
	noProblems(t, b)
}

// An undo puts back the usage location the operation changed, when the
// user had one; a user that had none keeps the new one (there is nothing
// to put back) and loses only the licenses. Its redo moves them again.
func TestUndoUsageLocation(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := undoTenant(t, c, "moves", 3, 0, 3)
	for _, u := range users[:2] {
		c.Must(http.StatusOK, "PATCH", "/v1/customers/moves/users/"+u, map[string]any{"usage_location": "DE"})
	}
	orig := change(t, c, "moves", map[string]any{"user_ids": users, "assign": []string{"E5"}, "usage_location": "FR"})
	if orig.Succeeded != 3 {
		t.Fatalf("operation = %+v", orig)
	}
	var before []string
	if err := b.DB.Select(&before, `SELECT COALESCE(location_before, 'NULL') FROM operation_items WHERE operation_id = $1 ORDER BY user_id`,
		orig.ID); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, []string{"DE", "DE", ""}) {
		t.Fatalf("location_before = %q, want DE, DE and '' (had none)", before)
	}
	first := undo(t, c, orig.ID, nil)
	if first.Succeeded != 3 {
		t.Fatalf("undo = %+v", first)
	}
	for i, u := range users {
		wantLoc := "DE"
		if i == 2 {
			wantLoc = "FR"
		}
		if skus, loc := holds(t, b, "moves", u); skus != "" || loc != wantLoc {
			t.Errorf("%s holds %q in %q after the undo, want nothing in %q", u, skus, loc, wantLoc)
		}
	}
	wantSeats(t, b, "E5", 0)
	// Redone, the users that moved back move again.
	if redo := undo(t, c, first.ID, nil); redo.Succeeded != 3 {
		t.Fatalf("redo = %+v", redo)
	}
	for _, u := range users {
		if skus, loc := holds(t, b, "moves", u); skus != "E5" || loc != "FR" {
			t.Errorf("%s holds %q in %q after the redo, want E5 in FR", u, skus, loc)
		}
	}
	wantSeats(t, b, "E5", 3)
	noProblems(t, b)
}

// A user that another change reached after the operation is left alone
// with ChangedSince, whether a later operation changed it (found at
// intake, also when a still later one changed it back) or its licenses
// changed after the undo was taken (found by the worker under the user's
// lock); the others are undone.
func TestUndoChangedSince(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := undoTenant(t, c, "since", 5, 4, 5)
	// A worker of the test's own, stopped before the undo is taken.
	first, err := worker.New(worker.Config{Logger: b.Log, DisableSweeper: true}, b.Store, b.Redis)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	orig := change(t, c, "since", map[string]any{"user_ids": users, "assign": []string{"E5"}})
	later := change(t, c, "since", map[string]any{"user_ids": []string{users[0], users[4]}, "assign": []string{"E3"}})
	back := change(t, c, "since", map[string]any{"user_ids": users[4:], "revoke": []string{"E3"}})
	first.Shutdown()
	if orig.Succeeded != 5 || later.Succeeded != 2 || back.Succeeded != 1 {
		t.Fatalf("operations = %+v, %+v, %+v", orig, later, back)
	}
	var acc struct{ ID string }
	c.Must(http.StatusAccepted, "POST", "/v1/operations/"+orig.ID+"/undo", nil).JSON(t, &acc)
	// Before any worker runs, user 1 gets E3 outside any operation (as a
	// directory sync would bring it), the seat counted.
	if _, err := b.DB.Exec(`
		WITH ins AS (INSERT INTO assignments (customer_key, user_id, sku_id)
			SELECT customer_key, $1, 'E3' FROM customers WHERE id = 'since')
		UPDATE subscriptions SET consumed = consumed + 1 WHERE sku_id = 'E3'`, users[1]); err != nil {
		t.Fatal(err)
	}
	b.StartWorker(worker.Config{})
	op := c.WaitOperation(acc.ID, 30*time.Second)
	if op.Succeeded != 2 || op.Failed != 3 || op.Status != licensing.StatusCompletedWithErrors {
		t.Fatalf("undo = %+v, want 2 undone and 3 ChangedSince", op)
	}
	codes := reportCodes(t, c, op.ID)
	for i, want := range []string{"failed ChangedSince", "failed ChangedSince", "succeeded", "succeeded", "failed ChangedSince"} {
		if codes[users[i]] != want {
			t.Errorf("%s: %q, want %q", users[i], codes[users[i]], want)
		}
	}
	if csv := string(c.Must(http.StatusOK, "GET", "/v1/operations/"+op.ID+"/report?format=csv", nil).Body); strings.Count(csv, ",ChangedSince,") != 3 {
		t.Errorf("CSV report, want 3 rows of ChangedSince:\n%s", csv)
	}
	wantHeld(t, b, "since", "after the undo", users, []string{"E3,E5", "E3,E5", "", "", "E5"})
	wantSeats(t, b, "E5", 3)
	wantSeats(t, b, "E3", 2)
	noProblems(t, b)
}

// Seats to give back that are gone since: without allow_partial the undo
// is refused at intake like any operation (409 CountViolation); with it,
// the users short of a seat fail CountViolation and the others are
// undone.
func TestUndoShortOfSeats(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := undoTenant(t, c, "short", 4, 4, 4)
	change(t, c, "short", map[string]any{"user_ids": users, "assign": []string{"E3"}})
	swap := change(t, c, "short", map[string]any{"user_ids": users, "assign": []string{"E5"}, "revoke": []string{"E3"}})
	c.Must(http.StatusOK, "PUT", "/v1/customers/short/subscriptions/E3", map[string]int{"total": 2})

	r := c.Must(http.StatusConflict, "POST", "/v1/operations/"+swap.ID+"/undo", nil)
	if r.ErrorCode() != "CountViolation" || !strings.Contains(string(r.Body), "allow_partial") {
		t.Fatalf("undo short of seats: %s", r.Body)
	}
	op := undo(t, c, swap.ID, map[string]bool{"allow_partial": true})
	if op.Succeeded != 2 || op.Failed != 2 {
		t.Fatalf("partial undo = %+v, want 2 undone and 2 CountViolation", op)
	}
	failed := 0
	for _, u := range users {
		code := reportCodes(t, c, op.ID)[u]
		skus, _ := holds(t, b, "short", u)
		switch {
		case code == "succeeded" && skus == "E3":
		case code == "failed CountViolation" && skus == "E5":
			failed++
		default:
			t.Errorf("%s: %q holding %q", u, code, skus)
		}
	}
	if failed != 2 {
		t.Errorf("%d users failed CountViolation, want 2", failed)
	}
	wantSeats(t, b, "E3", 2)
	wantSeats(t, b, "E5", 2)
	noProblems(t, b)
}

// Undoing an undo redoes the operation.
func TestUndoOfUndo(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := undoTenant(t, c, "redo", 3, 3, 3)
	change(t, c, "redo", map[string]any{"user_ids": users, "assign": []string{"E3"}})
	swap := change(t, c, "redo", map[string]any{"user_ids": users, "assign": []string{"E5"}, "revoke": []string{"E3"}, "usage_location": "PL"})
	first := undo(t, c, swap.ID, nil)
	redo := undo(t, c, first.ID, nil)
	if redo.Succeeded != 3 || !slices.Equal(redo.Assign, []string{"E5"}) || !slices.Equal(redo.Revoke, []string{"E3"}) {
		t.Fatalf("redo = %+v, want +E5 -E3 for 3 users", redo)
	}
	for _, u := range users {
		// The first undo had nothing to put back for the location (the
		// users had none), so PL stayed and the redo has none to change.
		if skus, loc := holds(t, b, "redo", u); skus != "E5" || loc != "PL" {
			t.Errorf("%s holds %q in %q after the redo, want E5 in PL", u, skus, loc)
		}
	}
	wantSeats(t, b, "E3", 0)
	wantSeats(t, b, "E5", 3)
	noProblems(t, b)
}

// An undo on Microsoft Graph: a swap of E3 for E5 that also moved the
// users from PL to DE is undone in the directory (E3 back, E5 gone, PL
// back), and the directory, the mirror and the seats agree.
func TestUndoGraphSwap(t *testing.T) {
	t.Parallel()
	users := graphUsers(3)
	for i := range users {
		users[i].Licenses = []string{"E3"}
	}
	b, c, sim := startGraph(t, graphsim.TenantSeed{SKUs: []graphsim.SKUSeed{
		{ID: "E3", PartNumber: "STANDARDPACK", Enabled: 3}, {ID: "E5", PartNumber: "ENTERPRISEPREMIUM", Enabled: 3},
	}, Users: users}, graphOptions{})
	c.Must(http.StatusAccepted, "POST", "/v1/customers/graph/sync", nil)
	waitForUsers(t, c, len(users))
	var ids []string
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	swap := change(t, c, "graph", map[string]any{"user_ids": ids, "assign": []string{"E5"}, "revoke": []string{"E3"}, "usage_location": "DE"})
	if swap.Succeeded != 3 {
		t.Fatalf("swap = %+v", swap)
	}
	if op := undo(t, c, swap.ID, nil); op.Succeeded != 3 {
		t.Fatalf("undo = %+v: %v", op, reportCodes(t, c, op.ID))
	}
	state, _ := sim.Tenant(graphTenantID)
	for _, u := range state.Users {
		if !slices.Equal(u.Licenses, []string{"E3"}) || u.UsageLocation != "PL" {
			t.Errorf("%s holds %v in %s in the directory, want E3 in PL", u.ID, u.Licenses, u.UsageLocation)
		}
		if skus, loc := holds(t, b, "graph", u.ID); skus != "E3" || loc != "PL" {
			t.Errorf("%s holds %q in %q in the mirror, want E3 in PL", u.ID, skus, loc)
		}
	}
	directoryMatchesPostgres(t, b, sim)
	noProblems(t, b)
}

// The checker names what an undo must never do.
func TestCheckerFindsBrokenUndo(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	users := undoTenant(t, c, "chku", 2, 2, 2)
	change(t, c, "chku", map[string]any{"user_ids": users, "assign": []string{"E3"}})
	swap := change(t, c, "chku", map[string]any{"user_ids": users, "assign": []string{"E5"}, "revoke": []string{"E3"}})
	op := undo(t, c, swap.ID, nil)
	noProblems(t, b)
	item := `operation_id = '` + op.ID + `' AND user_id = '` + users[0] + `'`
	wantCheckerFinds(t, b, []corruption{
		{"an undo touched a user marked ChangedSince",
			`UPDATE operation_items SET status = 'failed', error_code = 'ChangedSince' WHERE ` + item,
			`UPDATE operation_items SET status = 'succeeded', error_code = NULL WHERE ` + item},
		{"an item's own change is outside its operation's",
			`UPDATE operation_items SET change_assign = '{E5}' WHERE ` + item,
			`UPDATE operation_items SET change_assign = '{E3}' WHERE ` + item},
		{"an undo without the operation it reverses, or the reverse",
			`UPDATE operations SET undo_of = NULL WHERE id = '` + op.ID + `'`,
			`UPDATE operations SET undo_of = '` + swap.ID + `' WHERE id = '` + op.ID + `'`},
	})
}
