package licensing

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckGroups(t *testing.T) {
	t.Parallel()
	sources := map[string]LicenseSource{
		"E3": {SKU: "E3", Direct: true, InheritedFrom: []string{"g1"}, GroupNames: []string{"Sales"}},
		"E5": {SKU: "E5", InheritedFrom: []string{"g1", "g2"}},
	}
	// Revoking an inherited-only license fails, naming its groups.
	res := Result{Licenses: []string{"E3"}, Revoked: []string{"E5"}}
	if _, err := CheckGroups(&res, nil, sources); err == nil || err.Code != CodeInheritedFromGroup ||
		!strings.Contains(err.Message, "groups g1, g2") {
		t.Fatalf("revoking E5: %v", err)
	}
	// Revoking one held both ways keeps it, with a note naming the group.
	res = Result{Licenses: []string{"E5", "V"}, Revoked: []string{"E3", "X"}}
	gc, err := CheckGroups(&res, []string{"E5", "V"}, sources)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Revoked, []string{"X"}) || !slices.Equal(res.Licenses, []string{"E3", "E5", "V"}) ||
		!slices.Equal(gc.RemoveDirect, []string{"E3"}) || !slices.Equal(gc.AddDirect, []string{"E5"}) ||
		!strings.Contains(gc.Note, "still holds E3 (inherited from group Sales (g1))") {
		t.Fatalf("result %+v, check %+v", res, gc)
	}
	// A user who inherits nothing is left alone.
	res = Result{Revoked: []string{"E3"}}
	if gc, err := CheckGroups(&res, nil, nil); err != nil || gc.RemoveDirect != nil || !slices.Equal(res.Revoked, []string{"E3"}) {
		t.Fatalf("no sources: %+v %v %+v", gc, err, res)
	}
}

func TestSourcesFor(t *testing.T) {
	t.Parallel()
	if got := SourcesFor([]string{"E3"}, nil); got != nil {
		t.Errorf("nothing inherited: %+v, want nil", got)
	}
	got := SourcesFor([]string{"E3", "V"}, []LicenseSource{{SKU: "E3", InheritedFrom: []string{"g1"}}})
	if len(got) != 2 || got[0].Direct || !got[1].Direct || got[1].InheritedFrom == nil {
		t.Errorf("sources %+v", got)
	}
}
