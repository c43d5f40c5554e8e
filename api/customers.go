package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

type createCustomerRequest struct {
	ID                   string  `json:"id"`
	Name                 string  `json:"name"`
	DefaultUsageLocation *string `json:"default_usage_location"`
	Directory            *struct {
		Kind     string `json:"kind"`
		TenantID string `json:"tenant_id"`
	} `json:"directory"`
}

func (s *Server) createCustomer(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	var req createCustomerRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	if err := licensing.CheckID("id", req.ID); err != nil {
		return err
	}
	if req.Name == "" || len(req.Name) > 256 {
		return invalid("name is required (1–256 characters)")
	}
	c := licensing.Customer{ID: req.ID, Name: req.Name, Directory: licensing.Directory{Kind: licensing.DirectoryLocal}}
	if req.DefaultUsageLocation != nil {
		loc, err := licensing.NormalizeCountry("default_usage_location", *req.DefaultUsageLocation)
		if err != nil {
			return err
		}
		c.DefaultUsageLocation = &loc
	}
	if d := req.Directory; d != nil {
		switch d.Kind {
		case licensing.DirectoryLocal:
			if d.TenantID != "" {
				return invalid("directory.tenant_id is only for kind msgraph")
			}
		case licensing.DirectoryMSGraph:
			if d.TenantID == "" {
				return invalid("directory.tenant_id is required for kind msgraph (the customer's Microsoft Entra tenant ID)")
			}
			if err := licensing.CheckID("directory.tenant_id", d.TenantID); err != nil {
				return err
			}
		default:
			return invalid("directory.kind must be local or msgraph, not %q", licensing.Truncate(d.Kind, 20))
		}
		c.Directory = licensing.Directory{Kind: d.Kind, TenantID: d.TenantID}
	}
	out, err := s.store.CreateCustomer(r.Context(), p.PartnerKey, c)
	if err != nil {
		return err
	}
	s.audit(r, p, auditCustomerCreate, out.ID, out.ID, map[string]any{"name": out.Name, "directory": out.Directory.Kind})
	w.Header().Set("Location", "/v1/customers/"+out.ID)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	cs, err := s.store.ListCustomers(r.Context(), p.PartnerKey)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"customers": cs})
	return nil
}

// customer resolves the {cid} of the path within the caller's partner.
func (s *Server) customer(r *http.Request, p *licensing.Principal) (licensing.Customer, error) {
	cid := r.PathValue("cid")
	if err := licensing.CheckID("customer id", cid); err != nil {
		return licensing.Customer{}, err
	}
	return s.store.GetCustomer(r.Context(), p.PartnerKey, cid)
}

// customerChild resolves {cid} like customer and validates the ID of an
// object under it, taken from the path parameter param.
func (s *Server) customerChild(r *http.Request, p *licensing.Principal, param, kind string) (licensing.Customer, string, error) {
	id := r.PathValue(param)
	if err := licensing.CheckID(kind, id); err != nil {
		return licensing.Customer{}, "", err
	}
	c, err := s.customer(r, p)
	return c, id, err
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// patchCustomerRequest is the body of PATCH /v1/customers/{cid}: absent
// fields keep their value. default_usage_location stays raw so that null
// (clear the default) can be told from absent.
type patchCustomerRequest struct {
	Name                 *string         `json:"name"`
	DefaultUsageLocation json.RawMessage `json:"default_usage_location"`
}

// patchCustomer changes a customer's name or default usage location,
// validated as when the customer is created. Its ID and directory stay.
func (s *Server) patchCustomer(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	var req patchCustomerRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	var u storage.CustomerUpdate
	var changed []string
	if req.Name != nil {
		if *req.Name == "" || len(*req.Name) > 256 {
			return invalid("name must be 1–256 characters")
		}
		u.Name, changed = req.Name, append(changed, "name")
	}
	if req.DefaultUsageLocation != nil {
		u.SetDefaultUsageLocation, changed = true, append(changed, "default_usage_location")
		if string(req.DefaultUsageLocation) != "null" {
			var cc string
			if err := json.Unmarshal(req.DefaultUsageLocation, &cc); err != nil {
				return invalid(`default_usage_location must be a country code such as "PL", or null to clear it`)
			}
			loc, err := licensing.NormalizeCountry("default_usage_location", cc)
			if err != nil {
				return err
			}
			u.DefaultUsageLocation = &loc
		}
	}
	if len(changed) == 0 {
		return invalid("nothing to change: send name or default_usage_location (null clears it); a customer's id and directory cannot change")
	}
	out, err := s.store.UpdateCustomer(r.Context(), p.PartnerKey, c.ID, u)
	if err != nil {
		return err
	}
	s.audit(r, p, auditCustomerUpdate, out.ID, out.ID, map[string]any{
		"changed": changed, "name": out.Name, "default_usage_location": out.DefaultUsageLocation,
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

type importUser struct {
	ID                string     `json:"id"`
	UserPrincipalName string     `json:"user_principal_name"`
	DisplayName       string     `json:"display_name"`
	UsageLocation     *string    `json:"usage_location"`
	AccountEnabled    *bool      `json:"account_enabled"`
	LastSignInAt      *time.Time `json:"last_sign_in_at"`
}

// maxImportUsers bounds one import call.
const maxImportUsers = 200_000

func (s *Server) importUsers(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	var req struct {
		Users []importUser `json:"users"`
	}
	if err := decodeJSON(w, r, maxImportBody, &req); err != nil {
		return err
	}
	if len(req.Users) > maxImportUsers {
		return tooLarge("users", len(req.Users), maxImportUsers)
	}
	// Later rows win over earlier rows with the same ID, as in a spreadsheet.
	index := make(map[string]int, len(req.Users))
	rows := make([]storage.UserImport, 0, len(req.Users))
	for i, u := range req.Users {
		if err := licensing.CheckID("users["+itoa(i)+"].id", u.ID); err != nil {
			return err
		}
		if u.UserPrincipalName == "" || len(u.UserPrincipalName) > 256 {
			return invalid("users[%d].user_principal_name is required (1–256 characters)", i)
		}
		if len(u.DisplayName) > 256 {
			return invalid("users[%d].display_name is longer than 256 characters", i)
		}
		name := u.DisplayName
		if name == "" {
			name = u.UserPrincipalName
		}
		row := storage.UserImport{ID: u.ID, UserPrincipalName: u.UserPrincipalName, DisplayName: name,
			AccountEnabled: u.AccountEnabled, LastSignInAt: u.LastSignInAt}
		if u.UsageLocation != nil {
			loc, err := licensing.NormalizeCountry("users["+itoa(i)+"].usage_location", *u.UsageLocation)
			if err != nil {
				return err
			}
			row.UsageLocation = &loc
		}
		if j, ok := index[u.ID]; ok {
			rows[j] = row
			continue
		}
		index[u.ID] = len(rows)
		rows = append(rows, row)
	}
	created, updated, err := s.store.ImportUsers(r.Context(), c.Key, rows)
	if err != nil {
		return err
	}
	s.audit(r, p, auditUsersImport, c.ID, "", map[string]int{"rows": len(req.Users), "created": created, "updated": updated})
	writeJSON(w, http.StatusOK, map[string]int{"created": created, "updated": updated})
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	pg, err := parsePaging(r, 50)
	if err != nil {
		return err
	}
	q := r.URL.Query().Get("q")
	if len(q) > 256 {
		return invalid("q is longer than 256 characters")
	}
	list := s.store.ListUsers
	switch v := r.URL.Query().Get("license_errors"); v {
	case "", "false":
	case "true":
		list = s.store.ListUsersWithLicenseErrors
	default:
		return invalid("license_errors must be true or false, not %q", licensing.Truncate(v, 10))
	}
	page, err := list(r.Context(), c.Key, q, pg.PageSize, pg.offset())
	if err != nil {
		return err
	}
	pg.writePage(w, r, "users", page.Users, page.Total)
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, uid, err := s.customerChild(r, p, "uid", "user id")
	if err != nil {
		return err
	}
	u, err := s.store.GetUser(r.Context(), c.Key, uid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, uid, err := s.customerChild(r, p, "uid", "user id")
	if err != nil {
		return err
	}
	var req struct {
		UsageLocation *string `json:"usage_location"`
	}
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	if req.UsageLocation == nil {
		return invalid("usage_location is required; it is the only field a PATCH can change")
	}
	loc, err := licensing.NormalizeCountry("usage_location", *req.UsageLocation)
	if err != nil {
		return err
	}
	u, err := s.store.SetUsageLocation(r.Context(), c.Key, uid, loc)
	if err != nil {
		return err
	}
	s.audit(r, p, auditUserUsageLocation, c.ID, uid, map[string]string{"usage_location": loc})
	writeJSON(w, http.StatusOK, u)
	return nil
}

type subscriptionView struct {
	licensing.Subscription
	BuyMoreURL *string `json:"buy_more_url"`
}

func (s *Server) subscriptionView(c licensing.Customer, sub licensing.Subscription) subscriptionView {
	v := subscriptionView{Subscription: sub}
	if sub.Available <= 0 {
		u := s.buyMoreURL(c.ID, sub.SKU)
		v.BuyMoreURL = &u
	}
	return v
}

// maxSeats bounds a subscription's total (an int column).
const maxSeats = 10_000_000

func (s *Server) putSubscription(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, sku, err := s.customerChild(r, p, "sku_id", "sku_id")
	if err != nil {
		return err
	}
	var req struct {
		Total *int `json:"total"`
	}
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	if req.Total == nil || *req.Total < 0 || *req.Total > maxSeats {
		return invalid("total is required: a whole number of seats from 0 to %d", maxSeats)
	}
	sub, err := s.store.SetSeatTotal(r.Context(), p.PartnerKey, c.Key, sku, *req.Total)
	if err != nil {
		return err
	}
	s.audit(r, p, auditSubscriptionTotal, c.ID, sku, map[string]any{"old_total": sub.PreviousTotal, "new_total": sub.Total})
	writeJSON(w, http.StatusOK, s.subscriptionView(c, sub))
	return nil
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	subs, err := s.store.ListSubscriptions(r.Context(), p.PartnerKey, c.Key)
	if err != nil {
		return err
	}
	out := make([]subscriptionView, len(subs))
	for i, sub := range subs {
		out[i] = s.subscriptionView(c, sub)
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": out})
	return nil
}

// syncCustomer queues an import of the customer's users, licenses and
// subscriptions from its external directory. A sync already queued,
// waiting for running operations or running is not queued twice; one that
// was archived (it failed on every retry) is run again, so that 202 always
// means a sync will run.
func (s *Server) syncCustomer(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	if c.Directory.Kind == licensing.DirectoryLocal {
		return licensing.Errorf(licensing.CodeConflict,
			"customer %s keeps its licenses in licenseops (directory local); there is no external directory to sync from", c.ID)
	}
	res, err := jobs.EnqueueSync(r.Context(), s.client, asynq.NewInspectorFromRedisClient(s.rdb), c.Key)
	if err != nil {
		return err
	}
	s.audit(r, p, auditCustomerSync, c.ID, c.ID, map[string]string{"request": res.String()})
	writeJSON(w, http.StatusAccepted, map[string]string{"customer_id": c.ID, "status": "queued"})
	return nil
}
