package api

import (
	"net/http"
	"strings"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/webhook"
)

// Limits of a webhook.
const (
	maxWebhookURLSize         = 2048
	maxWebhookDescriptionSize = 256
)

type webhookRequest struct {
	URL         *string  `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

// validate checks the request and returns the webhook it asks for.
func (req *webhookRequest) validate(allowHTTP bool) (licensing.Webhook, error) {
	var h licensing.Webhook
	if req.URL == nil || *req.URL == "" {
		return h, invalid("url is required: the https URL licenseops posts events to")
	}
	if len(*req.URL) > maxWebhookURLSize {
		return h, invalid("url is longer than %d characters; give a shorter URL", maxWebhookURLSize)
	}
	if err := webhook.CheckURL(*req.URL, allowHTTP); err != nil {
		return h, err
	}
	if len(req.Events) == 0 {
		return h, invalid("events is required: list the event types to receive, any of %s", strings.Join(webhook.Events(), ", "))
	}
	if unknown := webhook.UnknownEvents(req.Events); len(unknown) > 0 {
		e := licensing.Errorf(licensing.CodeUnknownEvents, "events names unknown event types %s; the event types are %s",
			licensing.Truncate(strings.Join(unknown, ", "), 200), strings.Join(webhook.Events(), ", "))
		e.Details = map[string]any{"unknown_events": unknown}
		return h, e
	}
	if len(req.Description) > maxWebhookDescriptionSize {
		return h, invalid("description is longer than %d characters; shorten it", maxWebhookDescriptionSize)
	}
	return licensing.Webhook{URL: *req.URL, Events: licensing.Dedupe(req.Events), Description: req.Description}, nil
}

type webhookLinks struct {
	Self       string `json:"self"`
	Deliveries string `json:"deliveries"`
}

type webhookView struct {
	licensing.Webhook
	Links webhookLinks `json:"links"`
}

func newWebhookView(h licensing.Webhook) webhookView {
	self := "/v1/webhooks/" + h.ID
	return webhookView{Webhook: h, Links: webhookLinks{Self: self, Deliveries: self + "/deliveries"}}
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	var req webhookRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	h, err := req.validate(s.cfg.WebhookAllowHTTP)
	if err != nil {
		return err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return err
	}
	h.PartnerKey, h.CreatedBy = p.PartnerKey, p.TokenName
	out, err := s.store.CreateWebhook(r.Context(), h, secret)
	if err != nil {
		return err
	}
	v := newWebhookView(out)
	s.audit(r, p, auditWebhookCreate, "", out.ID, v.Webhook)
	w.Header().Set("Location", v.Links.Self)
	// The secret is in this answer only: licenseops never shows it again.
	writeJSON(w, http.StatusCreated, struct {
		webhookView
		Secret string `json:"secret"`
	}{v, secret})
	return nil
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	hooks, err := s.store.ListWebhooks(r.Context(), p.PartnerKey)
	if err != nil {
		return err
	}
	views := make([]webhookView, len(hooks))
	for i, h := range hooks {
		views[i] = newWebhookView(h)
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": views})
	return nil
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	h, err := s.store.GetWebhook(r.Context(), p.PartnerKey, r.PathValue("wid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newWebhookView(h))
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	h, err := s.store.GetWebhook(r.Context(), p.PartnerKey, r.PathValue("wid"))
	if err != nil {
		return err
	}
	if err := s.store.DeleteWebhook(r.Context(), p.PartnerKey, h.ID); err != nil {
		return err
	}
	s.audit(r, p, auditWebhookDelete, "", h.ID, map[string]any{"url": h.URL})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	h, err := s.store.GetWebhook(r.Context(), p.PartnerKey, r.PathValue("wid"))
	if err != nil {
		return err
	}
	pg, err := parsePaging(r, 50)
	if err != nil {
		return err
	}
	deliveries, total, err := s.store.ListWebhookDeliveries(r.Context(), h.ID, pg.PageSize, pg.offset())
	if err != nil {
		return err
	}
	pg.writePage(w, r, "deliveries", deliveries, total)
	return nil
}
