package console

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// ReportPageSize is the number of users per page of a confirmation.
const ReportPageSize = 500

type reportRow struct {
	UserID, DisplayName, UPN, Status string
	Licenses                         []string
	Code, Message                    string
}

type operationPage struct {
	View
	Op        licensing.Operation
	Done      int
	Finished  bool
	Heading   string
	Rows      []reportRow
	Pager     pager
	Assign    []string
	Revoke    []string
	UsersLink string
	// CanCancel shows the Cancel button: the operation is not finished,
	// and the role may change licenses. CanUndo shows Undo: it finished
	// having changed some users, and the role may change licenses.
	CanCancel, CanUndo bool
}

// operationOf resolves {oid} within the session's partner with its
// customer: a foreign operation is NotFound, like a missing one.
func (c *Console) operationOf(r *http.Request, s *session) (licensing.Operation, licensing.Customer, error) {
	oid := r.PathValue("oid")
	if err := licensing.CheckID("operation id", oid); err != nil {
		return licensing.Operation{}, licensing.Customer{}, pageErr(licensing.CodeNotFound, "NotFoundMessage")
	}
	op, err := c.store.GetOperation(r.Context(), s.principal.PartnerKey, oid)
	if err != nil {
		return op, licensing.Customer{}, err
	}
	cust, err := c.store.GetCustomer(r.Context(), s.principal.PartnerKey, op.CustomerID)
	return op, cust, err
}

func (c *Console) operationData(r *http.Request, s *session) (*operationPage, error) {
	op, cust, err := c.operationOf(r, s)
	if err != nil {
		return nil, err
	}
	v := c.customerView(r, s, &cust, "operations", "OperationTitle")
	names, err := c.productNames(r, s, cust)
	if err != nil {
		return nil, err
	}
	data := &operationPage{View: v, Op: op, Done: op.Succeeded + op.Failed + op.Cancelled, Finished: licensing.Finished(op.Status),
		UsersLink: "/console/customers/" + pathEscape(cust.ID) + "/users", CanCancel: !licensing.Finished(op.Status) && canOperate(s.principal.Role),
		CanUndo: licensing.Finished(op.Status) && !op.DryRun && op.Succeeded > 0 && canOperate(s.principal.Role)}
	for _, sku := range op.Assign {
		data.Assign = append(data.Assign, names.name(sku))
	}
	for _, sku := range op.Revoke {
		data.Revoke = append(data.Revoke, names.name(sku))
	}
	switch {
	case op.Status == licensing.StatusCompleted:
		data.Heading = v.T("OperationComplete")
	case op.Status == licensing.StatusCompletedWithErrors:
		data.Heading = v.T("OperationCompleteErrors")
	case op.Status == licensing.StatusCancelled:
		data.Heading = v.T("OperationCancelled")
	case op.Status == licensing.StatusScheduled:
		data.Heading = v.T("OperationScheduled")
	default:
		data.Heading = v.T("OperationRunning")
	}
	if !data.Finished {
		return data, nil
	}
	page := pageParam(r)
	data.Pager = newPager("/console/operations/"+op.ID, page, op.Total, ReportPageSize)
	from, i := (page-1)*ReportPageSize, 0
	errStop := errors.New("page full")
	err = c.store.Report(r.Context(), op.ID, func(row *licensing.ReportRow) error {
		defer func() { i++ }()
		if i < from {
			return nil
		}
		if i >= from+ReportPageSize {
			return errStop
		}
		rr := reportRow{UserID: row.UserID, DisplayName: row.DisplayName, UPN: row.UserPrincipalName, Status: row.Status}
		for _, sku := range row.Licenses {
			rr.Licenses = append(rr.Licenses, names.name(sku))
		}
		if row.Error != nil {
			rr.Code, rr.Message = string(row.Error.Code), row.Error.Message
		}
		data.Rows = append(data.Rows, rr)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return data, nil
}

// operation is the confirmation page: progress while the operation runs
// (its script follows it without reloading), every user's outcome after.
func (c *Console) operation(w http.ResponseWriter, r *http.Request, s *session) error {
	data, err := c.operationData(r, s)
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "operation", data)
	return nil
}

// cancel stops the operation (intake.Service.Cancel, as the API's cancel)
// and shows its page again: cancelled, or finishing the users in flight.
// A cancel of an operation that finished meanwhile shows it finished.
func (c *Console) cancel(w http.ResponseWriter, r *http.Request, s *session) error {
	if !canOperate(s.principal.Role) {
		return pageErr(licensing.CodeForbidden, "RoleMayNotChangeLicenses", "Role", s.principal.Role)
	}
	// Cancel resolves the operation within the partner (NotFound
	// otherwise) and returns it as read, also with a Conflict (it finished
	// meanwhile, and its page shows that); the redirect names it by the ID
	// stored, never by the request's path.
	op, err := c.intake.Cancel(r.Context(), s.principal, r.PathValue("oid"))
	if err != nil && licensing.ErrorCode(err) != licensing.CodeConflict {
		return err
	}
	http.Redirect(w, r, "/console/operations/"+op.ID, http.StatusSeeOther)
	return nil
}

// undo creates the undo of the operation (intake.Service.Undo, as the
// API's undo) and opens its confirmation page. The idempotency key is the
// operation's own, so a double click makes one undo. Users whose seats to
// give back are short fail CountViolation in its report, as with Allow
// partial on the Manage-licenses page: an undo is a rescue, and the users
// that can be given back are.
func (c *Console) undo(w http.ResponseWriter, r *http.Request, s *session) error {
	if !canOperate(s.principal.Role) {
		return pageErr(licensing.CodeForbidden, "RoleMayNotChangeLicenses", "Role", s.principal.Role)
	}
	op, _, err := c.operationOf(r, s)
	if err != nil {
		return err
	}
	sub, err := c.intake.Undo(r.Context(), intake.UndoRequest{Principal: s.principal, Original: op, AllowPartial: true,
		IdempotencyKey: "console-undo-" + op.ID, Respond: undoResponse})
	if err != nil {
		return err
	}
	id := sub.Operation.ID
	if sub.Replayed != nil {
		id = sub.Replayed.Location[strings.LastIndex(sub.Replayed.Location, "/")+1:]
	}
	http.Redirect(w, r, "/console/operations/"+id, http.StatusSeeOther)
	return nil
}

// undoResponse is what the console's undo keeps under its idempotency
// key: where the undo is.
func undoResponse(op licensing.Operation) storage.StoredResponse {
	return storage.StoredResponse{Status: http.StatusSeeOther, Location: "/console/operations/" + op.ID}
}

// results is the confirmation page's outcome section alone, which its
// script puts in place when the operation has finished.
func (c *Console) results(w http.ResponseWriter, r *http.Request, s *session) error {
	data, err := c.operationData(r, s)
	if err != nil {
		return err
	}
	c.renderTemplate(w, http.StatusOK, "operation", "results", data)
	return nil
}

// progress is the operation's state for the confirmation page's script.
func (c *Console) progress(w http.ResponseWriter, r *http.Request, s *session) error {
	op, _, err := c.operationOf(r, s)
	if err != nil {
		return err
	}
	done := op.Succeeded + op.Failed + op.Cancelled
	text := c.i18n.translate(s.lang, "ProgressLine", "Done", done, "Total", op.Total) + " · " +
		c.i18n.translate(s.lang, "FailuresSoFar", "Count", op.Failed)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]any{
		"status": op.Status, "total": op.Total, "done": done, "failed": op.Failed,
		"finished": licensing.Finished(op.Status), "text": text,
	})
}

// reportCSV streams the confirmation report as the API's CSV.
func (c *Console) reportCSV(w http.ResponseWriter, r *http.Request, s *session) error {
	op, _, err := c.operationOf(r, s)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="report-`+op.ID+`.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(licensing.ReportCSVHeader)
	rec := make([]string, len(licensing.ReportCSVHeader))
	err = c.store.Report(r.Context(), op.ID, func(row *licensing.ReportRow) error {
		licensing.ReportCSVRecord(rec, row)
		return cw.Write(rec)
	})
	cw.Flush()
	if err != nil {
		c.log.Error("console report stream failed", "operation_id", op.ID, "error", err)
	}
	return nil
}

// ---- the customer's operations

type operationsPage struct {
	View
	Ops   []opRow
	Pager pager
}

type opRow struct {
	licensing.Operation
	Done     int
	Finished bool
	Assign   []string
	Revoke   []string
}

func (c *Console) operations(w http.ResponseWriter, r *http.Request, s *session) error {
	cust, err := c.customer(r, s)
	if err != nil {
		return err
	}
	page := pageParam(r)
	ops, total, err := c.store.ListOperations(r.Context(), cust.Key, PageSize, (page-1)*PageSize)
	if err != nil {
		return err
	}
	names, err := c.productNames(r, s, cust)
	if err != nil {
		return err
	}
	rows := make([]opRow, len(ops))
	for i, op := range ops {
		rows[i] = opRow{Operation: op, Done: op.Succeeded + op.Failed + op.Cancelled, Finished: licensing.Finished(op.Status)}
		for _, sku := range op.Assign {
			rows[i].Assign = append(rows[i].Assign, names.name(sku))
		}
		for _, sku := range op.Revoke {
			rows[i].Revoke = append(rows[i].Revoke, names.name(sku))
		}
	}
	v := c.customerView(r, s, &cust, "operations", "OperationsTitle")
	c.render(w, http.StatusOK, "operations", operationsPage{View: v, Ops: rows,
		Pager: newPager("/console/customers/"+pathEscape(cust.ID)+"/operations", page, total, PageSize)})
	return nil
}

// ---- licenses overview

type licenseRow struct {
	Sub     licensing.Subscription
	Rec     storage.ReclaimableSeats
	BuyMore string
}

type licensesPage struct {
	View
	Rows         []licenseRow
	InactiveDays int
}

func (c *Console) licenses(w http.ResponseWriter, r *http.Request, s *session) error {
	cust, err := c.customer(r, s)
	if err != nil {
		return err
	}
	subs, err := c.store.ListSubscriptions(r.Context(), s.principal.PartnerKey, cust.Key)
	if err != nil {
		return err
	}
	rec, err := c.store.Reclaimable(r.Context(), cust.Key, c.cfg.InactiveAfter, time.Now())
	if err != nil {
		return err
	}
	rows := make([]licenseRow, len(subs))
	for i, sub := range subs {
		sub.Available = max(sub.Available, 0)
		rows[i] = licenseRow{Sub: sub, Rec: rec[sub.SKU], BuyMore: c.buyMoreURL(cust.ID, sub.SKU)}
	}
	v := c.customerView(r, s, &cust, "licenses", "LicensesTitle")
	c.render(w, http.StatusOK, "licenses", licensesPage{View: v, Rows: rows, InactiveDays: int(c.cfg.InactiveAfter.Hours() / 24)})
	return nil
}
