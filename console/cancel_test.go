package console_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/licensing"
)

// The confirmation page of a running operation has a Cancel button for
// roles that may change licenses: pressing it stops the operation and shows
// it cancelled, with the button gone. A reader sees no button, and a
// cancel posted anyway is refused.
func TestCancelFromTheConfirmationPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{noHoldings: true}) // no worker: the operation waits
	var acc struct{ ID string }
	f.admin.Must(http.StatusAccepted, "POST", "/v1/customers/contoso/license-operations",
		map[string]any{"user_ids": f.users[:5], "assign": []string{"PROJECT"}}).JSON(t, &acc)
	path := "/console/operations/" + acc.ID

	reader := f.browser()
	reader.signIn(f.b.Token("p", licensing.RoleReader))
	if p := reader.mustStatus(reader.get(path), 200, "operation page as reader"); p.has("/cancel") {
		t.Errorf("a reader sees a Cancel button")
	}
	if p := reader.post(path+"/cancel", nil); p.Status != http.StatusForbidden {
		t.Errorf("cancel posted by a reader: status %d, want 403", p.Status)
	}

	admin := f.browser()
	admin.signIn(f.b.Token("p", licensing.RoleGlobalAdmin))
	p := admin.mustStatus(admin.get(path), 200, "operation page")
	if !p.has(`action="`+path+`/cancel"`) || !p.has(`>Cancel</button>`) {
		t.Fatalf("no Cancel button on a running operation's page:\n%s", truncate(p.Body, 3000))
	}
	if p := admin.post(path+"/cancel", nil); p.Status != http.StatusSeeOther || p.Header.Get("Location") != path {
		t.Fatalf("cancel: status %d to %q, want 303 to the operation's page", p.Status, p.Header.Get("Location"))
	}
	p = admin.mustStatus(admin.get(path), 200, "operation page after the cancel")
	if !p.has("License update cancelled") || !p.has("5 cancelled") || p.has(path+"/cancel") {
		t.Fatalf("after Cancel the page does not show the operation cancelled without a button:\n%s", truncate(p.Body, 4000))
	}
	var op licensing.Operation
	f.admin.Must(http.StatusOK, "GET", "/v1/operations/"+acc.ID, nil).JSON(t, &op)
	if op.Status != licensing.StatusCancelled || op.Cancelled != 5 {
		t.Fatalf("operation after Cancel: %+v", op)
	}
	// Pressing it again (a second tab) leads to the same page.
	admin.mustStatus(admin.post(path+"/cancel", nil), http.StatusSeeOther, "second cancel")
}

// A finished operation's confirmation page has Undo: pressing it creates
// the undo and opens its page; pressing it twice makes one undo.
func TestUndoFromTheConfirmationPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{workers: 1, noHoldings: true})
	var acc struct{ ID string }
	f.admin.Must(http.StatusAccepted, "POST", "/v1/customers/contoso/license-operations",
		map[string]any{"user_ids": f.users[:4], "assign": []string{"PROJECT"}}).JSON(t, &acc)
	f.admin.WaitOperation(acc.ID, time.Minute)
	path := "/console/operations/" + acc.ID

	admin := f.browser()
	admin.signIn(f.b.Token("p", licensing.RoleGlobalAdmin))
	if p := admin.mustStatus(admin.get(path), 200, "operation page"); !p.has(`action="`+path+`/undo"`) || p.has(path+"/cancel") {
		t.Fatalf("a finished operation's page should offer Undo and no Cancel:\n%s", truncate(p.Body, 3000))
	}
	first := admin.post(path+"/undo", nil)
	second := admin.post(path+"/undo", nil)
	loc := first.Header.Get("Location")
	if first.Status != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/operations/") || loc == path {
		t.Fatalf("undo: status %d to %q, want 303 to the undo's page", first.Status, loc)
	}
	if second.Header.Get("Location") != loc {
		t.Fatalf("a second press went to %q, the first to %q: want one undo", second.Header.Get("Location"), loc)
	}
	undoID := strings.TrimPrefix(loc, "/console/operations/")
	undo := f.admin.WaitOperation(undoID, time.Minute)
	if undo.Source != licensing.SourceUndo || undo.UndoOf == nil || *undo.UndoOf != acc.ID || undo.Succeeded != 4 {
		t.Fatalf("undo = %+v, want 4 users given back, undo_of %s", undo, acc.ID)
	}
	var held struct{ Users []struct{ Licenses []string } }
	f.admin.Must(http.StatusOK, "GET", "/v1/customers/contoso/users?page_size=4", nil).JSON(t, &held)
	for _, u := range held.Users {
		for _, sku := range u.Licenses {
			if sku == "PROJECT" {
				t.Fatalf("a user still holds PROJECT after the undo: %+v", held)
			}
		}
	}
}
