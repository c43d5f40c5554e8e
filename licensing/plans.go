package licensing

import (
	"fmt"
	"slices"
	"strings"
)

// MaxServicePlans bounds a product's service plans and the plans one SKU
// of a change may switch off. Microsoft 365's largest bundles have about 60.
const MaxServicePlans = 200

// CheckServicePlans validates a product's service plans: each needs an ID
// (a valid ID) and a name of up to 256 characters, and no ID appears twice.
func CheckServicePlans(plans []ServicePlan) error {
	if len(plans) > MaxServicePlans {
		return Errorf(CodeInvalidRequest, "service_plans has %d entries; a product has up to %d, leave out the plans nobody switches off", len(plans), MaxServicePlans)
	}
	seen := make(map[string]bool, len(plans))
	for i, sp := range plans {
		if err := CheckID(fmt.Sprintf("service_plans[%d].id", i), sp.ID); err != nil {
			return err
		}
		if len(sp.Name) > 256 {
			return Errorf(CodeInvalidRequest, "service_plans[%d].name is longer than 256 characters; shorten it", i)
		}
		if seen[sp.ID] {
			return Errorf(CodeInvalidRequest, "service plan %q is listed twice in service_plans; give each plan once", sp.ID)
		}
		seen[sp.ID] = true
	}
	return nil
}

// NormalizeDisabledPlans checks the disabled plans of a change against
// the SKUs it assigns (assign, and the targets of replace): every key must
// be one of them and every plan a valid ID. It returns the map with each
// list sorted and without repeats, or nil when it is empty.
func NormalizeDisabledPlans(disabled map[string][]string, assign []string, replace []Replacement) (map[string][]string, error) {
	if len(disabled) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(disabled))
	for sku, plans := range disabled {
		if !slices.Contains(assign, sku) && !slices.ContainsFunc(replace, func(r Replacement) bool { return r.To == sku }) {
			return nil, Errorf(CodeInvalidRequest,
				"disabled_plans names SKU %q, which the operation does not assign; give disabled plans only for SKUs in assign (or a replace's to), or add %s to assign", sku, sku)
		}
		if len(plans) > MaxServicePlans {
			return nil, Errorf(CodeInvalidRequest, "disabled_plans of SKU %q has %d entries; up to %d plans can be switched off", sku, len(plans), MaxServicePlans)
		}
		if err := CheckIDs(fmt.Sprintf("disabled_plans of SKU %s", sku), plans); err != nil {
			return nil, err
		}
		out[sku] = sortedSet(slices.Clone(plans))
	}
	return out, nil
}

// UnknownServicePlans returns an UnknownServicePlans error naming, by SKU,
// every disabled plan that the SKU's product in catalog does not list, or
// nil when there is none.
func UnknownServicePlans(catalog Catalog, disabled map[string][]string) *Error {
	unknown := map[string][]string{}
	var parts []string
	for _, sku := range sortedKeys(disabled) {
		p := catalog[sku]
		var bad []string
		for _, id := range disabled[sku] {
			if !p.HasPlan(id) {
				bad = append(bad, id)
			}
		}
		if len(bad) > 0 {
			unknown[sku] = bad
			parts = append(parts, fmt.Sprintf("%s of SKU %q", quoteList(bad), sku))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	e := Errorf(CodeUnknownServicePlans,
		"unknown service plans: %s; give plan IDs from the product's service_plans (GET /v1/products), or add the plans to the product first",
		strings.Join(parts, "; "))
	e.Details = map[string]any{"service_plans": unknown}
	return e
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
