package msgraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
)

// permissionsHint is the advice for 401 and 403 answers from Graph, which
// almost always mean a missing or unconsented application permission.
const permissionsHint = "Check the app registration in the customer's tenant: it needs the application permission " +
	"LicenseAssignment.ReadWrite.All (or User.ReadWrite.All plus Organization.Read.All), with admin consent granted."

// outcomeRule maps a refusal of assignLicense to a per-user outcome code.
// Graph answers all of them with 400 and code Request_BadRequest, so the
// message is what tells them apart; the phrases are lowercase fragments of
// Graph's messages, chosen to survive small rewordings.
type outcomeRule struct {
	code    licensing.Code
	matches func(msg string) bool
	hint    string
}

var outcomeRules = []outcomeRule{
	{
		// Checked first: the licenseops mirror was stale (the group license
		// came after the last sync), so the worker could not refuse it itself.
		code:    licensing.CodeInheritedFromGroup,
		matches: containsAny("inherited from a group", "inherited from group", "assigned via group"),
		hint:    "Remove the user from the group that assigns the license, or remove the license from the group, in Microsoft Entra ID; then sync the customer.",
	},
	{
		code: licensing.CodeUnknownServicePlans,
		matches: func(m string) bool {
			return strings.Contains(m, "service plan") && containsAny("does not belong", "is not valid", "does not exist", "invalid service plan")(m)
		},
		hint: "Give disabled plans that the product bundles (its service_plans), then run the change again.",
	},
	{
		code:    licensing.CodeUsageLocationMissing,
		matches: containsAny("invalid usage location", "usage location is not set", "usagelocation is required"),
		hint:    "Set the user's usage location, then run the change again.",
	},
	{
		code:    licensing.CodeCountViolation,
		matches: containsAny("does not have any available licenses", "not enough licenses", "no available licenses"),
		hint:    "Buy more licenses or free some, then run the change again.",
	},
	{
		code:    licensing.CodeDependencyViolation,
		matches: containsAny("depends on the service plan", "depends on service plan"),
		hint:    "Assign the product it depends on in the same change, or keep it.",
	},
	{
		code:    licensing.CodeMutuallyExclusiveViolation,
		matches: containsAny("mutually exclusive"),
		hint:    "Revoke the conflicting product in the same change.",
	},
	{
		code: licensing.CodeProhibitedInUsageLocationViolation,
		matches: func(m string) bool {
			return strings.Contains(m, "usage location") &&
				containsAny("not available", "not allowed", "prohibited")(m)
		},
		hint: "The product cannot be assigned in the user's usage location.",
	},
}

func containsAny(phrases ...string) func(string) bool {
	return func(m string) bool {
		for _, p := range phrases {
			if strings.Contains(m, p) {
				return true
			}
		}
		return false
	}
}

// graphError is Graph's error body.
type graphError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// classify turns a non-2xx answer of Graph into a *provider.Error.
func classify(status int, h http.Header, body []byte, now time.Time) *provider.Error {
	var ge graphError
	_ = json.Unmarshal(body, &ge) // a body that is not Graph's shape leaves the status to speak
	code, msg := ge.Error.Code, strings.TrimSpace(ge.Error.Message)
	if msg == "" {
		msg = http.StatusText(status)
	}
	e := &provider.Error{Status: status, Kind: provider.Permanent, Code: licensing.CodeProviderError}
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		e.Kind, e.Code = provider.Throttled, licensing.CodeProviderThrottled
		e.RetryAfter = parseRetryAfter(h.Get("Retry-After"), now)
		e.Message = "Microsoft Graph is throttling calls to this tenant (" + msg + ")."
	case status >= 500 || status == http.StatusRequestTimeout:
		e.Kind = provider.Transient
		e.Message = "Microsoft Graph failed (" + msg + ")."
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Message = "Microsoft Graph refused the app's access (" + msg + "). " + permissionsHint
	case status == http.StatusNotFound:
		e.Message = "Microsoft Graph does not know the user (" + msg + "); it may have been deleted from the tenant. Sync the customer to refresh its users."
	default:
		e.Message = "Microsoft Graph: " + msg
		if c, hint, ok := outcomeOf(code, msg); ok {
			e.Code, e.Message = c, msg+" "+hint
		}
	}
	return e
}

// outcomeOf finds the per-user outcome code of a refusal, by Graph's error
// code when it is already one of ours (licenseAssignmentStates use the same
// names), else by the message.
func outcomeOf(code, msg string) (licensing.Code, string, bool) {
	lower := strings.ToLower(msg)
	for _, r := range outcomeRules {
		if strings.EqualFold(code, string(r.code)) || r.matches(lower) {
			return r.code, r.hint, true
		}
	}
	return "", "", false
}

// removesUnheld reports whether Graph refused an assignLicense because it
// removes a license the user does not hold, which licenseops treats as done.
func removesUnheld(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && pe.Status == http.StatusBadRequest &&
		strings.Contains(strings.ToLower(pe.Message), "does not have a corresponding license")
}

// parseRetryAfter reads Retry-After as seconds (Graph sends integers, and
// its documentation shows decimals such as 2.128) or as an HTTP date. It
// returns 0 when the header is absent or unusable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 24*3600) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// transportError classifies a request that got no answer.
func transportError(ctx context.Context, err error, timeout time.Duration) *provider.Error {
	e := &provider.Error{Kind: provider.Transient, Code: licensing.CodeProviderError, Err: err}
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		e.Message = "The call to Microsoft Graph was abandoned: " + ctx.Err().Error() + "."
	case errors.As(err, &ne) && ne.Timeout():
		e.Message = fmt.Sprintf("Microsoft Graph did not answer within %s.", timeout)
	default:
		e.Message = "Could not reach Microsoft Graph: " + err.Error()
	}
	return e
}

// tokenError classifies a failure to get an access token.
func tokenError(ctx context.Context, tenantID string, err error, timeout time.Duration, now time.Time) *provider.Error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		e := transportError(ctx, err, timeout)
		e.Message = "Getting an access token for tenant " + tenantID + " failed: " + e.Message
		return e
	}
	status := re.Response.StatusCode
	if status == http.StatusTooManyRequests || status >= 500 {
		e := classify(status, re.Response.Header, nil, now)
		e.Message = "Microsoft Entra ID could not issue an access token for tenant " + tenantID + " (HTTP " + strconv.Itoa(status) + ")."
		return e
	}
	// Entra ID's error_description names the problem (AADSTS7000215:
	// invalid client secret, AADSTS90002: tenant not found, ...) and never
	// echoes the secret.
	desc := re.ErrorCode
	if re.ErrorDescription != "" {
		desc += ": " + firstLine(re.ErrorDescription)
	}
	return &provider.Error{
		Kind: provider.Permanent, Code: licensing.CodeProviderError, Status: status,
		Message: "Microsoft Entra ID refused the app's credentials for tenant " + tenantID + " (" + desc + "). " +
			"Check " + EnvClientID + " and " + EnvClientSecret + " (or " + EnvCredentialsFile + "), the customer's tenant ID, " +
			"and that the app is consented in that tenant.",
	}
}

// firstLine keeps the first line of Entra ID's multi-line descriptions
// (the rest is trace and correlation IDs).
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
