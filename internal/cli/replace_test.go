package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/app"
)

// rollout --replace FROM:TO swaps E3 for E5 for the users who hold E3 and
// leaves the others alone: its dry run, the rollout, its report and
// operation show say so.
func TestRolloutReplace(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(6, map[string]int{"E3": 6, "E5": 3}, nil, nil)
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--users-file", writeFile(t, "three.txt", userID(0)+"\n"+userID(1)+"\n"+userID(2)+"\n"),
		"--assign", "E3", "--wait")
	wantCode(t, "E3 for three", code, ExitOK, stdout, stderr)

	// Three seats of E5 suffice: only the three holders of E3 need one.
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--all-users", "--replace", "E3:E5", "--dry-run")
	wantCode(t, "dry run", code, ExitOK, stdout, stderr)
	for _, want := range []string{"replace where held E3→E5", "E5   assign  3 would get it", "E3   revoke  3 would lose it", "Every selected user would succeed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, stdout)
		}
	}

	report := filepath.Join(t.TempDir(), "report.csv")
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--all-users", "--replace", "E3:E5", "--report", report)
	wantCode(t, "rollout --replace", code, ExitOK, stdout, stderr)
	rows := readCSVFile(t, report)
	if len(rows) != 6 {
		t.Fatalf("report has %d rows, want 6", len(rows))
	}
	for i, r := range rows {
		want := map[string]string{"status": "succeeded", "assigned": "", "revoked": "", "licenses": ""}
		if i < 3 {
			want["assigned"], want["revoked"], want["licenses"] = "E5", "E3", "E5"
		}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("report row %d: %s = %q, want %q (%v)", i, k, r[k], v, r)
			}
		}
	}
	op := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout)[1]
	code, stdout, stderr = e.run("operation", "show", op)
	wantCode(t, "operation show", code, ExitOK, stdout, stderr)
	if !regexp.MustCompile(`(?m)^replace: +E3→E5$`).MatchString(stdout) || !regexp.MustCompile(`(?m)^assign: +-$`).MatchString(stdout) {
		t.Errorf("operation show lacks replace E3→E5 or shows an assign:\n%s", stdout)
	}
}

// A --replace that is not FROM:TO is a usage error.
func TestRolloutReplaceUsage(t *testing.T) {
	t.Parallel()
	env := func(name string) string {
		if name == "LICENSEOPS_TOKEN" {
			return "lops_test"
		}
		return ""
	}
	for _, v := range []string{"E3", "E3:", ":E5", "E3:a/b", "E3-E5"} {
		var stdout, stderr bytes.Buffer
		args := []string{"rollout", "--customer", "c1", "--all-users", "--replace", v}
		if code := Main(context.Background(), args, &Env{Stdout: &stdout, Stderr: &stderr, Getenv: env}); code != ExitUsage ||
			!strings.Contains(stderr.String(), "is not FROM:TO") {
			t.Errorf("--replace %q: exit status %d, want %d with a message; stderr %s", v, code, ExitUsage, stderr.String())
		}
	}
}

// rollout --copy-from gives the users the reference user's licenses;
// --exact also takes away the others.
func TestRolloutCopyFrom(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(3, map[string]int{"E3": 3, "E5": 3}, nil, nil)
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--users-file", writeFile(t, "ref.txt", userID(0)+"\n"), "--assign", "E3", "--wait")
	wantCode(t, "E3 for the reference", code, ExitOK, stdout, stderr)
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", writeFile(t, "one.txt", userID(1)+"\n"), "--assign", "E5", "--wait")
	wantCode(t, "E5 for user 1", code, ExitOK, stdout, stderr)

	others := writeFile(t, "others.txt", userID(1)+"\n"+userID(2)+"\n")
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", others, "--copy-from", userID(0), "--exact", "--dry-run")
	wantCode(t, "dry run", code, ExitOK, stdout, stderr)
	for _, want := range []string{"copy exactly the licenses of " + userID(0), "E3   assign  2 would get it"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, stdout)
		}
	}
	report := filepath.Join(t.TempDir(), "report.csv")
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--users-file", others, "--copy-from", userID(0), "--exact", "--report", report)
	wantCode(t, "rollout --copy-from --exact", code, ExitOK, stdout, stderr)
	for i, r := range readCSVFile(t, report) {
		if r["licenses"] != "E3" || r["assigned"] != "E3" || r["revoked"] != []string{"E5", ""}[i] {
			t.Errorf("report row %d = %v, want E3 assigned and held, E5 revoked from user 1", i, r)
		}
	}
	op := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout)[1]
	code, stdout, stderr = e.run("operation", "show", op)
	wantCode(t, "operation show", code, ExitOK, stdout, stderr)
	if !regexp.MustCompile(`(?m)^copy from: +` + userID(0) + ` \(exact\)$`).MatchString(stdout) {
		t.Errorf("operation show lacks the copy:\n%s", stdout)
	}
	for _, args := range [][]string{{"--copy-from", userID(0), "--assign", "E5"}, {"--exact", "--assign", "E5"}} {
		code, stdout, stderr = e.run("rollout", append([]string{"--customer", "c1", "--users-file", others}, args...)...)
		wantCode(t, strings.Join(args, " "), code, ExitUsage, stdout, stderr)
	}
}

// rollout --disable-plan SKU:PLAN assigns E3 with the plan off and
// updates the plans of the users who hold E3 already: the dry run, the
// report's plans_changed column and operation show say so. A malformed
// value is a usage error, and it does not go with --copy-from.
func TestRolloutDisablePlan(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAll)
	e.seed(3, map[string]int{"E3": 3}, nil, nil)
	_, err := e.c.PutProduct(context.Background(), "E3", client.ProductRequest{Name: "Office 365 E3", Excludes: []string{"E5"},
		ServicePlans: []client.ServicePlan{{ID: "TEAMS1", Name: "Teams"}, {ID: "SWAY", Name: "Sway"}}})
	e.must(err)
	code, stdout, stderr := e.run("rollout", "--customer", "c1", "--users-file", writeFile(t, "one.txt", userID(0)+"\n"), "--assign", "E3", "--wait")
	wantCode(t, "E3 for user 0", code, ExitOK, stdout, stderr)

	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--disable-plan", "E3:TEAMS1", "--dry-run")
	wantCode(t, "dry run", code, ExitOK, stdout, stderr)
	if !strings.Contains(stdout, "service plans E3: TEAMS1 off") {
		t.Errorf("dry run output lacks the plans:\n%s", stdout)
	}
	report := filepath.Join(t.TempDir(), "report.csv")
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--disable-plan", "E3:TEAMS1", "--report", report)
	wantCode(t, "rollout --disable-plan", code, ExitOK, stdout, stderr)
	for i, r := range readCSVFile(t, report) {
		if r["status"] != "succeeded" || r["plans_changed"] != []string{"E3", "", ""}[i] || r["assigned"] != []string{"", "E3", "E3"}[i] {
			t.Errorf("report row %d = %v, want E3's plans changed for user 0 and E3 assigned to the others", i, r)
		}
	}
	op := regexp.MustCompile(`Queued operation (\S+)`).FindStringSubmatch(stdout)[1]
	code, stdout, stderr = e.run("operation", "show", op)
	wantCode(t, "operation show", code, ExitOK, stdout, stderr)
	if !regexp.MustCompile(`(?m)^service plans: +E3: TEAMS1 off$`).MatchString(stdout) {
		t.Errorf("operation show lacks the plans:\n%s", stdout)
	}
	code, stdout, stderr = e.run("rollout", "--customer", "c1", "--all-users", "--assign", "E3", "--disable-plan", "E3:NOPE")
	if code == ExitOK || !strings.Contains(stdout+stderr, "UnknownServicePlans") {
		t.Errorf("an unknown plan: exit %d, want the API's UnknownServicePlans:\n%s%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"--assign", "E3", "--disable-plan", "E3"}, {"--copy-from", userID(0), "--disable-plan", "E3:SWAY"}} {
		code, stdout, stderr = e.run("rollout", append([]string{"--customer", "c1", "--all-users"}, args...)...)
		wantCode(t, strings.Join(args, " "), code, ExitUsage, stdout, stderr)
	}
}
