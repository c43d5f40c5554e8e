package console_test

import (
	"net/http"
	"testing"

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
