package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// The API's error codes (licensing.Code's values), for Error.Code,
// ErrorCode and ReportRow.Error.Code. They are untyped, so they compare
// with both. A code once published never changes its meaning.
const (
	// Codes of refused requests.
	CodeInvalidRequest       = "InvalidRequest"       // 400: the request is malformed; the message says how
	CodeUnauthenticated      = "Unauthenticated"      // 401: no token, or an unknown or revoked one
	CodeForbidden            = "Forbidden"            // 403: the token's role may not do this
	CodeNotFound             = "NotFound"             // 404: no such object for this partner, or no such endpoint
	CodeMethodNotAllowed     = "MethodNotAllowed"     // 405: the endpoint exists with other methods (Allow header)
	CodeConflict             = "Conflict"             // 409: the object's state does not allow it
	CodeIdempotencyKeyInUse  = "IdempotencyKeyInUse"  // 409: a request with this key is still being handled
	CodeSeatsInUse           = "SeatsInUse"           // 409: SeatsInUseDetails
	CodeTooLarge             = "TooLarge"             // 413: split the request
	CodeIdempotencyKeyReused = "IdempotencyKeyReused" // 422: the key was used for another request
	CodeUnknownUsers         = "UnknownUsers"         // 422: UnknownUsersDetails
	CodeUnknownSkus          = "UnknownSkus"          // 422: UnknownSkusDetails
	CodeRateLimited          = "RateLimited"          // 429: RateLimitedDetails; calls wait these out
	CodeNotMigrated          = "NotMigrated"          // 503: the database schema is behind the server
	CodeUnavailable          = "Unavailable"          // 503: a dependency is down; retry later
	CodeInternal             = "Internal"             // 500: logged on the server

	// Codes of users' outcomes in a report (ReportRow.Error.Code), and
	// CountViolation also of a refused operation (409,
	// CountViolationDetails).
	CodeCountViolation                     = "CountViolation"
	CodeDependencyViolation                = "DependencyViolation"
	CodeMutuallyExclusiveViolation         = "MutuallyExclusiveViolation"
	CodeProhibitedInUsageLocationViolation = "ProhibitedInUsageLocationViolation"
	CodeUsageLocationMissing               = "UsageLocationMissing"
	CodeUserDisabled                       = "UserDisabled"
	CodeProviderThrottled                  = "ProviderThrottled"
	CodeProviderError                      = "ProviderError"
	// CodeChangedSince: an undo left the user alone, because another
	// change reached the user after the operation it reverses.
	CodeChangedSince = "ChangedSince"
	// CodeInheritedFromGroup: a revoke of a license the user holds only
	// through a group in Microsoft Entra ID; remove the user from the
	// group, or the license from the group.
	CodeInheritedFromGroup = "InheritedFromGroup"
)

// Error is an answer of the API outside 2xx: its HTTP status and the code,
// message and details of its error body,
// {"error": {"code": …, "message": …, "details": …}}. Get one with
// errors.As, or only its code with ErrorCode.
type Error struct {
	// StatusCode is the HTTP status, for example 409.
	StatusCode int
	// Code is the stable, machine-readable error code, one of the Code…
	// constants, for example CodeCountViolation. It is "" when the
	// answer had no licenseops error body (a proxy's error page, or a
	// server that is not licenseops); Message then says so.
	Code string
	// Message is the API's sentence for people: what went wrong and what
	// to do about it.
	Message string
	// Details is the optional structured data of some codes, undecoded;
	// see DecodeDetails.
	Details json.RawMessage
}

// Error returns the code, the message and the HTTP status in one line, for
// example `NotFound: customer "x" does not exist (HTTP 404)`.
func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
	}
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.StatusCode)
}

// DecodeDetails decodes the error's details into v, typically one of
// CountViolationDetails, UnknownUsersDetails, UnknownSkusDetails,
// SeatsInUseDetails or RateLimitedDetails as the code says. It fails when
// the error has no details.
func (e *Error) DecodeDetails(v any) error {
	if len(e.Details) == 0 {
		return fmt.Errorf("%s error has no details", e.codeOrStatus())
	}
	if err := json.Unmarshal(e.Details, v); err != nil {
		return fmt.Errorf("decode the details of a %s error: %w", e.codeOrStatus(), err)
	}
	return nil
}

func (e *Error) codeOrStatus() string {
	if e.Code != "" {
		return e.Code
	}
	return fmt.Sprintf("HTTP %d", e.StatusCode)
}

// ErrorCode returns the API error code of err (an *Error, possibly
// wrapped), or "" when err is nil or not an answer of the API (a transport
// failure, a cancelled context).
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// DecodeError is a 2xx answer whose body could not be decoded: a truncated
// stream, or a server that is not licenseops.
type DecodeError struct {
	// Method and Path are those of the request.
	Method, Path string
	// Err is the decoder's error; io.ErrUnexpectedEOF for a report cut short.
	Err error
}

// Error says which answer could not be decoded and why.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s %s: decode the answer: %v", e.Method, e.Path, e.Err)
}

// Unwrap returns the decoder's error.
func (e *DecodeError) Unwrap() error { return e.Err }
