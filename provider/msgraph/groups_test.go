package msgraph_test

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/provider/graphsim"
)

// groupSetup adds group "g-sales" assigning E3 to u1 (who holds it directly
// too) and u2 (who then holds it only through the group), and group "g-eng"
// assigning E5 to u1, which E3 excludes: an error state, not a license.
func groupSetup(t *testing.T) bundle {
	t.Helper()
	b := setup(t, graphsim.Config{}, nil, nil)
	for _, g := range []graphsim.GroupSeed{
		{ID: "g-sales", DisplayName: "Sales", SKUs: []string{skuE3}, Members: []string{"u1", "u2"}},
		{ID: "g-eng", DisplayName: "Engineering", SKUs: []string{skuE5}, Members: []string{"u1"}},
	} {
		if err := b.sim.AddGroup(contoso, g); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// ListUsers reads licenseAssignmentStates: which licenses are direct, which
// come from which group, and which group licenses failed.
func TestListUsersReadsLicenseAssignmentStates(t *testing.T) {
	t.Parallel()
	b := groupSetup(t)
	byID := map[string]provider.User{}
	if err := b.client.ListUsers(context.Background(), contoso, func(p []provider.User) error {
		for _, u := range p {
			byID[u.ID] = u
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	u1, u2 := byID["u1"], byID["u2"]
	if !slices.Equal(u1.Licenses, []string{skuE3, skuOne}) || !slices.Equal(u2.Licenses, []string{skuE3}) {
		t.Fatalf("licenses u1 %v, u2 %v", u1.Licenses, u2.Licenses)
	}
	wantU1 := []provider.LicenseState{
		{SKU: skuE3, State: "Active", Error: "None"},
		{SKU: skuE3, Group: "g-sales", State: "Active", Error: "None"},
		{SKU: skuE5, Group: "g-eng", State: "Error", Error: "MutuallyExclusiveViolation"},
		{SKU: skuOne, State: "Active", Error: "None"},
	}
	if !slices.Equal(u1.LicenseStates, wantU1) {
		t.Fatalf("u1 states %+v, want %+v", u1.LicenseStates, wantU1)
	}
	sources, errs := u1.Sources()
	if s := sources[skuE3]; len(sources) != 1 || !s.Direct || !slices.Equal(s.InheritedFrom, []string{"g-sales"}) {
		t.Errorf("u1 sources %+v, want E3 direct and from g-sales", sources)
	}
	if want := []licensing.LicenseError{{SKU: skuE5, GroupID: "g-eng", Error: "MutuallyExclusiveViolation"}}; !slices.Equal(errs, want) {
		t.Errorf("u1 errors %+v, want %+v", errs, want)
	}
	sources, _ = u2.Sources()
	if s := sources[skuE3]; s.Direct || !slices.Equal(s.InheritedFrom, []string{"g-sales"}) {
		t.Errorf("u2 sources %+v, want E3 only from g-sales", sources)
	}
}

// Graph refuses to remove a license held only through a group; the client
// makes it a permanent failure with code InheritedFromGroup. Removing one
// held both ways removes the direct assignment: the user keeps the license.
func TestApplyInheritedLicense(t *testing.T) {
	t.Parallel()
	b := groupSetup(t)
	ctx := context.Background()
	err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u2", Remove: []string{skuE3}})
	pe := providerError(t, err)
	if pe.Kind != provider.Permanent || pe.Code != licensing.CodeInheritedFromGroup || pe.Status != http.StatusBadRequest {
		t.Fatalf("removing an inherited-only license: %+v", pe)
	}
	if got := b.licenses(t, contoso, "u2"); !slices.Equal(got, []string{skuE3}) {
		t.Fatalf("u2 holds %v after the refusal", got)
	}
	before := b.consumed(t, contoso, skuE3)
	if err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u1", Remove: []string{skuE3}}); err != nil {
		t.Fatal(err)
	}
	if got := b.licenses(t, contoso, "u1"); !slices.Contains(got, skuE3) {
		t.Fatalf("u1 holds %v, want E3 still (through g-sales)", got)
	}
	if got := b.consumed(t, contoso, skuE3); got != before {
		t.Fatalf("E3 consumed %d after removing a direct assignment kept through a group, want %d", got, before)
	}
	if err := b.client.Apply(ctx, contoso, provider.Change{UserID: "u1", Remove: []string{skuE3}}); providerError(t, err).Code != licensing.CodeInheritedFromGroup {
		t.Fatalf("second removal: %v, want InheritedFromGroup (only the group's assignment is left)", err)
	}
}

// GroupNames reads the groups' display names; unknown IDs are left out.
func TestGroupNames(t *testing.T) {
	t.Parallel()
	b := groupSetup(t)
	names, err := b.client.GroupNames(context.Background(), contoso, []string{"g-sales", "g-eng", "g-gone"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"g-sales": "Sales", "g-eng": "Engineering"}; !maps.Equal(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
}
