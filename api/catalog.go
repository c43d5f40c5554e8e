package api

import (
	"net/http"

	"github.com/licenseops/licenseops/licensing"
)

type productRequest struct {
	Name                string   `json:"name"`
	PartNumber          string   `json:"part_number"`
	Requires            []string `json:"requires"`
	Excludes            []string `json:"excludes"`
	AllowedLocations    []string `json:"allowed_locations"`
	ProhibitedLocations []string `json:"prohibited_locations"`
	// ServicePlans, when given, replaces the product's plans; absent
	// keeps them (a directory sync may have imported them).
	ServicePlans []licensing.ServicePlan `json:"service_plans"`
}

func (s *Server) putProduct(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	sku := r.PathValue("sku_id")
	if err := licensing.CheckID("sku_id", sku); err != nil {
		return err
	}
	var req productRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	if req.Name == "" || len(req.Name) > 256 {
		return invalid("name is required (1–256 characters)")
	}
	if len(req.PartNumber) > 128 {
		return invalid("part_number is longer than 128 characters")
	}
	if err := licensing.CheckIDs("requires", req.Requires); err != nil {
		return err
	}
	if err := licensing.CheckIDs("excludes", req.Excludes); err != nil {
		return err
	}
	for _, x := range append(append([]string{}, req.Requires...), req.Excludes...) {
		if x == sku {
			return invalid("product %s cannot require or exclude itself", sku)
		}
	}
	if err := licensing.CheckServicePlans(req.ServicePlans); err != nil {
		return err
	}
	allowedLocs, err := licensing.NormalizeCountries("allowed_locations", req.AllowedLocations)
	if err != nil {
		return err
	}
	prohibited, err := licensing.NormalizeCountries("prohibited_locations", req.ProhibitedLocations)
	if err != nil {
		return err
	}
	prod, err := s.store.PutProduct(r.Context(), p.PartnerKey, licensing.Product{
		SKU: sku, Name: req.Name, PartNumber: req.PartNumber,
		Requires: licensing.Dedupe(req.Requires), Excludes: licensing.Dedupe(req.Excludes),
		AllowedLocations: allowedLocs, ProhibitedLocations: prohibited, ServicePlans: req.ServicePlans,
	})
	if err != nil {
		return err
	}
	s.audit(r, p, auditProductPut, "", sku, prod)
	writeJSON(w, http.StatusOK, prod)
	return nil
}

func (s *Server) listProducts(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	products, err := s.store.ListProducts(r.Context(), p.PartnerKey)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": products})
	return nil
}
