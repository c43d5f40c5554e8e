package licensing

import (
	"slices"
	"strconv"
	"strings"
)

// Evaluate decides one user's part of a license change: it returns the result
// if every rule passes, or an *Error with one per-user outcome code.
//
// Each user's change is all-or-nothing, so the rules are checked against the
// set the user would hold after the whole change, (held ∪ assign) \ revoke,
// rather than one SKU at a time: that is what lets a single save swap
// mutually exclusive products or add a product together with its
// prerequisite. The caller guarantees that assign and revoke share no SKU;
// should they, revoke wins, because taking a license away is the safe side
// of a contradiction. Duplicates in any input are tolerated.
//
// The checks run in a fixed order and the first failure wins, so a user gets
// exactly one code: UserDisabled, UsageLocationMissing and
// ProhibitedInUsageLocationViolation (these three only when the change newly
// assigns something, since a revoke or a no-op re-assign needs neither an
// enabled account nor a location), then MutuallyExclusiveViolation, then
// DependencyViolation. Only conflicts and missing prerequisites this change
// causes are reported; a user already in breach of a rule is not blocked from
// unrelated changes. Location rules are checked only for newly assigned SKUs,
// for the same reason.
//
// With DisabledPlans, a SKU of the change the user holds and keeps gets
// its plans updated when they differ (Result.PlansChanged). That updates a
// license the user has, it assigns nothing: like a no-op re-assign it
// needs neither an enabled account nor a usage location, and it takes no
// seat. The rules between products do not look at plans.
//
// On failure the Result is the zero value. On success its slices are never
// nil. They share one backing array, each capped at its own length, so that
// a caller appending to one cannot overwrite another.
func Evaluate(user UserState, change Change, defaultLocation string, catalog Catalog) (Result, *Error) {
	change = change.ForHeld(user.Held)
	held, assign, revoke := user.Held, change.Assign, change.Revoke

	// One allocation for all three result slices: this runs once per user in
	// rollouts of 100,000 users.
	nAfter := len(held) + len(assign)
	buf := make([]string, 0, nAfter+len(assign)+len(revoke))
	after := buf[0:0:nAfter]
	assigned := buf[nAfter : nAfter : nAfter+len(assign)]
	revoked := buf[nAfter+len(assign) : nAfter+len(assign) : cap(buf)]

	for _, s := range assign {
		if !slices.Contains(held, s) && !slices.Contains(revoke, s) {
			assigned = append(assigned, s)
		}
	}
	assigned = sortedSet(assigned)
	for _, s := range revoke {
		if slices.Contains(held, s) {
			revoked = append(revoked, s)
		}
	}
	revoked = sortedSet(revoked)
	for _, s := range held {
		if !slices.Contains(revoke, s) {
			after = append(after, s)
		}
	}
	after = sortedSet(append(after, assigned...))

	loc := change.UsageLocation
	if loc == "" {
		loc = user.UsageLocation
	}
	if loc == "" {
		loc = defaultLocation
	}

	if len(assigned) > 0 {
		if !user.AccountEnabled {
			return Result{}, Errorf(CodeUserDisabled,
				"The user's account is disabled, so it cannot be assigned %s; enable the account first, or remove the assignment from the change.",
				quoteList(assigned))
		}
		if loc == "" {
			return Result{}, Errorf(CodeUsageLocationMissing,
				"The user has no usage location, so it cannot be assigned %s; set a usage location in the change, on the user, or as the customer's default.",
				quoteList(assigned))
		}
		for _, s := range assigned {
			p, ok := catalog[s]
			if !ok {
				continue
			}
			if slices.Contains(p.ProhibitedLocations, loc) ||
				(p.AllowedLocations != nil && !slices.Contains(p.AllowedLocations, loc)) {
				return Result{}, Errorf(CodeProhibitedInUsageLocationViolation,
					"SKU %q is not allowed in usage location %q; set another usage location or remove %s from the change.",
					s, loc, s)
			}
		}
	}

	if e := exclusionViolation(after, assigned, catalog); e != nil {
		return Result{}, e
	}
	if e := dependencyViolation(after, assigned, revoked, catalog); e != nil {
		return Result{}, e
	}

	res := Result{
		Licenses:      after,
		Assigned:      assigned,
		Revoked:       revoked,
		UsageLocation: loc,
	}
	if len(change.DisabledPlans) > 0 {
		res.PlansChanged = PlansChangedFor(held, assign, revoke, user.DisabledPlans, change.DisabledPlans)
	}
	return res, nil
}

// exclusionViolation reports the lexicographically first pair of SKUs in
// after that exclude each other with at least one of them newly assigned.
// Choosing the first pair, not the first found, keeps messages independent
// of the order rules are declared in.
func exclusionViolation(after, assigned []string, catalog Catalog) *Error {
	var lo, hi string
	found := false
	for _, s := range after {
		p, ok := catalog[s]
		if !ok {
			continue
		}
		sNew := inSorted(assigned, s)
		for _, x := range p.Excludes {
			// A SKU cannot be held twice, so excluding itself means nothing.
			if x == s || !inSorted(after, x) || (!sNew && !inSorted(assigned, x)) {
				continue
			}
			a, b := min(s, x), max(s, x)
			if !found || a < lo || (a == lo && b < hi) {
				lo, hi, found = a, b, true
			}
		}
	}
	if !found {
		return nil
	}
	loNew, hiNew := inSorted(assigned, lo), inSorted(assigned, hi)
	switch {
	case loNew && hiNew:
		return Errorf(CodeMutuallyExclusiveViolation,
			"SKUs %q and %q cannot be held together; assign only one of them.", lo, hi)
	case loNew:
		return Errorf(CodeMutuallyExclusiveViolation,
			"SKU %q cannot be held together with %q, which the user holds; revoke %s in the same change or remove %s from the change.",
			lo, hi, hi, lo)
	default:
		return Errorf(CodeMutuallyExclusiveViolation,
			"SKU %q cannot be held together with %q, which the user holds; revoke %s in the same change or remove %s from the change.",
			hi, lo, lo, hi)
	}
}

// dependencyViolation reports the first SKU in after (sorted) whose
// prerequisite this change leaves missing: either the SKU is newly assigned
// without it, or the change revokes it. A kept SKU that already lacked a
// prerequisite before the change is not this change's doing.
func dependencyViolation(after, assigned, revoked []string, catalog Catalog) *Error {
	for _, s := range after {
		p, ok := catalog[s]
		if !ok || len(p.Requires) == 0 {
			continue
		}
		sNew := inSorted(assigned, s)
		missing, byRevoke := "", false
		for _, r := range p.Requires {
			rRevoked := inSorted(revoked, r)
			if !rRevoked && (!sNew || inSorted(after, r)) {
				continue
			}
			if missing == "" || r < missing {
				missing, byRevoke = r, rRevoked
			}
		}
		if missing == "" {
			continue
		}
		if byRevoke {
			return Errorf(CodeDependencyViolation,
				"SKU %q requires %q, which this change revokes; keep %s, or revoke %s in the same change.",
				s, missing, missing, s)
		}
		return Errorf(CodeDependencyViolation,
			"SKU %q requires %q, which the user does not hold; assign %s in the same change or remove %s from the change.",
			s, missing, missing, s)
	}
	return nil
}

// sortedSet sorts s and drops duplicates in place, so that membership tests
// can binary-search and results are deterministic.
func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// inSorted reports whether x is in the sorted slice s.
func inSorted(s []string, x string) bool {
	_, ok := slices.BinarySearch(s, x)
	return ok
}

// quoteList renders SKUs for a message as "A", "B" and "C".
func quoteList(s []string) string {
	var b strings.Builder
	for i, x := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(x))
	}
	return b.String()
}
