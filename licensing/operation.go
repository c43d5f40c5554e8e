package licensing

import "time"

// Operation statuses.
const (
	// StatusScheduled waits for its not_before time; its seats are granted
	// when it starts.
	StatusScheduled           = "scheduled"
	StatusQueued              = "queued"
	StatusRunning             = "running"
	StatusCompleted           = "completed"
	StatusCompletedWithErrors = "completed_with_errors"
	// StatusCancelled ended because it was cancelled: items not applied by
	// then were not applied (ItemCancelled).
	StatusCancelled = "cancelled"
)

// Finished reports whether an operation status is final.
func Finished(status string) bool {
	return status == StatusCompleted || status == StatusCompletedWithErrors || status == StatusCancelled
}

// Item statuses.
const (
	ItemPending     = "pending"
	ItemApplying    = "applying"
	ItemSucceeded   = "succeeded"
	ItemFailed      = "failed"
	ItemWouldRevoke = "would_revoke"
	// ItemCancelled was not applied: its operation was cancelled first.
	ItemCancelled = "cancelled"
)

// MaxSKUsPerOperation bounds assign+revoke lists; granted_mask is a 32-bit integer.
const MaxSKUsPerOperation = 30

// Operation is a bulk license change as clients see it.
type Operation struct {
	ID            string     `json:"id"`
	CustomerID    string     `json:"customer_id"`
	Status        string     `json:"status"`
	Total         int        `json:"total"`
	Succeeded     int        `json:"succeeded"`
	Failed        int        `json:"failed"`
	Cancelled     int        `json:"cancelled"`
	Pending       int        `json:"pending"`
	CreatedAt     time.Time  `json:"created_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	CreatedBy     string     `json:"created_by"`
	Source        string     `json:"source"`
	Assign        []string   `json:"assign"`
	Revoke        []string   `json:"revoke"`
	UsageLocation *string    `json:"usage_location"`
	AllowPartial  bool       `json:"allow_partial"`
	DryRun        bool       `json:"dry_run"`
	// NotBefore is when a scheduled operation starts (nil: at once).
	NotBefore *time.Time `json:"not_before"`
	// UndoOf is the operation an undo reverses (nil for others).
	UndoOf *string `json:"undo_of"`
	// CancelRequestedAt is when a cancel was asked for (nil: never).
	CancelRequestedAt *time.Time `json:"cancel_requested_at"`
	// Replace swaps licenses where held (absent when there is none);
	// Assign and Revoke do not repeat its SKUs.
	Replace []Replacement `json:"replace,omitempty"`
	// CopyFrom is the user whose licenses the operation copies (Assign
	// holds them as they were at intake); Exact also revokes the others.
	// Both are absent for other operations.
	CopyFrom *string `json:"copy_from,omitempty"`
	Exact    bool    `json:"exact,omitempty"`
	Queue    string  `json:"-"`
	// DisabledPlans are the service plans the operation switches off, by
	// SKU it assigns (absent when it changes no plan).
	DisabledPlans map[string][]string `json:"disabled_plans,omitempty"`
}

// SeatShortage is one SKU that lacks seats at intake.
type SeatShortage struct {
	SKU       string `json:"sku_id"`
	Needed    int    `json:"needed"`
	Available int    `json:"available"`
}

// ReportRow is one user's line in the confirmation report.
type ReportRow struct {
	UserID            string   `json:"user_id"`
	DisplayName       string   `json:"display_name"`
	UserPrincipalName string   `json:"user_principal_name"`
	Status            string   `json:"status"`
	Assigned          []string `json:"assigned"`
	Revoked           []string `json:"revoked"`
	Licenses          []string `json:"licenses"`
	UsageLocation     *string  `json:"usage_location"`
	Error             *Error   `json:"-"`
	// PlansChanged are the SKUs the user held whose disabled plans the
	// operation changed (no seat taken); absent when there are none.
	PlansChanged []string `json:"plans_changed,omitempty"`
	// DisabledPlans are, for the SKUs the change assigned or whose plans
	// it updated, the service plans it left off (an empty list: every plan
	// on); absent when the change set no plans.
	DisabledPlans map[string][]string `json:"disabled_plans,omitempty"`
	// LicenseSources say how each license in Licenses is held, when the
	// user inherits any from a group (group licensing); nil otherwise.
	LicenseSources []LicenseSource `json:"license_sources,omitempty"`
	// Note is set when the change succeeded with a remark: a revoked license
	// the user still holds through a group.
	Note string `json:"note,omitempty"`
}

// Operation sources: who started an operation.
const (
	SourceAPI     = "api"
	SourceCleanup = "cleanup"
	// SourceUndo reverses another operation (Operation.UndoOf).
	SourceUndo = "undo"
)
