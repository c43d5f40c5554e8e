package testenv_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/internal/testenv"
)

// A binary built for tests is gone when the tests that built it end: a
// test run leaves no 20 MB binary in the temporary folder. The check runs
// a child test process, which builds one, prints its path and ends.
func TestBinaryRemovedWhenTestsEnd(t *testing.T) {
	if os.Getenv("TESTENV_BINARY_CHILD") == "1" {
		exe := testenv.Binary(t, "github.com/licenseops/licenseops/cmd/licenseops")
		if _, err := os.Stat(exe); err != nil {
			t.Fatal(err)
		}
		if again := testenv.Binary(t, "github.com/licenseops/licenseops/cmd/licenseops"); again != exe {
			t.Fatalf("built twice: %s and %s", exe, again)
		}
		os.Stdout.WriteString("BINARY=" + exe + "\n")
		return
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBinaryRemovedWhenTestsEnd$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTENV_BINARY_CHILD=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child test: %v\n%s", err, out.String())
	}
	_, rest, ok := strings.Cut(out.String(), "BINARY=")
	if !ok {
		t.Fatalf("the child printed no binary path:\n%s", out.String())
	}
	exe := strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0])
	if _, err := os.Stat(exe); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after the child's tests ended: %v; want it removed", exe, err)
	}
}
