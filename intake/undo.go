package intake

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// UndoRequest asks to undo an operation: to give each user it changed
// back what that user had (storage.CreateUndo).
type UndoRequest struct {
	// Principal is who asks; the operation must be of its partner.
	Principal *licensing.Principal
	// Original is the operation to undo, as the front end read it within
	// the principal's partner (storage.GetOperation).
	Original licensing.Operation
	// AllowPartial lets the undo start when seats to give back are short:
	// the users that get no seat fail with CountViolation.
	AllowPartial bool
	// IdempotencyKey and Respond are as in Request.
	IdempotencyKey string
	Respond        func(licensing.Operation) storage.StoredResponse
}

// AuditOperationUndo is the audit action of an undo, recorded in the undo
// operation's own transaction.
const AuditOperationUndo = "operation.undo"

// Undo creates the operation that undoes req.Original and enqueues its
// tasks as Submit does. Errors are *licensing.Error (Conflict for an
// operation that cannot be undone, the idempotency codes) or, for seats
// short without AllowPartial, a *storage.ShortageError.
func (s *Service) Undo(ctx context.Context, req UndoRequest) (Submission, error) {
	if req.Principal == nil {
		return Submission{}, errors.New("intake: an undo needs its principal")
	}
	if err := checkKey(req.IdempotencyKey, req.Respond); err != nil {
		return Submission{}, err
	}
	p, orig := req.Principal, req.Original
	c, err := s.store.GetCustomer(ctx, p.PartnerKey, orig.CustomerID)
	if err != nil {
		return Submission{}, err
	}
	entry, err := p.Audit(AuditOperationUndo, c.ID, "", map[string]any{"undo_of": orig.ID, "allow_partial": req.AllowPartial})
	if err != nil {
		return Submission{}, err
	}
	newUndo := storage.NewUndo{
		PartnerKey: p.PartnerKey, Customer: c, OperationID: orig.ID, AllowPartial: req.AllowPartial, CreatedBy: p.TokenName,
		QueueFor: func(users int) string {
			return jobs.QueueFor(users, licensing.SourceUndo, s.cfg.InteractiveMax, s.cfg.BulkMin)
		},
		Audit: &entry,
	}
	var users []string
	key := keyed{partnerKey: p.PartnerKey, key: req.IdempotencyKey, fingerprint: req.fingerprint(), respond: req.Respond}
	sub, err := s.createKeyed(ctx, key, func(k *storage.IdempotencyKey) (licensing.Operation, error) {
		newUndo.Idempotency = k
		u, err := s.store.CreateUndo(ctx, newUndo)
		users = u.UserIDs
		return u.Operation, err
	})
	if err != nil || sub.Replayed != nil {
		return sub, err
	}
	s.accepted(sub.Operation, users, s.grouped(c, len(users)))
	return sub, nil
}

// fingerprint identifies an undo request for idempotency; "undo" keeps it
// apart from any operation request's. Its bytes must not change between
// releases (see Request.fingerprint).
func (req *UndoRequest) fingerprint() []byte {
	b, _ := json.Marshal(struct {
		Kind         string `json:"kind"`
		UndoOf       string `json:"undo_of"`
		AllowPartial bool   `json:"allow_partial"`
	}{"undo", req.Original.ID, req.AllowPartial})
	h := sha256.Sum256(b)
	return h[:]
}
