package licensing

import (
	"fmt"
	"slices"
	"strings"
)

// LicenseSource says how a user holds one license in a directory with group
// licensing (Microsoft Entra ID): assigned to the user directly, inherited
// from groups the user is a member of, or both. A license of a local
// directory is always direct.
type LicenseSource struct {
	SKU    string `json:"sku_id"`
	Direct bool   `json:"direct"`
	// InheritedFrom are the IDs of the groups the license comes from, sorted;
	// empty when it is only direct.
	InheritedFrom []string `json:"inherited_from"`
	// GroupNames are the display names of the groups of InheritedFrom, in
	// its order ("" for one whose name is unknown); nil when no name is
	// known (the directory did not let licenseops read its groups).
	GroupNames []string `json:"group_names,omitempty"`
}

// groupLabels names the groups of the license for people: "Sales (id)",
// or the ID alone when the name is unknown.
func (s LicenseSource) groupLabels() string {
	labels := make([]string, len(s.InheritedFrom))
	for i, id := range s.InheritedFrom {
		labels[i] = id
		if i < len(s.GroupNames) && s.GroupNames[i] != "" {
			labels[i] = s.GroupNames[i] + " (" + id + ")"
		}
	}
	return strings.Join(labels, ", ")
}

// groupNoun is "group", or "groups" when the license comes from several.
func (s LicenseSource) groupNoun() string {
	if len(s.InheritedFrom) > 1 {
		return "groups"
	}
	return "group"
}

// Inherited reports whether the license comes from at least one group.
func (s LicenseSource) Inherited() bool { return len(s.InheritedFrom) > 0 }

// LicenseError is a group license the directory failed to give a user
// (Graph's licenseAssignmentStates with state Error): the user does not
// hold the license, and the directory keeps trying until the cause is
// fixed.
type LicenseError struct {
	SKU string `json:"sku_id"`
	// GroupID is the group whose license failed.
	GroupID string `json:"group_id"`
	// Error is the directory's reason: CountViolation,
	// MutuallyExclusiveViolation, DependencyViolation,
	// ProhibitedInUsageLocationViolation, UniquenessViolation or Other.
	Error string `json:"error"`
}

// GroupCheck is the part of deciding a change for a user of a directory
// with group licensing that the product rules do not see: which licenses of
// the change come from groups.
type GroupCheck struct {
	// RemoveDirect are revoked licenses the user also inherits: the
	// directory removes the direct assignment and the user keeps the
	// license through its groups (no seat is freed).
	RemoveDirect []string
	// AddDirect are assigned licenses the user inherits only: the
	// directory adds a direct assignment on top, which uses no further seat.
	AddDirect []string
	// Note tells the person what happened to RemoveDirect ("" when empty).
	Note string
}

// CheckGroups decides the group part of a change already evaluated by the
// rules (res) for a user whose group-inherited licenses are sources (by
// SKU; licenses missing from it are direct only). A revoke of a license
// that comes only from groups cannot be done on the user, nor can a change
// of the plans of one it inherits: both fail with CodeInheritedFromGroup. Otherwise res is adjusted: licenses the user keeps
// through a group leave Revoked and stay in Licenses.
func CheckGroups(res *Result, assign []string, sources map[string]LicenseSource) (GroupCheck, *Error) {
	var gc GroupCheck
	if len(sources) == 0 {
		return gc, nil
	}
	for _, sku := range res.Revoked {
		if src, ok := sources[sku]; ok && src.Inherited() && !src.Direct {
			return gc, inheritedOnlyError(sku, src)
		}
	}
	for _, sku := range res.PlansChanged {
		if src, ok := sources[sku]; ok && src.Inherited() {
			return gc, inheritedPlansError(sku, src)
		}
	}
	var kept []string
	res.Revoked = slices.DeleteFunc(slices.Clone(res.Revoked), func(sku string) bool {
		src, ok := sources[sku]
		if ok && src.Inherited() {
			kept = append(kept, sku)
			return true
		}
		return false
	})
	if len(kept) > 0 {
		res.Licenses = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(res.Licenses), kept...))))
		gc.RemoveDirect = kept
		parts := make([]string, len(kept))
		for i, sku := range kept {
			parts[i] = fmt.Sprintf("%s (inherited from group %s)", sku, sources[sku].groupLabels())
		}
		gc.Note = "the direct assignment was removed, but the user still holds " + strings.Join(parts, "; ") +
			"; to take the license away, remove the user from the group or the license from the group"
	}
	for _, sku := range assign {
		if src, ok := sources[sku]; ok && src.Inherited() && !src.Direct && !slices.Contains(gc.AddDirect, sku) {
			gc.AddDirect = append(gc.AddDirect, sku)
		}
	}
	return gc, nil
}

// inheritedPlansError refuses to change the plans of a license the user
// inherits: the directory gives the user every plan that any of its
// assignments (its own, each group's) has on, so plans switched off on the
// user alone would stay on, and the mirror would say otherwise.
func inheritedPlansError(sku string, src LicenseSource) *Error {
	noun := src.groupNoun()
	return Errorf(CodeInheritedFromGroup,
		"the user holds %s through %s %s, whose service plans apply as well as the user's own, so its plans cannot be changed on the user; "+
			"change the plans on the %s, or remove the user from the %s, in Microsoft Entra ID",
		sku, noun, src.groupLabels(), noun, noun)
}

func inheritedOnlyError(sku string, src LicenseSource) *Error {
	noun := src.groupNoun()
	return Errorf(CodeInheritedFromGroup,
		"the user holds %s only through %s %s, and a license inherited from a group cannot be removed from the user directly; "+
			"remove the user from the %s, or remove the license from the %s, in Microsoft Entra ID",
		sku, noun, src.groupLabels(), noun, noun)
}

// SourcesFor lists how each of licenses is held, given the user's licenses
// inherited from groups (direct ones are not listed there). It returns nil
// when the user inherits none, so that users and report rows of
// directories without group licensing stay as they were.
func SourcesFor(licenses []string, inherited []LicenseSource) []LicenseSource {
	if len(inherited) == 0 {
		return nil
	}
	out := make([]LicenseSource, 0, len(licenses))
	for _, sku := range licenses {
		src := LicenseSource{SKU: sku, Direct: true, InheritedFrom: []string{}}
		if i := slices.IndexFunc(inherited, func(s LicenseSource) bool { return s.SKU == sku }); i >= 0 {
			src = inherited[i]
		}
		out = append(out, src)
	}
	return out
}
