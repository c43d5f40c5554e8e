package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return testenv.RunBinary(t, ".", env, args...)
}

func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// main as a process: the exit status of the command, and its error printed
// with the command's usage, also for the usage errors main used to swallow.
// (The commands themselves are tested in-process, in internal/cli.)
func TestMainExitStatusAndMessage(t *testing.T) {
	t.Parallel()
	noAPI := []string{"LICENSEOPS_TOKEN=", "LICENSEOPS_URL="}
	for _, c := range []struct {
		args  []string
		env   []string
		code  int
		wants []string
	}{
		{[]string{"rollout", "--customer", "c1", "--all-users", "--assign", "E5"}, noAPI, 2,
			[]string{"licenseops rollout: no API token", "LICENSEOPS_TOKEN", "Usage:\n  licenseops rollout --customer C"}},
		{[]string{"token", "revoke", "abc"}, nil, 2,
			[]string{`licenseops token revoke: token ID "abc" is not a number`, "licenseops token revoke ID"}},
		{[]string{"frobnicate"}, nil, 2, []string{`licenseops: unknown command "frobnicate"`, "Commands:"}},
		{[]string{"help"}, nil, 0, nil},
	} {
		stdout, stderr, err := runBinary(t, c.env, c.args...)
		if got := exitCodeOf(err); got != c.code {
			t.Errorf("licenseops %q: exit status %d (%v), want %d\nstderr: %s", c.args, got, err, c.code, stderr)
		}
		for _, w := range c.wants {
			if !strings.Contains(stderr, w) {
				t.Errorf("licenseops %q: stderr lacks %q:\n%s", c.args, w, stderr)
			}
		}
		if c.code == 0 && (!strings.Contains(stdout, "Commands:") || stderr != "") {
			t.Errorf("licenseops %q: stdout %q, stderr %q", c.args, stdout, stderr)
		}
	}
}
