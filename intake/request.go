package intake

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// Request is an operation as a front end asks for it. Submit and Preview
// validate and normalize their own copy; the caller's slices are not
// changed.
type Request struct {
	// Principal is who asks: the operation is of its partner, created by
	// its token and audited as its change. Required.
	Principal *licensing.Principal
	// Customer is the customer whose users change, already resolved within
	// the principal's partner.
	Customer licensing.Customer
	// UserIDs are the users to change; duplicates count once.
	UserIDs []string
	// Assign and Revoke are the SKUs to assign and to take back; at least
	// one of them is required, and no SKU may be in both.
	Assign, Revoke []string
	// Replace swaps licenses for the users who hold a pair's From when the
	// worker applies their item; it shares no SKU with Assign or Revoke.
	Replace []licensing.Replacement
	// CopyFrom, when set, gives the users the licenses this user of the
	// customer holds (read when the operation is created); Exact also
	// takes away the others. It goes with no Assign, Revoke or Replace.
	CopyFrom string
	Exact    bool
	// DisabledPlans are the service plans to switch off, by SKU of Assign
	// (or a Replace's To), for the users who get the SKU and those who
	// hold it already; nil changes no plan.
	DisabledPlans map[string][]string
	// UsageLocation, when set, is the usage location every user gets (an
	// ISO 3166-1 alpha-2 code, any case); nil keeps each user's own.
	UsageLocation *string
	// AllowPartial lets the operation start when seats are short: the
	// users that get no seat fail with CountViolation.
	AllowPartial bool
	// NotBefore, when set, schedules the operation to start at that time
	// (storage.NewOperation.NotBefore). Preview ignores it.
	NotBefore *time.Time
	// Source names the front end (licensing.SourceAPI, …). Required.
	Source string
	// IdempotencyKey, when set, ties the operation to this key of the
	// principal's partner (the API's Idempotency-Key): a retry of the same
	// request gets the first answer, which Respond renders when the
	// operation is created. Preview ignores both.
	IdempotencyKey string
	Respond        func(licensing.Operation) storage.StoredResponse
}

// MaxRawUsersFactor bounds the raw user_ids list, duplicates included, at
// this multiple of the distinct-user limit: a body of mostly repeats is
// refused before deduplication spends memory on it.
const MaxRawUsersFactor = 2

// maxIdempotencyKey is the longest idempotency key, in bytes.
const maxIdempotencyKey = 255

// validate checks an operation request by the domain's rules and
// normalizes it (deduplicated IDs, upper-case country).
func (req *Request) validate(maxUsers int) error {
	if req.Principal == nil || req.Source == "" {
		return errors.New("intake: a request needs its principal and source")
	}
	if len(req.UserIDs) == 0 {
		return invalid("user_ids is required: select at least one user")
	}
	// Duplicates count once, so the limit applies to distinct
	// users; a raw list far beyond it is refused before any ID is hashed.
	if len(req.UserIDs) > MaxRawUsersFactor*maxUsers {
		return licensing.Errorf(licensing.CodeTooLarge,
			"user_ids has %d entries; an operation takes up to %d distinct users, split the request", len(req.UserIDs), maxUsers)
	}
	if err := req.validateCopy(); err != nil {
		return err
	}
	if len(req.Assign) == 0 && len(req.Revoke) == 0 && len(req.Replace) == 0 && req.CopyFrom == "" {
		return invalid("nothing to do: give at least one SKU in assign, revoke or replace")
	}
	if err := licensing.CheckIDs("user id", req.UserIDs); err != nil {
		return err
	}
	if err := licensing.CheckIDs("assign SKU", req.Assign); err != nil {
		return err
	}
	if err := licensing.CheckIDs("revoke SKU", req.Revoke); err != nil {
		return err
	}
	req.UserIDs, req.Assign, req.Revoke = licensing.Dedupe(req.UserIDs), licensing.Dedupe(req.Assign), licensing.Dedupe(req.Revoke)
	if len(req.UserIDs) > maxUsers {
		return licensing.Errorf(licensing.CodeTooLarge,
			"user_ids has %d distinct users; the limit is %d, split the request", len(req.UserIDs), maxUsers)
	}
	if err := req.validateReplace(); err != nil {
		return err
	}
	plans, err := licensing.NormalizeDisabledPlans(req.DisabledPlans, req.Assign, req.Replace)
	if err != nil {
		return err
	}
	req.DisabledPlans = plans
	// The SKUs as stored: assign with the replace targets, revoke with the
	// replaced SKUs (storage.NewOperation.Replace).
	if n := len(req.Assign) + len(req.Revoke) + len(req.Replace) + len(licensing.ReplaceTargets(req.Replace)); n > licensing.MaxSKUsPerOperation {
		return licensing.Errorf(licensing.CodeTooLarge, "%s has %d entries; the limit is %d, split the request",
			req.skuFields(), n, licensing.MaxSKUsPerOperation)
	}
	for _, a := range req.Assign {
		for _, r := range req.Revoke {
			if a == r {
				return invalid("SKU %s is in both assign and revoke; choose one", a)
			}
		}
	}
	if req.UsageLocation != nil {
		loc, err := licensing.NormalizeCountry("usage_location", *req.UsageLocation)
		if err != nil {
			return err
		}
		req.UsageLocation = &loc
	}
	return req.validateSchedule(time.Now())
}

// validateCopy checks a copy of a user's licenses: the whole change, so
// that nobody has to guess how it would combine with another.
func (req *Request) validateCopy() error {
	switch {
	case req.CopyFrom == "" && req.Exact:
		return invalid("exact goes with copy_from: give the user whose licenses to copy, or leave exact out")
	case req.CopyFrom == "":
		return nil
	case len(req.Assign) > 0 || len(req.Revoke) > 0 || len(req.Replace) > 0 || len(req.DisabledPlans) > 0:
		return invalid("copy_from gives the licenses of user %s and goes alone (with the plans it has off): leave out assign, revoke, replace and disabled_plans, or send them in another operation", req.CopyFrom)
	}
	return licensing.CheckID("copy_from user id", req.CopyFrom)
}

// validateReplace checks the replace pairs and drops repeated ones: each
// From is replaced by one To, is no pair's To (a chain would depend on the
// order), and no SKU of a pair is in Assign or Revoke, whose lists as
// stored include the pairs' SKUs.
func (req *Request) validateReplace() error {
	var pairs []licensing.Replacement
	for _, r := range req.Replace {
		if err := licensing.CheckIDs("replace SKU", []string{r.From, r.To}); err != nil {
			return err
		}
		if r.From == r.To {
			return invalid("replace %s with %s: from and to are the same SKU; remove the pair", r.From, r.To)
		}
		if slices.Contains(pairs, r) {
			continue
		}
		for _, p := range pairs {
			switch {
			case p.From == r.From:
				return invalid("SKU %s is replaced twice, by %s and by %s; give one replacement", r.From, p.To, r.To)
			case p.To == r.From:
				return chained(r.From)
			case p.From == r.To:
				return chained(r.To)
			}
		}
		for _, sku := range []string{r.From, r.To} {
			if slices.Contains(req.Assign, sku) || slices.Contains(req.Revoke, sku) {
				return invalid("SKU %s is in replace and in assign or revoke; leave it in one of them", sku)
			}
		}
		pairs = append(pairs, r)
	}
	req.Replace = pairs
	return nil
}

func chained(sku string) error {
	return invalid("SKU %s is both replaced and a replacement; split the change into two operations", sku)
}

// skuFields names the SKU lists of the request, for messages.
func (req *Request) skuFields() string {
	if len(req.Replace) > 0 {
		return "assign, revoke and replace"
	}
	return "assign and revoke"
}

// Bounds of not_before: a time slightly in the past (a clock behind, or a
// request that took long) starts at once; one further back is a mistake.
const (
	maxScheduleLag   = 5 * time.Minute
	maxScheduleAhead = 366 * 24 * time.Hour
)

// validateSchedule checks NotBefore against now: not long past, not more
// than a year ahead. A time up to maxScheduleLag past means now.
func (req *Request) validateSchedule(now time.Time) error {
	if req.NotBefore == nil {
		return nil
	}
	t := req.NotBefore.UTC().Truncate(time.Microsecond) // what Postgres keeps
	switch {
	case t.Before(now.Add(-maxScheduleLag)):
		return invalid("not_before %s is in the past; give a future time, or leave not_before out to start now", t.Format(time.RFC3339))
	case t.After(now.Add(maxScheduleAhead)):
		return invalid("not_before %s is more than a year ahead; schedule it within a year", t.Format(time.RFC3339))
	}
	req.NotBefore = &t
	return nil
}

// validateKey checks the idempotency key of a request Submit takes.
func (req *Request) validateKey() error { return checkKey(req.IdempotencyKey, req.Respond) }

// checkKey checks an idempotency key and that its answer can be rendered.
func checkKey(key string, respond func(licensing.Operation) storage.StoredResponse) error {
	if len(key) > maxIdempotencyKey {
		return invalid("Idempotency-Key is longer than %d characters", maxIdempotencyKey)
	}
	if key != "" && respond == nil {
		return errors.New("intake: a request with an idempotency key needs Respond")
	}
	return nil
}

// fingerprint identifies a normalized request's meaning for idempotency,
// so that whitespace or field order do not make a retry "different". Its
// bytes must not change between releases: a retry that spans a deploy
// would be refused as IdempotencyKeyReused.
func (req *Request) fingerprint() []byte {
	b, _ := json.Marshal(struct {
		C             string   `json:"c"`
		UserIDs       []string `json:"user_ids"`
		Assign        []string `json:"assign"`
		Revoke        []string `json:"revoke"`
		UsageLocation *string  `json:"usage_location"`
		AllowPartial  bool     `json:"allow_partial"`
		// omitempty keeps the bytes of unscheduled requests as before.
		NotBefore *time.Time `json:"not_before,omitempty"`
		// and of requests without replace or copy_from.
		Replace  []licensing.Replacement `json:"replace,omitempty"`
		CopyFrom string                  `json:"copy_from,omitempty"`
		Exact    bool                    `json:"exact,omitempty"`
		// and of requests without disabled plans.
		DisabledPlans map[string][]string `json:"disabled_plans,omitempty"`
	}{req.Customer.ID, req.UserIDs, req.Assign, req.Revoke, req.UsageLocation, req.AllowPartial, req.NotBefore, req.Replace, req.CopyFrom, req.Exact,
		req.DisabledPlans})
	h := sha256.Sum256(b)
	return h[:]
}

func invalid(format string, args ...any) error {
	return licensing.Errorf(licensing.CodeInvalidRequest, format, args...)
}

// nonNilStrings returns s, or an empty slice for nil, so JSON shows [] rather than null.
func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
