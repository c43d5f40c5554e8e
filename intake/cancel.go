package intake

import (
	"context"

	"github.com/licenseops/licenseops/licensing"
)

// AuditOperationCancel is the audit action of a cancel, recorded in the
// cancel's own transaction.
const AuditOperationCancel = "operation.cancel"

// Cancel stops an operation of the principal's partner (storage.Cancel) and
// finalizes it at once when nothing of it is in flight, so that the answer
// already says 'cancelled'. An item in flight to an external directory is
// recorded when its call returns; the sweeper finalizes the operation then.
func (s *Service) Cancel(ctx context.Context, p *licensing.Principal, opID string) (licensing.Operation, error) {
	op, err := s.store.GetOperation(ctx, p.PartnerKey, opID)
	if err != nil {
		return op, err
	}
	entry, err := p.Audit(AuditOperationCancel, op.CustomerID, opID, nil)
	if err != nil {
		return op, err
	}
	first, err := s.store.Cancel(ctx, p.PartnerKey, opID, p.TokenName, &entry)
	if err != nil {
		return op, err
	}
	if first {
		s.metrics.cancels.Inc()
	}
	if _, err := s.store.Finalize(ctx, opID); err != nil {
		// The cancel is durable; the sweeper finalizes the operation.
		s.log.Warn("cancelled operation not finalized; the sweeper will", "operation_id", opID, "error", err)
	}
	return s.store.GetOperation(ctx, p.PartnerKey, opID)
}
