package api

import (
	"bufio"
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// operationRequest is the body of POST …/license-operations. Its checks
// are the intake's (intake.Request), the same for every front end.
type operationRequest struct {
	UserIDs       []string `json:"user_ids"`
	Assign        []string `json:"assign"`
	Revoke        []string `json:"revoke"`
	UsageLocation *string  `json:"usage_location"`
	AllowPartial  bool     `json:"allow_partial"`
	// DryRun asks for a preview: checked as a real submit, nothing written.
	DryRun bool `json:"dry_run"`
	// NotBefore (RFC 3339) schedules the operation; a preview ignores it.
	NotBefore *string `json:"not_before"`
	// Replace swaps licenses for the users who hold each pair's from.
	Replace []licensing.Replacement `json:"replace"`
	// CopyFrom copies a user's licenses; Exact also revokes the others.
	CopyFrom string `json:"copy_from"`
	Exact    bool   `json:"exact"`
	// DisabledPlans switches service plans off, by SKU assigned.
	DisabledPlans map[string][]string `json:"disabled_plans"`
}

// parseNotBefore reads not_before: nil when absent.
func parseNotBefore(v *string) (*time.Time, error) {
	if v == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		return nil, licensing.Errorf(licensing.CodeInvalidRequest,
			"not_before %q is not an RFC 3339 time; write it like 2026-12-12T22:00:00Z or 2026-12-12T23:00:00+01:00", *v)
	}
	return &t, nil
}

func tooLarge(field string, n, limit int) error {
	return licensing.Errorf(licensing.CodeTooLarge, "%s has %d entries; the limit is %d, split the request", field, n, limit)
}

func itoa(n int) string { return strconv.Itoa(n) }

type operationLinks struct {
	Self   string `json:"self"`
	Report string `json:"report"`
}

func linksOf(id string) operationLinks {
	return operationLinks{Self: "/v1/operations/" + id, Report: "/v1/operations/" + id + "/report"}
}

type acceptedOperation struct {
	ID         string         `json:"id"`
	CustomerID string         `json:"customer_id"`
	Status     string         `json:"status"`
	Total      int            `json:"total"`
	NotBefore  *time.Time     `json:"not_before,omitempty"`
	Links      operationLinks `json:"links"`
}

type seatShortageView struct {
	licensing.SeatShortage
	BuyMoreURL string `json:"buy_more_url"`
}

func (s *Server) createOperation(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	var req operationRequest
	if err := decodeJSON(w, r, maxOperationBody, &req); err != nil {
		return err
	}
	notBefore, err := parseNotBefore(req.NotBefore)
	if err != nil {
		return err
	}
	in := intake.Request{
		Principal: p, Customer: c, UserIDs: req.UserIDs, Assign: req.Assign, Revoke: req.Revoke, Replace: req.Replace,
		CopyFrom: req.CopyFrom, Exact: req.Exact, DisabledPlans: req.DisabledPlans,
		UsageLocation: req.UsageLocation, AllowPartial: req.AllowPartial, Source: licensing.SourceAPI, NotBefore: notBefore,
	}
	if req.DryRun {
		pv, err := s.intake.Preview(r.Context(), in)
		if err != nil {
			return s.intakeError(c, err)
		}
		return s.writePreview(w, c, pv)
	}
	in.IdempotencyKey, in.Respond = r.Header.Get("Idempotency-Key"), acceptedResponse
	sub, err := s.intake.Submit(r.Context(), in)
	if err != nil {
		return s.intakeError(c, err)
	}
	writeSubmission(w, sub)
	return nil
}

// writeSubmission answers a request that created an operation: 202 with
// the operation, or the first answer to a repeat of an idempotent request.
func writeSubmission(w http.ResponseWriter, sub intake.Submission) {
	if sub.Replayed != nil {
		writeStored(w, *sub.Replayed)
		return
	}
	writeStored(w, acceptedResponse(sub.Operation))
}

func acceptedResponse(op licensing.Operation) storage.StoredResponse {
	body, _ := marshalJSON(acceptedOperation{ID: op.ID, CustomerID: op.CustomerID, Status: op.Status, Total: op.Total,
		NotBefore: op.NotBefore, Links: linksOf(op.ID)})
	return storage.StoredResponse{Status: http.StatusAccepted, Body: body, Location: linksOf(op.ID).Self}
}

func writeStored(w http.ResponseWriter, resp storage.StoredResponse) {
	w.Header().Set("Content-Type", "application/json")
	if resp.Location != "" {
		w.Header().Set("Location", resp.Location)
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// operationPreview is the answer to a dry run: the operation's users with
// the outcome each would get, sorted like the report (results), and the
// seats of every SKU to assign.
type operationPreview struct {
	DryRun       bool               `json:"dry_run"`
	CustomerID   string             `json:"customer_id"`
	Total        int                `json:"total"`
	WouldSucceed int                `json:"would_succeed"`
	WouldFail    int                `json:"would_fail"`
	SKUs         []seatShortageView `json:"skus"`
}

// writePreview streams the preview as the report is streamed, row by row:
// a 100,000-user answer is never one buffer.
func (s *Server) writePreview(w http.ResponseWriter, c licensing.Customer, pv intake.Preview) error {
	head := operationPreview{DryRun: true, CustomerID: pv.CustomerID, Total: pv.Total, WouldSucceed: pv.WouldSucceed,
		WouldFail: pv.WouldFail, SKUs: make([]seatShortageView, len(pv.SKUs))}
	for i, sh := range pv.SKUs {
		head.SKUs[i] = seatShortageView{SeatShortage: sh, BuyMoreURL: s.buyMoreURL(c.ID, sh.SKU)}
	}
	b, err := marshalJSON(head)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	// A bufio.Writer's errors are sticky: the final Flush reports them.
	_, _ = bw.Write(b[:len(b)-2]) // without its closing brace and newline
	_, _ = bw.WriteString(`,"results":[`)
	enc := newEncoder(bw)
	for i := range pv.Results {
		row := &pv.Results[i]
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		v := reportRowView{ReportRow: row}
		if row.Error != nil {
			v.Error = &reportError{Code: row.Error.Code, Message: row.Error.Message}
		}
		_ = enc.Encode(v)
	}
	_, _ = bw.WriteString("]}\n")
	return bw.Flush()
}

// intakeError is err of the intake as the API answers it: seats short is
// CountViolation with the SKUs and where to buy more of them.
func (s *Server) intakeError(c licensing.Customer, err error) error {
	var short *storage.ShortageError
	if errors.As(err, &short) {
		return s.countViolation(c, short)
	}
	return err
}

func (s *Server) countViolation(c licensing.Customer, short *storage.ShortageError) error {
	views := make([]seatShortageView, len(short.Shortages))
	names := make([]string, len(short.Shortages))
	for i, sh := range short.Shortages {
		views[i] = seatShortageView{SeatShortage: sh, BuyMoreURL: s.buyMoreURL(c.ID, sh.SKU)}
		names[i] = sh.SKU + " (needs " + itoa(sh.Needed) + ", " + itoa(sh.Available) + " available)"
	}
	e := licensing.Errorf(licensing.CodeCountViolation,
		"not enough seats for %s; buy more seats, select fewer users, or send allow_partial: true to assign the seats that are left",
		strings.Join(names, ", "))
	e.Details = map[string]any{"skus": views}
	return e
}

type operationView struct {
	licensing.Operation
	Links operationLinks `json:"links"`
}

func (s *Server) operation(r *http.Request, p *licensing.Principal) (licensing.Operation, error) {
	return s.store.GetOperation(r.Context(), p.PartnerKey, r.PathValue("oid"))
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	op, err := s.operation(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, operationView{Operation: op, Links: linksOf(op.ID)})
	return nil
}

// cancelOperation stops an operation (intake.Service.Cancel): 202 with the
// operation, 'cancelled' unless an item is still in flight to an external
// directory (then it becomes 'cancelled' once that call is recorded).
func (s *Server) cancelOperation(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	op, err := s.intake.Cancel(r.Context(), p, r.PathValue("oid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, operationView{Operation: op, Links: linksOf(op.ID)})
	return nil
}

func (s *Server) listOperations(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	c, err := s.customer(r, p)
	if err != nil {
		return err
	}
	pg, err := parsePaging(r, 50)
	if err != nil {
		return err
	}
	ops, total, err := s.store.ListOperations(r.Context(), c.Key, pg.PageSize, pg.offset())
	if err != nil {
		return err
	}
	views := make([]operationView, len(ops))
	for i, op := range ops {
		views[i] = operationView{Operation: op, Links: linksOf(op.ID)}
	}
	pg.writePage(w, r, "operations", views, total)
	return nil
}

type reportError struct {
	Code    licensing.Code `json:"code"`
	Message string         `json:"message"`
}

type reportRowView struct {
	*licensing.ReportRow
	Error *reportError `json:"error"`
}

// getReport streams the confirmation report as JSON or CSV, row by row.
func (s *Server) getReport(w http.ResponseWriter, r *http.Request, p *licensing.Principal) error {
	op, err := s.operation(r, p)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	switch {
	case format == "csv", format == "" && strings.Contains(r.Header.Get("Accept"), "text/csv"):
		return s.writeCSVReport(w, r, op)
	case format == "" || format == "json":
		return s.writeJSONReport(w, r, op)
	default:
		return invalid("format must be json or csv, not %q", licensing.Truncate(format, 10))
	}
}

func (s *Server) writeJSONReport(w http.ResponseWriter, r *http.Request, op licensing.Operation) error {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := newEncoder(bw)
	// A bufio.Writer's errors are sticky: the encoder's next write or the
	// final Flush reports them, so the plain writes need no checks.
	_, _ = bw.WriteString(`{"operation":`)
	_ = enc.Encode(operationView{Operation: op, Links: linksOf(op.ID)})
	_, _ = bw.WriteString(`,"results":[`)
	first := true
	err := s.store.Report(r.Context(), op.ID, func(row *licensing.ReportRow) error {
		if !first {
			if err := bw.WriteByte(','); err != nil {
				return err
			}
		}
		first = false
		v := reportRowView{ReportRow: row}
		if row.Error != nil {
			v.Error = &reportError{Code: row.Error.Code, Message: row.Error.Message}
		}
		return enc.Encode(v)
	})
	if err != nil {
		// Headers are gone; the truncated body fails JSON parsing, which is
		// the honest signal. Log it as the internal error it is.
		s.log.Error("report stream failed", "operation_id", op.ID, "error", err)
		return nil
	}
	_, _ = bw.WriteString("]}\n")
	return bw.Flush()
}

// CSVHeader is the header line of the CSV report.
var CSVHeader = licensing.ReportCSVHeader

func (s *Server) writeCSVReport(w http.ResponseWriter, r *http.Request, op licensing.Operation) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="report-`+op.ID+`.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(CSVHeader)
	rec := make([]string, len(CSVHeader))
	err := s.store.Report(r.Context(), op.ID, func(row *licensing.ReportRow) error {
		licensing.ReportCSVRecord(rec, row)
		return cw.Write(rec)
	})
	cw.Flush()
	if err != nil {
		s.log.Error("report stream failed", "operation_id", op.ID, "error", err)
	}
	return nil
}
