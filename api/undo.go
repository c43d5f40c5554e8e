package api

import (
	"net/http"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/licensing"
)

// undoRequest is the optional body of POST /v1/operations/{oid}/undo.
type undoRequest struct {
	AllowPartial bool `json:"allow_partial"`
}

// undoOperation creates the operation that gives each user the operation
// {oid} changed back what that user had (intake.Service.Undo), and answers
// like POST …/license-operations: 202 with the new operation.
func (s *Server) undoOperation(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	var req undoRequest
	if err := decodeOptionalJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	orig, err := s.operation(r, p)
	if err != nil {
		return err
	}
	sub, err := s.intake.Undo(r.Context(), intake.UndoRequest{
		Principal: p, Original: orig, AllowPartial: req.AllowPartial,
		IdempotencyKey: r.Header.Get("Idempotency-Key"), Respond: acceptedResponse,
	})
	if err != nil {
		return s.intakeError(licensing.Customer{ID: orig.CustomerID}, err)
	}
	writeSubmission(w, sub)
	return nil
}
