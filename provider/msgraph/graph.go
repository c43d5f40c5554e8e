package msgraph

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/provider"
)

// Wire types: the parts of Graph v1.0's JSON that licenseops reads or sends.

// assignLicenseBody is the body of POST /users/{id}/assignLicense. Graph
// rejects the call when either list is missing, so both are always sent,
// empty rather than null.
type assignLicenseBody struct {
	AddLicenses    []assignedLicense `json:"addLicenses"`
	RemoveLicenses []string          `json:"removeLicenses"`
}

type assignedLicense struct {
	SKUID         string   `json:"skuId"`
	DisabledPlans []string `json:"disabledPlans"`
}

type subscribedSKU struct {
	SKUID        string `json:"skuId"`
	ServicePlans []struct {
		ServicePlanID   string `json:"servicePlanId"`
		ServicePlanName string `json:"servicePlanName"`
	} `json:"servicePlans"`
	SKUPartNumber string `json:"skuPartNumber"`
	// AppliesTo is "User" for products assigned to users, "Company" for
	// tenant-wide ones, which cannot be assigned and are left out.
	AppliesTo     string `json:"appliesTo"`
	ConsumedUnits int    `json:"consumedUnits"`
	PrepaidUnits  struct {
		Enabled   int `json:"enabled"`
		Suspended int `json:"suspended"`
		Warning   int `json:"warning"`
	} `json:"prepaidUnits"`
}

type graphUser struct {
	ID                string            `json:"id"`
	UserPrincipalName string            `json:"userPrincipalName"`
	DisplayName       string            `json:"displayName"`
	UsageLocation     string            `json:"usageLocation"`
	AccountEnabled    bool              `json:"accountEnabled"`
	AssignedLicenses  []assignedLicense `json:"assignedLicenses"`
	// LicenseAssignmentStates say, per license, whether it is assigned
	// directly (assignedByGroup null) or by a group, and whether it failed.
	LicenseAssignmentStates []licenseAssignmentState `json:"licenseAssignmentStates"`
	SignInActivity          *struct {
		LastSignInDateTime *time.Time `json:"lastSignInDateTime"`
	} `json:"signInActivity"`
}

type licenseAssignmentState struct {
	SKUID           string  `json:"skuId"`
	AssignedByGroup *string `json:"assignedByGroup"`
	State           string  `json:"state"`
	Error           string  `json:"error"`
}

// licenseStates converts Graph's licenseAssignmentStates; nil when Graph
// sent none, so that every license counts as direct.
func licenseStates(in []licenseAssignmentState) []provider.LicenseState {
	if len(in) == 0 {
		return nil
	}
	out := make([]provider.LicenseState, len(in))
	for i, s := range in {
		out[i] = provider.LicenseState{SKU: s.SKUID, State: s.State, Error: s.Error}
		if s.AssignedByGroup != nil {
			out[i].Group = *s.AssignedByGroup
		}
	}
	return out
}

// list is a Graph collection page.
type list[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// Apply implements provider.Directory. Graph already treats assigning a
// held SKU as a no-op, but refuses to remove one the user does not hold;
// Apply then reads what the user holds and sends the change again without
// those, which is what makes a retry after a lost answer safe.
func (c *Client) Apply(ctx context.Context, tenantID string, ch provider.Change) error {
	if ch.UserID == "" {
		return invalid("a license change needs a user ID")
	}
	if len(ch.Add) == 0 && len(ch.Remove) == 0 {
		return nil
	}
	err := c.assignLicense(ctx, tenantID, ch)
	if !removesUnheld(err) {
		return err
	}
	held, herr := c.UserLicenses(ctx, tenantID, ch.UserID)
	if herr != nil {
		return herr
	}
	remove := slices.DeleteFunc(slices.Clone(ch.Remove), func(s string) bool { return !slices.Contains(held, s) })
	if len(remove) == len(ch.Remove) {
		return err // held after all: Graph refused for another reason, such as a license inherited from a group
	}
	ch.Remove = remove
	if len(ch.Add) == 0 && len(ch.Remove) == 0 {
		return nil
	}
	return c.assignLicense(ctx, tenantID, ch)
}

func (c *Client) assignLicense(ctx context.Context, tenantID string, ch provider.Change) error {
	body := assignLicenseBody{
		AddLicenses:    make([]assignedLicense, 0, len(ch.Add)),
		RemoveLicenses: make([]string, 0, len(ch.Remove)),
	}
	for _, a := range ch.Add {
		if a.SKU == "" {
			return invalid("a license to assign has no SKU ID")
		}
		plans := a.DisabledPlans
		if plans == nil {
			plans = []string{}
		}
		body.AddLicenses = append(body.AddLicenses, assignedLicense{SKUID: a.SKU, DisabledPlans: plans})
	}
	for _, s := range ch.Remove {
		if s == "" {
			return invalid("a license to revoke has no SKU ID")
		}
		body.RemoveLicenses = append(body.RemoveLicenses, s)
	}
	return c.call(ctx, tenantID, http.MethodPost, c.userURL(ch.UserID)+"/assignLicense", body, nil)
}

// UserLicenses returns the SKU IDs the user holds now, sorted: Apply
// reads them to tell a removal Graph refused from one already made.
func (c *Client) UserLicenses(ctx context.Context, tenantID, userID string) ([]string, error) {
	held, err := c.UserDisabledPlans(ctx, tenantID, userID)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(held)), nil
}

// UserDisabledPlans implements provider.Directory: the user's
// assignedLicenses, which carry each license's disabledPlans.
func (c *Client) UserDisabledPlans(ctx context.Context, tenantID, userID string) (map[string][]string, error) {
	if userID == "" {
		return nil, invalid("reading licenses needs a user ID")
	}
	var u graphUser
	if err := c.call(ctx, tenantID, http.MethodGet, c.userURL(userID)+"?$select=assignedLicenses", nil, &u); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(u.AssignedLicenses))
	for _, l := range u.AssignedLicenses {
		out[l.SKUID] = sortedPlans(l.DisabledPlans)
	}
	return out, nil
}

// disabledPlans returns the disabled plans of the licenses with any, by SKU.
func disabledPlans(ls []assignedLicense) map[string][]string {
	var out map[string][]string
	for _, l := range ls {
		if len(l.DisabledPlans) == 0 {
			continue
		}
		if out == nil {
			out = make(map[string][]string)
		}
		out[l.SKUID] = sortedPlans(l.DisabledPlans)
	}
	return out
}

func sortedPlans(plans []string) []string {
	out := slices.Clone(plans)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// SetUsageLocation implements provider.Directory.
func (c *Client) SetUsageLocation(ctx context.Context, tenantID, userID, location string) error {
	if userID == "" || location == "" {
		return invalid("setting a usage location needs a user ID and a location")
	}
	body := struct {
		UsageLocation string `json:"usageLocation"`
	}{location}
	return c.call(ctx, tenantID, http.MethodPatch, c.userURL(userID), body, nil)
}

// SubscribedSKUs implements provider.Directory. Products that apply to the
// company rather than to users are left out: they cannot be assigned.
func (c *Client) SubscribedSKUs(ctx context.Context, tenantID string) ([]provider.SubscribedSKU, error) {
	var page list[subscribedSKU]
	if err := c.call(ctx, tenantID, http.MethodGet, c.cfg.BaseURL+"/subscribedSkus", nil, &page); err != nil {
		return nil, err
	}
	out := make([]provider.SubscribedSKU, 0, len(page.Value))
	for _, s := range page.Value {
		if strings.EqualFold(s.AppliesTo, "Company") {
			continue
		}
		k := provider.SubscribedSKU{
			SKU: s.SKUID, PartNumber: s.SKUPartNumber, Enabled: s.PrepaidUnits.Enabled, Consumed: s.ConsumedUnits,
		}
		for _, sp := range s.ServicePlans {
			k.ServicePlans = append(k.ServicePlans, provider.ServicePlan{ID: sp.ServicePlanID, Name: sp.ServicePlanName})
		}
		out = append(out, k)
	}
	return out, nil
}

// ListUsers implements provider.Directory, following @odata.nextLink.
//
// It asks for signInActivity (for cleanups of inactive accounts) unless
// Config.NoSignInActivity is set. Graph refuses that property with 403 in
// tenants without Entra ID P1 or to apps without AuditLog.Read.All; the
// listing then starts over without it, and LastSignInAt stays nil, so one
// such tenant does not stop the sync of the others.
func (c *Client) ListUsers(ctx context.Context, tenantID string, page func([]provider.User) error) error {
	signIns := !c.cfg.NoSignInActivity
	next, delivered := c.usersURL(signIns), false
	for next != "" {
		var p list[graphUser]
		if err := c.call(ctx, tenantID, http.MethodGet, next, nil, &p); err != nil {
			var pe *provider.Error
			if !delivered && signIns && errors.As(err, &pe) && pe.Status == http.StatusForbidden {
				signIns, next = false, c.usersURL(false)
				continue
			}
			return err
		}
		users := make([]provider.User, len(p.Value))
		for i, u := range p.Value {
			users[i] = provider.User{
				ID: u.ID, UserPrincipalName: u.UserPrincipalName, DisplayName: u.DisplayName,
				UsageLocation: u.UsageLocation, AccountEnabled: u.AccountEnabled, Licenses: skuIDs(u.AssignedLicenses),
				DisabledPlans: disabledPlans(u.AssignedLicenses),
				LicenseStates: licenseStates(u.LicenseAssignmentStates),
			}
			if u.SignInActivity != nil && u.SignInActivity.LastSignInDateTime != nil && !u.SignInActivity.LastSignInDateTime.IsZero() {
				users[i].LastSignInAt = u.SignInActivity.LastSignInDateTime
			}
		}
		if err := page(users); err != nil {
			return err
		}
		delivered = true
		if p.NextLink != "" && !strings.HasPrefix(p.NextLink, c.origin+"/") {
			// The link gets the tenant's bearer token; it may only point at Graph itself.
			return invalid("Microsoft Graph's next page link %q leaves %s", p.NextLink, c.origin)
		}
		next = p.NextLink
	}
	return nil
}

func (c *Client) usersURL(signIns bool) string {
	sel := "id,userPrincipalName,displayName,usageLocation,accountEnabled,assignedLicenses,licenseAssignmentStates"
	if signIns {
		sel += ",signInActivity"
	}
	return c.cfg.BaseURL + "/users?$select=" + sel + "&$top=" + strconv.Itoa(c.cfg.PageSize)
}

func (c *Client) userURL(id string) string { return c.cfg.BaseURL + "/users/" + url.PathEscape(id) }

// skuIDs returns the sorted, distinct SKU IDs of assigned licenses.
func skuIDs(ls []assignedLicense) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.SKUID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// maxIDsPerLookup is Graph's limit of IDs per directoryObjects/getByIds call.
const maxIDsPerLookup = 1000

// GroupNames implements provider.GroupNamer with
// POST /directoryObjects/getByIds, up to 1000 groups a call. It needs a
// permission to read groups (GroupMember.Read.All, Group.Read.All or
// Directory.Read.All) beyond those of license assignment; without it Graph
// answers 403, which the caller treats as "no names". Although a POST, it
// reads only, and it is paced as a write, which a sync can afford.
func (c *Client) GroupNames(ctx context.Context, tenantID string, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for chunk := range slices.Chunk(ids, maxIDsPerLookup) {
		body := struct {
			IDs   []string `json:"ids"`
			Types []string `json:"types"`
		}{chunk, []string{"group"}}
		var page list[struct {
			ID          string `json:"id"`
			DisplayName string `json:"displayName"`
		}]
		if err := c.call(ctx, tenantID, http.MethodPost, c.cfg.BaseURL+"/directoryObjects/getByIds", body, &page); err != nil {
			return nil, err
		}
		for _, g := range page.Value {
			out[g.ID] = g.DisplayName
		}
	}
	return out, nil
}
