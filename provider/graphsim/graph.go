package graphsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The simulator states Graph's JSON shapes on its own rather than sharing
// the msgraph client's types, so that a shape mistake in the client is
// caught by its tests instead of being mirrored here.

// userProps are the user properties the simulator serves, by Graph name.
var userProps = map[string]bool{
	"id": true, "userPrincipalName": true, "displayName": true, "usageLocation": true,
	"accountEnabled": true, "assignedLicenses": true, "signInActivity": true, "licenseAssignmentStates": true,
}

// defaultUserProps are what Graph returns without $select: notably not
// usageLocation, accountEnabled or assignedLicenses, which a client must ask for.
var defaultUserProps = []string{"id", "displayName", "userPrincipalName"}

// selectProps reads $select, or answers Graph's 400 (unknown property) or
// 403 (signInActivity in a tenant without Entra ID P1) and returns nil.
func selectProps(w http.ResponseWriter, r *http.Request, t *tenant) []string {
	props, msg := parseSelect(r)
	switch {
	case msg != "":
		writeBadRequest(w, msg)
		return nil
	case t.noPremium && slices.Contains(props, "signInActivity"):
		writeGraphError(w, http.StatusForbidden, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
			"Neither tenant is B2C or tenant doesn't have premium license")
		return nil
	}
	return props
}

// parseSelect reads $select, or returns the message of Graph's 400.
func parseSelect(r *http.Request) ([]string, string) {
	v := r.URL.Query().Get("$select")
	if v == "" {
		return defaultUserProps, ""
	}
	props := strings.Split(v, ",")
	for i, p := range props {
		props[i] = strings.TrimSpace(p)
		if !userProps[props[i]] {
			return nil, fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.user'.", props[i])
		}
	}
	return props, ""
}

type licenseJSON struct {
	DisabledPlans []string `json:"disabledPlans"`
	SKUID         string   `json:"skuId"`
}

// json renders the user with the selected properties, null where Graph has null.
func (u *user) json(props []string) map[string]any {
	m := make(map[string]any, len(props))
	for _, p := range props {
		switch p {
		case "id":
			m[p] = u.id
		case "userPrincipalName":
			m[p] = u.upn
		case "displayName":
			m[p] = u.displayName
		case "usageLocation":
			if u.usageLocation == "" {
				m[p] = nil
			} else {
				m[p] = u.usageLocation
			}
		case "accountEnabled":
			m[p] = u.accountEnabled
		case "assignedLicenses":
			ls := make([]licenseJSON, 0, len(u.licenses))
			for _, id := range u.skuIDs() {
				plans := u.licenses[id]
				if plans == nil {
					plans = []string{}
				}
				ls = append(ls, licenseJSON{SKUID: id, DisabledPlans: plans})
			}
			m[p] = ls
		case "signInActivity":
			m[p] = map[string]any{"lastSignInDateTime": u.lastSignIn, "lastNonInteractiveSignInDateTime": nil}
		case "licenseAssignmentStates":
			m[p] = u.licenseStatesJSON()
		}
	}
	return m
}

func writeUserNotFound(w http.ResponseWriter, id string) {
	writeGraphError(w, http.StatusNotFound, "Request_ResourceNotFound",
		fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
}

func writeBadRequest(w http.ResponseWriter, msg string) {
	writeGraphError(w, http.StatusBadRequest, "Request_BadRequest", msg)
}

// handleAssignLicense is POST /users/{id}/assignLicense.
func handleAssignLicense(w http.ResponseWriter, r *http.Request, t *tenant) {
	var body struct {
		AddLicenses *[]struct {
			SKUID         string   `json:"skuId"`
			DisabledPlans []string `json:"disabledPlans"`
		} `json:"addLicenses"`
		RemoveLicenses *[]string `json:"removeLicenses"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeBadRequest(w, "The request payload of the operation 'assignLicense' is not valid: "+err.Error())
		return
	}
	var missing []string
	if body.AddLicenses == nil {
		missing = append(missing, "addLicenses")
	}
	if body.RemoveLicenses == nil {
		missing = append(missing, "removeLicenses")
	}
	if len(missing) > 0 {
		writeBadRequest(w, "One or more parameters of the operation 'assignLicense' are missing from the request payload. The missing parameters are: "+strings.Join(missing, ", ")+".")
		return
	}
	adds := make([]addLicense, 0, len(*body.AddLicenses))
	for _, a := range *body.AddLicenses {
		adds = append(adds, addLicense{sku: a.SKUID, plans: a.DisabledPlans})
	}
	id := r.PathValue("id")
	t.mu.Lock()
	u := t.users[id]
	var msg string
	var out map[string]any
	if u != nil {
		if msg = t.assign(u, adds, *body.RemoveLicenses); msg == "" {
			out = u.json([]string{"id", "displayName", "userPrincipalName", "assignedLicenses"})
		}
	}
	t.mu.Unlock()
	switch {
	case u == nil:
		writeUserNotFound(w, id)
	case msg != "":
		writeBadRequest(w, msg)
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

type addLicense struct {
	sku   string
	plans []string
}

// assign applies one assignLicense call all or nothing, or returns the
// message of Graph's 400 and changes nothing. The caller holds t.mu.
//
// Like Graph, adding a SKU the user holds only updates its disabled plans
// (and makes a license held only through a group direct as well, using no
// further seat), and removing one the user does not hold is an error, as
// is removing one the user holds only through a group. Removing one held
// both ways removes the direct assignment: the user keeps the license, and
// its seat, through the group. Rules (location, exclusions, dependencies)
// are checked only for what this call changes.
func (t *tenant) assign(u *user, adds []addLicense, removes []string) string {
	for _, a := range adds {
		k := t.skus[a.sku]
		if k == nil {
			return fmt.Sprintf("License %s does not correspond to a valid company License.", a.sku)
		}
		if p := k.unknownPlan(a.plans); p != "" {
			return fmt.Sprintf("Service plan %s does not belong to the subscription with SKU %s.", p, a.sku)
		}
	}
	removes = slices.Compact(slices.Sorted(slices.Values(removes)))
	for _, id := range removes {
		if t.skus[id] == nil {
			return fmt.Sprintf("License %s does not correspond to a valid company License.", id)
		}
		if _, held := u.licenses[id]; !held {
			return "User does not have a corresponding license."
		}
		if u.groupOnly[id] {
			return "User license is inherited from a group membership and it cannot be removed directly from the user."
		}
		if slices.ContainsFunc(adds, func(a addLicense) bool { return a.sku == id }) {
			return fmt.Sprintf("License %s cannot be both added and removed in one call.", id)
		}
	}
	var added []string
	for _, a := range adds {
		if _, held := u.licenses[a.sku]; !held && !slices.Contains(added, a.sku) {
			added = append(added, a.sku)
		}
	}
	if len(added) > 0 && u.usageLocation == "" {
		return "License assignment cannot be done for user with invalid usage location."
	}
	for _, id := range added {
		if k := t.skus[id]; slices.Contains(k.prohibitedLocations, u.usageLocation) {
			return fmt.Sprintf("License assignment failed because the license %s (%s) is not available in the user's usage location %s.", k.partNumber, id, u.usageLocation)
		}
	}
	after := slices.Concat(added)
	for id := range u.licenses {
		if !slices.Contains(removes, id) || len(u.inheritedFrom(id)) > 0 {
			after = append(after, id)
		}
	}
	slices.Sort(after)
	isNew := func(id string) bool { return slices.Contains(added, id) }
	for i, a := range after {
		for _, b := range after[i+1:] {
			excl := slices.Contains(t.skus[a].excludes, b) || slices.Contains(t.skus[b].excludes, a)
			if excl && (isNew(a) || isNew(b)) {
				return fmt.Sprintf("License assignment failed because service plans of %s and %s are mutually exclusive.", a, b)
			}
		}
	}
	for _, a := range after {
		for _, req := range t.skus[a].requires {
			if !slices.Contains(after, req) && (isNew(a) || slices.Contains(removes, req)) {
				return fmt.Sprintf("License assignment failed because service plan %s depends on the service plan(s) %s.", a, req)
			}
		}
	}
	for _, id := range added {
		if k := t.skus[id]; k.consumed >= k.enabled {
			return fmt.Sprintf("Subscription with SKU '%s' does not have any available licenses.", id)
		}
	}
	for _, id := range removes {
		if len(u.inheritedFrom(id)) > 0 {
			u.groupOnly[id] = true // kept through the group, with its seat
			continue
		}
		delete(u.licenses, id)
		t.skus[id].consumed--
	}
	for _, id := range added {
		t.skus[id].consumed++
	}
	for _, a := range adds {
		u.licenses[a.sku] = slices.Clone(a.plans)
		delete(u.groupOnly, a.sku)
	}
	return ""
}

// handleGetUser is GET /users/{id}.
func handleGetUser(w http.ResponseWriter, r *http.Request, t *tenant) {
	props := selectProps(w, r, t)
	if props == nil {
		return
	}
	id := r.PathValue("id")
	t.mu.Lock()
	var out map[string]any
	if u := t.users[id]; u != nil {
		out = u.json(props)
	}
	t.mu.Unlock()
	if out == nil {
		writeUserNotFound(w, id)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleLicenseDetails is GET /users/{id}/licenseDetails: each license the
// user holds with its SKU's service plans, a plan the license switches off
// in provisioningStatus "Disabled" (the others "Success"), as Graph
// answers. A plan switched off that the SKU does not list (a SKU seeded
// without plans) is listed too, so that nothing the user has is hidden.
func handleLicenseDetails(w http.ResponseWriter, r *http.Request, t *tenant) {
	id := r.PathValue("id")
	t.mu.Lock()
	u := t.users[id]
	var out []map[string]any
	if u != nil {
		out = make([]map[string]any, 0, len(u.licenses))
		for _, skuID := range slices.Sorted(maps.Keys(u.licenses)) {
			off := u.licenses[skuID]
			partNumber, plans := "", []map[string]any{}
			if k := t.skus[skuID]; k != nil {
				partNumber = k.partNumber
				for _, sp := range k.servicePlans {
					plans = append(plans, licenseDetailPlan(sp.ID, sp.Name, slices.Contains(off, sp.ID)))
				}
			}
			for _, p := range off {
				if !slices.ContainsFunc(plans, func(m map[string]any) bool { return m["servicePlanId"] == p }) {
					plans = append(plans, licenseDetailPlan(p, "", true))
				}
			}
			out = append(out, map[string]any{"id": id + "_" + skuID, "skuId": skuID, "skuPartNumber": partNumber, "servicePlans": plans})
		}
	}
	t.mu.Unlock()
	if u == nil {
		writeUserNotFound(w, id)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func licenseDetailPlan(id, name string, disabled bool) map[string]any {
	status := "Success"
	if disabled {
		status = "Disabled"
	}
	return map[string]any{"servicePlanId": id, "servicePlanName": name, "provisioningStatus": status, "appliesTo": "User"}
}

// handlePatchUser is PATCH /users/{id}; it answers 204 like Graph.
func handlePatchUser(w http.ResponseWriter, r *http.Request, t *tenant) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		writeBadRequest(w, "Invalid request payload: "+err.Error())
		return
	}
	var loc, name *string
	var enabled *bool
	for k, v := range body {
		var err error
		switch k {
		case "usageLocation":
			if err = json.Unmarshal(v, &loc); err == nil && loc != nil && !validLocation(*loc) {
				err = fmt.Errorf("not a country code")
			}
		case "displayName":
			err = json.Unmarshal(v, &name)
		case "accountEnabled":
			err = json.Unmarshal(v, &enabled)
		default:
			writeBadRequest(w, fmt.Sprintf("Could not find a property named '%s' on type 'microsoft.graph.user'.", k))
			return
		}
		if err != nil {
			writeBadRequest(w, fmt.Sprintf("Invalid value specified for property '%s' of resource 'User'.", k))
			return
		}
	}
	id := r.PathValue("id")
	t.mu.Lock()
	u := t.users[id]
	if u != nil {
		if _, ok := body["usageLocation"]; ok {
			u.usageLocation = ""
			if loc != nil {
				u.usageLocation = *loc
			}
		}
		if name != nil {
			u.displayName = *name
		}
		if enabled != nil {
			u.accountEnabled = *enabled
		}
	}
	t.mu.Unlock()
	if u == nil {
		writeUserNotFound(w, id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// validLocation accepts ISO 3166-1 alpha-2 codes in Graph's upper case.
func validLocation(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// handleListUsers is GET /users, in ID order, paged with an opaque
// $skiptoken (the last ID served) so that users added meanwhile neither
// shift nor repeat pages.
func handleListUsers(w http.ResponseWriter, r *http.Request, t *tenant) {
	props := selectProps(w, r, t)
	if props == nil {
		return
	}
	q := r.URL.Query()
	top := 100
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			writeBadRequest(w, fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", v))
			return
		}
		top = n
	}
	var after string
	if v := q.Get("$skiptoken"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			writeBadRequest(w, "The specified page token value has expired or is invalid.")
			return
		}
		after = string(b)
	}
	t.mu.Lock()
	ids := t.userIDs()
	start := sort.SearchStrings(ids, after)
	if after != "" && start < len(ids) && ids[start] == after {
		start++
	}
	end := min(start+top, len(ids))
	page := make([]map[string]any, 0, end-start)
	for _, id := range ids[start:end] {
		page = append(page, t.users[id].json(props))
	}
	more := end < len(ids)
	t.mu.Unlock()

	root := "http://" + r.Host + "/v1.0"
	if r.TLS != nil {
		root = "https://" + r.Host + "/v1.0"
	}
	out := map[string]any{"@odata.context": root + "/$metadata#users(" + strings.Join(props, ",") + ")", "value": page}
	if more {
		out["@odata.nextLink"] = root + "/users?$select=" + url.QueryEscape(strings.Join(props, ",")) +
			"&$top=" + strconv.Itoa(top) + "&$skiptoken=" + base64.RawURLEncoding.EncodeToString([]byte(ids[end-1]))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSubscribedSKUs is GET /subscribedSkus.
func handleSubscribedSKUs(w http.ResponseWriter, r *http.Request, t *tenant) {
	t.mu.Lock()
	skus := make([]map[string]any, 0, len(t.skus))
	for _, k := range t.skus {
		skus = append(skus, map[string]any{
			"id": t.id + "_" + k.id, "skuId": k.id, "skuPartNumber": k.partNumber,
			"appliesTo": "User", "capabilityStatus": "Enabled", "consumedUnits": k.consumed,
			"prepaidUnits": map[string]int{"enabled": k.enabled, "suspended": 0, "warning": 0, "lockedOut": 0},
			"servicePlans": servicePlansJSON(k),
		})
	}
	t.mu.Unlock()
	slices.SortFunc(skus, func(a, b map[string]any) int { return strings.Compare(a["skuId"].(string), b["skuId"].(string)) })
	writeJSON(w, http.StatusOK, map[string]any{"value": skus})
}

// servicePlansJSON renders a SKU's plans as subscribedSkus does.
func servicePlansJSON(k *sku) []map[string]any {
	out := make([]map[string]any, 0, len(k.servicePlans))
	for _, sp := range k.servicePlans {
		out = append(out, map[string]any{"servicePlanId": sp.ID, "servicePlanName": sp.Name,
			"provisioningStatus": "Success", "appliesTo": "User"})
	}
	return out
}
