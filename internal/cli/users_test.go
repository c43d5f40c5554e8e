package cli

import (
	"strings"
	"testing"

	"github.com/licenseops/licenseops/licensing"
)

// The user list marks licenses inherited from groups, and leaves users of
// directories without group licensing as they were.
func TestLicensesCell(t *testing.T) {
	t.Parallel()
	plain := licensing.User{Licenses: []string{"E3", "E5"}}
	if got := licensesCell(plain); got != "E3,E5" {
		t.Errorf("direct licenses: %q", got)
	}
	grouped := licensing.User{Licenses: []string{"E3", "E5", "V"}, LicenseSources: []licensing.LicenseSource{
		{SKU: "E3", Direct: true, InheritedFrom: []string{"g1"}},
		{SKU: "E5", InheritedFrom: []string{"g1", "g2"}, GroupNames: []string{"Sales", ""}},
		{SKU: "V", Direct: true, InheritedFrom: []string{}},
	}}
	if got, want := licensesCell(grouped), "E3(direct+group g1),E5(group Sales g2),V"; got != want {
		t.Errorf("inherited licenses: %q, want %q", got, want)
	}
	errs := []licensing.LicenseError{{SKU: "E5", GroupID: "g2", Error: "CountViolation"}}
	if got, want := licenseErrorsCell(errs), "E5: CountViolation (group g2)"; got != want {
		t.Errorf("errors: %q, want %q", got, want)
	}
}

// The outcomes of a report mention the users that keep a revoked license
// through a group, with the first note.
func TestOutcomesNoteKeptLicenses(t *testing.T) {
	t.Parallel()
	o := newOutcomes()
	o.add("u1", "a@x", "succeeded", "", "")
	o.addNote("u1", "a@x", "the direct assignment was removed, but the user still holds E3 (inherited from group Sales (g1))")
	o.add("u2", "", "succeeded", "", "")
	o.addNote("u2", "", "")
	var b strings.Builder
	o.print(&b, "Outcomes")
	if want := "still holding a revoked license through a group: 1 user (the report's note column); a@x (u1): the direct assignment was removed"; !strings.Contains(b.String(), want) {
		t.Errorf("outcomes:\n%s\nwant a line with %q", b.String(), want)
	}
}
