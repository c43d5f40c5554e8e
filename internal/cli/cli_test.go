package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

// runMain runs args in-process as main does, with no environment.
func runMain(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
	return code, stdout.String(), stderr.String()
}

// Usage errors exit 2 and are printed, always, with the command's usage:
// main used to exit 2 in silence on these.
func TestUsageErrorsArePrinted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create", "--role", "admin"}, "licenseops token create: --partner is required"},
		{[]string{"token", "create"}, "licenseops token create: --partner is required"},
		{[]string{"token", "create", "--partner", "p", "--role", "emperor"}, "licenseops token create: --role must be one of"},
		{[]string{"token", "revoke", "abc"}, `licenseops token revoke: token ID "abc" is not a number`},
		{[]string{"token", "revoke"}, "licenseops token revoke: give one token ID"},
		{[]string{"token"}, "licenseops token: give a subcommand: create, list or revoke"},
		{[]string{"token", "frob"}, `licenseops token: unknown subcommand "frob"`},
		{[]string{"check", "--customer", "x"}, "licenseops check: --customer and --partner go together"},
		{[]string{"api", "extra"}, `licenseops api: unexpected argument "extra"`},
		{[]string{"migrate", "--bogus"}, "licenseops migrate: flag provided but not defined: -bogus"},
		{[]string{"operation"}, "licenseops operation: give a subcommand: list, show, watch, cancel, report or undo"},
		{[]string{"users"}, "licenseops users: give a subcommand: list"},
		{[]string{"rollout", "--customer", "c1", "--all-users", "--assign", "a/b"}, `licenseops rollout: invalid value "a/b" for flag -assign`},
	} {
		code, stdout, stderr := runMain(c.args...)
		if code != ExitUsage || !strings.HasPrefix(stderr, c.want) || !strings.Contains(stderr, "Usage:\n  licenseops "+c.args[0]) {
			t.Errorf("licenseops %q: exit status %d, stderr:\n%s\nwant 2 and a message starting %q, then the usage", c.args, code, stderr, c.want)
		}
		if stdout != "" {
			t.Errorf("licenseops %q: stdout %q, want nothing", c.args, stdout)
		}
	}
	code, _, stderr := runMain("frobnicate")
	if code != ExitUsage || !strings.HasPrefix(stderr, `licenseops: unknown command "frobnicate"`) || !strings.Contains(stderr, "Commands:") {
		t.Errorf("unknown command: exit status %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = runMain()
	if code != ExitUsage || !strings.Contains(stderr, "Commands:") {
		t.Errorf("no command: exit status %d, stderr:\n%s", code, stderr)
	}
}

// The top-level usage is generated from the command table: it lists every
// command, and every command has its help (-h and help CMD, exit 0).
func TestUsageListsEveryCommand(t *testing.T) {
	t.Parallel()
	code, usage, _ := runMain("help")
	if code != ExitOK {
		t.Fatalf("help: exit status %d", code)
	}
	for _, c := range Commands() {
		if c.Group == GroupHelp {
			continue
		}
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(c.Name) + ` +` + regexp.QuoteMeta(c.Summary) + `$`).MatchString(usage) {
			t.Errorf("the usage does not list %q with its summary:\n%s", c.Name, usage)
		}
		args := append(strings.Fields(c.Name), "-h")
		code, help, stderr := runMain(args...)
		if code != ExitOK || !strings.HasPrefix(help, "Usage:\n  "+c.synopsis()+"\n") || stderr != "" {
			t.Errorf("licenseops %q: exit status %d, stdout:\n%s\nstderr: %s", args, code, help, stderr)
		}
		code, help2, _ := runMain(append([]string{"help"}, strings.Fields(c.Name)...)...)
		if code != ExitOK || help2 != help {
			t.Errorf("licenseops help %s: exit status %d, output differs from -h:\n%s", c.Name, code, help2)
		}
	}
	for _, args := range [][]string{{"operation", "-h"}, {"help", "operation"}, {"-h"}, {"--help"}} {
		if code, out, stderr := runMain(args...); code != ExitOK || out == "" || stderr != "" {
			t.Errorf("licenseops %q: exit status %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
}

func TestPlural(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		got, want string
	}{
		{plural(0, "row"), "0 rows"},
		{plural(1, "row"), "1 row"},
		{plural(2, "bad row"), "2 bad rows"},
		{plural(1, "seat"), "1 seat"},
		{plural(1, "holds it", "hold it"), "1 holds it"},
		{plural(3, "holds it", "hold it"), "3 hold it"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	in, err := readUsersFile(strings.NewReader("a\nbad/id\na\n"), "ids.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	in.printProblems(&out, 20)
	if !strings.Contains(out.String(), "1 duplicate row (each user counts once):") || !strings.Contains(out.String(), "1 bad row:") {
		t.Errorf("problems:\n%s", out.String())
	}
	var stdout, stderr strings.Builder
	err = checkProblems(&stdout, &stderr, in, false)
	if err == nil || err.Error() != "1 bad row: correct them, or pass --skip-bad-rows to go on without them" {
		t.Errorf("checkProblems: %v", err)
	}
	if err := checkProblems(&stdout, &stderr, in, true); err != nil || !strings.Contains(stderr.String(), "Skipping the 1 bad row (--skip-bad-rows).") {
		t.Errorf("checkProblems with skip: %v, stderr %s", err, stderr.String())
	}
}

// A row without example users (would succeed, succeeded) keeps the columns
// of the rows after it aligned, and no line ends in spaces.
func TestOutcomesTableAligned(t *testing.T) {
	t.Parallel()
	o := newOutcomes()
	for range 5 {
		o.add("u1", "", "would succeed", "", "")
	}
	o.add("u2", "a@x", "failed", "UserDisabled", "the account is disabled")
	o.add("u3", "b@x", "failed", "UsageLocationMissing", "no usage location")
	var b strings.Builder
	o.print(&b, "Outcomes by rule")
	lines := strings.Split(b.String(), "\n")
	header := lines[1]
	col := strings.Index(header, "FIRST USERS")
	for _, l := range lines[2:5] {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %q ends in spaces", l)
		}
		if i := strings.Index(l, "@x"); i >= 0 && strings.LastIndex(l[:i], " ")+1 != col {
			t.Errorf("first users of %q start at %d, the header's column at %d:\n%s", l, strings.LastIndex(l[:i], " ")+1, col, b.String())
		}
	}
	if !regexp.MustCompile(`(?m)^  would succeed +5$`).MatchString(b.String()) {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestSKUList(t *testing.T) {
	t.Parallel()
	var l skuList
	if err := l.Set("E3, E5"); err != nil {
		t.Fatal(err)
	}
	if err := l.Set("E5"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(l, "|") != "E3|E5" {
		t.Errorf("--assign 'E3, E5' --assign E5 = %q, want E3 and E5", l)
	}
	if err := l.Set("E3,a/b"); err == nil || err.Error() != `"a/b" is not a valid SKU ID` {
		t.Errorf("Set(E3,a/b) = %v, want an error naming a/b only", err)
	}
	if err := l.Set("E3,"); err == nil {
		t.Errorf("Set(E3,) accepted an empty SKU")
	}
}

// API errors print their message and the useful details; the rollout
// names its flags where the API names its fields.
func TestPrintAPIErrors(t *testing.T) {
	t.Parallel()
	details := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	for _, c := range []struct {
		err   error
		wants []string
	}{
		{&client.Error{StatusCode: 422, Code: "UnknownSkus", Message: `the customer has no subscription for "e5" (did you mean E5?); its SKUs are E3, E5`,
			Details: details(map[string]any{"sku_ids": []string{"e5"}})},
			[]string{`licenseops rollout: UnknownSkus (HTTP 422): the customer has no subscription for "e5" (did you mean E5?); its SKUs are E3, E5`, "  unknown SKUs: e5"}},
		{&client.Error{StatusCode: 422, Code: "UnknownUsers", Message: "2 users do not exist",
			Details: details(map[string]any{"user_ids": []string{"a", "b"}, "count": 3})},
			[]string{"  unknown users: a, b", "  … and 1 more"}},
		{flagWording(&client.Error{StatusCode: 409, Code: "CountViolation",
			Message: "not enough seats for E5 (needs 3, 1 available); buy more seats, select fewer users, or send allow_partial: true to assign the seats that are left",
			Details: details(map[string]any{"skus": []map[string]any{{"sku_id": "E5", "needed": 3, "available": 1, "buy_more_url": "https://buy"}}})}),
			[]string{"or pass --allow-partial to assign", "E5   3       1          2      https://buy"}},
		{withHint(&licensing.Error{Code: licensing.CodeNotMigrated, Message: "run `licenseops migrate` first"}, "hint"),
			[]string{"licenseops rollout: run `licenseops migrate` first\nhint\n"}},
		{&DetachedError{OperationID: "op1"}, []string{"licenseops rollout: detached: operation op1 goes on", "  licenseops operation watch op1"}},
	} {
		var b strings.Builder
		printError(&b, "licenseops rollout", c.err)
		for _, w := range c.wants {
			if !strings.Contains(b.String(), w) {
				t.Errorf("printError(%v) lacks %q:\n%s", c.err, w, b.String())
			}
		}
		if strings.Contains(b.String(), "allow_partial") {
			t.Errorf("printError names the API field allow_partial:\n%s", b.String())
		}
	}
	if _, ok := apiError(flagWording(errors.New("x"))); ok {
		t.Errorf("flagWording made an API error")
	}
}
