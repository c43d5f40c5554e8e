package intake

import (
	"context"

	"github.com/licenseops/licenseops/licensing"
)

// The statuses of a user in a preview.
const (
	StatusWouldSucceed = "would_succeed"
	StatusWouldFail    = "would_fail"
)

// Preview is what Submit would do with a request, worked out without
// writing or queueing anything.
type Preview struct {
	CustomerID string
	// Total counts the distinct users; WouldSucceed and WouldFail split them.
	Total, WouldSucceed, WouldFail int
	// SKUs has an entry for every SKU to assign, in the request's order:
	// the selected users the rules let newly get it (needed) and the seats
	// free now (available).
	SKUs []licensing.SeatShortage
	// Results are the users' predicted report lines, in the report's order
	// (display name, then user ID), with status StatusWouldSucceed or
	// StatusWouldFail and, for the latter, the error the user would get.
	Results []licensing.ReportRow
}

// Preview validates req exactly as Submit does and answers with the same
// errors (the *storage.ShortageError too, when seats are short and
// AllowPartial is false), but writes, queues and counts nothing and takes
// no idempotency key. Each user's outcome is worked out by the code the
// workers run, on what Postgres holds now (storage.PredictOperation):
// with AllowPartial and too few seats, the users of req.UserIDs that pass
// the rules and need a seat get one in report order (display name, then
// user ID), as at intake, and the rest are predicted CountViolation.
func (s *Service) Preview(ctx context.Context, req Request) (Preview, error) {
	if err := req.validate(s.cfg.MaxUsersPerOperation); err != nil {
		return Preview{}, err
	}
	newOp, err := s.newOperation(req)
	if err != nil {
		return Preview{}, err
	}
	pred, err := s.store.PredictOperation(ctx, newOp)
	if err != nil {
		return Preview{}, err
	}
	out := Preview{CustomerID: req.Customer.ID, Total: len(pred.Rows), SKUs: pred.Seats, Results: pred.Rows}
	if out.SKUs == nil {
		out.SKUs = []licensing.SeatShortage{}
	}
	for i := range out.Results {
		r := &out.Results[i]
		if r.Status == licensing.ItemSucceeded {
			r.Status = StatusWouldSucceed
			out.WouldSucceed++
		} else {
			r.Status = StatusWouldFail
			out.WouldFail++
		}
	}
	return out, nil
}
