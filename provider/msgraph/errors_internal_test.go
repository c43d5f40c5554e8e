package msgraph

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"2.128", 2128 * time.Millisecond}, // the form in Graph's throttling documentation
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.header, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}

// TestClassify pins the mapping of Graph's answers, with messages in the
// words Graph uses, so that a change to the rules shows here.
func TestClassify(t *testing.T) {
	t.Parallel()
	body := func(code, msg string) []byte {
		return []byte(`{"error":{"code":"` + code + `","message":"` + msg + `","innerError":{"date":"2025-01-02T03:04:05"}}}`)
	}
	tests := []struct {
		name   string
		status int
		header http.Header
		body   []byte
		kind   provider.Kind
		code   licensing.Code
		after  time.Duration
		msg    string // fragment of the message
	}{
		{"429 with Retry-After", 429, http.Header{"Retry-After": {"5"}}, body("TooManyRequests", "Please retry again later."), provider.Throttled, licensing.CodeProviderThrottled, 5 * time.Second, "throttling"},
		{"503 with Retry-After", 503, http.Header{"Retry-After": {"12"}}, body("serviceNotAvailable", "Service unavailable."), provider.Throttled, licensing.CodeProviderThrottled, 12 * time.Second, "Service unavailable"},
		{"503 without Retry-After", 503, nil, nil, provider.Throttled, licensing.CodeProviderThrottled, 0, "Service Unavailable"},
		{"500", 500, nil, body("generalException", "An unexpected error occurred."), provider.Transient, licensing.CodeProviderError, 0, "unexpected"},
		{"502 with HTML", 502, nil, []byte("<html>bad gateway</html>"), provider.Transient, licensing.CodeProviderError, 0, "Bad Gateway"},
		{"504", 504, nil, nil, provider.Transient, licensing.CodeProviderError, 0, ""},
		{"408", 408, nil, nil, provider.Transient, licensing.CodeProviderError, 0, ""},
		{"401", 401, nil, body("InvalidAuthenticationToken", "Access token validation failure."), provider.Permanent, licensing.CodeProviderError, 0, "LicenseAssignment.ReadWrite.All"},
		{"403", 403, nil, body("Authorization_RequestDenied", "Insufficient privileges to complete the operation."), provider.Permanent, licensing.CodeProviderError, 0, "User.ReadWrite.All plus Organization.Read.All"},
		{"404", 404, nil, body("Request_ResourceNotFound", "Resource 'x' does not exist or one of its queried reference-property objects are not present."), provider.Permanent, licensing.CodeProviderError, 0, "deleted"},
		{"usage location", 400, nil, body("Request_BadRequest", "License assignment cannot be done for user with invalid usage location."), provider.Permanent, licensing.CodeUsageLocationMissing, 0, "Set the user's usage location"},
		{"no licenses", 400, nil, body("Request_BadRequest", "Subscription with SKU 'c7df2760' does not have any available licenses."), provider.Permanent, licensing.CodeCountViolation, 0, "Buy more"},
		{"dependency", 400, nil, body("Request_BadRequest", "License assignment failed because service plan 41781fb2 depends on the service plan(s) 3e26ee1f."), provider.Permanent, licensing.CodeDependencyViolation, 0, "depends"},
		{"mutually exclusive", 400, nil, body("Request_BadRequest", "License assignment failed because service plans 4828c8ec,efb87545 are mutually exclusive."), provider.Permanent, licensing.CodeMutuallyExclusiveViolation, 0, "mutually exclusive"},
		{"prohibited", 400, nil, body("Request_BadRequest", "License assignment failed because the license X is not available in the user's usage location CN."), provider.Permanent, licensing.CodeProhibitedInUsageLocationViolation, 0, "cannot be assigned"},
		{"code is already ours", 400, nil, body("CountViolation", "No seats."), provider.Permanent, licensing.CodeCountViolation, 0, "No seats."},
		{"other 400", 400, nil, body("Request_BadRequest", "Invalid value specified for property 'usageLocation' of resource 'User'."), provider.Permanent, licensing.CodeProviderError, 0, "usageLocation"},
		{"409", 409, nil, nil, provider.Permanent, licensing.CodeProviderError, 0, "Conflict"},
	}
	now := time.Now()
	for _, tt := range tests {
		e := classify(tt.status, tt.header, tt.body, now)
		if e.Kind != tt.kind || e.Code != tt.code || e.RetryAfter != tt.after || e.Status != tt.status {
			t.Errorf("%s: got kind %s code %s after %s status %d", tt.name, e.Kind, e.Code, e.RetryAfter, e.Status)
		}
		if !strings.Contains(e.Message, tt.msg) {
			t.Errorf("%s: message %q lacks %q", tt.name, e.Message, tt.msg)
		}
	}
}
