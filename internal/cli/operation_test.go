package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/app"
)

// The read side: operation list/show/watch/report, users list and summary,
// as tab-aligned tables, against a running api and worker.
func TestReadCommands(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(12, map[string]int{"E3": 12, "E5": 12}, []int{5}, nil)
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--wait")
	wantCode(t, "rollout", code, ExitPartial, stdout, stderr)
	m := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no operation ID in:\n%s", stdout)
	}
	op := m[1]

	check := func(what string, cmd string, wantExit int, wants []string, args ...string) string {
		t.Helper()
		code, stdout, stderr := e.run(cmd, args...)
		wantCode(t, what, code, wantExit, stdout, stderr)
		for _, w := range wants {
			if !regexp.MustCompile(w).MatchString(stdout) {
				t.Errorf("%s: output does not match %q:\n%s", what, w, stdout)
			}
		}
		return stdout
	}
	check("operation list", "operation", ExitOK, []string{
		`(?m)^ID +STATUS +TOTAL +SUCCEEDED +FAILED +PENDING +CHANGE +SOURCE +CREATED BY +CREATED$`,
		`(?m)^` + op + ` +completed_with_errors +12 +11 +1 +0 +\+E3 +api +stack `,
		`page 1 of 1 \(1 operation\)`,
	}, "list", "--customer", "c1")
	check("operation show", "operation", ExitOK, []string{
		`(?m)^id: +` + op + `$`, `(?m)^status: +completed_with_errors$`, `(?m)^total: +12$`, `(?m)^assign: +E3$`, `(?m)^allow partial: +false$`,
	}, "show", op)
	check("operation report", "operation", ExitOK, []string{
		`(?m)^USER ID +USER PRINCIPAL NAME +STATUS +ASSIGNED +REVOKED +LICENSES NOW +ERROR$`,
		`(?m)^u00000 +user00000@contoso.example +succeeded +E3 +- +E3 +-$`,
		`(?m)^u00005 +user00005@contoso.example +failed +- +- +- +UserDisabled$`,
		`(?m)^  succeeded +11$`,
		`(?m)^  UserDisabled +1 +user00005@contoso.example \(u00005\)$`,
	}, "report", op)
	csvPath := filepath.Join(t.TempDir(), "r.csv")
	check("operation report --csv", "operation", ExitOK, []string{`Report written to .*r.csv \(12 rows\)`}, "report", op, "--csv", csvPath)
	if rows := readCSVFile(t, csvPath); len(rows) != 12 || rows[0]["user_id"] != "u00000" {
		t.Errorf("report CSV rows: %v", rows)
	}
	out := check("operation report --csv -", "operation", ExitOK, nil, "report", op, "--csv", "-")
	if !strings.HasPrefix(out, "user_id,display_name,user_principal_name,status,") || strings.Count(out, "\n") != 13 {
		t.Errorf("CSV on stdout:\n%s", out)
	}
	// watch of a finished operation exits like rollout --wait: 3, some failed.
	check("operation watch", "operation", ExitPartial, []string{`progress: 12/12 done, 1 failed`, `Outcomes \(12 users\)`}, "watch", op)

	check("users list", "users", ExitOK, []string{
		`(?m)^ID +USER PRINCIPAL NAME +DISPLAY NAME +LOCATION +ENABLED +LICENSES$`,
		`(?m)^u00006 +user00006@contoso.example +User 00006 +- +yes +E3$`,
		`(?m)^u00005 +user00005@contoso.example +User 00005 +- +no +-$`,
		`page 2 of 3 \(12 users\); next: --page 3`,
	}, "list", "--customer", "c1", "--page-size", "5", "--page", "2")
	out = check("users list --q", "users", ExitOK, []string{`page 1 of 1 \(2 users\)`}, "list", "--customer", "c1", "--q", "USER0001")
	if strings.Contains(out, "u00009") || !strings.Contains(out, "u00011") {
		t.Errorf("q=USER0001 listed:\n%s", out)
	}

	check("summary of IDs", "summary", ExitOK, []string{
		`3 users selected in customer c1`,
		`(?m)^SKU +NAME +STATE +HOLDERS +TOTAL +AVAILABLE +BUY MORE$`,
		`(?m)^E3 +Office 365 E3 +some +2/3 +12 +\d+ +`,
		`(?m)^E5 +Office 365 E5 +none +0/3 +12 +12 +-$`,
	}, "--customer", "c1", "u00000", "u00001", "u00005")
	check("summary of a CSV", "summary", ExitOK, []string{`(?m)^E3 +Office 365 E3 +all +2/2 `},
		"--customer", "c1", "--csv", writeFile(t, "s.csv", "UserPrincipalName\nuser00000@contoso.example\nUSER00001@contoso.example\n"))

	// Errors: the API's code and message, exit status 1.
	code, stdout, stderr = e.run("operation", "show", "00000000-0000-4000-8000-000000000000")
	wantCode(t, "show of an unknown operation", code, ExitError, stdout, stderr)
	if !strings.Contains(stderr, "NotFound (HTTP 404)") {
		t.Errorf("stderr: %s", stderr)
	}
	code, stdout, stderr = e.run("users", "list", "--customer", "c1", "--page-size", "501")
	wantCode(t, "users list with a bad page size", code, ExitError, stdout, stderr)
	if !strings.Contains(stderr, "InvalidRequest (HTTP 400): page_size") {
		t.Errorf("stderr: %s", stderr)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"show"}, {"list"}, {"show", "a", "b"}} {
		if code, _, _ := e.run("operation", args...); code != ExitUsage {
			t.Errorf("operation %q: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

// On a terminal the progress is a bar; it reaches the total and ends the line.
func TestWatchDrawsBarOnTerminal(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(200, map[string]int{"E3": 200}, nil, nil)
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--wait=false")
	wantCode(t, "rollout", code, ExitOK, stdout, stderr)
	op := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout)[1]
	var buf, errBuf bytes.Buffer
	env := e.cliEnv(&buf, &errBuf)
	env.IsTerminal, env.PollInterval = func(io.Writer) bool { return true }, 20*time.Millisecond
	code = Main(context.Background(), []string{"operation", "watch", op}, env)
	out, _, _ := strings.Cut(buf.String(), "Operation "+op)
	if code != ExitOK || !strings.Contains(out, "200/200") || !strings.Contains(out, "operation (0 failed)") ||
		!strings.HasSuffix(out, "\n") || !strings.Contains(out, "\r") {
		t.Fatalf("exit status %d, bar output %q, stderr %q", code, buf.String(), errBuf.String())
	}
}

// A burst beyond the token's rate limit is waited out, not failed.
func TestCallWaitsOutRateLimit(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAPI)
	e.seed(1, nil, nil, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 160)
	for range 160 { // the default limit: bursts of 100, then 50/s
		wg.Go(func() {
			_, err := e.c.ListUsers(context.Background(), "c1", client.UserListOptions{Page: 1, PageSize: 1})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("x"), ExitError},
		{usagef("x"), ExitUsage},
		{fmt.Errorf("wrapped: %w", &PartialError{Msg: "x"}), ExitPartial},
		{withHint(&DetachedError{OperationID: "op"}, "hint"), ExitDetached},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// operation undo queues the undo and, with --wait, follows it and exits
// like rollout --wait; users changed since fail ChangedSince.
func TestOperationUndo(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(3, map[string]int{"E3": 3, "E5": 3}, nil, nil)
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--wait")
	wantCode(t, "rollout", code, ExitOK, stdout, stderr)
	op := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout)[1]

	code, stdout, stderr = e.run("operation", "undo", op, "--wait")
	wantCode(t, "undo", code, ExitOK, stdout, stderr)
	m := regexp.MustCompile(`Queued undo (\S+) of operation ` + op + ` for 3 users`).FindStringSubmatch(stdout)
	if m == nil || !strings.Contains(stdout, "3 succeeded, 0 failed of 3") {
		t.Fatalf("undo output:\n%s", stdout)
	}
	code, stdout, stderr = e.run("operation", "show", m[1])
	wantCode(t, "show undo", code, ExitOK, stdout, stderr)
	if !regexp.MustCompile(`(?m)^source: +undo$`).MatchString(stdout) || !regexp.MustCompile(`(?m)^undo of: +`+op+`$`).MatchString(stdout) {
		t.Errorf("show of the undo:\n%s", stdout)
	}
	// The users changed since (by the undo): each is left alone.
	code, stdout, stderr = e.run("operation", "undo", op, "--wait")
	wantCode(t, "undo again", code, ExitPartial, stdout, stderr)
	if !regexp.MustCompile(`(?m)^  ChangedSince +3 `).MatchString(stdout) {
		t.Errorf("second undo output:\n%s", stdout)
	}
	for _, args := range [][]string{{"undo"}, {"undo", "a", "b"}} {
		if code, _, _ := e.run("operation", args...); code != ExitUsage {
			t.Errorf("operation %q: exit %d, want %d", args, code, ExitUsage)
		}
	}
}
