//go:build faultinject

package faults

import (
	"testing"

	devstack "github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// binary is the licenseops binary with the fail points compiled in, built
// once per test binary and removed when the tests end.
func binary(t *testing.T) string {
	t.Helper()
	return testenv.Binary(t, "github.com/licenseops/licenseops/cmd/licenseops", "faultinject")
}

// proc is a child process of the test: an api or a worker.
type proc = devstack.Proc
