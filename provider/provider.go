// Package provider is the boundary between licenseops and a license
// directory: the system that really holds users' licenses (Microsoft Entra ID
// through Microsoft Graph, or a simulator of it). The worker calls the small
// Directory interface once per user; implementations live in subpackages
// (msgraph, and the graphsim simulator that tests and benchmarks point it at).
//
// Every failure a Directory returns is an *Error whose Kind tells the caller
// what to do next: wait and retry, retry with backoff, or record the user's
// outcome Code and stop. The directory itself never retries throttled or
// transient calls: the worker's task retries do, so that a throttled user
// frees its worker slot for the wait instead of sleeping in it.
package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/licenseops/licenseops/licensing"
)

// AddLicense is one license to assign.
type AddLicense struct {
	// SKU is the directory's SKU ID (a GUID in Microsoft Graph).
	SKU string
	// DisabledPlans are service plans of the SKU to leave switched off.
	DisabledPlans []string
}

// Change is one user's license change, made in one all-or-nothing call.
type Change struct {
	UserID string
	Add    []AddLicense
	// Remove are SKU IDs to take away.
	Remove []string
}

// SubscribedSKU is a product the tenant has bought seats of.
type SubscribedSKU struct {
	SKU        string
	PartNumber string
	// Enabled is the number of seats bought and active (Graph's
	// prepaidUnits.enabled); seats in warning or suspended state are not
	// assignable and are not counted.
	Enabled int
	// Consumed is the number of seats assigned to users.
	Consumed int
	// ServicePlans are the plans the product bundles (Graph's
	// servicePlans), which a license may switch off one by one.
	ServicePlans []ServicePlan
}

// ServicePlan is one plan of a product.
type ServicePlan struct {
	ID   string // Graph's servicePlanId
	Name string // Graph's servicePlanName
}

// Available returns the seats that can still be assigned. Consumed can
// exceed Enabled when seats lapse into warning or suspended state while still
// assigned; that leaves nothing to assign, not a negative amount.
func (s SubscribedSKU) Available() int { return max(s.Enabled-s.Consumed, 0) }

// User is a user of the directory as licenseops imports it.
type User struct {
	ID                string
	UserPrincipalName string
	DisplayName       string
	// UsageLocation is an ISO 3166-1 alpha-2 code, empty when unset.
	UsageLocation  string
	AccountEnabled bool
	// LastSignInAt is nil when the user never signed in or the directory
	// does not report sign-ins (Graph needs Entra ID P1 and AuditLog.Read.All).
	LastSignInAt *time.Time
	// Licenses are the SKU IDs the user holds, sorted.
	Licenses []string
	// DisabledPlans are the plans switched off in the user's licenses, by
	// SKU, for the licenses with any.
	DisabledPlans map[string][]string
	// LicenseStates say how each license is (or failed to be) given to the
	// user, in a directory with group licensing (Graph's
	// licenseAssignmentStates); nil when the directory does not report it,
	// and every license is then direct.
	LicenseStates []LicenseState
}

// LicenseState is one assignment of a license to a user: direct, or by one
// group. A license assigned directly and by two groups has three.
type LicenseState struct {
	SKU string
	// Group is the ID of the group that assigns the license, "" for a
	// direct assignment.
	Group string
	// State is the directory's state: Active, ActiveWithError, Disabled or
	// Error. A license in Error is not held.
	State string
	// Error is the reason of a failed assignment (CountViolation,
	// MutuallyExclusiveViolation, ...), "" or "None" when there is none.
	Error string
}

// Failed reports whether the assignment did not give the user the license.
func (s LicenseState) Failed() bool { return s.State == "Error" || s.State == "Disabled" }

// HasError reports whether the directory records an error for the assignment.
func (s LicenseState) HasError() bool { return s.Error != "" && s.Error != "None" }

// Directory is a license directory. Implementations are safe for concurrent
// use by many goroutines and bound their own call rate per tenant.
type Directory interface {
	// Apply assigns and revokes one user's licenses in one all-or-nothing
	// call (Graph: POST /users/{id}/assignLicense).
	//
	// It is idempotent, so that a retry after a lost answer is safe:
	// assigning a SKU the user holds changes nothing (and consumes no seat),
	// and revoking one the user does not hold succeeds. An empty change
	// makes no call. Revoking a SKU the user holds only through a group
	// fails permanently with code InheritedFromGroup; revoking one it holds
	// directly and through a group removes the direct assignment only.
	Apply(ctx context.Context, tenantID string, ch Change) error

	// UserDisabledPlans returns every SKU the user holds now, each with the
	// service plans switched off in it (empty: every plan on). It reads
	// only; the worker calls it to resume a change after a crash between
	// the directory call and recording its outcome.
	UserDisabledPlans(ctx context.Context, tenantID, userID string) (map[string][]string, error)

	// SetUsageLocation sets the user's usage location (ISO 3166-1 alpha-2),
	// which Graph requires before it assigns a license. Setting the value
	// the user already has is a harmless no-op.
	SetUsageLocation(ctx context.Context, tenantID, userID, location string) error

	// SubscribedSKUs returns the tenant's products and seat counts. It reads only.
	SubscribedSKUs(ctx context.Context, tenantID string) ([]SubscribedSKU, error)

	// ListUsers calls page with every user of the tenant, one directory page
	// at a time, in the directory's order. It reads only; an error from page
	// stops the listing and is returned as is. A failure part-way through
	// means starting over, which is safe because nothing was changed.
	ListUsers(ctx context.Context, tenantID string, page func([]User) error) error
}

// GroupNamer is a Directory that can name the groups users inherit
// licenses from (group-based licensing). It is optional: without it, or
// when it fails, groups are shown by their IDs.
type GroupNamer interface {
	// GroupNames returns the display names of the groups with the IDs, by
	// ID; groups that do not exist (any more) are left out. It reads only.
	GroupNames(ctx context.Context, tenantID string, ids []string) (map[string]string, error)
}

// Kind classifies a directory failure for the caller's retry policy.
type Kind int

// Kinds of directory failures. The zero Kind is not used by implementations.
const (
	// Throttled: the directory asked to slow down (HTTP 429, 503). Retry
	// after Error.RetryAfter when it is set, else back off exponentially.
	Throttled Kind = iota + 1
	// Transient: timeouts, 5xx, connection errors. Retry with backoff.
	Transient
	// Permanent: the directory refused this change and will refuse it again
	// (other 4xx). Do not retry; record Error.Code as the user's outcome.
	Permanent
)

// String returns the kind's lowercase name, used as a bounded metric label.
func (k Kind) String() string {
	switch k {
	case Throttled:
		return "throttled"
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	default:
		return "unknown"
	}
}

// Error is a classified directory failure.
type Error struct {
	Kind Kind
	// Code is the per-user outcome code to record if the caller gives up
	// now: for Permanent errors the one that fits (UsageLocationMissing,
	// CountViolation, DependencyViolation, MutuallyExclusiveViolation,
	// ProhibitedInUsageLocationViolation, InheritedFromGroup, else
	// ProviderError); for Throttled
	// ProviderThrottled; for Transient ProviderError.
	Code licensing.Code
	// Message is a sentence for the confirmation report: what the directory
	// said and what to do about it. It never holds credentials.
	Message string
	// RetryAfter is how long the directory asked the caller to wait
	// (Retry-After); 0 when it did not say.
	RetryAfter time.Duration
	// Status is the HTTP status of the answer; 0 when there was none
	// (timeout, connection error).
	Status int
	// Err is the underlying error (a timeout, a network error, the caller's
	// context), if any. Error.Unwrap returns it.
	Err error
}

// Error implements the error interface.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("license directory: ")
	b.WriteString(e.Kind.String())
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	fmt.Fprintf(&b, ": %s: %s", e.Code, e.Message)
	return b.String()
}

// Unwrap returns the underlying error, so that errors.Is(err,
// context.Canceled) sees through a classified failure.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter returns the wait the directory asked for when err is a
// throttled failure that said how long to wait. It is meant for asynq's
// RetryDelayFunc, which receives the handler's error (wrapped or not).
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.Kind == Throttled && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// IsPermanent reports whether err is a directory failure that retrying
// cannot fix. Errors that are not an *Error are not permanent: an unknown
// failure is retried rather than recorded as the user's final outcome.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == Permanent
}

// Sources reads the user's LicenseStates: how each held license is held,
// for the licenses inherited from at least one group (by SKU; nil when
// there are none, and every license is direct), and the group licenses
// the directory failed to give or reports an error for. A license held
// with no state at all is direct, as it is in a directory without groups.
func (u User) Sources() (map[string]licensing.LicenseSource, []licensing.LicenseError) {
	var sources map[string]licensing.LicenseSource
	var errs []licensing.LicenseError
	direct := make(map[string]bool)
	for _, s := range u.LicenseStates {
		if s.Group != "" && s.HasError() {
			errs = append(errs, licensing.LicenseError{SKU: s.SKU, GroupID: s.Group, Error: s.Error})
		}
		if s.Failed() || !slices.Contains(u.Licenses, s.SKU) {
			continue
		}
		if s.Group == "" {
			direct[s.SKU] = true
			continue
		}
		if sources == nil {
			sources = make(map[string]licensing.LicenseSource)
		}
		src := sources[s.SKU]
		src.SKU = s.SKU
		if !slices.Contains(src.InheritedFrom, s.Group) {
			src.InheritedFrom = append(src.InheritedFrom, s.Group)
		}
		sources[s.SKU] = src
	}
	for sku, src := range sources {
		slices.Sort(src.InheritedFrom)
		src.Direct = direct[sku]
		sources[sku] = src
	}
	return sources, errs
}
