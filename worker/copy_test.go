package worker_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/licensing"
)

// copyFrom sends a copy of reference's licenses to users and runs it to
// its end.
func copyFrom(t *testing.T, c *testapp.Client, customer, reference string, exact bool, users []string) licensing.Operation {
	t.Helper()
	op := change(t, c, customer, map[string]any{"user_ids": users, "copy_from": reference, "exact": exact})
	if op.CopyFrom == nil || *op.CopyFrom != reference || op.Exact != exact {
		t.Fatalf("operation = %+v, want copy_from %s, exact %v", op, reference, exact)
	}
	return op
}

// Copy from a user gives the selected users the licenses the reference
// user holds; with exact they also lose the ones it lacks. The dry run
// predicts it, the operation and its report show it, seats stay exact.
func TestCopyFrom(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := b.Client("p", "global_admin")
	// user 0, the reference, holds E3 and PROJ; user 1 holds E5, user 2 E3.
	users := replaceTenant(t, b, c, "copy", 4, 4, []int{0, 2}, nil)
	give(b, "copy", "PROJ", users, 0)
	give(b, "copy", "E5", users, 1)
	path := "/v1/customers/copy/license-operations"

	op := copyFrom(t, c, "copy", users[0], false, users[1:])
	if op.Succeeded != 3 || !slices.Equal(op.Assign, []string{"E3", "PROJ"}) || len(op.Revoke) != 0 {
		t.Fatalf("copy = %+v, want 3 users given E3 and PROJ", op)
	}
	var got struct {
		CopyFrom string   `json:"copy_from"`
		Exact    bool     `json:"exact"`
		Assign   []string `json:"assign"`
	}
	c.Must(http.StatusOK, "GET", "/v1/operations/"+op.ID, nil).JSON(t, &got)
	if got.CopyFrom != users[0] || got.Exact || !slices.Equal(got.Assign, []string{"E3", "PROJ"}) {
		t.Fatalf("GET copy = %+v", got)
	}
	changes := reportChanges(t, c, op.ID)
	for i, want := range map[int]string{1: "+E3+PROJ", 2: "+PROJ", 3: "+E3+PROJ"} {
		if changes[users[i]] != want {
			t.Errorf("copy: %s changed %q, want %q", users[i], changes[users[i]], want)
		}
	}
	wantHeld(t, b, "copy", "after the copy", users, []string{"E3,PROJ", "E3,E5,PROJ", "E3,PROJ", "E3,PROJ"})

	// Exact: user 1 would lose E5, which the reference lacks.
	var pv struct {
		Results []struct {
			UserID   string `json:"user_id"`
			Assigned []string
			Revoked  []string
		}
	}
	c.Must(http.StatusOK, "POST", path, map[string]any{"user_ids": users[1:], "copy_from": users[0], "exact": true, "dry_run": true}).JSON(t, &pv)
	for _, r := range pv.Results {
		want := map[string]string{users[1]: "-E5"}[r.UserID]
		if got := signed(r.Assigned, r.Revoked); got != want {
			t.Errorf("exact dry run: %s would change %q, want %q", r.UserID, got, want)
		}
	}
	op = copyFrom(t, c, "copy", users[0], true, users[1:])
	if op.Succeeded != 3 {
		t.Fatalf("exact copy = %+v", op)
	}
	if changes := reportChanges(t, c, op.ID); changes[users[1]] != "-E5" || changes[users[2]] != "" {
		t.Errorf("exact copy changed %v, want only E5 revoked from %s", changes, users[1])
	}
	for i := range users {
		if held, _ := holds(t, b, "copy", users[i]); held != "E3,PROJ" {
			t.Errorf("after the exact copy %s holds %q, want E3,PROJ", users[i], held)
		}
	}
	wantSeats(t, b, "E3", 4)
	wantSeats(t, b, "PROJ", 4)
	wantSeats(t, b, "E5", 0)
	noProblems(t, b)
}

// A reference user the customer does not have is 422 UnknownUsers naming
// it; copy_from with another change, or exact alone, is 400; a reference
// that holds nothing leaves nothing to copy.
func TestCopyFromRefused(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	users := replaceTenant(t, b, c, "ref", 2, 2, []int{0}, nil)
	path := "/v1/customers/ref/license-operations"
	for _, tc := range []struct {
		body    map[string]any
		status  int
		code    string
		message string
	}{
		{map[string]any{"user_ids": users, "copy_from": "ghost"}, 422, "UnknownUsers", "is not a user of this customer"},
		{map[string]any{"user_ids": users, "copy_from": "ghost", "dry_run": true}, 422, "UnknownUsers", "ghost"},
		{map[string]any{"user_ids": users, "copy_from": users[0], "assign": []string{"E5"}}, 400, "InvalidRequest", "goes alone"},
		{map[string]any{"user_ids": users, "exact": true, "assign": []string{"E5"}}, 400, "InvalidRequest", "exact goes with copy_from"},
		{map[string]any{"user_ids": users[:1], "copy_from": users[1]}, 400, "InvalidRequest", "holds no licenses"},
	} {
		r := c.Do("POST", path, tc.body)
		if r.Status != tc.status || r.ErrorCode() != tc.code || !strings.Contains(string(r.Body), tc.message) {
			t.Errorf("%v: %d %s, want %d %s with %q", tc.body, r.Status, r.Body, tc.status, tc.code, tc.message)
		}
	}
	var e struct {
		Error struct {
			Details struct {
				UserIDs []string `json:"user_ids"`
			}
		}
	}
	c.Must(422, "POST", path, map[string]any{"user_ids": users, "copy_from": "ghost"}).JSON(t, &e)
	if !slices.Equal(e.Error.Details.UserIDs, []string{"ghost"}) {
		t.Errorf("details.user_ids = %v, want [ghost]", e.Error.Details.UserIDs)
	}
}
