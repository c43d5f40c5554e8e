package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

// The client's code constants are the API's codes.
func TestCodes(t *testing.T) {
	for got, want := range map[licensing.Code]licensing.Code{
		client.CodeInvalidRequest: licensing.CodeInvalidRequest, client.CodeUnauthenticated: licensing.CodeUnauthenticated,
		client.CodeForbidden: licensing.CodeForbidden, client.CodeNotFound: licensing.CodeNotFound,
		client.CodeConflict: licensing.CodeConflict, client.CodeIdempotencyKeyInUse: licensing.CodeIdempotencyKeyInUse,
		client.CodeSeatsInUse: licensing.CodeSeatsInUse, client.CodeTooLarge: licensing.CodeTooLarge,
		client.CodeIdempotencyKeyReused: licensing.CodeIdempotencyKeyReused, client.CodeUnknownUsers: licensing.CodeUnknownUsers,
		client.CodeUnknownSkus: licensing.CodeUnknownSkus, client.CodeRateLimited: licensing.CodeRateLimited,
		client.CodeNotMigrated: licensing.CodeNotMigrated, client.CodeUnavailable: licensing.CodeUnavailable,
		client.CodeInternal: licensing.CodeInternal, client.CodeCountViolation: licensing.CodeCountViolation,
		client.CodeDependencyViolation: licensing.CodeDependencyViolation, client.CodeMutuallyExclusiveViolation: licensing.CodeMutuallyExclusiveViolation,
		client.CodeProhibitedInUsageLocationViolation: licensing.CodeProhibitedInUsageLocationViolation,
		client.CodeUsageLocationMissing:               licensing.CodeUsageLocationMissing, client.CodeUserDisabled: licensing.CodeUserDisabled,
		client.CodeProviderThrottled: licensing.CodeProviderThrottled, client.CodeProviderError: licensing.CodeProviderError,
		client.CodeChangedSince: licensing.CodeChangedSince,
	} {
		if got != want {
			t.Errorf("client code %q, licensing code %q", got, want)
		}
	}
}

// Tests of the client's side of the wire against stand-in servers: what an
// api cannot be made to do on demand.

func serve(t *testing.T, h http.HandlerFunc) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return client.New(srv.URL+"/", "tok", client.WithUserAgent("wire-test"))
}

// A request carries the token, the User-Agent, the escaped path and the
// JSON body; UpdateCustomer sends only the fields it sets.
func TestRequestShape(t *testing.T) {
	t.Parallel()
	var got struct {
		method, path, auth, ua, ct, accept, body string
	}
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.path, got.body = r.Method, r.URL.EscapedPath(), string(b)
		got.auth, got.ua, got.ct, got.accept = r.Header.Get("Authorization"), r.Header.Get("User-Agent"), r.Header.Get("Content-Type"), r.Header.Get("Accept")
		fmt.Fprint(w, `{"id":"a b","name":"New name","default_usage_location":null,"directory":{"kind":"local"},"created_at":"2026-01-01T00:00:00Z"}`)
	})
	cu, err := c.UpdateCustomer(ctxFor(t), "a b/c?", client.CustomerUpdate{Name: new("New name")})
	if err != nil || cu.Name != "New name" || cu.ID != "a b" {
		t.Fatalf("update: %+v %v", cu, err)
	}
	if got.method != "PATCH" || got.path != "/v1/customers/a%20b%2Fc%3F" || got.auth != "Bearer tok" || got.ua != "wire-test" ||
		got.ct != "application/json" || got.accept != "application/json" || got.body != `{"name":"New name"}` {
		t.Fatalf("request = %+v", got)
	}
}

// An answer without the API's error body (a proxy's page) says so.
func TestNotLicenseopsAnswer(t *testing.T) {
	t.Parallel()
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><body>Bad gateway</body></html>")
	})
	_, err := c.ListCustomers(ctxFor(t))
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusBadGateway || e.Code != "" || client.ErrorCode(err) != "" {
		t.Fatalf("err = %#v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "HTTP 502 Bad Gateway") || !strings.Contains(msg, "no licenseops error body") ||
		!strings.Contains(msg, "text/html") || !strings.Contains(msg, c.BaseURL()) {
		t.Fatalf("Error() = %q", msg)
	}
	// CheckResponse reads the answers of Do the same way.
	resp, err := c.Do(ctxFor(t), "GET", "/v1/customers", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.CheckResponse(resp); client.ErrorCode(err) != "" || !strings.Contains(err.Error(), "HTTP 502 Bad Gateway") ||
		!strings.Contains(err.Error(), strings.TrimSuffix(c.BaseURL(), "/")) {
		t.Fatalf("CheckResponse = %v", err)
	}
	// A 2xx answer that is not the API's JSON is a DecodeError.
	c = serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>") })
	_, err = c.GetOperation(ctxFor(t), "x")
	var de *client.DecodeError
	if !errors.As(err, &de) || de.Path != "/v1/operations/x" {
		t.Fatalf("err = %#v", err)
	}
}

// A Retry-After given as a date is waited out too.
func TestRetryAfterDate(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", time.Now().Add(1500*time.Millisecond).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"code":"RateLimited","message":"slow down","details":{"retry_after_seconds":1}}}`)
			return
		}
		fmt.Fprint(w, `{"products":[]}`)
	})
	start := time.Now()
	if _, err := c.ListProducts(ctxFor(t)); err != nil || calls.Load() != 2 || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("%v after %d calls in %v", err, calls.Load(), time.Since(start))
	}
}

// writeReport writes a JSON report of n rows, every 7th failed, calling
// between after the first rows.
func writeReport(w http.ResponseWriter, n int, between func()) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"operation":{"id":"op","total":`, n, `,"status":"completed_with_errors"},"extra":[1,{"a":2}],"results":[`)
	for i := range n {
		if i > 0 {
			fmt.Fprint(w, ",")
		}
		if i%7 == 0 {
			fmt.Fprintf(w, `{"user_id":"u%d","status":"failed","assigned":[],"revoked":[],"licenses":[],"usage_location":null,"error":{"code":"CountViolation","message":"no seat"}}`, i)
		} else {
			fmt.Fprintf(w, `{"user_id":"u%d","status":"succeeded","assigned":["E5"],"revoked":[],"licenses":["E5"],"usage_location":"PL","error":null}`, i)
		}
		if i == 100 && between != nil {
			w.(http.Flusher).Flush()
			between()
		}
	}
	fmt.Fprint(w, "]}\n")
}

// The report is decoded as it arrives: the first rows reach the callback
// while the server has not written the rest, so a report of any size
// never sits in memory at once.
func TestReportStreams(t *testing.T) {
	t.Parallel()
	const n = 20_000
	firstSeen := make(chan struct{})
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") != "json" {
			t.Errorf("report query %q", r.URL.RawQuery)
		}
		writeReport(w, n, func() {
			select {
			case <-firstSeen:
			case <-time.After(10 * time.Second):
				t.Error("no row reached the callback before the whole report was written")
			}
		})
	})
	rows, failed := 0, 0
	op, err := c.Report(ctxFor(t), "op", func(r client.ReportRow) error {
		if rows == 0 {
			close(firstSeen)
		}
		if r.UserID != fmt.Sprintf("u%d", rows) {
			return fmt.Errorf("row %d is %+v", rows, r)
		}
		if r.Error != nil {
			if r.Status != "failed" || r.Error.Code != "CountViolation" || r.Error.Message != "no seat" {
				return fmt.Errorf("row %+v error %+v", r, r.Error)
			}
			failed++
		}
		rows++
		return nil
	})
	if err != nil || op.ID != "op" || op.Total != n || rows != n || failed != (n+6)/7 {
		t.Fatalf("report: %+v, %d rows, %d failed, %v", op, rows, failed, err)
	}
}

// A report cut short is an error, not a short success.
func TestReportTruncated(t *testing.T) {
	t.Parallel()
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"operation":{"id":"op"},"results":[{"user_id":"u1","status":"succeeded"},{"user_id":"u2","sta`)
	})
	rows := 0
	_, err := c.Report(ctxFor(t), "op", func(client.ReportRow) error { rows++; return nil })
	var de *client.DecodeError
	if !errors.As(err, &de) || !errors.Is(err, io.ErrUnexpectedEOF) || rows != 1 {
		t.Fatalf("truncated report: %v after %d rows", err, rows)
	}
}

// A ReportRow writes its error as the API does and reads it back.
func TestReportRowJSON(t *testing.T) {
	t.Parallel()
	in := `{"user_id":"u1","display_name":"U","user_principal_name":"u@x","status":"failed","assigned":[],"revoked":[],"licenses":["E3"],"usage_location":"PL","error":{"code":"DependencyViolation","message":"needs E5"}}`
	var r client.ReportRow
	if err := json.Unmarshal([]byte(in), &r); err != nil || r.Error == nil || r.Error.Code != "DependencyViolation" || *r.UsageLocation != "PL" {
		t.Fatalf("decode: %+v %v", r, err)
	}
	out, err := json.Marshal(r)
	if err != nil || string(out) != in {
		t.Fatalf("encode: %s %v\nwant %s", out, err, in)
	}
	if err := json.Unmarshal([]byte(`{"user_id":"u2","status":"succeeded","error":null}`), &r); err != nil || r.Error != nil || r.UserID != "u2" || r.UsageLocation != nil {
		t.Fatalf("decode into a used row: %+v %v", r, err)
	}
}

// WaitOperation keeps waiting through failed reads when OnError says so,
// and stops at the first without it.
func TestWaitOperationOnError(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			fmt.Fprint(w, `{"id":"op","total":2,"pending":2}`)
		case 2, 3:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"Unavailable","message":"the database is away"}}`)
		default:
			fmt.Fprint(w, `{"id":"op","total":2,"succeeded":2,"finished_at":"2026-01-01T00:00:00Z"}`)
		}
	})
	var failures []string
	var progress int
	op, err := c.WaitOperation(ctxFor(t), "op", client.WaitOptions{Interval: time.Millisecond,
		Progress: func(client.Operation) { progress++ },
		OnError:  func(err error) error { failures = append(failures, client.ErrorCode(err)); return nil }})
	if err != nil || op.FinishedAt == nil || op.Succeeded != 2 || len(failures) != 2 || failures[0] != "Unavailable" || progress != 2 {
		t.Fatalf("wait: %+v %v, failures %v, %d progress calls", op, err, failures, progress)
	}

	calls.Store(0)
	op, err = c.WaitOperation(ctxFor(t), "op", client.WaitOptions{Interval: time.Millisecond})
	if client.ErrorCode(err) != "Unavailable" || op.ID != "op" || op.Pending != 2 {
		t.Fatalf("wait without OnError: %+v %v, want the last read and the failure", op, err)
	}
}
