package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// pathOf joins escaped segments into a path: pathOf("/v1/customers", id)
// is "/v1/customers/" + url.PathEscape(id).
func pathOf(prefix string, segments ...string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func customerPath(customerID string, rest ...string) string {
	p := pathOf("/v1/customers", customerID)
	for _, r := range rest {
		p += r
	}
	return p
}

// withQuery adds the non-empty values of q to path.
func withQuery(path string, q url.Values) string {
	for k, vs := range q {
		if len(vs) == 0 || vs[0] == "" {
			delete(q, k)
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

func pageQuery(page, pageSize int) url.Values {
	q := url.Values{}
	if page > 0 {
		q.Set("page", strconv.Itoa(page))
	}
	if pageSize > 0 {
		q.Set("page_size", strconv.Itoa(pageSize))
	}
	return q
}

// ---------------------------------------------------------------- catalog

// PutProduct defines the product sku in the partner's catalog, or replaces
// its definition (PUT /v1/products/{sku_id}).
func (c *Client) PutProduct(ctx context.Context, sku string, req ProductRequest) (Product, error) {
	var p Product
	err := c.call(ctx, http.MethodPut, pathOf("/v1/products", sku), req, &p, nil)
	return p, err
}

// ListProducts returns the partner's catalog (GET /v1/products).
func (c *Client) ListProducts(ctx context.Context) ([]Product, error) {
	var out struct {
		Products []Product `json:"products"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/products", nil, &out, nil)
	return out.Products, err
}

// ---------------------------------------------------------------- customers

// CreateCustomer creates a customer (POST /v1/customers).
func (c *Client) CreateCustomer(ctx context.Context, req CustomerRequest) (Customer, error) {
	var out Customer
	err := c.call(ctx, http.MethodPost, "/v1/customers", req, &out, nil)
	return out, err
}

// ListCustomers returns the partner's customers (GET /v1/customers).
func (c *Client) ListCustomers(ctx context.Context) ([]Customer, error) {
	var out struct {
		Customers []Customer `json:"customers"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/customers", nil, &out, nil)
	return out.Customers, err
}

// GetCustomer returns one customer (GET /v1/customers/{cid}).
func (c *Client) GetCustomer(ctx context.Context, customerID string) (Customer, error) {
	var out Customer
	err := c.call(ctx, http.MethodGet, customerPath(customerID), nil, &out, nil)
	return out, err
}

// UpdateCustomer changes a customer's name or default usage location and
// returns the customer as it is now (PATCH /v1/customers/{cid}).
func (c *Client) UpdateCustomer(ctx context.Context, customerID string, req CustomerUpdate) (Customer, error) {
	var out Customer
	err := c.call(ctx, http.MethodPatch, customerPath(customerID), req, &out, nil)
	return out, err
}

// SyncCustomer queues an import of the users, licenses and subscriptions of
// a customer whose directory is external (POST /v1/customers/{cid}/sync).
// A local customer is a Conflict.
func (c *Client) SyncCustomer(ctx context.Context, customerID string) (SyncStatus, error) {
	var out SyncStatus
	err := c.call(ctx, http.MethodPost, customerPath(customerID, "/sync"), nil, &out, nil)
	return out, err
}

// ---------------------------------------------------------------- users

// ImportUsers creates or updates a customer's users; a later row wins over
// an earlier one with the same ID (POST /v1/customers/{cid}/users/import).
func (c *Client) ImportUsers(ctx context.Context, customerID string, users []UserImport) (ImportResult, error) {
	if users == nil {
		users = []UserImport{}
	}
	var out ImportResult
	err := c.call(ctx, http.MethodPost, customerPath(customerID, "/users/import"),
		struct {
			Users []UserImport `json:"users"`
		}{users}, &out, nil)
	return out, err
}

// ListUsers returns a page of a customer's users sorted by display name
// (GET /v1/customers/{cid}/users?page=&page_size=&q=).
func (c *Client) ListUsers(ctx context.Context, customerID string, opts UserListOptions) (UserPage, error) {
	q := pageQuery(opts.Page, opts.PageSize)
	q.Set("q", opts.Query)
	if opts.LicenseErrors {
		q.Set("license_errors", "true")
	}
	var out UserPage
	err := c.call(ctx, http.MethodGet, withQuery(customerPath(customerID, "/users"), q), nil, &out, nil)
	return out, err
}

// GetUser returns one user with its licenses (GET /v1/customers/{cid}/users/{uid}).
func (c *Client) GetUser(ctx context.Context, customerID, userID string) (User, error) {
	var out User
	err := c.call(ctx, http.MethodGet, customerPath(customerID, pathOf("/users", userID)), nil, &out, nil)
	return out, err
}

// UpdateUser changes a user's usage location and returns the user as it is
// now (PATCH /v1/customers/{cid}/users/{uid}).
func (c *Client) UpdateUser(ctx context.Context, customerID, userID string, req UserUpdate) (User, error) {
	var out User
	err := c.call(ctx, http.MethodPatch, customerPath(customerID, pathOf("/users", userID)), req, &out, nil)
	return out, err
}

// ---------------------------------------------------------------- subscriptions

// PutSubscription sets a customer's seat total of sku, creating the
// subscription if needed (PUT /v1/customers/{cid}/subscriptions/{sku_id}).
// A total below the seats in use is SeatsInUse.
func (c *Client) PutSubscription(ctx context.Context, customerID, sku string, total int) (Subscription, error) {
	var out Subscription
	err := c.call(ctx, http.MethodPut, customerPath(customerID, pathOf("/subscriptions", sku)),
		map[string]int{"total": total}, &out, nil)
	return out, err
}

// ListSubscriptions returns a customer's subscriptions (GET /v1/customers/{cid}/subscriptions).
func (c *Client) ListSubscriptions(ctx context.Context, customerID string) ([]Subscription, error) {
	var out struct {
		Subscriptions []Subscription `json:"subscriptions"`
	}
	err := c.call(ctx, http.MethodGet, customerPath(customerID, "/subscriptions"), nil, &out, nil)
	return out.Subscriptions, err
}

// LicenseSummary returns, for every subscription of the customer, which of
// the selected users hold it (POST /v1/customers/{cid}/license-summary).
func (c *Client) LicenseSummary(ctx context.Context, customerID string, userIDs []string) (LicenseSummary, error) {
	var out LicenseSummary
	err := c.call(ctx, http.MethodPost, customerPath(customerID, "/license-summary"),
		map[string][]string{"user_ids": userIDs}, &out, nil)
	return out, err
}

// ---------------------------------------------------------------- operations

// CreateOperation starts a license operation and returns it as accepted
// (POST /v1/customers/{cid}/license-operations). A non-empty
// idempotencyKey is sent as Idempotency-Key: the same key and request give
// the same operation again, however often they are sent, so a call whose
// answer was lost can be repeated safely. Refusals carry details:
// CountViolation (CountViolationDetails), UnknownUsers
// (UnknownUsersDetails), UnknownSkus (UnknownSkusDetails).
func (c *Client) CreateOperation(ctx context.Context, customerID string, req OperationRequest, idempotencyKey string) (AcceptedOperation, error) {
	var h http.Header
	if idempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {idempotencyKey}}
	}
	var out AcceptedOperation
	err := c.call(ctx, http.MethodPost, customerPath(customerID, "/license-operations"), req, &out, h)
	return out, err
}

// PreviewOperation is a dry run of CreateOperation (POST
// /v1/customers/{cid}/license-operations with "dry_run": true): the same
// request is checked and refused exactly as a real one would be
// (CountViolation when seats are short and AllowPartial is false, unknown
// users and SKUs), but nothing is written or queued and no idempotency key
// is taken. With AllowPartial and too few seats, the users that need a seat
// get one in report order (display name, then user ID), as at intake.
func (c *Client) PreviewOperation(ctx context.Context, customerID string, req OperationRequest) (OperationPreview, error) {
	body := struct {
		OperationRequest
		DryRun bool `json:"dry_run"`
	}{req, true}
	var out OperationPreview
	err := c.call(ctx, http.MethodPost, customerPath(customerID, "/license-operations"), body, &out, nil)
	return out, err
}

// UndoOperation gives each user the finished operation id changed back
// what that user had, as a new operation (POST /v1/operations/{oid}/undo;
// WaitOperation follows it). A non-empty opts.IdempotencyKey is sent as
// Idempotency-Key, as by CreateOperation. Refusals: Conflict (the
// operation has not finished, is a dry run, is being undone, or changed
// nobody), CountViolation (CountViolationDetails) when seats to give back
// are short and opts.AllowPartial is false.
func (c *Client) UndoOperation(ctx context.Context, id string, opts UndoOptions) (AcceptedOperation, error) {
	var h http.Header
	if opts.IdempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {opts.IdempotencyKey}}
	}
	body := struct {
		AllowPartial bool `json:"allow_partial"`
	}{opts.AllowPartial}
	var out AcceptedOperation
	err := c.call(ctx, http.MethodPost, pathOf("/v1/operations", id)+"/undo", body, &out, h)
	return out, err
}

// GetOperation returns an operation with its progress (GET /v1/operations/{oid}).
func (c *Client) GetOperation(ctx context.Context, id string) (Operation, error) {
	var out Operation
	err := c.call(ctx, http.MethodGet, pathOf("/v1/operations", id), nil, &out, nil)
	return out, err
}

// CancelOperation stops an operation (POST /v1/operations/{oid}/cancel):
// users not yet changed are not changed (ItemCancelled) and their seats
// return; users already changed stay so. It answers with the operation,
// StatusCancelled unless a change is in flight to an external directory
// (then it becomes cancelled once that change is recorded). Cancelling a
// cancelled operation is harmless; a finished one is CodeConflict.
func (c *Client) CancelOperation(ctx context.Context, id string) (Operation, error) {
	var out Operation
	err := c.call(ctx, http.MethodPost, pathOf("/v1/operations", id)+"/cancel", nil, &out, nil)
	return out, err
}

// ListOperations returns a page of a customer's operations, newest first
// (GET /v1/customers/{cid}/operations).
func (c *Client) ListOperations(ctx context.Context, customerID string, opts ListOptions) (OperationPage, error) {
	var out OperationPage
	err := c.call(ctx, http.MethodGet, withQuery(customerPath(customerID, "/operations"), pageQuery(opts.Page, opts.PageSize)), nil, &out, nil)
	return out, err
}

// Report streams an operation's confirmation report
// (GET /v1/operations/{oid}/report): fn is called with each user's row in
// turn, as the rows arrive, so that a report of any size needs the memory
// of one row. It returns the operation as the report's head shows it. An
// error of fn stops the stream and is returned. A report cut short (the
// server failed half-way) is an error, never a short success.
func (c *Client) Report(ctx context.Context, id string, fn func(ReportRow) error) (Operation, error) {
	path := pathOf("/v1/operations", id) + "/report"
	resp, err := c.send(ctx, http.MethodGet, path+"?format=json", nil, nil)
	if err != nil {
		return Operation{}, err
	}
	defer closeBody(resp)
	op, err := decodeReport(json.NewDecoder(resp.Body), fn)
	var fe fnError
	switch {
	case err == nil:
		return op, nil
	case errors.As(err, &fe):
		return op, fe.err
	default:
		return op, &DecodeError{Method: http.MethodGet, Path: path, Err: err}
	}
}

// fnError carries an error of Report's callback through decodeReport.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// decodeReport reads {"operation": {…}, "results": [row, …]} token by
// token, decoding one row at a time.
func decodeReport(dec *json.Decoder, fn func(ReportRow) error) (Operation, error) {
	var op Operation
	if err := expectDelim(dec, '{'); err != nil {
		return op, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return op, unexpectedEOF(err)
		}
		switch tok {
		case "operation":
			if err := dec.Decode(&op); err != nil {
				return op, unexpectedEOF(err)
			}
		case "results":
			if err := expectDelim(dec, '['); err != nil {
				return op, err
			}
			for dec.More() {
				var row ReportRow
				if err := dec.Decode(&row); err != nil {
					return op, unexpectedEOF(err)
				}
				if err := fn(row); err != nil {
					return op, fnError{err}
				}
			}
			if err := expectDelim(dec, ']'); err != nil {
				return op, err
			}
		default: // a field added later
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return op, unexpectedEOF(err)
			}
		}
	}
	return op, expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return unexpectedEOF(err)
	}
	if tok != want {
		return fmt.Errorf("got %v where the report has %v", tok, want)
	}
	return nil
}

// unexpectedEOF turns the end of a body in the middle of a report into
// io.ErrUnexpectedEOF: a report that stops early is truncated, not done.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReportCSV streams an operation's confirmation report as CSV to w, as
// the API writes it: a header line, then one line per user
// (GET /v1/operations/{oid}/report?format=csv).
func (c *Client) ReportCSV(ctx context.Context, id string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, pathOf("/v1/operations", id)+"/report?format=csv",
		nil, http.Header{"Accept": {"text/csv"}})
	if err != nil {
		return err
	}
	defer closeBody(resp)
	_, err = io.Copy(w, resp.Body)
	return err
}

// ---------------------------------------------------------------- cleanup policies

func policyPath(customerID, policyID string) string {
	return customerPath(customerID, pathOf("/cleanup-policies", policyID))
}

// CreateCleanupPolicy creates a customer's cleanup policy
// (POST /v1/customers/{cid}/cleanup-policies).
func (c *Client) CreateCleanupPolicy(ctx context.Context, customerID string, req CleanupPolicyRequest) (CleanupPolicy, error) {
	var out CleanupPolicy
	err := c.call(ctx, http.MethodPost, customerPath(customerID, "/cleanup-policies"), req, &out, nil)
	return out, err
}

// ListCleanupPolicies returns a customer's cleanup policies
// (GET /v1/customers/{cid}/cleanup-policies).
func (c *Client) ListCleanupPolicies(ctx context.Context, customerID string) ([]CleanupPolicy, error) {
	var out struct {
		Policies []CleanupPolicy `json:"cleanup_policies"`
	}
	err := c.call(ctx, http.MethodGet, customerPath(customerID, "/cleanup-policies"), nil, &out, nil)
	return out.Policies, err
}

// GetCleanupPolicy returns one cleanup policy
// (GET /v1/customers/{cid}/cleanup-policies/{pid}).
func (c *Client) GetCleanupPolicy(ctx context.Context, customerID, policyID string) (CleanupPolicy, error) {
	var out CleanupPolicy
	err := c.call(ctx, http.MethodGet, policyPath(customerID, policyID), nil, &out, nil)
	return out, err
}

// UpdateCleanupPolicy changes the fields req sets and returns the policy
// as it is now (PATCH /v1/customers/{cid}/cleanup-policies/{pid}).
func (c *Client) UpdateCleanupPolicy(ctx context.Context, customerID, policyID string, req CleanupPolicyRequest) (CleanupPolicy, error) {
	var out CleanupPolicy
	err := c.call(ctx, http.MethodPatch, policyPath(customerID, policyID), req, &out, nil)
	return out, err
}

// DeleteCleanupPolicy deletes a cleanup policy
// (DELETE /v1/customers/{cid}/cleanup-policies/{pid}).
func (c *Client) DeleteCleanupPolicy(ctx context.Context, customerID, policyID string) error {
	return c.call(ctx, http.MethodDelete, policyPath(customerID, policyID), nil, nil, nil)
}

// RunCleanupPolicy runs a cleanup policy now, enabled or not
// (POST /v1/customers/{cid}/cleanup-policies/{pid}/run).
func (c *Client) RunCleanupPolicy(ctx context.Context, customerID, policyID string) (CleanupRunResult, error) {
	var out CleanupRunResult
	err := c.call(ctx, http.MethodPost, policyPath(customerID, policyID)+"/run", nil, &out, nil)
	return out, err
}

// RunCleanupPolicyConfirmed runs a cleanup policy now and lets the run
// change more users than the policy's limits allow
// (POST …/cleanup-policies/{pid}/run with {"confirm": true}).
func (c *Client) RunCleanupPolicyConfirmed(ctx context.Context, customerID, policyID string) (CleanupRunResult, error) {
	var out CleanupRunResult
	err := c.call(ctx, http.MethodPost, policyPath(customerID, policyID)+"/run", map[string]bool{"confirm": true}, &out, nil)
	return out, err
}

// ListCleanupRuns returns a page of a cleanup policy's runs, newest first
// (GET /v1/customers/{cid}/cleanup-policies/{pid}/runs).
func (c *Client) ListCleanupRuns(ctx context.Context, customerID, policyID string, opts ListOptions) (CleanupRunPage, error) {
	var out CleanupRunPage
	err := c.call(ctx, http.MethodGet, withQuery(policyPath(customerID, policyID)+"/runs", pageQuery(opts.Page, opts.PageSize)), nil, &out, nil)
	return out, err
}

// ---------------------------------------------------------------- webhooks

// CreateWebhook creates a webhook of the partner; the answer has its
// signing secret, shown this once (POST /v1/webhooks).
func (c *Client) CreateWebhook(ctx context.Context, req WebhookRequest) (CreatedWebhook, error) {
	var out CreatedWebhook
	err := c.call(ctx, http.MethodPost, "/v1/webhooks", req, &out, nil)
	return out, err
}

// ListWebhooks returns the partner's webhooks, oldest first (GET /v1/webhooks).
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/webhooks", nil, &out, nil)
	return out.Webhooks, err
}

// GetWebhook returns one webhook (GET /v1/webhooks/{wid}).
func (c *Client) GetWebhook(ctx context.Context, id string) (Webhook, error) {
	var out Webhook
	err := c.call(ctx, http.MethodGet, pathOf("/v1/webhooks", id), nil, &out, nil)
	return out, err
}

// DeleteWebhook deletes a webhook and its deliveries (DELETE /v1/webhooks/{wid}).
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, pathOf("/v1/webhooks", id), nil, nil, nil)
}

// ListWebhookDeliveries returns a page of a webhook's deliveries, newest
// first (GET /v1/webhooks/{wid}/deliveries).
func (c *Client) ListWebhookDeliveries(ctx context.Context, id string, opts ListOptions) (WebhookDeliveryPage, error) {
	var out WebhookDeliveryPage
	err := c.call(ctx, http.MethodGet, withQuery(pathOf("/v1/webhooks", id)+"/deliveries", pageQuery(opts.Page, opts.PageSize)), nil, &out, nil)
	return out, err
}

// ---------------------------------------------------------------- audit

// ListAudit returns a page of the partner's audit log, newest first
// (GET /v1/audit).
func (c *Client) ListAudit(ctx context.Context, opts ListOptions) (AuditPage, error) {
	var out AuditPage
	err := c.call(ctx, http.MethodGet, withQuery("/v1/audit", pageQuery(opts.Page, opts.PageSize)), nil, &out, nil)
	return out, err
}

// ---------------------------------------------------------------- service

// Healthz reports whether the API process answers (GET /healthz).
func (c *Client) Healthz(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// Readyz reports whether the API can reach Postgres and Redis, and how
// many workers are alive (GET /readyz). It returns each dependency's
// state, "ok" or what failed, and, when one failed, an *Error with status
// 503 and code "Unavailable".
func (c *Client) Readyz(ctx context.Context) (Readiness, error) {
	var rd Readiness
	resp, err := c.Do(ctx, http.MethodGet, "/readyz", nil, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return rd, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return rd, readError(resp, c.baseURL)
	}
	defer closeBody(resp)
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		return rd, &DecodeError{Method: http.MethodGet, Path: "/readyz", Err: err}
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		var failed []string
		for name, state := range map[string]string{"postgres": rd.Postgres, "redis": rd.Redis} {
			if state != "ok" {
				failed = append(failed, name+": "+state)
			}
		}
		sort.Strings(failed)
		return rd, &Error{StatusCode: resp.StatusCode, Code: "Unavailable", Message: "not ready: " + strings.Join(failed, "; ")}
	}
	return rd, nil
}

// Metrics returns the API process's Prometheus metrics in the text
// exposition format (GET /metrics).
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.send(ctx, http.MethodGet, "/metrics", nil, http.Header{"Accept": {"text/plain"}})
	if err != nil {
		return "", err
	}
	defer closeBody(resp)
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
