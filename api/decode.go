package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/licenseops/licenseops/licensing"
)

// Body size limits. A 100,000-user operation with long IDs is about 14 MB.
const (
	maxSmallBody     = 1 << 20
	maxOperationBody = 16 << 20
	maxImportBody    = 64 << 20
)

// decodeJSON decodes the request body strictly into v: unknown fields, wrong
// types, trailing data and oversized bodies are client errors with a
// sentence that names the problem.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return invalid("the body must be JSON; send Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return licensing.Errorf(licensing.CodeTooLarge, "the body is larger than %d bytes; split the request", limit)
		}
		return invalid("could not read the body: %v", err)
	}
	return decodeBytes(body, v)
}

// decodeBytes is the strict decoder behind decodeJSON, separate so it can be fuzzed.
func decodeBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("the body is empty; send a JSON object")
	}
	// encoding/json would turn invalid bytes into U+FFFD, so two different
	// IDs could arrive as one; refuse them instead (JSON is UTF-8 anyway).
	if !utf8.Valid(body) {
		return invalid("the body is not valid UTF-8; send JSON encoded as UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if dec.More() {
		return invalid("the body has data after the JSON object; send exactly one object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("the body has data after the JSON object; send exactly one object")
	}
	return nil
}

func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return invalid("the body is not valid JSON (at byte %d): %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return invalid("the body must be a JSON object, not %s", typ.Value)
		}
		return invalid("field %q must be %s, not %s", field, jsonKind(typ.Type.String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid("the body ends before the JSON object is complete")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalid("unknown field %s; check the field names against the API reference", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return invalid("the body could not be decoded: %v", err)
	}
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "string", goType == "*string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "true or false"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "Time"):
		return "an RFC 3339 time"
	default:
		return fmt.Sprintf("of type %s", goType)
	}
}
