//go:build faultinject

package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	devstack "github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/internal/testenv"
)

func TestMain(m *testing.M) {
	removeStaleBinaries()
	testenv.Run(m)
}

// binDirPrefix names the folders the licenseops binary is built into.
const binDirPrefix = "licenseops-faults-"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the licenseops binary with the fail points compiled in, once
// per test binary. It goes into a temporary folder named after this process,
// which the next run removes once this process is gone (testenv.Run exits
// without a hook for it).
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binDirPrefix, os.Getpid()))
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "licenseops")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		buildErr = devstack.Build(ctx, binPath, "github.com/licenseops/licenseops/cmd/licenseops", "faultinject")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// removeStaleBinaries removes the binary folders of earlier test processes
// that have exited.
func removeStaleBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(d), binDirPrefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); os.IsNotExist(err) {
			_ = os.RemoveAll(d)
		}
	}
}

// proc is a child process of the test: an api or a worker.
type proc = devstack.Proc
