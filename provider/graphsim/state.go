package graphsim

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// SeedFile is the JSON a simulator can be seeded from:
// {"tenants": [{"id", "client_id", "client_secret", "skus": [...], "users": [...]}]}.
type SeedFile struct {
	Tenants []TenantSeed `json:"tenants"`
}

// TenantSeed is one tenant with the app registration allowed to sign in to it.
type TenantSeed struct {
	ID           string     `json:"id"`
	ClientID     string     `json:"client_id"`
	ClientSecret string     `json:"client_secret"`
	SKUs         []SKUSeed  `json:"skus"`
	Users        []UserSeed `json:"users"`
	// NoPremium makes the tenant one without Entra ID P1: asking for
	// signInActivity is refused with 403, as Graph does.
	NoPremium bool `json:"no_premium,omitempty"`
	// Groups assign licenses to their members (group-based licensing),
	// added after the users, in order.
	Groups []GroupSeed `json:"groups,omitempty"`
}

// SKUSeed is a subscribed product. The rules are optional and let tests make
// Graph refuse a change that licenseops' own catalog allowed (the catalog and
// the directory can disagree).
type SKUSeed struct {
	ID         string `json:"sku_id"`
	PartNumber string `json:"part_number"`
	// Enabled is the number of seats (prepaidUnits.enabled).
	Enabled int `json:"enabled"`
	// Requires are SKUs a user must hold to hold this one.
	Requires []string `json:"requires,omitempty"`
	// Excludes are SKUs that may not be held together with this one (either side may declare it).
	Excludes []string `json:"excludes,omitempty"`
	// ProhibitedLocations are usage locations where the SKU cannot be assigned.
	ProhibitedLocations []string `json:"prohibited_locations,omitempty"`
	// ServicePlans are the product's plans (subscribedSkus servicePlans).
	// assignLicense refuses a disabled plan that is not one of them, as
	// Graph does; a SKU seeded without plans takes any plan ID.
	ServicePlans []ServicePlanSeed `json:"service_plans,omitempty"`
}

// ServicePlanSeed is one service plan of a SKU.
type ServicePlanSeed struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// UserSeed is a user and the licenses it holds from the start.
type UserSeed struct {
	ID                string     `json:"id"`
	UserPrincipalName string     `json:"user_principal_name"`
	DisplayName       string     `json:"display_name"`
	UsageLocation     string     `json:"usage_location"`
	AccountEnabled    bool       `json:"account_enabled"`
	LastSignInAt      *time.Time `json:"last_sign_in_at,omitempty"`
	Licenses          []string   `json:"licenses"`
	// DisabledPlans are plans switched off in the licenses above, by SKU.
	DisabledPlans map[string][]string `json:"disabled_plans,omitempty"`
}

// TenantState is a snapshot of a tenant, for tests to compare with Postgres.
type TenantState struct {
	ID string `json:"id"`
	// SKUs sorted by ID.
	SKUs []SKUState `json:"skus"`
	// Users sorted by ID.
	Users []UserState `json:"users"`
	// Groups sorted by ID; omitted when the tenant has none.
	Groups []GroupState `json:"groups,omitempty"`
}

// SKUState is a product's seats.
type SKUState struct {
	ID         string `json:"sku_id"`
	PartNumber string `json:"part_number"`
	Enabled    int    `json:"enabled"`
	Consumed   int    `json:"consumed"`
}

// UserState is a user and what it holds.
type UserState struct {
	ID                string     `json:"id"`
	UserPrincipalName string     `json:"user_principal_name"`
	DisplayName       string     `json:"display_name"`
	UsageLocation     string     `json:"usage_location"`
	AccountEnabled    bool       `json:"account_enabled"`
	LastSignInAt      *time.Time `json:"last_sign_in_at,omitempty"`
	// Licenses are the held SKU IDs, sorted.
	Licenses []string `json:"licenses"`
	// DisabledPlans are the disabled service plans by SKU, for SKUs with any.
	DisabledPlans map[string][]string `json:"disabled_plans,omitempty"`
	// LicenseStates are Graph's licenseAssignmentStates, for users in a
	// group that assigns licenses; omitted for the others (all direct).
	LicenseStates []LicenseStateJSON `json:"license_states,omitempty"`
}

// tenant is one directory. Its mutex guards everything in it, so that an
// assignLicense call is all-or-nothing against concurrent ones.
type tenant struct {
	mu           sync.Mutex
	id           string
	clientID     string
	clientSecret string
	noPremium    bool
	skus         map[string]*sku
	users        map[string]*user
	// ids are the user IDs in listing order (sorted); stale while !sorted.
	ids    []string
	sorted bool
	// write enforces Config.WriteQuotaPerSecond.
	write writeQuota
	// groups that assign licenses, by ID.
	groups map[string]*group
}

type sku struct {
	id, partNumber      string
	enabled, consumed   int
	requires, excludes  []string
	prohibitedLocations []string
	servicePlans        []ServicePlanSeed
}

// unknownPlan returns a plan of plans that k does not bundle, or "" when
// there is none or k was seeded without plans.
func (k *sku) unknownPlan(plans []string) string {
	if k.servicePlans == nil {
		return ""
	}
	for _, p := range plans {
		if !slices.ContainsFunc(k.servicePlans, func(sp ServicePlanSeed) bool { return sp.ID == p }) {
			return p
		}
	}
	return ""
}

type user struct {
	id, upn, displayName, usageLocation string
	accountEnabled                      bool
	lastSignIn                          *time.Time
	// licenses maps held SKU IDs to their disabled plans, however held.
	licenses map[string][]string
	// groupOnly are the held SKUs that are not assigned directly: the user
	// holds them only through groups.
	groupOnly map[string]bool
	// groupLicenses are the licenses groups give the user, held or failed.
	groupLicenses []groupAssignment
}

// Seed loads tenants from JSON (see SeedFile). Unknown fields are errors,
// so a typo in a seed file does not silently seed less than intended.
func (s *Simulator) Seed(r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f SeedFile
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("graphsim: decode seed: %w", err)
	}
	for _, t := range f.Tenants {
		if err := s.AddTenant(t); err != nil {
			return err
		}
	}
	return nil
}

// AddTenant adds a tenant with its SKUs and users, all or nothing.
func (s *Simulator) AddTenant(seed TenantSeed) error {
	if seed.ID == "" || seed.ClientID == "" || seed.ClientSecret == "" {
		return errors.New("graphsim: a tenant needs id, client_id and client_secret")
	}
	t := &tenant{id: seed.ID, clientID: seed.ClientID, clientSecret: seed.ClientSecret, noPremium: seed.NoPremium,
		skus: make(map[string]*sku), users: make(map[string]*user, len(seed.Users))}
	if err := t.addSKUs(seed.SKUs); err != nil {
		return err
	}
	if err := t.addUsers(seed.Users); err != nil {
		return err
	}
	for _, g := range seed.Groups {
		if err := t.addGroup(g); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tenants[seed.ID]; ok {
		return fmt.Errorf("graphsim: tenant %q exists", seed.ID)
	}
	s.tenants[seed.ID] = t
	return nil
}

// AddSKUs adds products to a tenant, all or nothing.
func (s *Simulator) AddSKUs(tenantID string, skus ...SKUSeed) error {
	t, err := s.mustTenant(tenantID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addSKUs(skus)
}

// AddUsers adds users to a tenant, all or nothing. Their licenses consume
// seats; seeding more holders than a SKU has seats is an error.
func (s *Simulator) AddUsers(tenantID string, users ...UserSeed) error {
	t, err := s.mustTenant(tenantID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addUsers(users)
}

// SetSeats changes a SKU's enabled seats, as buying more (or cancelling
// some) does. It may go below consumed, as in Graph, which leaves no seat
// to assign.
func (s *Simulator) SetSeats(tenantID, skuID string, enabled int) error {
	t, err := s.mustTenant(tenantID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.skus[skuID]
	if k == nil || enabled < 0 {
		return fmt.Errorf("graphsim: tenant %q has no SKU %q, or %d is negative", tenantID, skuID, enabled)
	}
	k.enabled = enabled
	return nil
}

// Tenant returns a snapshot of a tenant.
func (s *Simulator) Tenant(id string) (TenantState, bool) {
	t := s.lookup(id)
	if t == nil {
		return TenantState{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := TenantState{ID: t.id, SKUs: make([]SKUState, 0, len(t.skus)), Users: make([]UserState, 0, len(t.users))}
	for _, k := range t.skus {
		st.SKUs = append(st.SKUs, SKUState{ID: k.id, PartNumber: k.partNumber, Enabled: k.enabled, Consumed: k.consumed})
	}
	slices.SortFunc(st.SKUs, func(a, b SKUState) int { return cmp.Compare(a.ID, b.ID) })
	for _, id := range t.userIDs() {
		st.Users = append(st.Users, t.users[id].state())
	}
	if len(t.groups) > 0 {
		st.Groups = t.groupStates()
	}
	return st, true
}

// User returns a snapshot of one user.
func (s *Simulator) User(tenantID, userID string) (UserState, bool) {
	t := s.lookup(tenantID)
	if t == nil {
		return UserState{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.users[userID]
	if u == nil {
		return UserState{}, false
	}
	return u.state(), true
}

func (s *Simulator) lookup(id string) *tenant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tenants[id]
}

func (s *Simulator) mustTenant(id string) (*tenant, error) {
	if t := s.lookup(id); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("graphsim: no tenant %q", id)
}

func (u *user) state() UserState {
	st := UserState{ID: u.id, UserPrincipalName: u.upn, DisplayName: u.displayName, UsageLocation: u.usageLocation,
		AccountEnabled: u.accountEnabled, LastSignInAt: u.lastSignIn, Licenses: u.skuIDs()}
	for id, plans := range u.licenses {
		if len(plans) > 0 {
			if st.DisabledPlans == nil {
				st.DisabledPlans = make(map[string][]string)
			}
			st.DisabledPlans[id] = slices.Clone(plans)
		}
	}
	if len(u.groupLicenses) > 0 {
		st.LicenseStates = u.licenseStates()
	}
	return st
}

func (u *user) skuIDs() []string {
	ids := make([]string, 0, len(u.licenses))
	for id := range u.licenses {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// addSKUs validates every SKU before adding any. The caller holds t.mu (or
// owns t alone).
func (t *tenant) addSKUs(seeds []SKUSeed) error {
	seen := make(map[string]bool, len(seeds))
	for _, k := range seeds {
		if k.ID == "" || k.Enabled < 0 || seen[k.ID] || t.skus[k.ID] != nil {
			return fmt.Errorf("graphsim: tenant %q: SKU %q is empty, duplicate or has negative seats", t.id, k.ID)
		}
		seen[k.ID] = true
	}
	for _, k := range seeds {
		t.skus[k.ID] = &sku{id: k.ID, partNumber: k.PartNumber, enabled: k.Enabled,
			requires: slices.Clone(k.Requires), excludes: slices.Clone(k.Excludes),
			prohibitedLocations: slices.Clone(k.ProhibitedLocations), servicePlans: slices.Clone(k.ServicePlans)}
	}
	return nil
}

// addUsers validates every user, and that the seats suffice, before adding
// any. The caller holds t.mu (or owns t alone).
func (t *tenant) addUsers(seeds []UserSeed) error {
	need := make(map[string]int)
	seen := make(map[string]bool, len(seeds))
	for _, u := range seeds {
		if u.ID == "" || seen[u.ID] || t.users[u.ID] != nil {
			return fmt.Errorf("graphsim: tenant %q: user %q is empty or duplicate", t.id, u.ID)
		}
		seen[u.ID] = true
		for _, l := range u.Licenses {
			if t.skus[l] == nil {
				return fmt.Errorf("graphsim: tenant %q: user %q holds unknown SKU %q", t.id, u.ID, l)
			}
			need[l]++
		}
	}
	for id, n := range need {
		if k := t.skus[id]; k.consumed+n > k.enabled {
			return fmt.Errorf("graphsim: tenant %q: SKU %q has %d seats, %d free, and the users hold %d", t.id, id, k.enabled, k.enabled-k.consumed, n)
		}
	}
	for _, s := range seeds {
		u := &user{id: s.ID, upn: s.UserPrincipalName, displayName: s.DisplayName, usageLocation: s.UsageLocation,
			accountEnabled: s.AccountEnabled, lastSignIn: s.LastSignInAt, licenses: make(map[string][]string, len(s.Licenses)),
			groupOnly: make(map[string]bool)}
		for _, l := range s.Licenses {
			if _, held := u.licenses[l]; !held {
				u.licenses[l] = slices.Clone(s.DisabledPlans[l])
				t.skus[l].consumed++
			}
		}
		t.users[s.ID] = u
		t.ids = append(t.ids, s.ID)
	}
	t.sorted = t.sorted && len(seeds) == 0
	return nil
}

// userIDs returns the user IDs in listing order. The caller holds t.mu.
func (t *tenant) userIDs() []string {
	if !t.sorted {
		sort.Strings(t.ids)
		t.sorted = true
	}
	return t.ids
}

// takeWrite spends one write of the tenant's quota, or says how long until
// one is free. A quota of 0 means none. refund gives the write back.
func (t *tenant) takeWrite(quota float64, now time.Time) (wait time.Duration, ok bool, refund func()) {
	if quota <= 0 {
		return 0, true, func() {}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d, r := t.write.take(quota, now)
	if r == nil {
		return d, false, nil
	}
	return 0, true, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		r.CancelAt(now)
	}
}

// writeShare is the share of the tenant's quota used over the last second;
// with count, it first counts a write.
func (t *tenant) writeShare(quota float64, now time.Time, count bool) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.write.share(quota, now, count)
}

// writeQuota is a write quota as Graph keeps one, for a tenant or an app:
// a token bucket of quota writes a second, and the writes of the last
// second for the share of the quota used. Its owner's mutex guards it.
type writeQuota struct {
	writes *rate.Limiter
	quota  float64 // what writes was made for
	recent window
}

// take spends one write and returns its reservation (to cancel, for a
// refund), or nil and how long until one is free.
func (q *writeQuota) take(quota float64, now time.Time) (time.Duration, *rate.Reservation) {
	if q.writes == nil || q.quota != quota {
		q.writes = rate.NewLimiter(rate.Limit(quota), max(1, int(math.Ceil(quota))))
		q.quota = quota
	}
	r := q.writes.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, nil
	}
	return 0, r
}

// share is the share of the quota used over the last second; with count,
// it first counts a write.
func (q *writeQuota) share(quota float64, now time.Time, count bool) float64 {
	if count {
		return q.recent.add(now, quota)
	}
	return q.recent.share(quota, now)
}

// window counts the events of the last second.
type window struct{ times []time.Time }

// add records an event at now and returns the share of quota per second
// that the last second's events are (0 when quota is 0).
func (w *window) add(now time.Time, quota float64) float64 {
	w.times = append(w.trim(now), now)
	return w.share(quota, now)
}

func (w *window) trim(now time.Time) []time.Time {
	i := 0
	for i < len(w.times) && now.Sub(w.times[i]) >= time.Second {
		i++
	}
	return w.times[i:]
}

func (w *window) share(quota float64, now time.Time) float64 {
	if quota <= 0 {
		return 0
	}
	w.times = w.trim(now)
	return float64(len(w.times)) / quota
}

// appQuota is an app's write quota across its tenants.
type appQuota struct {
	mu    sync.Mutex
	write writeQuota
}

// app returns the quota of the app with the client ID.
func (s *Simulator) app(clientID string) *appQuota {
	s.appsMu.Lock()
	defer s.appsMu.Unlock()
	if s.apps == nil {
		s.apps = make(map[string]*appQuota)
	}
	a := s.apps[clientID]
	if a == nil {
		a = &appQuota{}
		s.apps[clientID] = a
	}
	return a
}

// take spends one write of the app's quota, or says how long until one is free.
func (a *appQuota) take(quota float64, now time.Time) (time.Duration, bool) {
	if quota <= 0 {
		return 0, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	d, r := a.write.take(quota, now)
	return d, r != nil
}

// writeShare is the share of the app's quota used over the last second;
// with count, it first counts a write.
func (a *appQuota) writeShare(quota float64, now time.Time, count bool) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.write.share(quota, now, count)
}
