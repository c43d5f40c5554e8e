package licensing

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
}

// Catalog maps SKU IDs to products. A SKU missing from the catalog has no rules.
type Catalog map[string]Product

// Change is what one license operation does to each of its users.
type Change struct {
	Assign []string `json:"assign"`
	Revoke []string `json:"revoke"`
	// UsageLocation, when set, is applied to the user before the licenses are evaluated.
	UsageLocation string `json:"usage_location,omitempty"`
}

// UserState is what the evaluation needs to know about a user before the change.
type UserState struct {
	Held           []string
	UsageLocation  string
	AccountEnabled bool
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
}
