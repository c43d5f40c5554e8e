package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// apiEnv is a running licenseops (api, or api and worker) with a token,
// for driving the client commands in-process.
type apiEnv struct {
	t     *testing.T
	url   string
	token string
	c     *apiClient
}

// startAPI starts licenseops in mode ("all" or "api") on private Postgres
// and Redis and returns a global_admin token for it.
func startAPI(t *testing.T, mode app.Mode) *apiEnv {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
	cfg.RedisURL = testenv.Redis(t)
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Worker.Sweep.Interval = 100 * time.Millisecond
	cfg.Worker.ShutdownTimeout = 2 * time.Second
	cfg.Worker.Concurrency = 32
	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL})
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.CreateToken(ctx, "p", "rollout-test", "global_admin")
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	proc, err := app.Open(ctx, cfg, mode, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = proc.Close(ctx)
	})
	return &apiEnv{t: t, url: proc.APIURL(), token: token, c: newAPIClient(proc.APIURL(), token)}
}

func (e *apiEnv) env(name string) string {
	switch name {
	case "LICENSEOPS_URL":
		return e.url
	case "LICENSEOPS_TOKEN":
		return e.token
	}
	return ""
}

// run runs a client command in-process and returns its exit status and output.
func (e *apiEnv) run(cmd clientCommand, args ...string) (int, string, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := cmd(ctx, args, e.env, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func (e *apiEnv) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

type testUser struct {
	ID             string  `json:"id"`
	UPN            string  `json:"user_principal_name"`
	DisplayName    string  `json:"display_name"`
	UsageLocation  *string `json:"usage_location,omitempty"`
	AccountEnabled *bool   `json:"account_enabled,omitempty"`
}

func userID(i int) string  { return fmt.Sprintf("u%05d", i) }
func userUPN(i int) string { return fmt.Sprintf("user%05d@contoso.example", i) }

// seed creates the catalog (E3 and E5 exclude each other, E5 is not sold in
// KP, ADDON needs E5), customer c1 (default location PL) with n users and
// the given seats. Users listed in disabled are disabled; in kp live in KP.
func (e *apiEnv) seed(n int, seats map[string]int, disabled, kp []int) []testUser {
	e.t.Helper()
	ctx := context.Background()
	for sku, p := range map[string]map[string]any{
		"E3":    {"name": "Office 365 E3", "excludes": []string{"E5"}},
		"E5":    {"name": "Office 365 E5", "prohibited_locations": []string{"KP"}},
		"ADDON": {"name": "Add-on", "requires": []string{"E5"}},
	} {
		e.must(e.c.do(ctx, "PUT", "/v1/products/"+sku, p, nil))
	}
	e.must(e.c.do(ctx, "POST", "/v1/customers", map[string]any{"id": "c1", "name": "Contoso", "default_usage_location": "PL"}, nil))
	users := make([]testUser, n)
	for i := range users {
		users[i] = testUser{ID: userID(i), UPN: userUPN(i), DisplayName: fmt.Sprintf("User %05d", i)}
	}
	no, kpLoc := false, "KP"
	for _, i := range disabled {
		users[i].AccountEnabled = &no
	}
	for _, i := range kp {
		users[i].UsageLocation = &kpLoc
	}
	e.must(e.c.do(ctx, "POST", "/v1/customers/c1/users/import", map[string]any{"users": users}, nil))
	for sku, total := range seats {
		e.must(e.c.do(ctx, "PUT", "/v1/customers/c1/subscriptions/"+sku, map[string]int{"total": total}, nil))
	}
	return users
}

func (e *apiEnv) operationCount() int {
	e.t.Helper()
	var p operationPage
	e.must(e.c.call(context.Background(), "GET", "/v1/customers/c1/operations", nil, &p, callOptions{}))
	return p.Total
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCSVFile(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = rec[i]
		}
		out = append(out, m)
	}
	return out
}

func wantCode(t *testing.T, what string, got, want int, stdout, stderr string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", what, got, want, stdout, stderr)
	}
}

func TestRolloutEndToEnd(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(30, map[string]int{"E3": 30, "E5": 25}, nil, nil)

	// Ten users by UPN (with a BOM, quoted fields, mixed case and a
	// duplicate), and two by ID in the same file.
	var sb strings.Builder
	sb.WriteString("\ufeffDisplay Name,UserPrincipalName,ObjectId\n")
	for i := range 10 {
		fmt.Fprintf(&sb, "\"User, %d\",%s,\n", i, strings.ToUpper(userUPN(i)))
	}
	fmt.Fprintf(&sb, "again,%s,\n", userUPN(3))
	fmt.Fprintf(&sb, "by id,,%s\nby id,,%s\n", userID(10), userID(11))
	csvPath := writeFile(t, "users.csv", sb.String())
	report := filepath.Join(t.TempDir(), "report.csv")

	code, stdout, stderr := e.run(rolloutCmd, "--customer", "c1", "--csv", csvPath, "--assign", "E3", "--wait", "--report", report, "--progress-interval", "50ms")
	wantCode(t, "rollout of 12 users", code, exitOK, stdout, stderr)
	for _, want := range []string{"13 rows, 12 users, 1 duplicate", `line 12: "user00003@contoso.example" repeats line 5`, "Queued operation", "completed", "succeeded", "Report written to " + report + " (12 rows)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	rows := readCSVFile(t, report)
	if len(rows) != 12 {
		t.Fatalf("report has %d rows, want 12", len(rows))
	}
	for _, r := range rows {
		if r["status"] != "succeeded" || r["assigned"] != "E3" || r["licenses"] != "E3" || r["error_code"] != "" {
			t.Errorf("report row %v, want E3 assigned", r)
		}
	}

	// 30 users want E5 but 25 seats are left, and E5 excludes E3, so
	// the twelve who hold E3 must give it up in the same save: with
	// --allow-partial, five users get no seat: exit status 3.
	ids := writeFile(t, "ids.txt", "# everyone\n"+func() string {
		var b strings.Builder
		for i := range 30 {
			b.WriteString(userID(i) + "\n")
		}
		return b.String()
	}())
	report2 := filepath.Join(t.TempDir(), "report2.csv")
	code, stdout, stderr = e.run(rolloutCmd, "--customer", "c1", "--users-file", ids, "--assign", "E5", "--revoke", "E3",
		"--allow-partial", "--report", report2)
	wantCode(t, "rollout short of seats", code, exitPartial, stdout, stderr)
	if !strings.Contains(stdout, "CountViolation") || !strings.Contains(stdout, "completed_with_errors") {
		t.Errorf("stdout lacks the CountViolation outcome:\n%s", stdout)
	}
	counts := map[string]int{}
	for _, r := range readCSVFile(t, report2) {
		counts[r["status"]+"/"+r["error_code"]]++
		if r["status"] == "succeeded" && (r["licenses"] != "E5" || strings.Contains(r["licenses"], "E3")) {
			t.Errorf("succeeded row %v, want licenses E5 only", r)
		}
	}
	if counts["succeeded/"] != 25 || counts["failed/CountViolation"] != 5 {
		t.Errorf("report outcomes %v, want 25 succeeded and 5 CountViolation", counts)
	}

	// Without --allow-partial the intake refuses: the API's error with
	// its code, message and per-SKU seats, and exit status 1.
	e.must(e.c.do(context.Background(), "PUT", "/v1/customers/c1/subscriptions/ADDON", map[string]int{"total": 2}, nil))
	before := e.operationCount()
	code, stdout, stderr = e.run(rolloutCmd, "--customer", "c1", "--users-file", ids, "--assign", "ADDON")
	wantCode(t, "rollout refused for seats", code, exitError, stdout, stderr)
	for _, want := range []string{"CountViolation (HTTP 409)", "ADDON", "NEEDED", "30", "2", "buy-more", "Nothing was queued"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if n := e.operationCount(); n != before {
		t.Errorf("%d operations after a refused rollout, want %d", n, before)
	}
}

func TestRolloutBadInputSendsNothing(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(5, map[string]int{"E3": 10}, nil, nil)
	csvPath := writeFile(t, "bad.csv", "id,upn\nu00000,\n,\nhas/slash,\n,nobody@contoso.example\nu00001,\nghost-0,\n")
	// (the ",\n" row is blank and skipped; line 5 names no ID and a UPN
	// nobody has; the user list read to look it up shows that ghost-0 on
	// line 7 does not exist either)
	code, stdout, stderr := e.run(rolloutCmd, "--customer", "c1", "--csv", csvPath, "--assign", "E3", "--wait")
	wantCode(t, "bad CSV", code, exitError, stdout, stderr)
	for _, want := range []string{`line 4: "has/slash": not a valid ID`, `line 5: "nobody@contoso.example": no user with this user principal name`,
		`line 7: "ghost-0": no such user in customer c1`, "Nothing was sent"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if n := e.operationCount(); n != 0 {
		t.Fatalf("%d operations queued from a bad CSV, want none", n)
	}

	// Users that do not exist: the API's UnknownUsers, mapped back to lines.
	ids := writeFile(t, "ids.txt", "u00000\nghost-1\nu00001\nghost-2\n")
	code, stdout, stderr = e.run(rolloutCmd, "--customer", "c1", "--users-file", ids, "--assign", "E3", "--wait")
	wantCode(t, "unknown users", code, exitError, stdout, stderr)
	if !strings.Contains(stderr, `line 2: "ghost-1": no such user`) || !strings.Contains(stderr, `line 4: "ghost-2"`) {
		t.Errorf("stderr does not list the unknown users with their lines:\n%s", stderr)
	}
	if n := e.operationCount(); n != 0 {
		t.Fatalf("%d operations queued with unknown users, want none", n)
	}

	// --skip-bad-rows sends the rest.
	code, stdout, stderr = e.run(rolloutCmd, "--customer", "c1", "--users-file", ids, "--assign", "E3", "--wait", "--skip-bad-rows")
	wantCode(t, "unknown users skipped", code, exitOK, stdout, stderr)
	code, stdout, stderr = e.run(rolloutCmd, "--customer", "c1", "--csv", csvPath, "--assign", "E3", "--wait", "--skip-bad-rows")
	wantCode(t, "bad rows skipped", code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, "for 2 users") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestRolloutUsage(t *testing.T) {
	t.Parallel()
	env := func(name string) string {
		if name == "LICENSEOPS_TOKEN" {
			return "lops_test"
		}
		return ""
	}
	for _, args := range [][]string{
		{"--csv", "x.csv", "--assign", "E5"},                                       // no customer
		{"--customer", "c1", "--assign", "E5"},                                     // no input
		{"--customer", "c1", "--csv", "x.csv", "--all-users", "--assign", "E5"},    // two inputs
		{"--customer", "c1", "--csv", "x.csv"},                                     // nothing to do
		{"--customer", "c1", "--csv", "x.csv", "--assign", "E5", "--revoke", "E5"}, // both
		{"--customer", "c1", "--csv", "x.csv", "--assign", "E5", "--usage-location", "UK"},
		{"--customer", "c1", "--csv", "x.csv", "--assign", "E5", "--bogus"},
		{"--customer", "c1", "--csv", "x.csv", "--assign", "E5", "extra"},
		{"--customer", "c1", "--csv", "x.csv", "--assign", "a/b"},
	} {
		var stdout, stderr bytes.Buffer
		if code := rolloutCmd(context.Background(), args, env, &stdout, &stderr); code != exitUsage {
			t.Errorf("rollout %q: exit status %d, want %d; stderr %s", args, code, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("rollout %q: no usage on stderr: %s", args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	noToken := func(string) string { return "" }
	if code := rolloutCmd(context.Background(), []string{"--customer", "c1", "--csv", "x.csv", "--assign", "E5"}, noToken, &stdout, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "LICENSEOPS_TOKEN") {
		t.Errorf("without a token: exit %d, stderr %s", code, stderr.String())
	}
	stdout.Reset()
	if code := rolloutCmd(context.Background(), []string{"-h"}, env, &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), "Exit status:") || strings.Contains(stdout.String(), "lops_test") {
		t.Errorf("-h: exit %d, want the help with the exit statuses and without the token:\n%s", code, stdout.String())
	}
}

func TestRolloutDryRun(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	// 60 users (more than lookupMax, so the whole list is read): two
	// disabled, one in KP where E5 is not sold; E3 held by the first ten.
	e.seed(60, map[string]int{"E3": 60, "E5": 50}, []int{4, 40}, []int{7})
	var first10 strings.Builder
	first10.WriteString("id\n")
	for i := range 10 {
		first10.WriteString(userID(i) + "\n")
	}
	code, stdout, stderr := e.run(rolloutCmd, "--customer", "c1", "--csv", writeFile(t, "ten.csv", first10.String()), "--assign", "E3", "--wait")
	wantCode(t, "E3 for ten", code, exitPartial, stdout, stderr) // user 4 is disabled
	before := e.operationCount()

	var all strings.Builder
	all.WriteString("UserPrincipalName\n")
	for i := range 60 {
		all.WriteString(userUPN(i) + "\n")
	}
	csvPath := writeFile(t, "all.csv", all.String())
	code, stdout, stderr = e.run(rolloutCmd, "--customer", "c1", "--csv", csvPath, "--assign", "E5", "--revoke", "E3", "--dry-run")
	wantCode(t, "dry run", code, exitPartial, stdout, stderr)
	for _, want := range []string{
		"Dry run for customer c1: 60 selected users",
		"E5   assign  60 would get it",
		"E3   revoke  9 would lose it",
		"E5 is 10 seats short",
		"would be refused with CountViolation",
		"Product rules: 3 of 60 users would fail",
		"UserDisabled", userUPN(4), userUPN(40),
		"ProhibitedInUsageLocationViolation", userUPN(7),
		"Some users would fail",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^  would succeed +57$`).MatchString(stdout) {
		t.Errorf("dry run output lacks the 57 users who pass:\n%s", stdout)
	}
	if n := e.operationCount(); n != before {
		t.Fatalf("the dry run queued an operation")
	}

	// A change that everyone passes (a small selection, read user by user).
	e.must(e.c.do(context.Background(), "PUT", "/v1/customers/c1/subscriptions/E5", map[string]int{"total": 100}, nil))
	code, stdout, stderr = e.run(rolloutCmd, "--customer", "c1", "--users-file", writeFile(t, "two.txt", "u00001\nu00002\n"),
		"--assign", "E5", "--revoke", "E3", "--dry-run")
	wantCode(t, "clean dry run", code, exitOK, stdout, stderr)
	for _, want := range []string{"E5   assign  2 would get it", "E3   revoke  2 would lose it", "all 2 users pass", "Every selected user would succeed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, stdout)
		}
	}
	// Unknown users are bad rows in a dry run too.
	code, stdout, stderr = e.run(rolloutCmd, "--customer", "c1", "--users-file", writeFile(t, "ghost.txt", "u00001\nghost\n"),
		"--assign", "E5", "--dry-run")
	wantCode(t, "dry run with an unknown user", code, exitError, stdout, stderr)
	if !strings.Contains(stderr, `line 2: "ghost": no such user`) {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var progressLine = regexp.MustCompile(`^progress: \d+/\d+ done, \d+ failed, \d+ users/s$`)

// On a pipe or a log, progress is plain lines: no escape sequences, no
// carriage returns.
func TestRolloutPlainProgress(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(3000, map[string]int{"E3": 3000}, nil, nil)
	code, stdout, stderr := e.run(rolloutCmd, "--customer", "c1", "--all-users", "--assign", "E3", "--wait", "--progress-interval", "20ms")
	wantCode(t, "rollout", code, exitOK, stdout, stderr)
	if strings.ContainsAny(stdout+stderr, "\r\x1b") {
		t.Fatalf("output has carriage returns or escape sequences:\n%q", stdout)
	}
	n := 0
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "progress:") {
			n++
			if !progressLine.MatchString(line) {
				t.Errorf("progress line %q does not match %s", line, progressLine)
			}
		}
	}
	if n == 0 || !strings.Contains(stdout, "progress: 3000/3000 done, 0 failed") {
		t.Errorf("want progress lines ending at 3000/3000:\n%s", stdout)
	}
}

// Ctrl-C while waiting detaches: the operation goes on, and the command
// says how to reattach. (An api without a worker: the operation never ends.)
func TestRolloutDetach(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAPI)
	e.seed(10, map[string]int{"E3": 10}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- rolloutCmd(ctx, []string{"--customer", "c1", "--all-users", "--assign", "E3", "--wait"}, e.env, &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "Queued operation") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	code := <-done
	wantCode(t, "detach", code, exitDetached, stdout.String(), stderr.String())
	m := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout.String())
	if m == nil || !strings.Contains(stderr.String(), "licenseops operation watch "+m[1]) {
		t.Fatalf("no reattach hint:\nstdout %s\nstderr %s", stdout.String(), stderr.String())
	}
	var op licensing.Operation
	e.must(e.c.call(context.Background(), "GET", "/v1/operations/"+m[1], nil, &op, callOptions{}))
	if op.FinishedAt != nil || op.Status == "cancelled" {
		t.Fatalf("operation after detaching: %+v, want it still running", op)
	}
}

// countingTransport counts the requests of a client by kind.
type countingTransport struct {
	queries, pages atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/users") {
		if r.URL.Query().Get("q") != "" {
			c.queries.Add(1)
		} else {
			c.pages.Add(1)
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// UPNs resolve through the API: a few by q= lookups, many by reading the
// user list once.
func TestResolveUPNs(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAPI)
	e.seed(1600, nil, nil, nil) // 4 pages of 500
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		upns          []int
		wantQueries   bool
		wantFullPages int64
	}{
		{"few UPNs: one query each", []int{1599}, true, 1},
		{"many UPNs: the whole list", []int{0, 1, 2, 1500, 1599}, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sb strings.Builder
			sb.WriteString("email,id\n")
			for _, i := range tc.upns {
				fmt.Fprintf(&sb, "%s,\n", strings.ToUpper(userUPN(i)))
			}
			fmt.Fprintf(&sb, "nobody@contoso.example,\n%s,\n,%s\n", userUPN(tc.upns[0]), userID(tc.upns[0]))
			in, err := readUserCSV(strings.NewReader(sb.String()), "t.csv")
			if err != nil {
				t.Fatal(err)
			}
			tr := &countingTransport{}
			c := newAPIClient(e.url, e.token)
			c.http.Transport = tr
			dir, err := in.resolve(ctx, c, "c1", nil)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, i := range tc.upns {
				want = append(want, userID(i))
			}
			if got := in.ids(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("ids = %q, want %q", got, want)
			}
			n := len(tc.upns)
			if len(in.bad) != 1 || in.bad[0].line != n+2 || !strings.Contains(in.bad[0].reason, "no user") {
				t.Errorf("bad = %+v, want the unknown UPN on line %d", in.bad, n+2)
			}
			if len(in.duplicates) != 2 {
				t.Errorf("duplicates = %+v, want the repeated UPN and the ID naming a user already named", in.duplicates)
			}
			if (tr.queries.Load() > 0) != tc.wantQueries || tr.pages.Load() != tc.wantFullPages {
				t.Errorf("%d q= requests and %d pages, want queries %v and %d pages", tr.queries.Load(), tr.pages.Load(), tc.wantQueries, tc.wantFullPages)
			}
			if (dir != nil) == tc.wantQueries {
				t.Errorf("directory returned = %v, want it only when the whole list was read", dir != nil)
			}
		})
	}
}

// A 100,000-row CSV is read, validated and sent as one operation in seconds.
func TestRollout100kRows(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 users")
	}
	t.Parallel()
	const n = 100_000
	e := startAPI(t, app.ModeAPI) // intake only: this measures reading and sending
	ctx := context.Background()
	e.must(e.c.do(ctx, "PUT", "/v1/products/E5", map[string]any{"name": "E5"}, nil))
	e.must(e.c.do(ctx, "POST", "/v1/customers", map[string]any{"id": "c1", "name": "C1", "default_usage_location": "PL"}, nil))
	users := make([]testUser, n)
	var sb strings.Builder
	sb.WriteString("ObjectId,UserPrincipalName,DisplayName\n")
	for i := range users {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		users[i] = testUser{ID: id, UPN: userUPN(i)}
		fmt.Fprintf(&sb, "%s,%s,\"User, %d\"\n", id, userUPN(i), i)
	}
	e.must(e.c.do(ctx, "POST", "/v1/customers/c1/users/import", map[string]any{"users": users}, nil))
	e.must(e.c.do(ctx, "PUT", "/v1/customers/c1/subscriptions/E5", map[string]int{"total": n}, nil))
	csvPath := writeFile(t, "100k.csv", sb.String())

	start := time.Now()
	code, stdout, stderr := e.run(rolloutCmd, "--customer", "c1", "--csv", csvPath, "--assign", "E5", "--wait=false")
	took := time.Since(start)
	wantCode(t, "100k rollout", code, exitOK, stdout, stderr)
	if !strings.Contains(stdout, fmt.Sprintf("for %d users", n)) {
		t.Fatalf("stdout:\n%s", stdout)
	}
	t.Logf("100,000-row CSV validated and sent as one operation in %s (race detector: %v):\n%s", took.Round(time.Millisecond), raceEnabled, stdout)
	if limit := 30 * time.Second; took > limit {
		t.Errorf("took %s, want under %s", took, limit)
	}
}
