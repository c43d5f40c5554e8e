//go:build faultinject

package faults

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/localdb"
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
		cmd := exec.Command("go", "build", "-tags", "faultinject", "-o", binPath, "github.com/licenseops/licenseops/cmd/licenseops")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build -tags faultinject: %v\n%s", err, out)
		}
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

// proc is a child process of the test: an api, a worker, the checker.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed once the process has exited and been reaped
	// URL is the api's base URL (api processes only).
	URL string
}

// startProc starts the binary with args and env (added to a clean copy of
// ours). The process gets SIGKILL when the test binary dies, however it dies,
// and when t ends, if it still runs; its output is kept and shown when t fails.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	p := &proc{name: name, cmd: cmd, out: &tailBuffer{max: 256 << 10}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := localdb.Spawn(cmd); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- last output of %s (pid %d, %s):\n%s", p.name, p.Pid(), p.state(), p.out.tail(40))
		}
	})
	return p
}

// Pid returns the process ID.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *proc) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill kills the process with SIGKILL, as a crash or the OOM killer would,
// and waits until it is gone.
func (p *proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Wait waits up to d for the process to exit and returns its exit code
// (-1 when a signal killed it); ok is false when it still runs.
func (p *proc) Wait(d time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-time.After(d):
		return 0, false
	}
}

// Exited reports whether the process has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) state() string {
	if p.Exited() {
		return p.cmd.ProcessState.String()
	}
	return "running"
}

// cleanEnv is our environment without anything that configures licenseops,
// so that only what a test sets reaches the children.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "LICENSEOPS_") || name == "DATABASE_URL" || name == "REDIS_URL" || strings.HasPrefix(name, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max/2:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// tail returns the last n lines.
func (b *tailBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns an address of 127.0.0.1 that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
