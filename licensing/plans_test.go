package licensing

import (
	"slices"
	"testing"
)

// A change with disabled plans updates the plans of a held SKU it assigns
// when they differ (no new assignment, so neither the account's state nor
// a location is needed), assigns new SKUs with them, and leaves held SKUs
// without an entry alone.
func TestEvaluateDisabledPlans(t *testing.T) {
	catalog := Catalog{"E3": {SKU: "E3", ProhibitedLocations: []string{"CN"}}}
	off := map[string][]string{"E3": {"TEAMS"}}
	for _, tc := range []struct {
		name     string
		user     UserState
		change   Change
		assigned []string
		changed  []string
		code     Code
	}{
		{name: "holder with other plans", user: UserState{Held: []string{"E3"}, AccountEnabled: true, UsageLocation: "US"},
			change: Change{Assign: []string{"E3"}, DisabledPlans: off}, assigned: []string{}, changed: []string{"E3"}},
		{name: "holder with the same plans", user: UserState{Held: []string{"E3"}, AccountEnabled: true, UsageLocation: "US",
			DisabledPlans: map[string][]string{"E3": {"TEAMS"}}},
			change: Change{Assign: []string{"E3"}, DisabledPlans: off}, assigned: []string{}},
		{name: "holder turns every plan on", user: UserState{Held: []string{"E3"}, AccountEnabled: true, UsageLocation: "US",
			DisabledPlans: map[string][]string{"E3": {"TEAMS"}}},
			change: Change{Assign: []string{"E3"}, DisabledPlans: map[string][]string{"E3": {}}}, assigned: []string{}, changed: []string{"E3"}},
		{name: "disabled holder, no location, prohibited location", user: UserState{Held: []string{"E3"}, UsageLocation: "CN"},
			change: Change{Assign: []string{"E3"}, DisabledPlans: off}, assigned: []string{}, changed: []string{"E3"}},
		{name: "new assignment", user: UserState{AccountEnabled: true, UsageLocation: "US"},
			change: Change{Assign: []string{"E3"}, DisabledPlans: off}, assigned: []string{"E3"}},
		{name: "new assignment to a disabled account", user: UserState{UsageLocation: "US"},
			change: Change{Assign: []string{"E3"}, DisabledPlans: off}, code: CodeUserDisabled},
		{name: "no disabled plans: holder keeps its plans", user: UserState{Held: []string{"E3"}, AccountEnabled: true,
			DisabledPlans: map[string][]string{"E3": {"TEAMS"}}},
			change: Change{Assign: []string{"E3"}}, assigned: []string{}},
		{name: "revoked wins", user: UserState{Held: []string{"E3"}, AccountEnabled: true},
			change: Change{Assign: []string{"E3"}, Revoke: []string{"E3"}, DisabledPlans: off}, assigned: []string{}},
		// A replace target the user does not get (ForHeld drops it) is not
		// changed either, even where held.
		{name: "replace target of a non-holder", user: UserState{Held: []string{"E3"}, AccountEnabled: true},
			change:   Change{Assign: []string{"E3"}, Revoke: []string{"E1"}, Replace: []Replacement{{From: "E1", To: "E3"}}, DisabledPlans: off},
			assigned: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Evaluate(tc.user, tc.change, "", catalog)
			if tc.code != "" {
				if err == nil || err.Code != tc.code {
					t.Fatalf("Evaluate = %+v, %v; want %s", res, err, tc.code)
				}
				return
			}
			if err != nil || !slices.Equal(res.Assigned, tc.assigned) || !slices.Equal(res.PlansChanged, tc.changed) {
				t.Fatalf("Evaluate = %+v, %v; want assigned %v, plans changed %v", res, err, tc.assigned, tc.changed)
			}
		})
	}
}

func TestNormalizeDisabledPlans(t *testing.T) {
	got, err := NormalizeDisabledPlans(map[string][]string{"E5": {"B", "A", "B"}}, []string{"E3"}, []Replacement{{From: "E1", To: "E5"}})
	if err != nil || !slices.Equal(got["E5"], []string{"A", "B"}) {
		t.Fatalf("NormalizeDisabledPlans = %v, %v; want E5: [A B]", got, err)
	}
	if _, err := NormalizeDisabledPlans(map[string][]string{"E1": {"A"}}, []string{"E3"}, nil); ErrorCode(err) != CodeInvalidRequest {
		t.Fatalf("a SKU not assigned: %v; want InvalidRequest", err)
	}
	if _, err := NormalizeDisabledPlans(map[string][]string{"E3": {""}}, []string{"E3"}, nil); ErrorCode(err) != CodeInvalidRequest {
		t.Fatalf("an empty plan ID: %v; want InvalidRequest", err)
	}
	if got, err := NormalizeDisabledPlans(nil, []string{"E3"}, nil); got != nil || err != nil {
		t.Fatalf("none: %v, %v; want nil", got, err)
	}
}

func TestUnknownServicePlans(t *testing.T) {
	catalog := Catalog{"E3": {SKU: "E3", ServicePlans: []ServicePlan{{ID: "TEAMS", Name: "Teams"}}}}
	if e := UnknownServicePlans(catalog, map[string][]string{"E3": {"TEAMS"}}); e != nil {
		t.Fatalf("known plan: %v", e)
	}
	e := UnknownServicePlans(catalog, map[string][]string{"E3": {"NOPE", "TEAMS"}, "E5": {"X"}})
	if e == nil || e.Code != CodeUnknownServicePlans || HTTPStatus(e.Code) != 422 {
		t.Fatalf("unknown plans: %v; want UnknownServicePlans (422)", e)
	}
	unknown := e.Details.(map[string]any)["service_plans"].(map[string][]string)
	if !slices.Equal(unknown["E3"], []string{"NOPE"}) || !slices.Equal(unknown["E5"], []string{"X"}) {
		t.Fatalf("details = %v; want E3: [NOPE], E5: [X]", unknown)
	}
}

func TestCheckServicePlans(t *testing.T) {
	if err := CheckServicePlans([]ServicePlan{{ID: "A", Name: "a"}, {ID: "B"}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]ServicePlan{{{ID: ""}}, {{ID: "A"}, {ID: "A"}}} {
		if err := CheckServicePlans(bad); ErrorCode(err) != CodeInvalidRequest {
			t.Fatalf("CheckServicePlans(%v) = %v; want InvalidRequest", bad, err)
		}
	}
}
