package api

import (
	"net/http"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

type summaryProduct struct {
	SKU             string   `json:"sku_id"`
	Name            string   `json:"name"`
	Total           int      `json:"total"`
	Available       int      `json:"available"`
	State           string   `json:"state"`
	AssignedUserIDs []string `json:"assigned_user_ids"`
	BuyMoreURL      *string  `json:"buy_more_url"`
	// ServicePlans are the product's plans, each with how many of the
	// selected holders have it on (absent for a product without plans).
	ServicePlans []storage.PlanCount `json:"service_plans,omitempty"`
	// DirectHolders and InheritedHolders split the holders by how they hold
	// the SKU: assigned directly, inherited from a group (both for a user
	// holding it both ways).
	DirectHolders    int `json:"direct_holders"`
	InheritedHolders int `json:"inherited_holders"`
}

// licenseSummary is the Manage-licenses view of a selection: for every
// subscription, whether all, some or none of the selected users hold it.
func (s *Server) licenseSummary(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	var req struct {
		UserIDs []string `json:"user_ids"`
	}
	if err := decodeJSON(w, r, maxOperationBody, &req); err != nil {
		return err
	}
	if len(req.UserIDs) == 0 {
		return invalid("user_ids is required: select at least one user")
	}
	// As for operations: duplicates count once, and a raw list far beyond
	// the limit is refused before any ID is looked at.
	maxUsers := s.intake.Config().MaxUsersPerOperation
	if len(req.UserIDs) > intake.MaxRawUsersFactor*maxUsers {
		return tooLarge("user_ids", len(req.UserIDs), maxUsers)
	}
	if err := licensing.CheckIDs("user id", req.UserIDs); err != nil {
		return err
	}
	users := licensing.Dedupe(req.UserIDs)
	if len(users) > maxUsers {
		return licensing.Errorf(licensing.CodeTooLarge,
			"user_ids has %d distinct users; the limit is %d, select fewer", len(users), maxUsers)
	}
	sum, err := s.store.Summary(r.Context(), p.PartnerKey, c.Key, users)
	if err != nil {
		return err
	}
	products := make([]summaryProduct, len(sum.Subscriptions))
	for i, sub := range sum.Subscriptions {
		holders := sum.Holders[sub.SKU]
		if holders == nil {
			holders = []string{}
		}
		state := "some"
		switch len(holders) {
		case 0:
			state = "none"
		case len(sum.Users):
			state = "all"
		}
		v := s.subscriptionView(c, sub)
		products[i] = summaryProduct{SKU: sub.SKU, Name: sub.Name, Total: sub.Total, Available: sub.Available,
			State: state, AssignedUserIDs: holders, BuyMoreURL: v.BuyMoreURL, ServicePlans: sum.Plans[sub.SKU],
			DirectHolders: sum.Direct[sub.SKU], InheritedHolders: sum.Inherited[sub.SKU]}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": sum.Users, "products": products})
	return nil
}
