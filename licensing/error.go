// Package licensing is the domain of licenseops: products and their rules,
// per-user evaluation of a license change, and the stable error codes that
// every layer speaks. It depends on the standard library only.
package licensing

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. Clients branch on it, so a
// code once published never changes its meaning.
type Code string

// Request-level codes (mapped to HTTP statuses in one place, HTTPStatus).
const (
	CodeInvalidRequest       Code = "InvalidRequest"
	CodeUnauthenticated      Code = "Unauthenticated"
	CodeForbidden            Code = "Forbidden"
	CodeNotFound             Code = "NotFound"
	CodeMethodNotAllowed     Code = "MethodNotAllowed"
	CodeConflict             Code = "Conflict"
	CodeIdempotencyKeyInUse  Code = "IdempotencyKeyInUse"
	CodeIdempotencyKeyReused Code = "IdempotencyKeyReused"
	CodeSeatsInUse           Code = "SeatsInUse"
	CodeTooLarge             Code = "TooLarge"
	CodeUnknownUsers         Code = "UnknownUsers"
	CodeUnknownSkus          Code = "UnknownSkus"
	// CodeUnknownServicePlans: disabled_plans names plans that the product's
	// service_plans do not list.
	CodeUnknownServicePlans Code = "UnknownServicePlans"
	// CodeUnknownEvents: a webhook names event types that do not exist.
	CodeUnknownEvents Code = "UnknownEvents"
	// CodeWebhookTargetRefused: a webhook's URL points where webhooks may
	// never go (link-local, cloud metadata, plain http off loopback).
	CodeWebhookTargetRefused Code = "WebhookTargetRefused"
	CodeRateLimited          Code = "RateLimited"
	CodeNotMigrated          Code = "NotMigrated"
	CodeUnavailable          Code = "Unavailable"
	CodeInternal             Code = "Internal"
)

// Per-user outcome codes of a license operation (the API reference,
// docs/api.md, "Per-user outcome codes").
const (
	CodeCountViolation                     Code = "CountViolation"
	CodeDependencyViolation                Code = "DependencyViolation"
	CodeMutuallyExclusiveViolation         Code = "MutuallyExclusiveViolation"
	CodeProhibitedInUsageLocationViolation Code = "ProhibitedInUsageLocationViolation"
	CodeUsageLocationMissing               Code = "UsageLocationMissing"
	CodeUserDisabled                       Code = "UserDisabled"
	CodeProviderThrottled                  Code = "ProviderThrottled"
	CodeProviderError                      Code = "ProviderError"
	// CodeChangedSince: an undo left the user alone because another change
	// reached the user after the operation it reverses.
	CodeChangedSince Code = "ChangedSince"
	// CodeInheritedFromGroup: a revoke of a license the user holds only
	// through a group (Entra ID group-based licensing), which the directory
	// cannot remove from the user; decided before any directory call.
	CodeInheritedFromGroup Code = "InheritedFromGroup"
)

// Error is the one error type that carries a code to the caller. Anything
// that is not an *Error is an internal error: logged, and shown to clients
// only as CodeInternal.
type Error struct {
	Code    Code
	Message string
	// Details is optional structured data for the client (offending IDs,
	// per-SKU seat counts). It must be JSON-encodable.
	Details any
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or CodeInternal if err carries none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-facing message of err. Internal errors get
// a generic sentence so that no implementation detail leaks.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred; it has been logged. Retry later, and report it if it persists."
}
