package cli

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/app"
)

// rollout --not-before schedules, operation show says so, operation cancel
// stops it (twice is harmless), and a finished operation cannot be
// cancelled: run as a user runs them, read as a user reads them.
func TestScheduleAndCancelCommands(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(12, map[string]int{"E3": 12}, nil, nil)
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)

	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--not-before", at)
	wantCode(t, "rollout --not-before", code, ExitOK, stdout, stderr)
	m := regexp.MustCompile(`Scheduled operation (\S+) for 12 users \(assign E3\) to start at ` + regexp.QuoteMeta(at)).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no scheduled operation in:\n%s", stdout)
	}
	op := m[1]
	if !strings.Contains(stdout, "licenseops operation cancel "+op) {
		t.Errorf("the output does not say how to cancel:\n%s", stdout)
	}
	code, stdout, stderr = e.run("operation", "show", op)
	wantCode(t, "operation show", code, ExitOK, stdout, stderr)
	for _, w := range []string{`(?m)^status: +scheduled$`, `(?m)^not before: +` + regexp.QuoteMeta(at) + `$`, `(?m)^pending: +12$`} {
		if !regexp.MustCompile(w).MatchString(stdout) {
			t.Errorf("operation show does not match %q:\n%s", w, stdout)
		}
	}
	for range 2 {
		code, stdout, stderr = e.run("operation", "cancel", op)
		wantCode(t, "operation cancel", code, ExitOK, stdout, stderr)
		if want := "Operation " + op + " cancelled: 0 succeeded, 0 failed, 12 cancelled of 12."; !strings.Contains(stdout, want) {
			t.Errorf("operation cancel printed:\n%s\nwant %q", stdout, want)
		}
	}

	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--wait")
	wantCode(t, "rollout", code, ExitOK, stdout, stderr)
	done := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout)
	if done == nil {
		t.Fatalf("no operation ID in:\n%s", stdout)
	}
	code, stdout, stderr = e.run("operation", "cancel", done[1])
	wantCode(t, "cancel of a finished operation", code, ExitError, stdout, stderr)
	if !strings.Contains(stderr, "Conflict (HTTP 409)") || !strings.Contains(stderr, "/undo") {
		t.Errorf("stderr of a cancel of a finished operation: %s", stderr)
	}

	for _, args := range [][]string{
		{"--not-before", "tomorrow"},
		{"--not-before", at, "--wait"},
	} {
		code, stdout, stderr = e.run("rollout", append([]string{"--customer", "c1", "--all-users", "--assign", "E3"}, args...)...)
		wantCode(t, "rollout "+strings.Join(args, " "), code, ExitUsage, stdout, stderr)
		if !strings.Contains(stderr, "--not-before") {
			t.Errorf("rollout %v: stderr does not name --not-before: %s", args, stderr)
		}
	}
}
