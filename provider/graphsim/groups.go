package graphsim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// Group-based licensing, as Microsoft Entra ID does it: a group carries
// licenses, and every member holds them as long as it is a member. A
// license a user holds both directly and through groups uses one seat. A
// group license that cannot be given (no seat left, a conflicting license)
// is recorded on the user as an error state and not held; Entra ID keeps
// it so until an administrator fixes the cause, and so does the simulator
// (it does not retry on its own).

// GroupSeed is a group with the licenses it assigns and its members.
type GroupSeed struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"display_name"`
	SKUs        []string `json:"skus"`
	Members     []string `json:"members"`
}

// GroupState is a group in a tenant snapshot.
type GroupState struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"display_name"`
	SKUs        []string `json:"skus"`
	Members     []string `json:"members"`
}

// LicenseStateJSON is one of a user's licenseAssignmentStates in a snapshot.
type LicenseStateJSON struct {
	SKU string `json:"sku_id"`
	// Group is "" for a direct assignment.
	Group string `json:"group,omitempty"`
	State string `json:"state"`
	Error string `json:"error"`
}

type group struct {
	id, displayName string
	skus            []string
	members         []string
}

// groupAssignment is a license a group gives (or failed to give) a user.
type groupAssignment struct {
	sku, group string
	// err is "" when the user holds the license through the group, else
	// the reason it does not (CountViolation, MutuallyExclusiveViolation).
	err string
}

// AddGroup adds a group with licenses and members to a tenant, and gives
// the members its licenses in the order listed. A member short of a seat,
// or holding a license the group's excludes, gets an error state instead.
func (s *Simulator) AddGroup(tenantID string, g GroupSeed) error {
	t, err := s.mustTenant(tenantID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addGroup(g)
}

// addGroup validates the group before adding it. The caller holds t.mu (or
// owns t alone).
func (t *tenant) addGroup(g GroupSeed) error {
	if g.ID == "" || t.groups[g.ID] != nil {
		return fmt.Errorf("graphsim: tenant %q: group %q is empty or exists", t.id, g.ID)
	}
	for _, sku := range g.SKUs {
		if t.skus[sku] == nil {
			return fmt.Errorf("graphsim: tenant %q: group %q assigns unknown SKU %q", t.id, g.ID, sku)
		}
	}
	if err := t.knownUsers(g.Members); err != nil {
		return err
	}
	if t.groups == nil {
		t.groups = make(map[string]*group)
	}
	grp := &group{id: g.ID, displayName: g.DisplayName, skus: slices.Clone(g.SKUs)}
	t.groups[g.ID] = grp
	t.addMembers(grp, g.Members)
	return nil
}

// AddGroupMembers adds users to a group, which gives them its licenses.
func (s *Simulator) AddGroupMembers(tenantID, groupID string, userIDs ...string) error {
	t, err := s.mustTenant(tenantID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	grp := t.groups[groupID]
	if grp == nil {
		return fmt.Errorf("graphsim: tenant %q has no group %q", tenantID, groupID)
	}
	if err := t.knownUsers(userIDs); err != nil {
		return err
	}
	t.addMembers(grp, userIDs)
	return nil
}

func (t *tenant) knownUsers(ids []string) error {
	for _, id := range ids {
		if t.users[id] == nil {
			return fmt.Errorf("graphsim: tenant %q has no user %q", t.id, id)
		}
	}
	return nil
}

// addMembers makes the users members of grp and gives them its licenses.
// The caller holds t.mu.
func (t *tenant) addMembers(grp *group, userIDs []string) {
	for _, id := range userIDs {
		if slices.Contains(grp.members, id) {
			continue
		}
		grp.members = append(grp.members, id)
		u := t.users[id]
		for _, sku := range grp.skus {
			u.groupLicenses = append(u.groupLicenses, groupAssignment{sku: sku, group: grp.id, err: t.inherit(u, sku)})
		}
	}
}

// inherit gives u the SKU through a group, or returns the error state's
// reason and changes nothing. A SKU the user holds already uses no further
// seat. The caller holds t.mu.
func (t *tenant) inherit(u *user, id string) string {
	if _, held := u.licenses[id]; held {
		return ""
	}
	k := t.skus[id]
	for other := range u.licenses {
		if slices.Contains(k.excludes, other) || slices.Contains(t.skus[other].excludes, id) {
			return "MutuallyExclusiveViolation"
		}
	}
	for _, req := range k.requires {
		if _, held := u.licenses[req]; !held {
			return "DependencyViolation"
		}
	}
	if k.consumed >= k.enabled {
		return "CountViolation"
	}
	k.consumed++
	u.licenses[id] = nil
	u.groupOnly[id] = true
	return ""
}

// inheritedFrom returns the groups the user holds the SKU through, sorted.
func (u *user) inheritedFrom(sku string) []string {
	var out []string
	for _, g := range u.groupLicenses {
		if g.sku == sku && g.err == "" {
			out = append(out, g.group)
		}
	}
	slices.Sort(out)
	return out
}

// licenseStates are the user's licenseAssignmentStates: one per direct
// license, one per group license (held or failed), by SKU then group.
func (u *user) licenseStates() []LicenseStateJSON {
	var out []LicenseStateJSON
	for id := range u.licenses {
		if !u.groupOnly[id] {
			out = append(out, LicenseStateJSON{SKU: id, State: "Active", Error: "None"})
		}
	}
	for _, g := range u.groupLicenses {
		st := LicenseStateJSON{SKU: g.sku, Group: g.group, State: "Active", Error: "None"}
		if g.err != "" {
			st.State, st.Error = "Error", g.err
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b LicenseStateJSON) int {
		return cmp.Or(cmp.Compare(a.SKU, b.SKU), cmp.Compare(a.Group, b.Group))
	})
	return out
}

// licenseStatesJSON renders licenseAssignmentStates in Graph's shape.
func (u *user) licenseStatesJSON() []map[string]any {
	states := u.licenseStates()
	out := make([]map[string]any, len(states))
	for i, s := range states {
		var byGroup any
		if s.Group != "" {
			byGroup = s.Group
		}
		plans := u.licenses[s.SKU]
		if plans == nil || s.State == "Error" {
			plans = []string{}
		}
		out[i] = map[string]any{"skuId": s.SKU, "assignedByGroup": byGroup, "state": s.State, "error": s.Error,
			"disabledPlans": plans, "lastUpdatedDateTime": nil}
	}
	return out
}

// groupStates returns a snapshot of the tenant's groups, by ID. The caller
// holds t.mu.
func (t *tenant) groupStates() []GroupState {
	out := make([]GroupState, 0, len(t.groups))
	for _, g := range t.groups {
		out = append(out, GroupState{ID: g.id, DisplayName: g.displayName, SKUs: slices.Clone(g.skus), Members: slices.Clone(g.members)})
	}
	slices.SortFunc(out, func(a, b GroupState) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// handlePostGroup is POST /_sim/tenants/{id}/groups with a GroupSeed.
func (s *Simulator) handlePostGroup(w http.ResponseWriter, r *http.Request) {
	var g GroupSeed
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		writeAdminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.AddGroup(r.PathValue("id"), g); err != nil {
		writeAdminError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handlePostGroupMembers is POST /_sim/tenants/{id}/groups/{gid}/members
// with {"members": [...]}.
func (s *Simulator) handlePostGroupMembers(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Members []string `json:"members"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeAdminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.AddGroupMembers(r.PathValue("id"), r.PathValue("gid"), body.Members...); err != nil {
		writeAdminError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleGetByIDs is POST /directoryObjects/getByIds, for groups only (the
// only type the simulator keeps besides users): the groups of the IDs that
// exist, with id and displayName.
func handleGetByIDs(w http.ResponseWriter, r *http.Request, t *tenant) {
	var body struct {
		IDs   []string `json:"ids"`
		Types []string `json:"types"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || len(body.IDs) == 0 || len(body.IDs) > 1000 {
		writeBadRequest(w, "The request payload of the operation 'getByIds' is not valid: it needs 1 to 1000 ids.")
		return
	}
	t.mu.Lock()
	out := make([]map[string]any, 0, len(body.IDs))
	for _, id := range body.IDs {
		if g := t.groups[id]; g != nil {
			out = append(out, map[string]any{"@odata.type": "#microsoft.graph.group", "id": g.id, "displayName": g.displayName})
		}
	}
	t.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}
