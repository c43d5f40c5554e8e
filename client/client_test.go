package client_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/worker"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// asToken returns a client of the bundle's api acting as a new token of
// partner with role.
func asToken(b *testapp.Bundle, partner, role string) *client.Client {
	return client.New(b.API.URL(), b.Token(partner, role))
}

// customerID needs escaping in a path: a space, '?', '#', '%' and '&'.
const customerID = "Acme & Co? #1 100%"

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func must[T any](t *testing.T, what string) func(T, error) T {
	t.Helper()
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// apiError returns err as an *Error with the given status and code, or fails.
func apiError(t *testing.T, what string, err error, status int, code string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v (%T), want an *client.Error", what, err, err)
	}
	if e.StatusCode != status || e.Code != code || client.ErrorCode(err) != code {
		t.Fatalf("%s: %v, want HTTP %d %s", what, err, status, code)
	}
	if e.Message == "" || !strings.Contains(e.Error(), code) || !strings.Contains(e.Error(), fmt.Sprint(status)) {
		t.Fatalf("%s: Error() = %q, want the code, the status and a message", what, e.Error())
	}
	return e
}

// seed defines E5 and E3, creates the customer with n users (u000…) and
// gives it seats of E5.
func seed(t *testing.T, c *client.Client, n, seats int) []string {
	t.Helper()
	ctx := ctxFor(t)
	must[client.Product](t, "put E5")(c.PutProduct(ctx, "E5", client.ProductRequest{Name: "Office 365 E5", ProhibitedLocations: []string{"CN"}}))
	must[client.Product](t, "put E3")(c.PutProduct(ctx, "E3", client.ProductRequest{Name: "Office 365 E3", Excludes: []string{"E5"}}))
	must[client.Customer](t, "create customer")(c.CreateCustomer(ctx, client.CustomerRequest{ID: customerID, Name: "Acme", DefaultUsageLocation: new("PL")}))
	ids := make([]string, n)
	users := make([]client.UserImport, n)
	for i := range users {
		ids[i] = fmt.Sprintf("u%03d", i)
		users[i] = client.UserImport{ID: ids[i], UserPrincipalName: ids[i] + "@acme.example", DisplayName: fmt.Sprintf("User %03d", i)}
	}
	if res := must[client.ImportResult](t, "import")(c.ImportUsers(ctx, customerID, users)); res.Created != n || res.Updated != 0 {
		t.Fatalf("import: %+v, want %d created", res, n)
	}
	must[client.Subscription](t, "put subscription")(c.PutSubscription(ctx, customerID, "E5", seats))
	return ids
}

// Every method of the client against a real api and worker.
func TestEveryEndpoint(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := asToken(b, "p", "global_admin")
	ctx := ctxFor(t)

	t.Run("service", func(t *testing.T) {
		if err := c.Healthz(ctx); err != nil {
			t.Fatal(err)
		}
		// asynq writes a worker's heartbeat shortly after the worker
		// starts: wait for it (a few seconds at most), then check.
		ready, err := c.Readyz(ctx)
		for deadline := time.Now().Add(10 * time.Second); err == nil && (ready.Workers == nil || ready.Workers.Alive < 1) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			ready, err = c.Readyz(ctx)
		}
		if err != nil || ready.Postgres != "ok" || ready.Redis != "ok" || ready.Workers == nil || ready.Workers.Alive < 1 {
			t.Fatalf("readyz: %+v (workers %+v) %v, want postgres and redis ok and a worker alive", ready, ready.Workers, err)
		}
		text, err := c.Metrics(ctx)
		if err != nil || !strings.Contains(text, "licenseops_http_requests_total") {
			t.Fatalf("metrics: %v\n%.500s", err, text)
		}
	})

	const n, seats = 30, 25
	ids := seed(t, c, n, seats)

	t.Run("catalog and customers", func(t *testing.T) {
		products := must[[]client.Product](t, "list products")(c.ListProducts(ctx))
		if len(products) != 2 || products[0].SKU != "E3" || !slices.Equal(products[0].Excludes, []string{"E5"}) ||
			!slices.Equal(products[1].ProhibitedLocations, []string{"CN"}) {
			t.Fatalf("products = %+v", products)
		}
		customers := must[[]client.Customer](t, "list customers")(c.ListCustomers(ctx))
		if len(customers) != 1 || customers[0].ID != customerID || customers[0].Directory.Kind != client.DirectoryLocal {
			t.Fatalf("customers = %+v", customers)
		}
		cu := must[client.Customer](t, "get customer")(c.GetCustomer(ctx, customerID))
		if cu.Name != "Acme" || cu.DefaultUsageLocation == nil || *cu.DefaultUsageLocation != "PL" || cu.CreatedAt.IsZero() {
			t.Fatalf("customer = %+v", cu)
		}
	})

	t.Run("update customer", func(t *testing.T) {
		cu, err := c.UpdateCustomer(ctx, customerID, client.CustomerUpdate{Name: new("Acme Ltd"), DefaultUsageLocation: new("de")})
		if err != nil || cu.Name != "Acme Ltd" || cu.DefaultUsageLocation == nil || *cu.DefaultUsageLocation != "DE" {
			t.Fatalf("update customer: %+v %v", cu, err)
		}
	})

	t.Run("users", func(t *testing.T) {
		page := must[client.UserPage](t, "list users")(c.ListUsers(ctx, customerID, client.UserListOptions{Page: 2, PageSize: 10}))
		if page.Total != n || page.Page != 2 || page.PageSize != 10 || page.TotalPages != 3 || len(page.Users) != 10 ||
			page.Users[0].ID != "u010" || page.Links.Next == nil || page.Links.Prev == nil {
			t.Fatalf("page 2 = %+v", page)
		}
		found := must[client.UserPage](t, "search users")(c.ListUsers(ctx, customerID, client.UserListOptions{Query: "user 007"}))
		if found.Total != 1 || found.Users[0].ID != "u007" {
			t.Fatalf("q=user 007: %+v", found)
		}
		u := must[client.User](t, "get user")(c.GetUser(ctx, customerID, "u003"))
		if u.UserPrincipalName != "u003@acme.example" || !u.AccountEnabled || u.UsageLocation != nil {
			t.Fatalf("user = %+v", u)
		}
		u = must[client.User](t, "update user")(c.UpdateUser(ctx, customerID, "u003", client.UserUpdate{UsageLocation: new("us")}))
		if u.UsageLocation == nil || *u.UsageLocation != "US" {
			t.Fatalf("updated user = %+v", u)
		}
		// An ID with a space and a '?' reaches the api whole.
		odd := "Jan Kowalski?x"
		must[client.ImportResult](t, "import odd")(c.ImportUsers(ctx, customerID, []client.UserImport{{ID: odd, UserPrincipalName: "jan@acme.example",
			AccountEnabled: new(false), LastSignInAt: new(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}}))
		if u := must[client.User](t, "get odd")(c.GetUser(ctx, customerID, odd)); u.ID != odd || u.AccountEnabled || u.DisplayName != "jan@acme.example" {
			t.Fatalf("odd user = %+v", u)
		}
	})

	t.Run("subscriptions and summary", func(t *testing.T) {
		subs := must[[]client.Subscription](t, "list subscriptions")(c.ListSubscriptions(ctx, customerID))
		if len(subs) != 1 || subs[0].SKU != "E5" || subs[0].Total != seats || subs[0].Available != seats || subs[0].BuyMoreURL != nil {
			t.Fatalf("subscriptions = %+v", subs)
		}
		sum := must[client.LicenseSummary](t, "summary")(c.LicenseSummary(ctx, customerID, ids[:3]))
		if len(sum.Users) != 3 || len(sum.Products) != 1 || sum.Products[0].State != client.SummaryNone || len(sum.Products[0].AssignedUserIDs) != 0 {
			t.Fatalf("summary = %+v", sum)
		}
		if _, err := c.SyncCustomer(ctx, customerID); err == nil {
			t.Fatal("sync of a local customer succeeded")
		} else {
			apiError(t, "sync of a local customer", err, http.StatusConflict, "Conflict")
		}
	})

	t.Run("preview", func(t *testing.T) {
		// Too few seats: the dry run is refused as the real save would be.
		_, err := c.PreviewOperation(ctx, customerID, client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}})
		apiError(t, "preview without enough seats", err, http.StatusConflict, client.CodeCountViolation)
		pv := must[client.OperationPreview](t, "preview")(c.PreviewOperation(ctx, customerID,
			client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}, AllowPartial: true}))
		if !pv.DryRun || pv.CustomerID != customerID || pv.Total != n || pv.WouldSucceed != seats || pv.WouldFail != n-seats ||
			len(pv.Results) != n || len(pv.SKUs) != 1 || pv.SKUs[0].SKU != "E5" || pv.SKUs[0].Needed != n || pv.SKUs[0].Available != seats {
			t.Fatalf("preview = %+v", pv)
		}
		failed := 0
		for _, r := range pv.Results {
			if r.Status == client.StatusWouldFail && r.Error != nil && r.Error.Code == client.CodeCountViolation {
				failed++
			} else if r.Status != client.StatusWouldSucceed || !slices.Equal(r.Assigned, []string{"E5"}) {
				t.Fatalf("preview row %+v", r)
			}
		}
		if failed != n-seats {
			t.Fatalf("%d rows would fail for seats, want %d", failed, n-seats)
		}
		// Nothing was written.
		if page := must[client.OperationPage](t, "list operations")(c.ListOperations(ctx, customerID, client.ListOptions{})); page.Total != 0 {
			t.Fatalf("a dry run created operations: %+v", page)
		}
	})

	var opID, holder string // holder got E5 in the operation
	t.Run("operation", func(t *testing.T) {
		req := client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}, AllowPartial: true}
		acc := must[client.AcceptedOperation](t, "create operation")(c.CreateOperation(ctx, customerID, req, "rollout-1"))
		if acc.ID == "" || acc.CustomerID != customerID || acc.Status != client.StatusQueued || acc.Total != n ||
			acc.Links.Self != "/v1/operations/"+acc.ID || acc.Links.Report != acc.Links.Self+"/report" {
			t.Fatalf("accepted = %+v", acc)
		}
		opID = acc.ID
		// The same key and request: the same operation, not a second one.
		again := must[client.AcceptedOperation](t, "replay")(c.CreateOperation(ctx, customerID, req, "rollout-1"))
		if again != acc {
			t.Fatalf("replay = %+v, want %+v", again, acc)
		}
		// The same key with another request is refused.
		_, err := c.CreateOperation(ctx, customerID, client.OperationRequest{UserIDs: ids[:1], Assign: []string{"E5"}}, "rollout-1")
		apiError(t, "key reused", err, http.StatusUnprocessableEntity, "IdempotencyKeyReused")

		var mu sync.Mutex
		var seen []client.Operation
		op, err := c.WaitOperation(ctx, acc.ID, client.WaitOptions{Interval: 20 * time.Millisecond, Progress: func(op client.Operation) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, op)
		}})
		if err != nil || op.FinishedAt == nil || op.Status != client.StatusCompletedWithErrors || op.Succeeded != seats || op.Failed != n-seats {
			t.Fatalf("wait: %+v %v", op, err)
		}
		if len(seen) == 0 || seen[len(seen)-1].FinishedAt == nil {
			t.Fatalf("progress saw %d reads, the last one unfinished", len(seen))
		}
		if got := must[client.Operation](t, "get operation")(c.GetOperation(ctx, acc.ID)); got.ID != acc.ID || got.Succeeded != seats || !slices.Equal(got.Assign, []string{"E5"}) {
			t.Fatalf("operation = %+v", got)
		}
		page := must[client.OperationPage](t, "list operations")(c.ListOperations(ctx, customerID, client.ListOptions{PageSize: 5}))
		if page.Total != 1 || len(page.Operations) != 1 || page.Operations[0].ID != acc.ID {
			t.Fatalf("operations = %+v", page)
		}
		if sum := must[client.LicenseSummary](t, "summary")(c.LicenseSummary(ctx, customerID, ids)); sum.Products[0].State != client.SummarySome ||
			len(sum.Products[0].AssignedUserIDs) != seats || sum.Products[0].BuyMoreURL == nil {
			t.Fatalf("summary after the rollout = %+v", sum.Products)
		}
	})

	t.Run("report", func(t *testing.T) {
		var rows []client.ReportRow
		head, err := c.Report(ctx, opID, func(r client.ReportRow) error {
			rows = append(rows, r)
			return nil
		})
		if err != nil || head.ID != opID || head.FinishedAt == nil || len(rows) != n {
			t.Fatalf("report: head %+v, %d rows, %v", head, len(rows), err)
		}
		failed := 0
		for _, r := range rows {
			switch {
			case r.Status == client.ItemSucceeded && r.Error == nil && slices.Equal(r.Assigned, []string{"E5"}):
				holder = r.UserID
			case r.Status == client.ItemFailed && r.Error != nil && r.Error.Code == licensing.CodeCountViolation && r.Error.Message != "":
				failed++
			default:
				t.Fatalf("row %+v (error %+v)", r, r.Error)
			}
		}
		if failed != n-seats {
			t.Fatalf("%d failed rows, want %d", failed, n-seats)
		}
		// The callback's error stops the stream.
		stop := errors.New("enough")
		count := 0
		if _, err := c.Report(ctx, opID, func(client.ReportRow) error { count++; return stop }); !errors.Is(err, stop) || count != 1 {
			t.Fatalf("stopped report: %v after %d rows", err, count)
		}
		var buf bytes.Buffer
		if err := c.ReportCSV(ctx, opID, &buf); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil || len(recs) != n+1 || !slices.Equal(recs[0], api.CSVHeader) {
			t.Fatalf("CSV: %d records, %v: %q", len(recs), err, recs[:min(2, len(recs))])
		}
		for i, rec := range recs[1:] {
			if rec[0] != rows[i].UserID || rec[3] != rows[i].Status {
				t.Fatalf("CSV row %d = %q, JSON row %+v", i, rec, rows[i])
			}
		}
		_, err = c.Report(ctx, "00000000-0000-0000-0000-000000000000", func(client.ReportRow) error { return nil })
		apiError(t, "report of no operation", err, http.StatusNotFound, "NotFound")
	})

	t.Run("cleanup policies", func(t *testing.T) {
		// One holder of E5 is disabled.
		must[client.ImportResult](t, "disable")(c.ImportUsers(ctx, customerID, []client.UserImport{{ID: holder, UserPrincipalName: holder + "@acme.example", AccountEnabled: new(false)}}))
		pol := must[client.CleanupPolicy](t, "create policy")(c.CreateCleanupPolicy(ctx, customerID, client.CleanupPolicyRequest{
			Name: new("disabled"), Schedule: new("0 2 * * *"), TimeZone: new("Europe/Warsaw"),
			Rule: &client.CleanupRule{Kind: client.RuleDisabledAccounts, SKUs: []string{"E5"}},
		}))
		if pol.ID == "" || pol.CustomerID != customerID || !pol.DryRun || !pol.Enabled || pol.NextRunAt == nil || pol.Links.Run != pol.Links.Self+"/run" {
			t.Fatalf("policy = %+v", pol)
		}
		if got := must[client.CleanupPolicy](t, "get policy")(c.GetCleanupPolicy(ctx, customerID, pol.ID)); got.ID != pol.ID || got.Rule.Kind != client.RuleDisabledAccounts {
			t.Fatalf("got policy %+v", got)
		}
		pol = must[client.CleanupPolicy](t, "update policy")(c.UpdateCleanupPolicy(ctx, customerID, pol.ID, client.CleanupPolicyRequest{Enabled: new(false)}))
		if pol.Enabled || pol.NextRunAt != nil || pol.Name != "disabled" {
			t.Fatalf("disabled policy = %+v", pol)
		}
		if *pol.MaxChanges != 500 || *pol.MaxPercent != 10 {
			t.Fatalf("default limits %v, %v", *pol.MaxChanges, *pol.MaxPercent)
		}
		pol = must[client.CleanupPolicy](t, "update limits")(c.UpdateCleanupPolicy(ctx, customerID, pol.ID,
			client.CleanupPolicyRequest{RemoveMaxChanges: true, MaxPercent: new(50.0)}))
		if pol.MaxChanges != nil || pol.MaxPercent == nil || *pol.MaxPercent != 50 {
			t.Fatalf("limits after update: %v, %v", pol.MaxChanges, pol.MaxPercent)
		}
		if list := must[[]client.CleanupPolicy](t, "list policies")(c.ListCleanupPolicies(ctx, customerID)); len(list) != 1 || list[0].ID != pol.ID {
			t.Fatalf("policies = %+v", list)
		}
		run := must[client.CleanupRunResult](t, "run policy")(c.RunCleanupPolicy(ctx, customerID, pol.ID))
		if run.ID == "" || run.Status != client.StatusQueued || run.Total != 1 || !run.DryRun || run.Links == nil || run.Run.Trigger != licensing.TriggerManual {
			t.Fatalf("run = %+v", run)
		}
		op := must[client.Operation](t, "wait cleanup")(c.WaitOperation(ctx, run.ID, client.WaitOptions{Interval: 20 * time.Millisecond}))
		if op.Source != licensing.SourceCleanup || !op.DryRun || op.Succeeded != 1 {
			t.Fatalf("cleanup operation = %+v", op)
		}
		runs := must[client.CleanupRunPage](t, "list runs")(c.ListCleanupRuns(ctx, customerID, pol.ID, client.ListOptions{}))
		if runs.Total != 1 || len(runs.Runs) != 1 || runs.Runs[0].OperationID == nil || *runs.Runs[0].OperationID != run.ID {
			t.Fatalf("runs = %+v", runs)
		}
		if err := c.DeleteCleanupPolicy(ctx, customerID, pol.ID); err != nil {
			t.Fatal(err)
		}
		_, err := c.GetCleanupPolicy(ctx, customerID, pol.ID)
		apiError(t, "deleted policy", err, http.StatusNotFound, "NotFound")
	})

	t.Run("webhooks", func(t *testing.T) {
		h := must[client.CreatedWebhook](t, "create webhook")(c.CreateWebhook(ctx, client.WebhookRequest{
			URL: "https://hooks.example.com/in", Events: []string{"cleanup.blocked"}, Description: "sdk",
		}))
		if h.ID == "" || !strings.HasPrefix(h.Secret, "whsec_") || h.Links.Deliveries != h.Links.Self+"/deliveries" {
			t.Fatalf("created webhook = %+v", h)
		}
		if got := must[client.Webhook](t, "get webhook")(c.GetWebhook(ctx, h.ID)); got.URL != h.URL || got.Description != "sdk" {
			t.Fatalf("webhook = %+v", got)
		}
		if list := must[[]client.Webhook](t, "list webhooks")(c.ListWebhooks(ctx)); len(list) != 1 || list[0].ID != h.ID {
			t.Fatalf("webhooks = %+v", list)
		}
		if page := must[client.WebhookDeliveryPage](t, "deliveries")(c.ListWebhookDeliveries(ctx, h.ID, client.ListOptions{})); page.Total != 0 || page.Deliveries == nil {
			t.Fatalf("deliveries = %+v", page)
		}
		_, err := c.CreateWebhook(ctx, client.WebhookRequest{URL: "https://169.254.169.254/", Events: []string{"cleanup.blocked"}})
		apiError(t, "metadata webhook", err, http.StatusUnprocessableEntity, "WebhookTargetRefused")
		if err := c.DeleteWebhook(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
		_, err = c.GetWebhook(ctx, h.ID)
		apiError(t, "deleted webhook", err, http.StatusNotFound, "NotFound")
	})

	t.Run("audit", func(t *testing.T) {
		page := must[client.AuditPage](t, "audit")(c.ListAudit(ctx, client.ListOptions{PageSize: 3}))
		if page.Total < 5 || len(page.Entries) != 3 || page.Links.Next == nil || page.Entries[0].Action == "" {
			t.Fatalf("audit = %+v", page)
		}
	})
}

// Refusals come back as *client.Error with their codes and details.
func TestErrors(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{}) // no worker: operations stay unfinished
	admin := asToken(b, "p", "global_admin")
	ctx := ctxFor(t)
	ids := seed(t, admin, 10, 5)

	_, err := admin.GetCustomer(ctx, "nobody")
	apiError(t, "unknown customer", err, http.StatusNotFound, "NotFound")

	_, err = admin.CreateOperation(ctx, customerID, client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}}, "")
	e := apiError(t, "too few seats", err, http.StatusConflict, "CountViolation")
	var cv client.CountViolationDetails
	if err := e.DecodeDetails(&cv); err != nil || len(cv.SKUs) != 1 || cv.SKUs[0].SKU != "E5" || cv.SKUs[0].Needed != 10 ||
		cv.SKUs[0].Available != 5 || cv.SKUs[0].BuyMoreURL == "" {
		t.Fatalf("CountViolation details %s: %+v %v", e.Details, cv, err)
	}

	_, err = admin.CreateOperation(ctx, customerID, client.OperationRequest{UserIDs: []string{"u001", "ghost-2", "ghost-1"}, Assign: []string{"E5"}}, "")
	e = apiError(t, "unknown users", err, http.StatusUnprocessableEntity, "UnknownUsers")
	var uu client.UnknownUsersDetails
	if err := e.DecodeDetails(&uu); err != nil || uu.Count != 2 || !slices.Equal(uu.UserIDs, []string{"ghost-1", "ghost-2"}) {
		t.Fatalf("UnknownUsers details %s: %+v %v", e.Details, uu, err)
	}

	_, err = admin.CreateOperation(ctx, customerID, client.OperationRequest{UserIDs: ids[:1], Assign: []string{"E3"}}, "")
	e = apiError(t, "unknown SKU", err, http.StatusUnprocessableEntity, "UnknownSkus")
	var us client.UnknownSkusDetails
	if err := e.DecodeDetails(&us); err != nil || !slices.Equal(us.SKUIDs, []string{"E3"}) {
		t.Fatalf("UnknownSkus details %s: %+v %v", e.Details, us, err)
	}

	// Seats held by an unfinished operation cannot be taken away.
	must[client.AcceptedOperation](t, "partial")(admin.CreateOperation(ctx, customerID, client.OperationRequest{UserIDs: ids[:3], Assign: []string{"E5"}}, ""))
	_, err = admin.PutSubscription(ctx, customerID, "E5", 1)
	e = apiError(t, "seats in use", err, http.StatusConflict, "SeatsInUse")
	var siu client.SeatsInUseDetails
	if err := e.DecodeDetails(&siu); err != nil || siu.Reserved != 3 || siu.MinimumTotal != 3 {
		t.Fatalf("SeatsInUse details %s: %+v %v", e.Details, siu, err)
	}

	_, err = admin.ImportUsers(ctx, customerID, []client.UserImport{{ID: "x", UserPrincipalName: "x@acme.example", UsageLocation: new("ZZ")}})
	e = apiError(t, "bad country", err, http.StatusBadRequest, "InvalidRequest")
	if err := e.DecodeDetails(&struct{}{}); err == nil {
		t.Fatal("DecodeDetails of an error without details succeeded")
	}

	reader := asToken(b, "p", "reader")
	_, err = reader.PutProduct(ctx, "E5", client.ProductRequest{Name: "x"})
	apiError(t, "reader defines a product", err, http.StatusForbidden, "Forbidden")

	_, err = client.New(b.API.URL(), "lops_forged").ListCustomers(ctx)
	apiError(t, "forged token", err, http.StatusUnauthorized, "Unauthenticated")
	_, err = client.New(b.API.URL(), "").ListCustomers(ctx)
	apiError(t, "no token", err, http.StatusUnauthorized, "Unauthenticated")

	// Another partner sees none of it.
	_, err = asToken(b, "other", "global_admin").GetCustomer(ctx, customerID)
	apiError(t, "another partner's customer", err, http.StatusNotFound, "NotFound")

	if code := client.ErrorCode(context.Canceled); code != "" {
		t.Fatalf("ErrorCode of a non-API error = %q", code)
	}
	if code := client.ErrorCode(fmt.Errorf("wrapped: %w", err)); code != "NotFound" {
		t.Fatalf("ErrorCode of a wrapped error = %q", code)
	}
}

// countingTransport counts the answers of each status.
type countingTransport struct {
	mu     sync.Mutex
	status map[int]int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		c.mu.Lock()
		c.status[resp.StatusCode]++
		c.mu.Unlock()
	}
	return resp, err
}

func (c *countingTransport) count(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status[status]
}

// 429 RateLimited answers are waited out per Retry-After, a bounded number
// of times, and a context ends the wait.
func TestRateLimitRetried(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{APIConfig: api.Config{RateLimitPerSecond: 1, RateLimitBurst: 1}})
	token := b.Token("p", "reader")
	ctx := ctxFor(t)
	tr := &countingTransport{status: map[int]int{}}
	c := client.New(b.API.URL(), token, client.WithHTTPClient(&http.Client{Transport: tr}))
	start := time.Now()
	for i := range 3 {
		if _, err := c.ListCustomers(ctx); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if tr.count(http.StatusOK) != 3 || tr.count(http.StatusTooManyRequests) == 0 || time.Since(start) < time.Second {
		t.Fatalf("%v in %v: want 3 OK after some 429s waited out", tr.status, time.Since(start))
	}

	impatient := client.New(b.API.URL(), token, client.WithMaxRateLimitRetries(0))
	var err error
	for range 3 {
		if _, err = impatient.ListCustomers(ctx); err != nil {
			break
		}
	}
	e := apiError(t, "without retries", err, http.StatusTooManyRequests, "RateLimited")
	var rl client.RateLimitedDetails
	if err := e.DecodeDetails(&rl); err != nil || rl.RetryAfterSeconds < 1 {
		t.Fatalf("RateLimited details %s: %+v %v", e.Details, rl, err)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	for err = nil; err == nil; {
		_, err = c.ListCustomers(short)
	}
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("waiting out a 429 with a short context: %v after %v, want the deadline within it", err, time.Since(start))
	}
}

// WaitOperation reports a stall while no worker runs, gives up with the
// context, and follows the operation to its end once a worker starts.
func TestWaitOperationStallAndWorker(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := asToken(b, "p", "global_admin")
	ctx := ctxFor(t)
	ids := seed(t, c, 20, 20)
	acc := must[client.AcceptedOperation](t, "create")(c.CreateOperation(ctx, customerID, client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}}, ""))

	var stalls atomic.Int32
	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	op, err := c.WaitOperation(short, acc.ID, client.WaitOptions{Interval: 20 * time.Millisecond, StallAfter: 200 * time.Millisecond,
		Stalled: func(op client.Operation, idle time.Duration) {
			if op.ID != acc.ID || op.Pending != 20 || idle < 200*time.Millisecond {
				t.Errorf("stalled with %+v after %v", op, idle)
			}
			stalls.Add(1)
		}})
	if !errors.Is(err, context.DeadlineExceeded) || op.ID != acc.ID || op.FinishedAt != nil {
		t.Fatalf("wait without a worker: %+v %v, want the last read and the deadline", op, err)
	}
	if stalls.Load() != 1 {
		t.Fatalf("Stalled called %d times, want once", stalls.Load())
	}

	b.StartWorker(worker.Config{})
	op, err = c.WaitOperation(ctx, acc.ID, client.WaitOptions{Interval: 20 * time.Millisecond})
	if err != nil || op.FinishedAt == nil || op.Succeeded != 20 {
		t.Fatalf("wait with a worker: %+v %v", op, err)
	}
}

// Do is the raw request path: the token and base URL, no interpretation.
func TestDoRaw(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := asToken(b, "p", "global_admin")
	ctx := ctxFor(t)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		header http.Header
		status int
		says   string
	}{
		{"malformed JSON", "POST", "/v1/customers", `{"id":`, nil, 400, "JSON"},
		{"not JSON", "POST", "/v1/customers", `id=x`, http.Header{"Content-Type": {"text/plain"}}, 400, "Content-Type: application/json"},
		{"header replaces the token", "GET", "/v1/customers", "", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, 401, "Bearer"},
		{"no such endpoint", "GET", "/v1/nothing", "", nil, 404, "NotFound"},
		{"ok", "GET", "/v1/customers?page=1", "", nil, 200, `"customers"`},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		resp, err := c.Do(ctx, tc.method, tc.path, body, tc.header)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(buf.String(), tc.says) {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, resp.StatusCode, buf.String(), tc.status, tc.says)
		}
	}
	resp, err := c.Do(ctx, "GET", "/v1/customers/nobody", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	apiError(t, "CheckResponse of a raw answer", client.CheckResponse(resp), http.StatusNotFound, client.CodeNotFound)
}

// UndoOperation takes an operation back, once per idempotency key, and is
// refused with Conflict for an operation that changed nobody.
func TestUndoOperation(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{Workers: 1})
	c := asToken(b, "p", "helpdesk_agent")
	admin := asToken(b, "p", "global_admin")
	ctx := ctxFor(t)
	ids := seed(t, admin, 3, 3)
	wait := func(id string) client.Operation {
		t.Helper()
		return must[client.Operation](t, "wait")(c.WaitOperation(ctx, id, client.WaitOptions{Interval: 20 * time.Millisecond}))
	}
	acc := must[client.AcceptedOperation](t, "assign")(c.CreateOperation(ctx, customerID, client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}}, ""))
	wait(acc.ID)
	opts := client.UndoOptions{AllowPartial: true, IdempotencyKey: "undo-1"}
	undo := must[client.AcceptedOperation](t, "undo")(c.UndoOperation(ctx, acc.ID, opts))
	if again := must[client.AcceptedOperation](t, "undo again")(c.UndoOperation(ctx, acc.ID, opts)); again.ID != undo.ID {
		t.Fatalf("the same key gave undo %s, then %s", undo.ID, again.ID)
	}
	if op := wait(undo.ID); op.Succeeded != 3 || op.Source != licensing.SourceUndo || op.UndoOf == nil || *op.UndoOf != acc.ID || !op.AllowPartial {
		t.Fatalf("undo = %+v", op)
	}
	// Revoking what nobody holds any more changes nobody.
	acc = must[client.AcceptedOperation](t, "revoke")(c.CreateOperation(ctx, customerID, client.OperationRequest{UserIDs: ids, Revoke: []string{"E5"}}, ""))
	wait(acc.ID)
	_, err := c.UndoOperation(ctx, acc.ID, client.UndoOptions{})
	apiError(t, "undo of a change of nobody", err, http.StatusConflict, client.CodeConflict)
}
