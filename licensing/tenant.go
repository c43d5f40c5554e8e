package licensing

import "time"

// Directory kinds: where a customer's licenses really live.
const (
	// DirectoryLocal means Postgres is the license directory.
	DirectoryLocal = "local"
	// DirectoryMSGraph means Microsoft Graph (Entra ID) of the customer's tenant.
	DirectoryMSGraph = "msgraph"
)

// Directory says where a customer's licenses really live.
type Directory struct {
	Kind     string `json:"kind"`
	TenantID string `json:"tenant_id,omitempty"`
}

// Customer is a tenant managed by a partner.
type Customer struct {
	Key                  int64     `json:"-"`
	PartnerKey           int64     `json:"-"`
	ID                   string    `json:"id"`
	Name                 string    `json:"name"`
	DefaultUsageLocation *string   `json:"default_usage_location"`
	Directory            Directory `json:"directory"`
	CreatedAt            time.Time `json:"created_at"`
}

// User is a user of a customer tenant with the licenses it holds.
type User struct {
	ID                string     `json:"id" db:"id"`
	UserPrincipalName string     `json:"user_principal_name" db:"user_principal_name"`
	DisplayName       string     `json:"display_name" db:"display_name"`
	UsageLocation     *string    `json:"usage_location" db:"usage_location"`
	AccountEnabled    bool       `json:"account_enabled" db:"account_enabled"`
	LastSignInAt      *time.Time `json:"last_sign_in_at,omitempty" db:"last_sign_in_at"`
	Licenses          []string   `json:"licenses" db:"-"`
	// DisabledPlans are the plans switched off in the user's licenses, by
	// SKU, for the licenses with any (absent when every plan is on).
	DisabledPlans map[string][]string `json:"disabled_plans,omitempty" db:"-"`
	// LicenseSources say how each license is held, for users of a directory
	// with group licensing who inherit any; nil otherwise (all direct).
	LicenseSources []LicenseSource `json:"license_sources,omitempty" db:"-"`
	// LicenseErrors are the group licenses the directory failed to give the
	// user, as of the last sync.
	LicenseErrors []LicenseError `json:"license_errors,omitempty" db:"-"`
}

// Subscription is a customer's seats of one SKU.
type Subscription struct {
	SKU      string `json:"sku_id" db:"sku_id"`
	Name     string `json:"name" db:"name"`
	Total    int    `json:"total" db:"total"`
	Consumed int    `json:"consumed" db:"consumed"`
	// Reserved are seats held by unfinished operations.
	Reserved  int `json:"-" db:"reserved"`
	Available int `json:"available" db:"available"`
	// LicenseErrors counts the users the directory failed to give the SKU
	// through a group (group licensing errors as of the last sync).
	LicenseErrors int `json:"license_errors" db:"license_errors"`
	// PreviousTotal is the total before SetSeatTotal changed it (nil when
	// it created the subscription), for the audit log.
	PreviousTotal *int `json:"-" db:"previous_total"`
}

// SummaryUser is a selected user in the Manage-licenses view.
type SummaryUser struct {
	ID                string  `json:"id" db:"id"`
	DisplayName       string  `json:"display_name" db:"display_name"`
	UserPrincipalName string  `json:"user_principal_name" db:"user_principal_name"`
	UsageLocation     *string `json:"usage_location" db:"usage_location"`
}
