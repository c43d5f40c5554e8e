package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/licenseops/licenseops/licensing"
)

// statusOf maps an error code to its HTTP status. It is the only place that
// does, so a code means the same status everywhere.
func statusOf(code licensing.Code) int {
	switch code {
	case licensing.CodeInvalidRequest:
		return http.StatusBadRequest
	case licensing.CodeUnauthenticated:
		return http.StatusUnauthorized
	case licensing.CodeForbidden:
		return http.StatusForbidden
	case licensing.CodeNotFound:
		return http.StatusNotFound
	case licensing.CodeConflict, licensing.CodeCountViolation, licensing.CodeIdempotencyKeyInUse, licensing.CodeSeatsInUse:
		return http.StatusConflict
	case licensing.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case licensing.CodeIdempotencyKeyReused, licensing.CodeUnknownUsers, licensing.CodeUnknownSkus:
		return http.StatusUnprocessableEntity
	case licensing.CodeRateLimited:
		return http.StatusTooManyRequests
	case licensing.CodeUnavailable, licensing.CodeNotMigrated:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    licensing.Code `json:"code"`
	Message string         `json:"message"`
	Details any            `json:"details,omitempty"`
}

// writeError writes the contract's error body. Only internal errors are
// logged as errors: a client's mistake is not the service's.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := licensing.ErrorCode(err)
	body := errorBody{Error: errorDetail{Code: code, Message: licensing.ErrorMessage(err)}}
	var le *licensing.Error
	if errors.As(err, &le) {
		body.Error.Details = le.Details
	}
	if code == licensing.CodeInternal {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeJSON(w, statusOf(code), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func invalid(format string, args ...any) error {
	return licensing.Errorf(licensing.CodeInvalidRequest, format, args...)
}
