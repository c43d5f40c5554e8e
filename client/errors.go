package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an answer of the API outside 2xx: its HTTP status and the code,
// message and details of its error body,
// {"error": {"code": …, "message": …, "details": …}}. Get one with
// errors.As, or only its code with ErrorCode.
type Error struct {
	// StatusCode is the HTTP status, for example 409.
	StatusCode int
	// Code is the stable, machine-readable error code, for example
	// "CountViolation" (licensing.Code's constants). It is "" when the
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
	Method, Path string
	Err          error
}

// Error says which answer could not be decoded and why.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s %s: decode the answer: %v", e.Method, e.Path, e.Err)
}

// Unwrap returns the decoder's error.
func (e *DecodeError) Unwrap() error { return e.Err }
