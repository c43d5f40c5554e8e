package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

type operationRequest struct {
	UserIDs       []string `json:"user_ids"`
	Assign        []string `json:"assign"`
	Revoke        []string `json:"revoke"`
	UsageLocation *string  `json:"usage_location"`
	AllowPartial  bool     `json:"allow_partial"`
}

// maxRawUsersFactor bounds the raw user_ids list, duplicates included, at
// this multiple of the distinct-user limit: a body of mostly repeats is
// refused before deduplication spends memory on it.
const maxRawUsersFactor = 2

func tooLarge(field string, n, limit int) error {
	return licensing.Errorf(licensing.CodeTooLarge, "%s has %d entries; the limit is %d, split the request", field, n, limit)
}

func itoa(n int) string { return strconv.Itoa(n) }

// validate checks an operation request and normalizes it (deduplicated IDs,
// upper-case country).
func (req *operationRequest) validate(maxUsers int) error {
	if len(req.UserIDs) == 0 {
		return invalid("user_ids is required: select at least one user")
	}
	// Duplicates count once (the contract), so the limit applies to distinct
	// users; a raw list far beyond it is refused before any ID is hashed.
	if len(req.UserIDs) > maxRawUsersFactor*maxUsers {
		return licensing.Errorf(licensing.CodeTooLarge,
			"user_ids has %d entries; an operation takes up to %d distinct users, split the request", len(req.UserIDs), maxUsers)
	}
	if len(req.Assign) == 0 && len(req.Revoke) == 0 {
		return invalid("nothing to do: give at least one SKU in assign or revoke")
	}
	if err := checkIDs("user id", req.UserIDs); err != nil {
		return err
	}
	if err := checkIDs("assign SKU", req.Assign); err != nil {
		return err
	}
	if err := checkIDs("revoke SKU", req.Revoke); err != nil {
		return err
	}
	req.UserIDs, req.Assign, req.Revoke = dedupe(req.UserIDs), dedupe(req.Assign), dedupe(req.Revoke)
	if len(req.UserIDs) > maxUsers {
		return licensing.Errorf(licensing.CodeTooLarge,
			"user_ids has %d distinct users; the limit is %d, split the request", len(req.UserIDs), maxUsers)
	}
	if n := len(req.Assign) + len(req.Revoke); n > licensing.MaxSKUsPerOperation {
		return tooLarge("assign and revoke", n, licensing.MaxSKUsPerOperation)
	}
	for _, a := range req.Assign {
		for _, r := range req.Revoke {
			if a == r {
				return invalid("SKU %s is in both assign and revoke; choose one", a)
			}
		}
	}
	if req.UsageLocation != nil {
		loc, err := normalizeCountry("usage_location", *req.UsageLocation)
		if err != nil {
			return err
		}
		req.UsageLocation = &loc
	}
	return nil
}

// fingerprint identifies a request's meaning for idempotency: the normalized
// request, so that whitespace or field order do not make a retry "different".
func (req *operationRequest) fingerprint(customerID string) []byte {
	b, _ := json.Marshal(struct {
		C string `json:"c"`
		*operationRequest
	}{customerID, req})
	h := sha256.Sum256(b)
	return h[:]
}

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
	if err := req.validate(s.cfg.MaxUsersPerOperation); err != nil {
		return err
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 {
		return invalid("Idempotency-Key is longer than 255 characters")
	}
	newOp := storage.NewOperation{
		PartnerKey: p.PartnerKey, Customer: c, UserIDs: req.UserIDs, Assign: req.Assign, Revoke: req.Revoke,
		AllowPartial: req.AllowPartial, Source: licensing.SourceAPI, CreatedBy: p.TokenName,
		Queue: jobs.QueueFor(len(req.UserIDs), licensing.SourceAPI, s.cfg.InteractiveMax),
	}
	if req.UsageLocation != nil {
		newOp.UsageLocation = *req.UsageLocation
	}
	entry, err := p.Audit(auditOperationCreate, c.ID, "", map[string]any{
		"users": len(req.UserIDs), "skus": len(req.Assign) + len(req.Revoke), "assign": nonNilStrings(req.Assign), "revoke": nonNilStrings(req.Revoke),
	})
	if err != nil {
		return err
	}
	newOp.Audit = &entry
	if key != "" {
		stored, err := s.store.ClaimIdempotencyKey(r.Context(), p.PartnerKey, key, req.fingerprint(c.ID))
		if err != nil {
			return err
		}
		if stored != nil {
			writeStored(w, *stored)
			return nil
		}
		newOp.Idempotency = &storage.IdempotencyKey{Key: key, Respond: acceptedResponse}
	}
	op, err := s.store.CreateOperation(r.Context(), newOp)
	if err != nil {
		if key != "" {
			_ = s.store.ReleaseIdempotencyKey(context.WithoutCancel(r.Context()), p.PartnerKey, key)
		}
		var short *storage.ShortageError
		if errors.As(err, &short) {
			return s.countViolation(c, short)
		}
		return err
	}
	failpoint("operation-committed") // fault tests: the api dies between commit and enqueue
	s.metrics.operationsCreated.WithLabelValues(op.Source, op.Queue).Inc()
	s.metrics.operationUsers.Observe(float64(op.Total))
	s.enqueueInBackground(op, req.UserIDs)
	writeStored(w, acceptedResponse(op))
	return nil
}

func acceptedResponse(op licensing.Operation) storage.StoredResponse {
	body, _ := marshalJSON(acceptedOperation{ID: op.ID, CustomerID: op.CustomerID, Status: op.Status, Total: op.Total, Links: linksOf(op.ID)})
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

// enqueueInBackground puts the operation's tasks on the queue after the 202:
// the operation is already durable in Postgres, and if this process dies
// half-way the sweeper enqueues the rest.
func (s *Server) enqueueInBackground(op licensing.Operation, users []string) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		start := time.Now()
		// Before the first task: every batch of this operation plans with
		// statistics that know its size.
		if err := s.store.AnalyzeItems(s.bgCtx, op.Total); err != nil {
			s.log.Warn("could not refresh statistics after a large intake", "operation_id", op.ID, "error", err)
		}
		res, err := s.enqueuer.EnqueueItems(s.bgCtx, op.ID, op.Queue, users)
		if err != nil {
			s.metrics.enqueueFailures.Inc()
			s.log.Warn("enqueue of operation incomplete; the sweeper will finish it",
				"operation_id", op.ID, "enqueued", res.Enqueued, "total", len(users), "error", err)
			return
		}
		if err := s.store.MarkEnqueued(context.Background(), op.ID); err != nil {
			s.log.Warn("could not mark operation enqueued", "operation_id", op.ID, "error", err)
		}
		s.log.Info("operation accepted and enqueued", "operation_id", op.ID, "customer_id", op.CustomerID, "source", op.Source,
			"queue", op.Queue, "total", op.Total, "tasks", res.Enqueued, "enqueue_duration", time.Since(start))
	}()
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
	links, pages := pg.links(r, total)
	writeJSON(w, http.StatusOK, map[string]any{
		"operations": views, "page": pg.Page, "page_size": pg.PageSize, "total": total, "total_pages": pages, "links": links,
	})
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
		return invalid("format must be json or csv, not %q", truncate(format, 10))
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
var CSVHeader = []string{"user_id", "display_name", "user_principal_name", "status", "assigned", "revoked", "licenses", "usage_location", "error_code", "error_message"}

func (s *Server) writeCSVReport(w http.ResponseWriter, r *http.Request, op licensing.Operation) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="report-`+op.ID+`.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(CSVHeader)
	rec := make([]string, len(CSVHeader))
	err := s.store.Report(r.Context(), op.ID, func(row *licensing.ReportRow) error {
		csvRecord(rec, row)
		return cw.Write(rec)
	})
	cw.Flush()
	if err != nil {
		s.log.Error("report stream failed", "operation_id", op.ID, "error", err)
	}
	return nil
}

// csvRecord fills rec (len(CSVHeader) cells) with row. Every cell goes
// through csvSafe, not only the names: user and SKU IDs are chosen by
// clients and may start with '=', and error messages quote them.
func csvRecord(rec []string, row *licensing.ReportRow) {
	rec[0], rec[1], rec[2], rec[3] = row.UserID, row.DisplayName, row.UserPrincipalName, row.Status
	rec[4], rec[5], rec[6] = strings.Join(row.Assigned, ";"), strings.Join(row.Revoked, ";"), strings.Join(row.Licenses, ";")
	rec[7], rec[8], rec[9] = "", "", ""
	if row.UsageLocation != nil {
		rec[7] = *row.UsageLocation
	}
	if row.Error != nil {
		rec[8], rec[9] = string(row.Error.Code), row.Error.Message
	}
	for i, v := range rec {
		rec[i] = csvSafe(v)
	}
}

// csvSafe defuses spreadsheet formula injection: a cell starting with
// = + - @, a tab or a line break is prefixed with a quote, which
// spreadsheets show as text and do not evaluate (OWASP "CSV Injection").
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r\n", rune(s[0])) {
		return "'" + s
	}
	return s
}
