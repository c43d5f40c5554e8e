package licensing

import "slices"

// Product is a SKU in a partner's catalog with the rules that govern who may hold it.
type Product struct {
	SKU        string `json:"sku_id"`
	Name       string `json:"name"`
	PartNumber string `json:"part_number"`
	// Requires lists SKUs that must all be held (or assigned in the same change)
	// for this one to be held.
	Requires []string `json:"requires"`
	// Excludes lists SKUs that may never be held together with this one. The
	// relation is symmetric: it is enough that one side declares it.
	Excludes []string `json:"excludes"`
	// AllowedLocations, when non-nil, is the only set of usage locations
	// (ISO 3166-1 alpha-2) where the SKU may be assigned. Nil means anywhere.
	AllowedLocations []string `json:"allowed_locations"`
	// ProhibitedLocations are usage locations where the SKU may not be assigned.
	ProhibitedLocations []string `json:"prohibited_locations"`
	// ServicePlans are the plans the product bundles, which a user's
	// license may switch off one by one (Change.DisabledPlans).
	ServicePlans []ServicePlan `json:"service_plans"`
}

// ServicePlan is one service of a product (Exchange, Teams, ...), by the
// directory's plan ID (Graph's servicePlanId).
type ServicePlan struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// HasPlan reports whether id is one of the product's service plans.
func (p Product) HasPlan(id string) bool {
	return slices.ContainsFunc(p.ServicePlans, func(sp ServicePlan) bool { return sp.ID == id })
}

// Catalog maps SKU IDs to products. A SKU missing from the catalog has no rules.
type Catalog map[string]Product

// Change is what one license operation does to each of its users.
type Change struct {
	Assign []string `json:"assign"`
	Revoke []string `json:"revoke"`
	// UsageLocation, when set, is applied to the user before the licenses are evaluated.
	UsageLocation string `json:"usage_location,omitempty"`
	// Replace swaps licenses only where held. Every From is also in Revoke
	// (revoking a license a user lacks changes nothing) and every To in
	// Assign, where the seats granted at intake find it; Evaluate assigns a
	// To only to a user who holds one of its Froms (ForHeld).
	Replace []Replacement `json:"replace,omitempty"`
	// Exact revokes, besides Revoke, every license a user holds that is
	// not in Assign (a copy of a user's licenses with "exact").
	Exact bool `json:"exact,omitempty"`
	// DisabledPlans, by SKU of Assign, are the service plans to switch off
	// in that license, sorted; every other plan of it is on. It applies to
	// the users who get the SKU and to those who hold it already, whose
	// plans are updated (Result.PlansChanged) without taking a seat. A SKU
	// without an entry is assigned with every plan on and a holder keeps
	// its plans. Nil for most operations, which then pay nothing for it.
	DisabledPlans map[string][]string `json:"disabled_plans,omitempty"`
}

// Replacement takes From from a user who holds it and assigns To instead,
// in the same all-or-nothing change. A user without From gets neither.
type Replacement struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ForHeld is the change for a user who holds held: without the Replace
// targets whose From the user lacks, and when Exact, revoking what it holds
// beyond Assign. A change with neither is returned as it is, so ordinary
// operations pay nothing for them.
func (c Change) ForHeld(held []string) Change {
	if len(c.Replace) == 0 && !c.Exact {
		return c
	}
	if len(c.Replace) > 0 {
		assign := make([]string, 0, len(c.Assign))
		for _, sku := range c.Assign {
			if !c.isReplaceTo(sku) || c.replacesHeld(sku, held) {
				assign = append(assign, sku)
			}
		}
		c.Assign = assign
	}
	if c.Exact {
		revoke := slices.Clone(c.Revoke)
		for _, sku := range held {
			if !slices.Contains(c.Assign, sku) && !slices.Contains(revoke, sku) {
				revoke = append(revoke, sku)
			}
		}
		c.Revoke = revoke
	}
	return c
}

func (c Change) isReplaceTo(sku string) bool {
	for _, r := range c.Replace {
		if r.To == sku {
			return true
		}
	}
	return false
}

// replacesHeld reports whether to replaces a SKU of held.
func (c Change) replacesHeld(to string, held []string) bool {
	for _, r := range c.Replace {
		if r.To == to && slices.Contains(held, r.From) {
			return true
		}
	}
	return false
}

// ReplaceSources are the From SKUs of replace, and ReplaceTargets its
// distinct To SKUs (several SKUs may be replaced by one), in order.
func ReplaceSources(replace []Replacement) []string {
	out := make([]string, len(replace))
	for i, r := range replace {
		out[i] = r.From
	}
	return out
}

// ReplaceTargets: see ReplaceSources.
func ReplaceTargets(replace []Replacement) []string {
	out := make([]string, len(replace))
	for i, r := range replace {
		out[i] = r.To
	}
	return Dedupe(out)
}

// WithoutReplaceTargets is skus (a stored operation's assign) without the
// Replace targets, and WithoutReplaced (its revoke) without the replaced
// SKUs: the lists as the caller gave them, which never share a SKU with
// Replace.
func WithoutReplaceTargets(skus []string, replace []Replacement) []string {
	return withoutSKUs(skus, replace, func(r Replacement) string { return r.To })
}

// WithoutReplaced: see WithoutReplaceTargets.
func WithoutReplaced(skus []string, replace []Replacement) []string {
	return withoutSKUs(skus, replace, func(r Replacement) string { return r.From })
}

func withoutSKUs(skus []string, replace []Replacement, side func(Replacement) string) []string {
	if len(replace) == 0 {
		return skus
	}
	out := make([]string, 0, len(skus))
	for _, s := range skus {
		if !slices.ContainsFunc(replace, func(r Replacement) bool { return side(r) == s }) {
			out = append(out, s)
		}
	}
	return out
}

// UserState is what the evaluation needs to know about a user before the change.
type UserState struct {
	Held           []string
	UsageLocation  string
	AccountEnabled bool
	// DisabledPlans are the switched-off plans of held SKUs, by SKU (a
	// SKU without an entry has every plan on). Only read when the change
	// has DisabledPlans.
	DisabledPlans map[string][]string
}

// Result is the outcome of evaluating a change for one user that passed every rule.
type Result struct {
	// Licenses is the sorted set the user holds after the change.
	Licenses []string
	// Assigned are the SKUs newly assigned (not held before), sorted.
	Assigned []string
	// Revoked are the SKUs actually taken away (held before), sorted.
	Revoked []string
	// UsageLocation is the user's effective usage location after the change
	// (the change's, else the user's, else the customer's default).
	UsageLocation string
	// PlansChanged are the SKUs held before and kept whose disabled plans
	// the change updates, sorted: a change of the license that takes no
	// seat. Nil when the change has no DisabledPlans.
	PlansChanged []string
}

// PlansChangedFor returns the SKUs of assign that held, with its disabled
// plans heldPlans (by SKU), keeps but with other disabled plans than
// wanted (by SKU), sorted. A SKU without an entry in wanted keeps its
// plans.
func PlansChangedFor(held, assign, revoke []string, heldPlans, wanted map[string][]string) []string {
	var out []string
	for sku, plans := range wanted {
		if !slices.Contains(assign, sku) || !slices.Contains(held, sku) || slices.Contains(revoke, sku) {
			continue
		}
		if !SameSet(heldPlans[sku], plans) {
			out = append(out, sku)
		}
	}
	slices.Sort(out)
	return out
}

// SameSet reports whether a and b hold the same strings (SKUs, plan
// IDs), whatever their order and repeats.
func SameSet(a, b []string) bool {
	sa, sb := slices.Clone(a), slices.Clone(b)
	slices.Sort(sa)
	slices.Sort(sb)
	return slices.Equal(slices.Compact(sa), slices.Compact(sb))
}
