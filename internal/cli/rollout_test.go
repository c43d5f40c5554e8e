package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/app"
)

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

	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--csv", csvPath, "--assign", "E3", "--wait", "--report", report, "--progress-interval", "50ms")
	wantCode(t, "rollout of 12 users", code, ExitOK, stdout, stderr)
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
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", ids, "--assign", "E5", "--revoke", "E3",
		"--allow-partial", "--report", report2)
	wantCode(t, "rollout short of seats", code, ExitPartial, stdout, stderr)
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
	// its code, message and per-SKU seats, and exit status 1. ADDON needs
	// E5, so only the 25 users who hold E5 now need a seat of it.
	e.setSeats("ADDON", 2)
	before := e.operationCount()
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", ids, "--assign", "ADDON")
	wantCode(t, "rollout refused for seats", code, ExitError, stdout, stderr)
	for _, want := range []string{"CountViolation (HTTP 409)", "ADDON", "NEEDED", "25", "2", "buy-more", "pass --allow-partial", "Nothing was queued"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "allow_partial") {
		t.Errorf("stderr names the API field allow_partial, not the flag:\n%s", stderr)
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
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--csv", csvPath, "--assign", "E3", "--wait")
	wantCode(t, "bad CSV", code, ExitError, stdout, stderr)
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
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", ids, "--assign", "E3", "--wait")
	wantCode(t, "unknown users", code, ExitError, stdout, stderr)
	if !strings.Contains(stderr, `line 2: "ghost-1": no such user`) || !strings.Contains(stderr, `line 4: "ghost-2"`) {
		t.Errorf("stderr does not list the unknown users with their lines:\n%s", stderr)
	}
	if n := e.operationCount(); n != 0 {
		t.Fatalf("%d operations queued with unknown users, want none", n)
	}

	// --skip-bad-rows sends the rest.
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", ids, "--assign", "E3", "--wait", "--skip-bad-rows")
	wantCode(t, "unknown users skipped", code, ExitOK, stdout, stderr)
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--csv", csvPath, "--assign", "E3", "--wait", "--skip-bad-rows")
	wantCode(t, "bad rows skipped", code, ExitOK, stdout, stderr)
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
		if code := Main(context.Background(), append([]string{"rollout"}, args...), &Env{Stdout: &stdout, Stderr: &stderr, Getenv: env}); code != ExitUsage {
			t.Errorf("rollout %q: exit status %d, want %d; stderr %s", args, code, ExitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("rollout %q: no usage on stderr: %s", args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	noToken := func(string) string { return "" }
	if code := Main(context.Background(), []string{"rollout", "--customer", "c1", "--csv", "x.csv", "--assign", "E5"}, &Env{Stdout: &stdout, Stderr: &stderr, Getenv: noToken}); code != ExitUsage ||
		!strings.Contains(stderr.String(), "LICENSEOPS_TOKEN") {
		t.Errorf("without a token: exit %d, stderr %s", code, stderr.String())
	}
	stdout.Reset()
	if code := Main(context.Background(), []string{"rollout", "-h"}, &Env{Stdout: &stdout, Stderr: &stderr, Getenv: env}); code != ExitOK ||
		!strings.Contains(stdout.String(), "Exit status:") || strings.Contains(stdout.String(), "lops_test") {
		t.Errorf("-h: exit %d, want the help with the exit statuses and without the token:\n%s", code, stdout.String())
	}
}

func TestRolloutDryRun(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	// 60 users: two disabled, one in KP where E5 is not sold; E3 held by
	// the first ten (but the disabled one).
	e.seed(60, map[string]int{"E3": 60, "E5": 50}, []int{4, 40}, []int{7})
	var first10 strings.Builder
	first10.WriteString("id\n")
	for i := range 10 {
		first10.WriteString(userID(i) + "\n")
	}
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--csv", writeFile(t, "ten.csv", first10.String()), "--assign", "E3", "--wait")
	wantCode(t, "E3 for ten", code, ExitPartial, stdout, stderr) // user 4 is disabled
	before := e.operationCount()

	var all strings.Builder
	all.WriteString("UserPrincipalName\n")
	for i := range 60 {
		all.WriteString(userUPN(i) + "\n")
	}
	csvPath := writeFile(t, "all.csv", all.String())
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--csv", csvPath, "--assign", "E5", "--revoke", "E3", "--dry-run")
	wantCode(t, "dry run", code, ExitPartial, stdout, stderr)
	for _, want := range []string{
		"Dry run for customer c1: 60 selected users",
		"E5   assign  57 would get it  3 hold it or would fail",
		"E3   revoke  9 would lose it",
		"E5 is 7 seats short",
		"Without --allow-partial the rollout would be refused with CountViolation; the outcomes below are those with --allow-partial.",
		"10 of 60 users would fail.",
		"UserDisabled", userUPN(4), userUPN(40),
		"ProhibitedInUsageLocationViolation", userUPN(7),
		"Some users would fail",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, stdout)
		}
	}
	// The API's prediction, per user: the seats go to the 57 users who
	// pass the rules, in report order, and the last seven are left
	// without one.
	for _, re := range []string{`(?m)^  would succeed +50$`, `(?m)^  CountViolation +7 +` + regexp.QuoteMeta(userUPN(53)+" ("+userID(53)+")"), `(?m)^  UserDisabled +2 +`} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("dry run output does not match %s:\n%s", re, stdout)
		}
	}
	if n := e.operationCount(); n != before {
		t.Fatalf("the dry run queued an operation")
	}

	// A change that everyone passes (a small selection, read user by user).
	e.setSeats("E5", 100)
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", writeFile(t, "two.txt", "u00001\nu00002\n"),
		"--assign", "E5", "--revoke", "E3", "--dry-run")
	wantCode(t, "clean dry run", code, ExitOK, stdout, stderr)
	for _, want := range []string{"E5   assign  2 would get it", "E3   revoke  2 would lose it", "  would succeed  2\n", "Every selected user would succeed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, stdout)
		}
	}
	// Unknown users are bad rows in a dry run too.
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", writeFile(t, "ghost.txt", "u00001\nghost\n"),
		"--assign", "E5", "--dry-run")
	wantCode(t, "dry run with an unknown user", code, ExitError, stdout, stderr)
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
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--wait", "--progress-interval", "20ms")
	wantCode(t, "rollout", code, ExitOK, stdout, stderr)
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
		done <- Main(ctx, []string{"rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--wait"}, e.cliEnv(&stdout, &stderr))
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "Queued operation") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	code := <-done
	wantCode(t, "detach", code, ExitDetached, stdout.String(), stderr.String())
	m := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout.String())
	if m == nil || !strings.Contains(stderr.String(), "licenseops operation watch "+m[1]) {
		t.Fatalf("no reattach hint:\nstdout %s\nstderr %s", stdout.String(), stderr.String())
	}
	op, err := e.c.GetOperation(context.Background(), m[1])
	e.must(err)
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
			c := client.New(e.url, e.token, client.WithHTTPClient(&http.Client{Transport: tr}))
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
	_, err := e.c.PutProduct(ctx, "E5", client.ProductRequest{Name: "E5"})
	e.must(err)
	_, err = e.c.CreateCustomer(ctx, client.CustomerRequest{ID: "c1", Name: "C1", DefaultUsageLocation: new("PL")})
	e.must(err)
	users := make([]client.UserImport, n)
	var sb strings.Builder
	sb.WriteString("ObjectId,UserPrincipalName,DisplayName\n")
	for i := range users {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		users[i] = client.UserImport{ID: id, UserPrincipalName: userUPN(i)}
		fmt.Fprintf(&sb, "%s,%s,\"User, %d\"\n", id, userUPN(i), i)
	}
	_, err = e.c.ImportUsers(ctx, "c1", users)
	e.must(err)
	e.setSeats("E5", n)
	csvPath := writeFile(t, "100k.csv", sb.String())

	start := time.Now()
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--csv", csvPath, "--assign", "E5", "--wait=false")
	took := time.Since(start)
	wantCode(t, "100k rollout", code, ExitOK, stdout, stderr)
	if !strings.Contains(stdout, fmt.Sprintf("for %d users", n)) {
		t.Fatalf("stdout:\n%s", stdout)
	}
	t.Logf("100,000-row CSV validated and sent as one operation in %s (race detector: %v):\n%s", took.Round(time.Millisecond), raceEnabled, stdout)
	if limit := 30 * time.Second; took > limit {
		t.Errorf("took %s, want under %s", took, limit)
	}
}

// rollout --wait against an api without a worker: after StallAfter without
// progress, one warning that no worker has taken a task, with what /readyz
// says; the wait goes on until Ctrl-C.
func TestRolloutWarnsWhenNoWorker(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAPI)
	e.seed(5, map[string]int{"E3": 5}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	env := e.cliEnv(&stdout, &stderr)
	env.PollInterval, env.StallAfter = 20*time.Millisecond, 300*time.Millisecond
	done := make(chan int)
	go func() {
		done <- Main(ctx, []string{"rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--wait", "--progress-interval", "50ms"}, env)
	}()
	const warning = "no worker has taken a task — is `licenseops worker` running?"
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), warning) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond) // two more StallAfter: still one warning
	cancel()
	code := <-done
	wantCode(t, "rollout without a worker", code, ExitDetached, stdout.String(), stderr.String())
	if n := strings.Count(stderr.String(), warning); n != 1 || !strings.Contains(stderr.String(), "The API reports no live worker (/readyz).") {
		t.Fatalf("%d warnings, want 1 with what /readyz says:\n%s", n, stderr.String())
	}
	if !strings.Contains(stdout.String(), "progress: 0/5 done") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

// The customer and the SKUs are checked before the input is read: a typo
// in --customer is one clear error, not every row reported as a bad user;
// a wrong SKU is named alone, with the customer's SKU it matches ignoring
// case and the customer's SKUs. --assign A,B is two SKUs.
func TestRolloutChecksCustomerAndSKUs(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAPI)
	e.seed(3, map[string]int{"E3": 3, "E5": 3, "ADDON": 3}, nil, nil)
	csvPath := writeFile(t, "users.csv", "UserPrincipalName\n"+userUPN(0)+"\n"+userUPN(1)+"\n")

	for _, cmd := range [][]string{
		{"rollout", "--customer", "contoso-typo", "--csv", csvPath, "--assign", "E3"},
		{"summary", "--customer", "contoso-typo", "--csv", csvPath},
	} {
		code, stdout, stderr := e.run(cmd[0], cmd[1:]...)
		wantCode(t, cmd[0]+" with a customer typo", code, ExitError, stdout, stderr)
		if !strings.HasPrefix(stderr, "licenseops "+cmd[0]+`: customer "contoso-typo" not found`) || strings.Contains(stdout+stderr, "bad row") {
			t.Errorf("%s with a customer typo:\nstdout %s\nstderr %s", cmd[0], stdout, stderr)
		}
	}

	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--csv", csvPath, "--assign", "E3", "--assign", "e5", "--revoke", "E7")
	wantCode(t, "rollout with wrong SKUs", code, ExitError, stdout, stderr)
	if want := "licenseops rollout: customer c1 has no subscription for e5 (did you mean E5?), E7; its SKUs are ADDON, E3, E5\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if stdout != "" || e.operationCount() != 0 {
		t.Errorf("the input was read or an operation queued: %s", stdout)
	}

	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--csv", csvPath, "--assign", "E5,ADDON", "--wait=false")
	wantCode(t, "rollout --assign E5,ADDON", code, ExitOK, stdout, stderr)
	if !strings.Contains(stdout, "for 2 users (assign E5, ADDON)") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

// One bad row is "1 bad row", not "1 bad rows".
func TestRolloutOneBadRow(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAPI)
	e.seed(2, map[string]int{"E3": 2}, nil, nil)
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--users-file", writeFile(t, "ids.txt", "u00000\nbad/id\n"), "--assign", "E3")
	wantCode(t, "one bad row", code, ExitError, stdout, stderr)
	if !strings.Contains(stdout, "2 rows, 1 user, 1 bad row in") || !strings.Contains(stderr, "1 bad row:\n") ||
		!strings.Contains(stderr, "licenseops rollout: 1 bad row: correct them") || !strings.Contains(stderr, "Nothing was sent.") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}
