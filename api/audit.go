package api

import (
	"net/http"

	"github.com/licenseops/licenseops/licensing"
)

// Audit actions, one per kind of change the API makes.
const (
	auditProductPut        = "product.put"
	auditCustomerCreate    = "customer.create"
	auditCustomerUpdate    = "customer.update"
	auditUsersImport       = "users.import"
	auditCustomerSync      = "customer.sync"
	auditUserUsageLocation = "user.set_usage_location"
	auditSubscriptionTotal = "subscription.set_total"
	// operation.create and operation.undo are recorded by the intake
	// (intake.AuditOperationCreate, intake.AuditOperationUndo).

	auditCleanupPolicyCreate = "cleanup_policy.create"
	auditCleanupPolicyUpdate = "cleanup_policy.update"
	auditCleanupPolicyDelete = "cleanup_policy.delete"
	auditCleanupPolicyRun    = "cleanup_policy.run" // recorded in the run's transaction

	auditWebhookCreate = "webhook.create"
	auditWebhookDelete = "webhook.delete"
)

// audit records a change p has made. The change is committed by now, so a
// failure to record it is logged and counted but not returned: a 500 would
// tell the client the change failed, and its retry would make it twice.
// Operations are the exception, recorded in their own transaction
// (storage.NewOperation.Audit).
func (s *Server) audit(r *http.Request, p *licensing.Principal, action, customerID, objectID string, details any) {
	e, err := p.Audit(action, customerID, objectID, details)
	if err == nil {
		err = s.store.RecordAudit(r.Context(), e)
	}
	if err != nil {
		s.metrics.auditFailures.Inc()
		s.log.ErrorContext(r.Context(), "audit entry not recorded", "action", action, "partner_id", p.PartnerID,
			"token_id", p.TokenID, "customer_id", customerID, "object_id", objectID, "error", err)
	}
}

// listAudit pages the caller's partner's audit log, newest first.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	pg, err := parsePaging(r, 50)
	if err != nil {
		return err
	}
	entries, total, err := s.store.ListAudit(r.Context(), p.PartnerKey, pg.PageSize, pg.offset())
	if err != nil {
		return err
	}
	pg.writePage(w, r, "entries", entries, total)
	return nil
}
