package api

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// Limits of a cleanup policy.
const (
	maxInactiveDays   = 3650
	maxExcludedUsers  = 10_000
	maxPolicyNameSize = 256
)

type cleanupRuleRequest struct {
	Kind           string   `json:"kind"`
	Days           *int     `json:"days"`
	SKUs           []string `json:"skus"`
	ExcludeUserIDs []string `json:"exclude_user_ids"`
}

// cleanupPolicyRequest is the body of POST (absent fields take their
// defaults) and of PATCH (absent fields keep their value; a rule is
// replaced whole).
type cleanupPolicyRequest struct {
	Name     *string             `json:"name"`
	Schedule *string             `json:"schedule"`
	TimeZone *string             `json:"time_zone"`
	Rule     *cleanupRuleRequest `json:"rule"`
	DryRun   *bool               `json:"dry_run"`
	Enabled  *bool               `json:"enabled"`
	// MaxChanges and MaxPercent: absent keeps the value (on POST, the
	// default), null removes the limit.
	MaxChanges nullable[int]     `json:"max_changes"`
	MaxPercent nullable[float64] `json:"max_percent"`
}

// apply validates the request and writes it onto p, returning the names of
// the fields it set.
func (req *cleanupPolicyRequest) apply(p *licensing.CleanupPolicy) ([]string, error) {
	var changed []string
	if req.Name != nil {
		if *req.Name == "" || len(*req.Name) > maxPolicyNameSize {
			return nil, invalid("name is required (1–%d characters)", maxPolicyNameSize)
		}
		p.Name, changed = *req.Name, append(changed, "name")
	}
	if req.Schedule != nil {
		p.Schedule, changed = *req.Schedule, append(changed, "schedule")
	}
	if req.TimeZone != nil {
		p.TimeZone, changed = *req.TimeZone, append(changed, "time_zone")
	}
	if req.Schedule != nil || req.TimeZone != nil {
		sched, err := storage.ParseSchedule(p.Schedule, p.TimeZone)
		if err != nil {
			return nil, invalid("%s", err.Error())
		}
		p.Schedule = sched.Spec()
	}
	if req.Rule != nil {
		rule, err := req.Rule.validate()
		if err != nil {
			return nil, err
		}
		p.Rule, changed = rule, append(changed, "rule")
	}
	if req.DryRun != nil {
		p.DryRun, changed = *req.DryRun, append(changed, "dry_run")
	}
	if req.Enabled != nil {
		p.Enabled, changed = *req.Enabled, append(changed, "enabled")
	}
	if req.MaxChanges.Set {
		if v := req.MaxChanges.Value; v != nil && *v <= 0 {
			return nil, invalid("max_changes must be a whole number of users above 0, not %d; send null for no limit", *v)
		}
		p.MaxChanges, changed = req.MaxChanges.Value, append(changed, "max_changes")
	}
	if req.MaxPercent.Set {
		if v := req.MaxPercent.Value; v != nil && (*v <= 0 || *v > 100) {
			return nil, invalid("max_percent must be a percentage of the customer's users above 0 and at most 100, not %g; send null for no limit", *v)
		}
		p.MaxPercent, changed = req.MaxPercent.Value, append(changed, "max_percent")
	}
	return changed, nil
}

func (r *cleanupRuleRequest) validate() (licensing.CleanupRule, error) {
	rule := licensing.CleanupRule{Kind: r.Kind}
	switch r.Kind {
	case licensing.RuleInactive:
		if r.Days == nil {
			return rule, invalid("rule.days is required for kind inactive: take licenses back from users who have not signed in for this many days")
		}
		if *r.Days <= 0 || *r.Days > maxInactiveDays {
			return rule, invalid("rule.days must be a whole number of days from 1 to %d, not %d", maxInactiveDays, *r.Days)
		}
		days := *r.Days
		rule.Days = &days
	case licensing.RuleDisabledAccounts:
		if r.Days != nil {
			return rule, invalid("rule.days is only for kind inactive; kind disabled_accounts matches every disabled account, whenever it last signed in")
		}
	case "":
		return rule, invalid("rule.kind is required: disabled_accounts or inactive")
	default:
		return rule, invalid("rule.kind must be disabled_accounts or inactive, not %q", licensing.Truncate(r.Kind, 40))
	}
	if r.SKUs != nil {
		if len(r.SKUs) == 0 {
			return rule, invalid("rule.skus is empty; list the SKUs to take back, or leave it out to take back every license the matched users hold")
		}
		if err := licensing.CheckIDs("rule.skus SKU", r.SKUs); err != nil {
			return rule, err
		}
		rule.SKUs = licensing.Dedupe(r.SKUs)
		if len(rule.SKUs) > licensing.MaxSKUsPerOperation {
			return rule, tooLarge("rule.skus", len(rule.SKUs), licensing.MaxSKUsPerOperation)
		}
	}
	if len(r.ExcludeUserIDs) > maxExcludedUsers {
		return rule, tooLarge("rule.exclude_user_ids", len(r.ExcludeUserIDs), maxExcludedUsers)
	}
	if err := licensing.CheckIDs("rule.exclude_user_ids user id", r.ExcludeUserIDs); err != nil {
		return rule, err
	}
	rule.ExcludeUserIDs = nonNilStrings(licensing.Dedupe(r.ExcludeUserIDs))
	return rule, nil
}

type cleanupPolicyLinks struct {
	Self string `json:"self"`
	Run  string `json:"run"`
	Runs string `json:"runs"`
}

type cleanupPolicyView struct {
	licensing.CleanupPolicy
	// NextRunAt is the next tick of the schedule (null while disabled).
	NextRunAt *time.Time         `json:"next_run_at"`
	Links     cleanupPolicyLinks `json:"links"`
}

func policyView(p licensing.CleanupPolicy) cleanupPolicyView {
	self := "/v1/customers/" + url.PathEscape(p.CustomerID) + "/cleanup-policies/" + p.ID
	v := cleanupPolicyView{CleanupPolicy: p, Links: cleanupPolicyLinks{Self: self, Run: self + "/run", Runs: self + "/runs"}}
	v.Rule.ExcludeUserIDs = nonNilStrings(v.Rule.ExcludeUserIDs)
	if sched, err := storage.ParseSchedule(p.Schedule, p.TimeZone); err == nil && p.Enabled {
		next := sched.Next(time.Now())
		if next.Before(p.ScheduleSince) {
			next = sched.Next(p.ScheduleSince)
		}
		if !next.IsZero() {
			v.NextRunAt = &next
		}
	}
	return v
}

func (s *Server) createCleanupPolicy(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	var req cleanupPolicyRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	switch {
	case req.Name == nil:
		return invalid("name is required (1–%d characters)", maxPolicyNameSize)
	case req.Schedule == nil:
		return invalid(`schedule is required: a cron expression of five fields, for example "0 2 * * *" for 02:00 every day`)
	case req.Rule == nil:
		return invalid(`rule is required, for example {"kind": "inactive", "days": 90} or {"kind": "disabled_accounts"}`)
	}
	// Absent fields: UTC, a dry run (a new policy shows what it would take
	// back before it takes anything), enabled.
	// The limits: 500 users and 10 % of the customer's users.
	maxChanges, maxPercent := licensing.DefaultCleanupMaxChanges, licensing.DefaultCleanupMaxPercent
	pol := licensing.CleanupPolicy{PartnerKey: p.PartnerKey, CustomerKey: c.Key, CustomerID: c.ID, TimeZone: "UTC",
		DryRun: true, Enabled: true, CreatedBy: p.TokenName, MaxChanges: &maxChanges, MaxPercent: &maxPercent}
	if _, err := req.apply(&pol); err != nil {
		return err
	}
	out, err := s.store.CreateCleanupPolicy(r.Context(), pol)
	if err != nil {
		return err
	}
	v := policyView(out)
	s.audit(r, p, auditCleanupPolicyCreate, c.ID, out.ID, v.CleanupPolicy)
	w.Header().Set("Location", v.Links.Self)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) listCleanupPolicies(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	policies, err := s.store.ListCleanupPolicies(r.Context(), c.Key)
	if err != nil {
		return err
	}
	views := make([]cleanupPolicyView, len(policies))
	for i, pol := range policies {
		views[i] = policyView(pol)
	}
	writeJSON(w, http.StatusOK, map[string]any{"cleanup_policies": views})
	return nil
}

// cleanupPolicy resolves {cid} and {pid} within the caller's partner: a
// policy of another customer or partner is NotFound.
func (s *Server) cleanupPolicy(r *http.Request, p *licensing.Principal) (licensing.Customer, licensing.CleanupPolicy, error) {
	c, err := s.customer(r, p)
	if err != nil {
		return c, licensing.CleanupPolicy{}, err
	}
	pol, err := s.store.GetCleanupPolicy(r.Context(), p.PartnerKey, c.Key, r.PathValue("pid"))
	return c, pol, err
}

func (s *Server) getCleanupPolicy(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	_, pol, err := s.cleanupPolicy(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, policyView(pol))
	return nil
}

func (s *Server) patchCleanupPolicy(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	var req cleanupPolicyRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	var changed []string
	out, err := s.store.UpdateCleanupPolicy(r.Context(), p.PartnerKey, c.Key, r.PathValue("pid"), func(pol *licensing.CleanupPolicy) error {
		var err error
		changed, err = req.apply(pol)
		if err == nil && len(changed) == 0 {
			err = invalid("nothing to change: send at least one of name, schedule, time_zone, rule, dry_run, enabled, max_changes, max_percent")
		}
		return err
	})
	if err != nil {
		return err
	}
	v := policyView(out)
	s.audit(r, p, auditCleanupPolicyUpdate, c.ID, out.ID, map[string]any{"changed": changed, "policy": v.CleanupPolicy})
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) deleteCleanupPolicy(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, pol, err := s.cleanupPolicy(r, p)
	if err != nil {
		return err
	}
	if err := s.store.DeleteCleanupPolicy(r.Context(), p.PartnerKey, c.Key, pol.ID); err != nil {
		return err
	}
	s.audit(r, p, auditCleanupPolicyDelete, c.ID, pol.ID, map[string]any{"name": pol.Name})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// runRequest is the optional body of a manual run.
type runRequest struct {
	// Confirm lets this run change more users than the policy's limits.
	Confirm bool `json:"confirm"`
}

// runCleanupPolicy runs a policy now, whether or not it is enabled: 202
// with the operation it started, or 200 when nobody matched or the run
// was blocked by the policy's limits.
func (s *Server) runCleanupPolicy(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	var req runRequest
	if err := decodeOptionalJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	entry, err := p.Audit(auditCleanupPolicyRun, c.ID, "", nil)
	if err != nil {
		return err
	}
	res, err := s.intake.RunCleanup(r.Context(), storage.CleanupRunRequest{
		PolicyID: r.PathValue("pid"), PartnerKey: p.PartnerKey, CustomerKey: c.Key,
		At: time.Now(), CreatedBy: p.TokenName, Audit: &entry, Confirm: req.Confirm,
	})
	if err != nil {
		return err
	}
	if res.Run.Status == licensing.RunBlocked {
		writeJSON(w, http.StatusOK, map[string]any{
			"status": licensing.RunBlocked, "matched_users": res.Run.MatchedUsers, "limit": res.Run.Limit, "run": res.Run,
			"message": fmt.Sprintf("the policy matched %d users, more than its limit of %d; nothing was changed. Check the rule, "+
				`or run it again with {"confirm": true} to change them all this once`, res.Run.MatchedUsers, *res.Run.Limit),
		})
		return nil
	}
	if res.Operation == nil {
		writeJSON(w, http.StatusOK, map[string]any{
			"status": licensing.RunNothingMatched, "matched_users": 0, "run": res.Run,
			"message": "no user matches the policy's rule now; no operation was started",
		})
		return nil
	}
	op := *res.Operation
	w.Header().Set("Location", linksOf(op.ID).Self)
	writeJSON(w, http.StatusAccepted, struct {
		acceptedOperation
		DryRun bool                 `json:"dry_run"`
		Run    licensing.CleanupRun `json:"run"`
	}{acceptedOperation{ID: op.ID, CustomerID: op.CustomerID, Status: op.Status, Total: op.Total, Links: linksOf(op.ID)}, op.DryRun, res.Run})
	return nil
}

func (s *Server) listCleanupRuns(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	_, pol, err := s.cleanupPolicy(r, p)
	if err != nil {
		return err
	}
	pg, err := parsePaging(r, 50)
	if err != nil {
		return err
	}
	runs, total, err := s.store.ListCleanupRuns(r.Context(), pol.ID, pg.PageSize, pg.offset())
	if err != nil {
		return err
	}
	pg.writePage(w, r, "runs", runs, total)
	return nil
}
