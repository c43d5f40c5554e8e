package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/licenseops/licenseops/licensing"
)

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
	writeJSON(w, licensing.HTTPStatus(code), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = newEncoder(w).Encode(v)
}

// newEncoder returns the JSON encoder of every answer: it writes <, > and &
// as they are. The answers are JSON for programs, not HTML, and escaping
// them turns links (?page=2&page_size=50) and messages (Bearer <token>)
// into \u0026 and \u003c for every reader of a raw body or a log.
func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// marshalJSON is json.Marshal with newEncoder's escaping, for answers built
// ahead of writing (stored idempotent responses). Like Encode, it ends the
// JSON with a newline.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := newEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func invalid(format string, args ...any) error {
	return licensing.Errorf(licensing.CodeInvalidRequest, format, args...)
}
