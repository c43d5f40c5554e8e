package cli

import (
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
