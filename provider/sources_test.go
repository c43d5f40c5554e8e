package provider_test

import (
	"slices"
	"testing"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
)

// Sources reads licenseAssignmentStates: a license without states, or with
// only a direct one, is direct; failed group assignments are errors, not
// sources; an assignment that is active with an error is both.
func TestUserSources(t *testing.T) {
	t.Parallel()
	u := provider.User{Licenses: []string{"A", "B", "C", "D"}, LicenseStates: []provider.LicenseState{
		{SKU: "B", State: "Active", Error: "None"},
		{SKU: "B", Group: "g2", State: "Active", Error: "None"},
		{SKU: "B", Group: "g1", State: "Active", Error: "None"},
		{SKU: "C", Group: "g1", State: "ActiveWithError", Error: "DependencyViolation"},
		{SKU: "D", Group: "g1", State: "Active", Error: "None"},
		{SKU: "E", Group: "g1", State: "Error", Error: "CountViolation"},
		{SKU: "F", Group: "g3", State: "Disabled", Error: "None"},
	}}
	sources, errs := u.Sources()
	want := map[string]licensing.LicenseSource{
		"B": {SKU: "B", Direct: true, InheritedFrom: []string{"g1", "g2"}},
		"C": {SKU: "C", InheritedFrom: []string{"g1"}},
		"D": {SKU: "D", InheritedFrom: []string{"g1"}},
	}
	if len(sources) != len(want) {
		t.Fatalf("sources %+v, want %+v", sources, want)
	}
	for sku, w := range want {
		if s := sources[sku]; s.Direct != w.Direct || !slices.Equal(s.InheritedFrom, w.InheritedFrom) {
			t.Errorf("%s: %+v, want %+v", sku, s, w)
		}
	}
	wantErrs := []licensing.LicenseError{{SKU: "C", GroupID: "g1", Error: "DependencyViolation"}, {SKU: "E", GroupID: "g1", Error: "CountViolation"}}
	if !slices.Equal(errs, wantErrs) {
		t.Errorf("errors %+v, want %+v", errs, wantErrs)
	}
	if s, e := (provider.User{Licenses: []string{"A"}}).Sources(); s != nil || e != nil {
		t.Errorf("a user without states: %+v %+v, want all direct and no errors", s, e)
	}
}
