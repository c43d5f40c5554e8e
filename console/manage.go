package console

import (
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// ShownUsers is how many selected users the Manage-licenses page shows as
// boxes ("and N more" after them); MaxHolders bounds each product's list of
// holders.
const (
	ShownUsers = 50
	MaxHolders = 1000
	firstNames = 5
)

// The changes a product's box can ask for.
const (
	actKeep   = "keep"
	actAssign = "assign"
	actRevoke = "revoke"
)

type manageProduct struct {
	Index       int
	SKU, Name   string
	State       string // all, some, none: who of the selection holds it
	Act         string // keep, assign, revoke: what the form asks
	Held        int
	Holders     []string // display names, sorted
	MoreHolders int
	Total       int
	Available   int
	BuyMore     string
}

type previewSKU struct {
	Name              string
	Needed, Available int
	Short             bool
	BuyMore           string
}

type previewFailure struct {
	Code  string
	Count int
	Names []string
	More  int
}

type managePreview struct {
	Total, WouldSucceed, WouldFail int
	SKUs                           []previewSKU
	Failures                       []previewFailure
	// Refused is set when a Save without Allow partial would be refused
	// for lack of seats; the outcomes shown are then Allow partial's.
	Refused bool
}

type managePage struct {
	View
	Count         int
	Shown         []licensing.SummaryUser
	More          int
	Products      []manageProduct
	CanSave       bool
	CanLocation   bool
	UsageLocation string
	LocationError string
	AllowPartial  bool
	FormError     string
	Shortages     []previewSKU
	Preview       *managePreview
	Key           string // the idempotency key of this form's Save
}

// manage is the Manage-licenses page of the session's selection.
func (c *Console) manage(w http.ResponseWriter, r *http.Request, s *session) error {
	cust, err := c.customer(r, s)
	if err != nil {
		return err
	}
	data, _, err := c.manageData(r, s, &cust, nil)
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "manage", data)
	return nil
}

// manageData builds the page for the selection; acts, when given, are the
// changes a posted form asked for (by SKU).
func (c *Console) manageData(r *http.Request, s *session, cust *licensing.Customer, acts map[string]string) (*managePage, []string, error) {
	ctx := r.Context()
	ids, err := c.selection(s, cust.ID).ids(ctx)
	if err != nil {
		return nil, nil, err
	}
	v := c.customerView(r, s, cust, "users", "ManageTitle")
	key, err := randomID()
	if err != nil {
		return nil, nil, err
	}
	data := &managePage{View: v, CanSave: canOperate(s.principal.Role), CanLocation: canSetUsageLocation(s.principal.Role), Key: key}
	if len(ids) == 0 {
		return data, nil, nil
	}
	sum, err := c.store.Summary(ctx, s.principal.PartnerKey, cust.Key, ids)
	if err != nil {
		return nil, nil, err
	}
	data.Count = len(sum.Users)
	data.Shown = sum.Users[:min(len(sum.Users), ShownUsers)]
	data.More = len(sum.Users) - len(data.Shown)
	// Holders are sorted by ID; the page lists them by display name, as
	// the selection is sorted.
	holds := make(map[string]map[string]bool, len(sum.Holders))
	for sku, hs := range sum.Holders {
		m := make(map[string]bool, len(hs))
		for _, id := range hs {
			m[id] = true
		}
		holds[sku] = m
	}
	for i, sub := range sum.Subscriptions {
		held := len(sum.Holders[sub.SKU])
		p := manageProduct{Index: i, SKU: sub.SKU, Name: sub.Name, Held: held, Total: sub.Total,
			Available: max(sub.Available, 0), Act: actKeep}
		switch held {
		case 0:
			p.State = "none"
		case len(sum.Users):
			p.State = "all"
		default:
			p.State = "some"
		}
		if a := acts[sub.SKU]; a == actAssign && p.State != "all" || a == actRevoke && p.State != "none" {
			p.Act = a
		}
		if m := holds[sub.SKU]; len(m) > 0 {
			for _, u := range sum.Users {
				if m[u.ID] {
					if len(p.Holders) == MaxHolders {
						p.MoreHolders = held - MaxHolders
						break
					}
					p.Holders = append(p.Holders, u.DisplayName)
				}
			}
		}
		if p.Available == 0 {
			p.BuyMore = c.buyMoreURL(cust.ID, sub.SKU)
		}
		data.Products = append(data.Products, p)
	}
	return data, ids, nil
}

func (c *Console) buyMoreURL(customerID, sku string) string {
	if c.cfg.BuyMoreURL == "" {
		return ""
	}
	return strings.NewReplacer("{customer_id}", pathEscape(customerID), "{sku_id}", pathEscape(sku)).Replace(c.cfg.BuyMoreURL)
}

// manageSubmit previews or saves the changes of the Manage-licenses form
// through the intake, as the API's license-operations call does.
func (c *Console) manageSubmit(w http.ResponseWriter, r *http.Request, s *session) error {
	cust, err := c.customer(r, s)
	if err != nil {
		return err
	}
	skus, acts := r.PostForm["sku"], r.PostForm["act"]
	if len(skus) != len(acts) || len(skus) > 1000 {
		return pageErr(licensing.CodeInvalidRequest, "FormIncomplete")
	}
	byKey := map[string]string{}
	for i, sku := range skus {
		byKey[sku] = acts[i]
	}
	data, ids, err := c.manageData(r, s, &cust, byKey)
	if err != nil {
		return err
	}
	save := r.PostFormValue("action") == "save"
	if save && !data.CanSave {
		return pageErr(licensing.CodeForbidden, "RoleMayNotChangeLicenses", "Role", s.principal.Role)
	}
	if len(ids) == 0 {
		data.FormError = data.T("NoSelection")
		c.render(w, http.StatusBadRequest, "manage", data)
		return nil
	}
	data.AllowPartial = r.PostFormValue("allow_partial") != ""
	data.UsageLocation = strings.TrimSpace(r.PostFormValue("usage_location"))
	if k := r.PostFormValue("key"); k != "" && len(k) <= 64 {
		data.Key = k
	}
	req := intake.Request{Principal: s.principal, Customer: cust, UserIDs: ids, AllowPartial: data.AllowPartial,
		Source: licensing.SourceAPI}
	for _, p := range data.Products {
		switch p.Act {
		case actAssign:
			req.Assign = append(req.Assign, p.SKU)
		case actRevoke:
			req.Revoke = append(req.Revoke, p.SKU)
		}
	}
	if data.UsageLocation != "" {
		if !data.CanLocation {
			return pageErr(licensing.CodeForbidden, "RoleMayNotSetLocation", "Role", s.principal.Role)
		}
		loc, err := licensing.NormalizeCountry("usage_location", data.UsageLocation)
		if err != nil {
			data.LocationError = data.T("UsageLocationInvalid")
			c.render(w, http.StatusBadRequest, "manage", data)
			return nil
		}
		req.UsageLocation = &loc
	}
	if len(req.Assign) == 0 && len(req.Revoke) == 0 {
		data.FormError = data.T("NothingToChange")
		c.render(w, http.StatusBadRequest, "manage", data)
		return nil
	}
	if !save {
		return c.preview(w, r, data, req, &cust)
	}
	req.IdempotencyKey = "console:" + data.Key
	req.Respond = func(op licensing.Operation) storage.StoredResponse {
		return storage.StoredResponse{Status: http.StatusSeeOther, Location: "/console/operations/" + op.ID}
	}
	sub, err := c.intake.Submit(r.Context(), req)
	if err != nil {
		return c.formError(w, data, &cust, err)
	}
	loc := "/console/operations/" + sub.Operation.ID
	if sub.Replayed != nil {
		loc = sub.Replayed.Location
	}
	http.Redirect(w, r, loc, http.StatusSeeOther)
	return nil
}

// formError shows an error of the intake on the form: seats short with
// their Buy more links, anything the request broke as its message.
func (c *Console) formError(w http.ResponseWriter, data *managePage, cust *licensing.Customer, err error) error {
	var short *storage.ShortageError
	if errors.As(err, &short) {
		data.FormError = data.T("SeatsShort")
		data.Shortages = c.shortages(data, cust, short.Shortages)
		c.render(w, http.StatusConflict, "manage", data)
		return nil
	}
	code := licensing.ErrorCode(err)
	if code == licensing.CodeInternal {
		return err
	}
	data.FormError = string(code) + ": " + licensing.ErrorMessage(err)
	c.render(w, licensing.HTTPStatus(code), "manage", data)
	return nil
}

func (c *Console) shortages(data *managePage, cust *licensing.Customer, sh []licensing.SeatShortage) []previewSKU {
	names := map[string]string{}
	for _, p := range data.Products {
		names[p.SKU] = p.Name
	}
	out := make([]previewSKU, len(sh))
	for i, x := range sh {
		out[i] = previewSKU{Name: productNames(names).name(x.SKU), Needed: x.Needed, Available: x.Available,
			Short: x.Needed > x.Available}
		if out[i].Short {
			out[i].BuyMore = c.buyMoreURL(cust.ID, x.SKU)
		}
	}
	return out
}

// preview is the API's dry run: seats needed against available per product,
// and who would fail which rule. When a Save would be refused for lack of
// seats, the outcomes shown are those Allow partial would give.
func (c *Console) preview(w http.ResponseWriter, r *http.Request, data *managePage, req intake.Request, cust *licensing.Customer) error {
	pv, err := c.intake.Preview(r.Context(), req)
	refused := false
	var short *storage.ShortageError
	if errors.As(err, &short) {
		refused = true
		req.AllowPartial = true
		pv, err = c.intake.Preview(r.Context(), req)
	}
	if err != nil {
		return c.formError(w, data, cust, err)
	}
	out := &managePreview{Total: pv.Total, WouldSucceed: pv.WouldSucceed, WouldFail: pv.WouldFail, Refused: refused,
		SKUs: c.shortages(data, cust, pv.SKUs)}
	byCode := map[string]*previewFailure{}
	for i := range pv.Results {
		row := &pv.Results[i]
		if row.Error == nil {
			continue
		}
		f := byCode[string(row.Error.Code)]
		if f == nil {
			f = &previewFailure{Code: string(row.Error.Code)}
			byCode[f.Code] = f
		}
		f.Count++
		if len(f.Names) < firstNames {
			f.Names = append(f.Names, row.DisplayName)
		}
	}
	for _, f := range byCode {
		f.More = f.Count - len(f.Names)
		out.Failures = append(out.Failures, *f)
	}
	sort.Slice(out.Failures, func(i, j int) bool { return out.Failures[i].Code < out.Failures[j].Code })
	data.Preview = out
	c.render(w, http.StatusOK, "manage", data)
	return nil
}
