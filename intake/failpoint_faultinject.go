//go:build faultinject

package intake

import "os"

// Fail points exist only in binaries built with -tags faultinject, for the
// fault tests (faults/): such a binary exits at the fail point that the
// environment names, as a crash there would, with no deferred function run,
// no response written and nothing more sent.
const (
	failpointEnv      = "LICENSEOPS_FAILPOINT" // the fail point to crash at
	failpointExitCode = 86                     // the exit status of such a crash
)

// failpoint exits the process with failpointExitCode when failpointEnv
// equals name.
func failpoint(name string) {
	if os.Getenv(failpointEnv) == name {
		os.Exit(failpointExitCode)
	}
}
