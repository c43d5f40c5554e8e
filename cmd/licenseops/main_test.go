package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// bin is the licenseops binary the tests that need a real process share.
var bin struct {
	sync.Mutex
	dir, path string
	users     int // tests using it now
}

// binary builds the licenseops binary for t, once for the tests that use it
// at the same time, into a temporary folder that is removed when the last
// of them ends: each run of the tests leaves nothing behind.
func binary(t *testing.T) string {
	t.Helper()
	bin.Lock()
	defer bin.Unlock()
	if bin.path == "" {
		dir, err := os.MkdirTemp("", "licenseops-bin-")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "licenseops")
		if out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput(); err != nil {
			_ = os.RemoveAll(dir)
			t.Fatalf("go build: %v\n%s", err, out)
		}
		bin.dir, bin.path = dir, path
	}
	bin.users++
	t.Cleanup(func() {
		bin.Lock()
		defer bin.Unlock()
		if bin.users--; bin.users == 0 {
			_ = os.RemoveAll(bin.dir)
			bin.dir, bin.path = "", ""
		}
	})
	return bin.path
}

func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	exe := binary(t) // built before the clock starts
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
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

// The binary the tests build is removed when the tests that use it end:
// a test run leaves no 20 MB binary in the temporary folder. (Not parallel,
// so that no other test holds the binary meanwhile.)
func TestBuiltBinaryRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	var dir string
	t.Run("use", func(t *testing.T) {
		dir = filepath.Dir(binary(t))
		if _, err := os.Stat(filepath.Join(dir, "licenseops")); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after the tests that used it: %v; want it removed", dir, err)
	}
}
