package licensing

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// testCatalog exercises every kind of rule. BASE/ADDON model a prerequisite,
// E3/E5 a one-sided exclusion (only E5 declares it), VISIO a product that
// both requires and excludes, and GOV/NOWHERE/ANY the three shapes of
// AllowedLocations.
var testCatalog = Catalog{
	"BASE":     {SKU: "BASE"},
	"ADDON":    {SKU: "ADDON", Requires: []string{"BASE"}},
	"E3":       {SKU: "E3"},
	"E5":       {SKU: "E5", Excludes: []string{"E3"}, ProhibitedLocations: []string{"CN", "RU"}},
	"E5ADDON":  {SKU: "E5ADDON", Requires: []string{"E5"}},
	"VISIO":    {SKU: "VISIO", Requires: []string{"BASE"}, Excludes: []string{"E3"}},
	"GOV":      {SKU: "GOV", AllowedLocations: []string{"US"}},
	"NOWHERE":  {SKU: "NOWHERE", AllowedLocations: []string{}},
	"ANY":      {SKU: "ANY", AllowedLocations: nil},
	"MULTIREQ": {SKU: "MULTIREQ", Requires: []string{"ZREQ", "BASE", "AREQ"}},
	"SELFX":    {SKU: "SELFX", Excludes: []string{"SELFX"}, Requires: []string{"SELFX"}},
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	enabled := func(loc string, held ...string) UserState {
		return UserState{Held: held, UsageLocation: loc, AccountEnabled: true}
	}
	disabled := func(loc string, held ...string) UserState {
		return UserState{Held: held, UsageLocation: loc}
	}
	ch := func(assign, revoke []string) Change { return Change{Assign: assign, Revoke: revoke} }
	l := func(s ...string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}

	tests := []struct {
		name       string
		user       UserState
		change     Change
		defaultLoc string
		// On success:
		licenses, assigned, revoked []string
		location                    string
		// On failure:
		code    Code
		mention []string // substrings the message must contain
	}{
		{
			name: "plain assign", user: enabled("PL"), change: ch(l("E3"), nil),
			licenses: l("E3"), assigned: l("E3"), revoked: l(), location: "PL",
		},
		{
			name: "plain revoke", user: enabled("PL", "E3", "BASE"), change: ch(nil, l("E3")),
			licenses: l("BASE"), assigned: l(), revoked: l("E3"), location: "PL",
		},
		{
			name: "unknown SKU has no rules", user: disabled("", "E5"), change: ch(nil, l("NOPE")),
			licenses: l("E5"), assigned: l(), revoked: l(), location: "",
		},
		{
			name: "unknown SKU assigned anywhere", user: enabled("CN", "E3"), change: ch(l("NOPE"), nil),
			licenses: l("E3", "NOPE"), assigned: l("NOPE"), revoked: l(), location: "CN",
		},
		{
			name: "idempotent no-ops", user: enabled("PL", "E3"), change: ch(l("E3"), l("BASE")),
			licenses: l("E3"), assigned: l(), revoked: l(), location: "PL",
		},
		{
			name: "empty change", user: enabled("PL"), change: ch(nil, nil),
			licenses: l(), assigned: l(), revoked: l(), location: "PL",
		},
		{
			name: "duplicates and unsorted inputs", user: enabled("PL", "E3", "BASE", "E3"),
			change:   ch(l("GOV", "ANY", "ANY", "BASE"), l("E3", "E3")),
			licenses: nil, code: CodeProhibitedInUsageLocationViolation, mention: []string{`"GOV"`, `"PL"`},
		},
		{
			name: "duplicates and unsorted inputs succeed", user: enabled("US", "E3", "BASE", "E3"),
			change:   ch(l("GOV", "ANY", "ANY", "BASE"), l("E3", "E3")),
			licenses: l("ANY", "BASE", "GOV"), assigned: l("ANY", "GOV"), revoked: l("E3"), location: "US",
		},
		{
			name: "assign and revoke same SKU: revoke wins", user: enabled("PL", "E3"),
			change:   ch(l("E3", "BASE"), l("E3", "BASE")),
			licenses: l(), assigned: l(), revoked: l("E3"), location: "PL",
		},

		// UserDisabled
		{
			name: "disabled user assigned", user: disabled("PL"), change: ch(l("E3"), nil),
			code: CodeUserDisabled, mention: []string{`"E3"`},
		},
		{
			name: "disabled user only revokes", user: disabled("PL", "E3", "BASE"), change: ch(nil, l("E3")),
			licenses: l("BASE"), assigned: l(), revoked: l("E3"), location: "PL",
		},
		{
			name: "disabled user re-assigned a held SKU", user: disabled("PL", "E3"), change: ch(l("E3"), nil),
			licenses: l("E3"), assigned: l(), revoked: l(), location: "PL",
		},

		// UsageLocationMissing
		{
			name: "no location anywhere", user: enabled(""), change: ch(l("E3"), nil),
			code: CodeUsageLocationMissing, mention: []string{"usage location", `"E3"`},
		},
		{
			name: "no location names only the SKUs newly assigned", user: enabled("", "E3"), change: ch(l("E3", "BASE", "ANY"), nil),
			code: CodeUsageLocationMissing, mention: []string{`"ANY" and "BASE"`},
		},
		{
			name: "no location but nothing assigned", user: enabled("", "E3"), change: ch(l("E3"), l("BASE")),
			licenses: l("E3"), assigned: l(), revoked: l(), location: "",
		},
		{
			name: "customer default fills in", user: enabled(""), change: ch(l("E3"), nil), defaultLoc: "DE",
			licenses: l("E3"), assigned: l("E3"), revoked: l(), location: "DE",
		},
		{
			name: "user location beats default", user: enabled("CN"), change: ch(l("E5"), nil), defaultLoc: "DE",
			code: CodeProhibitedInUsageLocationViolation, mention: []string{`"E5"`, `"CN"`},
		},
		{
			name: "change location overrides the user's", user: enabled("CN"),
			change:   Change{Assign: l("E5"), UsageLocation: "PL"},
			licenses: l("E5"), assigned: l("E5"), revoked: l(), location: "PL",
		},
		{
			name: "change location overrides into a prohibited one", user: enabled("PL"),
			change: Change{Assign: l("E5"), UsageLocation: "RU"}, defaultLoc: "PL",
			code: CodeProhibitedInUsageLocationViolation, mention: []string{`"E5"`, `"RU"`},
		},

		// ProhibitedInUsageLocationViolation
		{
			name: "prohibited location", user: enabled("CN"), change: ch(l("E5"), nil),
			code: CodeProhibitedInUsageLocationViolation, mention: []string{`SKU "E5" is not allowed in usage location "CN"`, "remove E5 from the change"},
		},
		{
			name: "prohibited only matters for new assignments", user: enabled("CN", "E5"), change: ch(l("E5", "BASE"), nil),
			licenses: l("BASE", "E5"), assigned: l("BASE"), revoked: l(), location: "CN",
		},
		{
			name: "allowed list contains location", user: enabled("US"), change: ch(l("GOV"), nil),
			licenses: l("GOV"), assigned: l("GOV"), revoked: l(), location: "US",
		},
		{
			name: "allowed list lacks location", user: enabled("PL"), change: ch(l("GOV"), nil),
			code: CodeProhibitedInUsageLocationViolation, mention: []string{`"GOV"`, `"PL"`},
		},
		{
			name: "allowed list empty means nowhere", user: enabled("US"), change: ch(l("NOWHERE"), nil),
			code: CodeProhibitedInUsageLocationViolation, mention: []string{`"NOWHERE"`, `"US"`},
		},
		{
			name: "allowed list nil means anywhere", user: enabled("KP"), change: ch(l("ANY"), nil),
			licenses: l("ANY"), assigned: l("ANY"), revoked: l(), location: "KP",
		},
		{
			name: "first failing SKU in sorted order is named", user: enabled("CN"), change: ch(l("NOWHERE", "E5", "GOV"), nil),
			code: CodeProhibitedInUsageLocationViolation, mention: []string{`"E5"`},
		},

		// MutuallyExclusiveViolation
		{
			name: "assign excluded by its own declaration", user: enabled("PL", "E3"), change: ch(l("E5"), nil),
			code: CodeMutuallyExclusiveViolation, mention: []string{`"E5"`, `"E3"`, "revoke E3"},
		},
		{
			name: "exclusion is symmetric", user: enabled("PL", "E5"), change: ch(l("E3"), nil),
			code: CodeMutuallyExclusiveViolation, mention: []string{`"E3"`, `"E5"`, "revoke E5"},
		},
		{
			name: "both excluded SKUs assigned together", user: enabled("PL"), change: ch(l("E3", "E5"), nil),
			code: CodeMutuallyExclusiveViolation, mention: []string{`"E3"`, `"E5"`, "only one"},
		},
		{
			name: "swap in one save", user: enabled("PL", "E3"), change: ch(l("E5"), l("E3")),
			licenses: l("E5"), assigned: l("E5"), revoked: l("E3"), location: "PL",
		},
		{
			name: "pre-existing conflict is not this change's business", user: enabled("PL", "E3", "E5"), change: ch(l("BASE"), nil),
			licenses: l("BASE", "E3", "E5"), assigned: l("BASE"), revoked: l(), location: "PL",
		},
		{
			name: "self-exclusion and self-requirement are ignored", user: enabled("PL"), change: ch(l("SELFX"), nil),
			licenses: l("SELFX"), assigned: l("SELFX"), revoked: l(), location: "PL",
		},

		// DependencyViolation
		{
			name: "assign without prerequisite", user: enabled("PL"), change: ch(l("ADDON"), nil),
			code: CodeDependencyViolation, mention: []string{`"ADDON"`, `"BASE"`, "assign BASE"},
		},
		{
			name: "assign with held prerequisite", user: enabled("PL", "BASE"), change: ch(l("ADDON"), nil),
			licenses: l("ADDON", "BASE"), assigned: l("ADDON"), revoked: l(), location: "PL",
		},
		{
			name: "assign product and prerequisite together", user: enabled("PL"), change: ch(l("ADDON", "BASE"), nil),
			licenses: l("ADDON", "BASE"), assigned: l("ADDON", "BASE"), revoked: l(), location: "PL",
		},
		{
			name: "revoke prerequisite, keep dependent", user: enabled("PL", "ADDON", "BASE"), change: ch(nil, l("BASE")),
			code: CodeDependencyViolation, mention: []string{`"ADDON"`, `"BASE"`, "revokes"},
		},
		{
			name: "disabled user revoking a prerequisite still fails", user: disabled("", "ADDON", "BASE"), change: ch(nil, l("BASE")),
			code: CodeDependencyViolation, mention: []string{`"ADDON"`, `"BASE"`},
		},
		{
			name: "revoke prerequisite and dependent together", user: enabled("PL", "ADDON", "BASE", "E3"), change: ch(nil, l("BASE", "ADDON")),
			licenses: l("E3"), assigned: l(), revoked: l("ADDON", "BASE"), location: "PL",
		},
		{
			name: "pre-existing missing prerequisite is not this change's business", user: enabled("PL", "ADDON"), change: ch(l("E3"), nil),
			licenses: l("ADDON", "E3"), assigned: l("E3"), revoked: l(), location: "PL",
		},
		{
			name: "first missing prerequisite in sorted order is named", user: enabled("PL", "BASE"), change: ch(l("MULTIREQ"), nil),
			code: CodeDependencyViolation, mention: []string{`"MULTIREQ"`, `"AREQ"`},
		},
		{
			name: "assign dependent, revoke its prerequisite", user: enabled("PL", "E5"), change: ch(l("E5ADDON"), l("E5")),
			code: CodeDependencyViolation, mention: []string{`"E5ADDON"`, `"E5"`},
		},

		// Requires and excludes in one change.
		{
			name: "swap plus dependent of the new SKU", user: enabled("PL", "E3"), change: ch(l("E5ADDON", "E5"), l("E3")),
			licenses: l("E5", "E5ADDON"), assigned: l("E5", "E5ADDON"), revoked: l("E3"), location: "PL",
		},
		{
			name: "requires and excludes both satisfied", user: enabled("PL", "E3"), change: ch(l("VISIO", "BASE"), l("E3")),
			licenses: l("BASE", "VISIO"), assigned: l("BASE", "VISIO"), revoked: l("E3"), location: "PL",
		},

		// Precedence when several rules fail.
		{
			name: "disabled beats everything", user: disabled("", "E3"), change: ch(l("E5", "ADDON", "NOWHERE"), nil),
			code: CodeUserDisabled, mention: []string{`"ADDON"`, `"E5"`, `"NOWHERE"`},
		},
		{
			name: "missing location beats location and rules", user: enabled("", "E3"), change: ch(l("E5", "ADDON", "NOWHERE"), nil),
			code: CodeUsageLocationMissing, mention: []string{`"ADDON"`, `"E5"`, `"NOWHERE"`},
		},
		{
			name: "location beats exclusion and dependency", user: enabled("US", "E3"), change: ch(l("E5", "ADDON", "NOWHERE"), nil),
			code: CodeProhibitedInUsageLocationViolation, mention: []string{`"NOWHERE"`},
		},
		{
			name: "exclusion beats dependency", user: enabled("US", "E3"), change: ch(l("VISIO"), nil),
			code: CodeMutuallyExclusiveViolation, mention: []string{`"VISIO"`, `"E3"`},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			heldBefore := slices.Clone(tt.user.Held)
			res, err := Evaluate(tt.user, tt.change, tt.defaultLoc, testCatalog)
			if !slices.Equal(heldBefore, tt.user.Held) {
				t.Errorf("Evaluate modified user.Held: %q -> %q", heldBefore, tt.user.Held)
			}
			if tt.code != "" {
				if err == nil {
					t.Fatalf("got success %+v, want %s", res, tt.code)
				}
				if err.Code != tt.code {
					t.Fatalf("got %s (%s), want %s", err.Code, err.Message, tt.code)
				}
				for _, m := range tt.mention {
					if !strings.Contains(err.Message, m) {
						t.Errorf("message %q does not mention %q", err.Message, m)
					}
				}
				if !namesSKUOf(err.Message, tt.change) {
					t.Errorf("message %q names none of the SKUs of the change %+v", err.Message, tt.change)
				}
				if !strings.HasSuffix(err.Message, ".") {
					t.Errorf("message %q is not a full sentence", err.Message)
				}
				if res.Licenses != nil || res.Assigned != nil || res.Revoked != nil {
					t.Errorf("failure returned a non-zero result %+v", res)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %s (%s), want success", err.Code, err.Message)
			}
			check := func(what string, got, want []string) {
				t.Helper()
				if got == nil {
					t.Errorf("%s is nil, want an empty slice", what)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", what, got, want)
				}
			}
			check("Licenses", res.Licenses, tt.licenses)
			check("Assigned", res.Assigned, tt.assigned)
			check("Revoked", res.Revoked, tt.revoked)
			if res.UsageLocation != tt.location {
				t.Errorf("UsageLocation = %q, want %q", res.UsageLocation, tt.location)
			}
		})
	}
}

// namesSKUOf reports whether msg names, quoted, a SKU that change assigns
// or revokes: every outcome must tell the person which product it is about.
func namesSKUOf(msg string, change Change) bool {
	for _, s := range append(slices.Clone(change.Assign), change.Revoke...) {
		if strings.Contains(msg, strconv.Quote(s)) {
			return true
		}
	}
	return false
}

// TestEvaluateResultSlicesIndependent guards the shared backing array: a
// caller appending to one result slice must not overwrite another.
func TestEvaluateResultSlicesIndependent(t *testing.T) {
	t.Parallel()
	res, err := Evaluate(UserState{Held: []string{"E3", "BASE"}, AccountEnabled: true},
		Change{Assign: []string{"ANY"}, Revoke: []string{"E3"}}, "PL", testCatalog)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(res.Licenses, "X")
	_ = append(res.Assigned, "Y")
	if !slices.Equal(res.Assigned, []string{"ANY"}) || !slices.Equal(res.Revoked, []string{"E3"}) {
		t.Errorf("appending to one slice changed another: %+v", res)
	}
}

func TestEvaluateMessagesDeterministic(t *testing.T) {
	t.Parallel()
	// Rules declared in different orders must produce the same message.
	c1 := Catalog{
		"A": {Excludes: []string{"C", "B"}},
		"N": {Requires: []string{"Z", "Y"}},
	}
	c2 := Catalog{
		"A": {Excludes: []string{"B", "C"}},
		"N": {Requires: []string{"Y", "Z"}},
	}
	u := UserState{Held: []string{"C", "B"}, AccountEnabled: true}
	for _, ch := range []Change{{Assign: []string{"A"}}, {Assign: []string{"N"}}} {
		_, e1 := Evaluate(u, ch, "PL", c1)
		_, e2 := Evaluate(u, ch, "PL", c2)
		if e1 == nil || e2 == nil || *e1 != *e2 {
			t.Errorf("change %+v: messages differ: %v vs %v", ch, e1, e2)
		}
	}
}

// fuzzSKUs is a small alphabet so that fuzzed changes often collide with the
// catalog's rules.
var fuzzSKUs = []string{"BASE", "ADDON", "E3", "E5", "E5ADDON", "VISIO", "GOV", "NOWHERE", "ANY", "SELFX", "NOPE"}

func fuzzList(b []byte) []string {
	out := make([]string, 0, len(b))
	for _, c := range b {
		out = append(out, fuzzSKUs[int(c)%len(fuzzSKUs)])
	}
	return out
}

func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{2}, []byte{3}, []byte{2}, "", "PL", true)
	f.Add([]byte{0, 1}, []byte{}, []byte{0}, "", "PL", true)
	f.Add([]byte{}, []byte{1, 0, 6}, []byte{}, "US", "", false)
	f.Add([]byte{2, 3, 2}, []byte{4, 4, 3}, []byte{2, 2}, "", "CN", true)
	f.Fuzz(func(t *testing.T, held, assign, revoke []byte, changeLoc, userLoc string, enabled bool) {
		if len(held)+len(assign)+len(revoke) > 64 {
			return
		}
		u := UserState{Held: fuzzList(held), UsageLocation: userLoc, AccountEnabled: enabled}
		c := Change{Assign: fuzzList(assign), Revoke: fuzzList(revoke), UsageLocation: changeLoc}
		res, err := Evaluate(u, c, "PL", testCatalog)
		if err != nil {
			switch err.Code {
			case CodeUserDisabled, CodeUsageLocationMissing, CodeProhibitedInUsageLocationViolation,
				CodeMutuallyExclusiveViolation, CodeDependencyViolation:
			default:
				t.Fatalf("unexpected code %s", err.Code)
			}
			if !namesSKUOf(err.Message, c) {
				t.Fatalf("%s message %q names none of the SKUs of the change", err.Code, err.Message)
			}
			return
		}
		if res.Licenses == nil || res.Assigned == nil || res.Revoked == nil {
			t.Fatalf("nil slice in %+v", res)
		}
		for name, s := range map[string][]string{"Licenses": res.Licenses, "Assigned": res.Assigned, "Revoked": res.Revoked} {
			if !slices.IsSorted(s) || len(slices.Compact(slices.Clone(s))) != len(s) {
				t.Fatalf("%s %q is not a sorted set", name, s)
			}
		}
		for _, s := range c.Revoke {
			if slices.Contains(res.Licenses, s) {
				t.Fatalf("Licenses %q contains revoked %q", res.Licenses, s)
			}
		}
		for _, s := range res.Assigned {
			if !slices.Contains(res.Licenses, s) || !slices.Contains(c.Assign, s) || slices.Contains(u.Held, s) {
				t.Fatalf("Assigned %q: %q missing from Licenses, not in assign, or already held", res.Assigned, s)
			}
		}
		for _, s := range res.Revoked {
			if !slices.Contains(u.Held, s) || !slices.Contains(c.Revoke, s) {
				t.Fatalf("Revoked %q: %q was not held or not revoked", res.Revoked, s)
			}
		}
		for _, s := range res.Licenses {
			if !slices.Contains(u.Held, s) && !slices.Contains(c.Assign, s) {
				t.Fatalf("Licenses %q: %q came from nowhere", res.Licenses, s)
			}
		}
		for _, s := range append(slices.Clone(u.Held), c.Assign...) {
			if !slices.Contains(c.Revoke, s) && !slices.Contains(res.Licenses, s) {
				t.Fatalf("Licenses %q lost %q", res.Licenses, s)
			}
		}
		if len(res.Assigned) > 0 && (!enabled || res.UsageLocation == "") {
			t.Fatalf("assigned %q to a disabled or location-less user", res.Assigned)
		}
	})
}

func BenchmarkEvaluate(b *testing.B) {
	user := UserState{Held: []string{"BASE", "E3", "ANY"}, UsageLocation: "PL", AccountEnabled: true}
	change := Change{Assign: []string{"ADDON"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Evaluate(user, change, "US", testCatalog); err != nil {
			b.Fatal(err)
		}
	}
}

// A replace assigns its target only to a user who holds its source, in
// the same all-or-nothing change; exact revokes what is not assigned.
func TestEvaluateReplaceAndExact(t *testing.T) {
	catalog := Catalog{"E5": {SKU: "E5", Excludes: []string{"VISIO"}}}
	replace := Change{Assign: []string{"PROJ", "E5"}, Revoke: []string{"E3", "E1"},
		Replace: []Replacement{{From: "E3", To: "E5"}, {From: "E1", To: "E5"}}}
	for _, tc := range []struct {
		name              string
		held              []string
		change            Change
		assigned, revoked []string
		code              Code
	}{
		{name: "holder", held: []string{"E3"}, change: replace, assigned: []string{"E5", "PROJ"}, revoked: []string{"E3"}},
		{name: "holder of both sources", held: []string{"E1", "E3"}, change: replace, assigned: []string{"E5", "PROJ"}, revoked: []string{"E1", "E3"}},
		{name: "not a holder", held: []string{"VISIO"}, change: replace, assigned: []string{"PROJ"}, revoked: []string{}},
		{name: "holder refused the target", held: []string{"E3", "VISIO"}, change: replace, code: CodeMutuallyExclusiveViolation},
		{name: "exact", held: []string{"E3", "VISIO"}, change: Change{Assign: []string{"E3", "PROJ"}, Exact: true},
			assigned: []string{"PROJ"}, revoked: []string{"VISIO"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Evaluate(UserState{Held: tc.held, UsageLocation: "US", AccountEnabled: true}, tc.change, "", catalog)
			if tc.code != "" {
				if err == nil || err.Code != tc.code {
					t.Fatalf("Evaluate = %+v, %v; want %s", res, err, tc.code)
				}
				return
			}
			if err != nil || !slices.Equal(res.Assigned, tc.assigned) || !slices.Equal(res.Revoked, tc.revoked) {
				t.Fatalf("Evaluate = %+v, %v; want +%v -%v", res, err, tc.assigned, tc.revoked)
			}
		})
	}
}
