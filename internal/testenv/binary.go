package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// builds are the binaries built for this test binary, by package and tags.
var builds sync.Map // string → *build

type build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the main package pkg (an import path, or "." for the
// package under test) with the build tags, once per test binary, and
// returns its path. It is built into the test binary's temporary folder,
// which Run removes when the tests end, so a test run leaves no binary
// behind however many tests share it.
func Binary(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	checkRun(t)
	key := pkg + " " + strings.Join(tags, ",")
	v, _ := builds.LoadOrStore(key, &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := tmp.get()
		if err != nil {
			b.err = err
			return
		}
		name := path.Base(pkg)
		if pkg == "." {
			name = "main"
		}
		b.path = filepath.Join(dir.Path(), fmt.Sprintf("bin-%s-%d", name, time.Now().UnixNano()))
		args := []string{"build", "-o", b.path}
		if len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...) // #nosec G204 -- go build of a package of this module, for its tests
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// RunBinary runs the binary of the main package pkg (built by Binary before
// the clock starts) with args and this process's environment plus env,
// within two minutes, and returns what it printed and how it ended.
func RunBinary(t testing.TB, pkg string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	exe := Binary(t, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...) // #nosec G204 -- a binary of this module, for its tests
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}
