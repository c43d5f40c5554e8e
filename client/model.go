package client

import (
	"encoding/json"
	"time"

	"github.com/licenseops/licenseops/licensing"
)

// Answers the API sends exactly as package licensing declares them.
type (
	// Operation is a bulk license change and its progress.
	Operation = licensing.Operation
	// Customer is a tenant the partner manages.
	Customer = licensing.Customer
	// Directory says where a customer's licenses live: DirectoryLocal or
	// DirectoryMSGraph with the customer's tenant ID.
	Directory = licensing.Directory
	// User is a user of a customer with the licenses it holds.
	User = licensing.User
	// Product is a SKU of the partner's catalog with its rules.
	Product = licensing.Product
	// SummaryUser is a selected user in a LicenseSummary.
	SummaryUser = licensing.SummaryUser
	// CleanupRule picks the users a cleanup policy takes licenses back
	// from, and which licenses.
	CleanupRule = licensing.CleanupRule
	// CleanupRun is one run of a cleanup policy with the progress of its
	// operation.
	CleanupRun = licensing.CleanupRun
	// Replacement takes From from a user who holds it and assigns To
	// instead (OperationRequest.Replace).
	Replacement = licensing.Replacement
	// AuditEntry is one change made through the API.
	AuditEntry = licensing.AuditEntry
	// Readiness is the answer of /readyz: Postgres and Redis "ok" or what
	// failed, and how many workers are alive.
	Readiness = licensing.Readiness
	// WorkersAlive counts the worker processes with a heartbeat in Redis.
	WorkersAlive = licensing.WorkersAlive
)

// Directory kinds, for CustomerRequest.Directory.
const (
	DirectoryLocal   = licensing.DirectoryLocal
	DirectoryMSGraph = licensing.DirectoryMSGraph
)

// Cleanup rule kinds, for CleanupRule.Kind.
const (
	RuleDisabledAccounts = licensing.RuleDisabledAccounts
	RuleInactive         = licensing.RuleInactive
)

// Operation statuses (Operation.Status) and per-user statuses
// (ReportRow.Status).
const (
	StatusScheduled           = licensing.StatusScheduled
	StatusQueued              = licensing.StatusQueued
	StatusRunning             = licensing.StatusRunning
	StatusCompleted           = licensing.StatusCompleted
	StatusCompletedWithErrors = licensing.StatusCompletedWithErrors
	StatusCancelled           = licensing.StatusCancelled

	ItemPending     = licensing.ItemPending
	ItemApplying    = licensing.ItemApplying
	ItemSucceeded   = licensing.ItemSucceeded
	ItemFailed      = licensing.ItemFailed
	ItemWouldRevoke = licensing.ItemWouldRevoke
	ItemCancelled   = licensing.ItemCancelled
)

// ---------------------------------------------------------------- requests

// ProductRequest is the body of PutProduct: the product's whole definition,
// which replaces any earlier one.
type ProductRequest struct {
	Name       string `json:"name"`
	PartNumber string `json:"part_number,omitempty"`
	// Requires lists SKUs a user must hold to hold this one.
	Requires []string `json:"requires"`
	// Excludes lists SKUs that may not be held together with this one.
	Excludes []string `json:"excludes"`
	// AllowedLocations, when not nil, are the only usage locations (ISO
	// 3166-1 alpha-2) where the SKU may be assigned; nil means anywhere,
	// an empty list nowhere.
	AllowedLocations []string `json:"allowed_locations"`
	// ProhibitedLocations are usage locations where it may not be assigned.
	ProhibitedLocations []string `json:"prohibited_locations"`
	// ServicePlans, when not nil, replace the plans the product bundles;
	// nil keeps the plans it has (a directory sync imports them).
	ServicePlans []ServicePlan `json:"service_plans,omitempty"`
}

// ServicePlan is one plan of a product, by the directory's plan ID.
type ServicePlan = licensing.ServicePlan

// CustomerRequest is the body of CreateCustomer.
type CustomerRequest struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// DefaultUsageLocation is the usage location of users that have none.
	DefaultUsageLocation *string `json:"default_usage_location,omitempty"`
	// Directory says where the customer's licenses live; nil means local.
	Directory *Directory `json:"directory,omitempty"`
}

// CustomerUpdate is the body of UpdateCustomer: nil fields keep their value.
type CustomerUpdate struct {
	Name                 *string `json:"name,omitempty"`
	DefaultUsageLocation *string `json:"default_usage_location,omitempty"`
}

// UserImport is one user of ImportUsers. A user already there is updated;
// nil fields leave it as it is or take their defaults.
type UserImport struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"user_principal_name"`
	// DisplayName defaults to UserPrincipalName.
	DisplayName    string     `json:"display_name,omitempty"`
	UsageLocation  *string    `json:"usage_location,omitempty"`
	AccountEnabled *bool      `json:"account_enabled,omitempty"`
	LastSignInAt   *time.Time `json:"last_sign_in_at,omitempty"`
}

// UserUpdate is the body of UpdateUser. UsageLocation is required: it is
// the only field a user's update may change.
type UserUpdate struct {
	UsageLocation *string `json:"usage_location,omitempty"`
}

// OperationRequest is the body of CreateOperation: what to assign and
// revoke for which users. Repeated IDs count once.
type OperationRequest struct {
	UserIDs []string `json:"user_ids"`
	Assign  []string `json:"assign,omitempty"`
	Revoke  []string `json:"revoke,omitempty"`
	// Replace swaps licenses only for the users who hold a pair's From
	// when their change is applied; the others are left as they are.
	Replace []Replacement `json:"replace,omitempty"`
	// CopyFrom gives the users the licenses this user holds (and nothing
	// else goes with it); Exact also takes away the licenses it lacks.
	CopyFrom string `json:"copy_from,omitempty"`
	Exact    bool   `json:"exact,omitempty"`
	// DisabledPlans switches service plans off, by SKU of Assign (or a
	// Replace's To): for users who get the SKU, and for those who hold it
	// already, whose plans are updated without taking a seat.
	DisabledPlans map[string][]string `json:"disabled_plans,omitempty"`
	// UsageLocation, when set, is given to every user before the licenses
	// are evaluated.
	UsageLocation *string `json:"usage_location,omitempty"`
	// AllowPartial assigns the seats there are when there are too few for
	// every user, instead of refusing the operation with CountViolation.
	AllowPartial bool `json:"allow_partial,omitempty"`
	// NotBefore, when set, schedules the operation: it is
	// StatusScheduled until then, its seats are checked now and granted
	// when it starts. PreviewOperation ignores it.
	NotBefore *time.Time `json:"not_before,omitempty"`
}

// OperationPreview is the answer of PreviewOperation: what an operation
// would do, worked out by the code the workers run on what the directory
// holds now, with nothing written or queued.
type OperationPreview struct {
	DryRun     bool   `json:"dry_run"`
	CustomerID string `json:"customer_id"`
	// Total counts the distinct users; WouldSucceed and WouldFail split them.
	Total        int `json:"total"`
	WouldSucceed int `json:"would_succeed"`
	WouldFail    int `json:"would_fail"`
	// SKUs has an entry for every SKU to assign: the selected users that do
	// not hold it yet (Needed) and the seats free now (Available).
	SKUs []SKUShortage `json:"skus"`
	// Results are the users' predicted report rows, in the report's order,
	// with Status StatusWouldSucceed or StatusWouldFail and, for the
	// latter, the error the user would get.
	Results []ReportRow `json:"results"`
}

// Statuses of a user in an OperationPreview.
const (
	StatusWouldSucceed = "would_succeed"
	StatusWouldFail    = "would_fail"
)

// CleanupPolicyRequest is the body of CreateCleanupPolicy, where Name,
// Schedule and Rule are required and the other fields default to UTC, a
// dry run and enabled, and of UpdateCleanupPolicy, where nil fields keep
// their value and a rule is replaced whole.
type CleanupPolicyRequest struct {
	Name *string `json:"name,omitempty"`
	// Schedule is a cron expression of five fields, for example "0 2 * * *".
	Schedule *string `json:"schedule,omitempty"`
	// TimeZone is an IANA time zone such as "Europe/Warsaw".
	TimeZone *string      `json:"time_zone,omitempty"`
	Rule     *CleanupRule `json:"rule,omitempty"`
	DryRun   *bool        `json:"dry_run,omitempty"`
	Enabled  *bool        `json:"enabled,omitempty"`
	// MaxChanges and MaxPercent set the most users a live run may change,
	// in users and in percent of the customer's users; a new policy
	// without them gets 500 and 10. RemoveMaxChanges and RemoveMaxPercent
	// send null instead, which removes that limit.
	MaxChanges       *int     `json:"max_changes,omitempty"`
	MaxPercent       *float64 `json:"max_percent,omitempty"`
	RemoveMaxChanges bool     `json:"-"`
	RemoveMaxPercent bool     `json:"-"`
}

// MarshalJSON encodes the request, with null for a removed limit.
func (r CleanupPolicyRequest) MarshalJSON() ([]byte, error) {
	type plain CleanupPolicyRequest
	b, err := json.Marshal(plain(r))
	if err != nil || !r.RemoveMaxChanges && !r.RemoveMaxPercent {
		return b, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	if r.RemoveMaxChanges {
		fields["max_changes"] = json.RawMessage("null")
	}
	if r.RemoveMaxPercent {
		fields["max_percent"] = json.RawMessage("null")
	}
	return json.Marshal(fields)
}

// ListOptions choose a page of a list; zero values take the API's
// defaults (page 1, 50 entries).
type ListOptions struct {
	Page     int
	PageSize int
}

// UserListOptions choose a page of ListUsers and filter it.
type UserListOptions struct {
	Page     int
	PageSize int
	// Query keeps users whose display or principal name contains it,
	// ignoring case.
	Query string
	// LicenseErrors keeps the users with a group licensing error as of the
	// last directory sync (User.LicenseErrors).
	LicenseErrors bool
}

// ---------------------------------------------------------------- answers

// Paging is the position of a page in its list, in every …Page answer.
type Paging struct {
	Page       int       `json:"page"`
	PageSize   int       `json:"page_size"`
	Total      int       `json:"total"`
	TotalPages int       `json:"total_pages"`
	Links      PageLinks `json:"links"`
}

// PageLinks are the paths of the neighbouring pages, with the list's
// query parameters; Prev and Next are nil at the ends.
type PageLinks struct {
	First string  `json:"first"`
	Prev  *string `json:"prev"`
	Next  *string `json:"next"`
	Last  string  `json:"last"`
}

// UserPage is a page of a customer's users.
type UserPage struct {
	Users []User `json:"users"`
	Paging
}

// OperationPage is a page of a customer's operations, newest first.
type OperationPage struct {
	Operations []Operation `json:"operations"`
	Paging
}

// AuditPage is a page of the partner's audit log, newest first.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Paging
}

// CleanupRunPage is a page of a cleanup policy's runs, newest first.
type CleanupRunPage struct {
	Runs []CleanupRun `json:"runs"`
	Paging
}

// ImportResult counts the users ImportUsers created and updated.
type ImportResult struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
}

// Subscription is a customer's seats of one SKU. BuyMoreURL is set when no
// seat is available.
type Subscription struct {
	licensing.Subscription
	BuyMoreURL *string `json:"buy_more_url"`
}

// SyncStatus is the answer of SyncCustomer: a sync is queued.
type SyncStatus struct {
	CustomerID string `json:"customer_id"`
	Status     string `json:"status"`
}

// OperationLinks are the paths of an operation and of its report.
type OperationLinks struct {
	Self   string `json:"self"`
	Report string `json:"report"`
}

// UndoOptions tune UndoOperation.
type UndoOptions struct {
	// AllowPartial starts the undo when seats to give back are short; the
	// users that get no seat fail with CountViolation.
	AllowPartial bool
	// IdempotencyKey, when set, makes a repeated call return the same undo.
	IdempotencyKey string
}

// AcceptedOperation is the answer of CreateOperation and UndoOperation: the operation is
// durable and queued. WaitOperation follows it to its end.
type AcceptedOperation struct {
	ID         string `json:"id"`
	CustomerID string `json:"customer_id"`
	Status     string `json:"status"`
	Total      int    `json:"total"`
	// NotBefore is when a scheduled operation starts (nil: at once).
	NotBefore *time.Time     `json:"not_before,omitempty"`
	Links     OperationLinks `json:"links"`
}

// Summary states: whether all, some or none of the selected users hold a
// product.
const (
	SummaryAll  = "all"
	SummarySome = "some"
	SummaryNone = "none"
)

// LicenseSummary is the Manage-licenses view of a selection of users: for
// every subscription of the customer, which of them hold it.
type LicenseSummary struct {
	Users    []SummaryUser    `json:"users"`
	Products []SummaryProduct `json:"products"`
}

// SummaryProduct is one subscription in a LicenseSummary.
type SummaryProduct struct {
	SKU       string `json:"sku_id"`
	Name      string `json:"name"`
	Total     int    `json:"total"`
	Available int    `json:"available"`
	// State is SummaryAll, SummarySome or SummaryNone.
	State           string   `json:"state"`
	AssignedUserIDs []string `json:"assigned_user_ids"`
	BuyMoreURL      *string  `json:"buy_more_url"`
	// DirectHolders and InheritedHolders split the holders by how they hold
	// the SKU: directly, or inherited from a group (group-based licensing in
	// Microsoft Entra ID); a user holding it both ways counts in both.
	DirectHolders    int `json:"direct_holders"`
	InheritedHolders int `json:"inherited_holders"`
}

// ReportRow is one user's line of an operation's confirmation report.
// Error, nil for users whose change succeeded, carries the code and message
// of a failure (licensing.ReportRow leaves it out of its own JSON; this
// type reads and writes it as the API does).
type ReportRow struct {
	licensing.ReportRow
}

// reportRowWire is a report row as the API sends it.
type reportRowWire struct {
	*licensing.ReportRow
	Error *struct {
		Code    licensing.Code `json:"code"`
		Message string         `json:"message"`
	} `json:"error"`
}

// UnmarshalJSON decodes a row of the API's report, with its error.
func (r *ReportRow) UnmarshalJSON(b []byte) error {
	r.ReportRow = licensing.ReportRow{}
	w := reportRowWire{ReportRow: &r.ReportRow}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Error != nil {
		r.Error = &licensing.Error{Code: w.Error.Code, Message: w.Error.Message}
	}
	return nil
}

// MarshalJSON encodes the row as the API does, with its error.
func (r ReportRow) MarshalJSON() ([]byte, error) {
	w := reportRowWire{ReportRow: &r.ReportRow}
	if r.Error != nil {
		w.Error = &struct {
			Code    licensing.Code `json:"code"`
			Message string         `json:"message"`
		}{r.Error.Code, r.Error.Message}
	}
	return json.Marshal(w)
}

// CleanupPolicyLinks are the paths of a cleanup policy, of its run and of
// its runs.
type CleanupPolicyLinks struct {
	Self string `json:"self"`
	Run  string `json:"run"`
	Runs string `json:"runs"`
}

// CleanupPolicy is a customer's scheduled cleanup as the API shows it.
type CleanupPolicy struct {
	licensing.CleanupPolicy
	// NextRunAt is the schedule's next tick; nil while disabled.
	NextRunAt *time.Time         `json:"next_run_at"`
	Links     CleanupPolicyLinks `json:"links"`
}

// CleanupRunResult is the answer of RunCleanupPolicy. When users matched,
// ID names the operation the run started (Status "queued", Links set);
// when nobody matched, ID is "" and Status is "nothing_matched".
type CleanupRunResult struct {
	ID           string `json:"id"`
	CustomerID   string `json:"customer_id"`
	Status       string `json:"status"`
	Total        int    `json:"total"`
	DryRun       bool   `json:"dry_run"`
	MatchedUsers int    `json:"matched_users"`
	// Limit is the most users the run could change, set when Status is
	// "blocked".
	Limit   *int            `json:"limit"`
	Message string          `json:"message"`
	Links   *OperationLinks `json:"links"`
	Run     CleanupRun      `json:"run"`
}

// RunNothingMatched is CleanupRunResult.Status when the rule matched no
// user and no operation was started.
const RunNothingMatched = licensing.RunNothingMatched

// RunBlocked is CleanupRunResult.Status when the rule matched more users
// than the policy's limits allow and nothing was changed; run it with
// RunCleanupPolicyConfirmed to go over them.
const RunBlocked = licensing.RunBlocked

// ---------------------------------------------------------------- webhooks

// WebhookRequest is the body of CreateWebhook.
type WebhookRequest struct {
	// URL is https (http only to loopback hosts, unless the server allows it).
	URL string `json:"url"`
	// Events are event types: operation.completed, operation.cancelled,
	// cleanup.completed, cleanup.blocked.
	Events      []string `json:"events"`
	Description string   `json:"description,omitempty"`
}

// WebhookLinks are the URLs of a webhook.
type WebhookLinks struct {
	Self       string `json:"self"`
	Deliveries string `json:"deliveries"`
}

// Webhook is a partner's webhook as the API shows it, never with its secret.
type Webhook struct {
	licensing.Webhook
	Links WebhookLinks `json:"links"`
}

// CreatedWebhook is the answer of CreateWebhook: the webhook and its
// signing secret, which the API never shows again.
type CreatedWebhook struct {
	Webhook
	Secret string `json:"secret"`
}

// WebhookDeliveryPage is a page of a webhook's deliveries, newest first.
type WebhookDeliveryPage struct {
	Deliveries []licensing.WebhookDelivery `json:"deliveries"`
	Paging
}

// ---------------------------------------------------------------- error details

// CountViolationDetails are the details of a CountViolation error: the
// SKUs without enough seats for the operation.
type CountViolationDetails struct {
	SKUs []SKUShortage `json:"skus"`
}

// SKUShortage is one SKU of a CountViolation with where to buy more seats.
type SKUShortage struct {
	SKU        string `json:"sku_id"`
	Needed     int    `json:"needed"`
	Available  int    `json:"available"`
	BuyMoreURL string `json:"buy_more_url"`
}

// UnknownUsersDetails are the details of an UnknownUsers error: the first
// of the unknown users (sorted) and how many there are in all.
type UnknownUsersDetails struct {
	UserIDs []string `json:"user_ids"`
	Count   int      `json:"count"`
}

// UnknownSkusDetails are the details of an UnknownSkus error: the SKUs the
// customer has no subscription for.
type UnknownSkusDetails struct {
	SKUIDs []string `json:"sku_ids"`
}

// SeatsInUseDetails are the details of a SeatsInUse error: a seat total
// below the seats assigned and reserved.
type SeatsInUseDetails struct {
	Consumed     int `json:"consumed"`
	Reserved     int `json:"reserved"`
	MinimumTotal int `json:"minimum_total"`
}

// RateLimitedDetails are the details of a RateLimited error.
type RateLimitedDetails struct {
	RetryAfterSeconds int `json:"retry_after_seconds"`
}
