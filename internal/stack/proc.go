package stack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/licenseops/licenseops/internal/localdb"
)

// Proc is a licenseops process of the stack: an api or a worker.
type Proc struct {
	// Name is the process's name in messages and its log file: api-1,
	// worker-2, …
	Name string
	// URL is the api's base URL, or the worker's metrics listener.
	URL string

	kind    string
	extra   []string // the environment StartAPI or StartWorker added
	cmd     *exec.Cmd
	out     *tailBuffer
	logPath string
	stopFor time.Duration
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // set when done is closed
}

// spawn starts the binary with args. The process gets SIGKILL when this
// process dies, however it dies (the parent-death signal), and a process
// group of its own, so that a terminal's ^C reaches us, and we stop it in
// order.
func (s *Stack) spawn(name, kind string, extra []string, args ...string) (*Proc, error) {
	if s.o.Exe == "" {
		return nil, errors.New("stack: Options.Exe names no licenseops binary to run")
	}
	p := &Proc{Name: name, kind: kind, extra: extra, out: &tailBuffer{max: 256 << 10}, stopFor: s.o.StopTimeout, done: make(chan struct{})}
	var w io.Writer = p.out
	var logf *os.File
	if s.o.LogDir != "" {
		p.logPath = filepath.Join(s.o.LogDir, name+".log")
		f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- in the stack's log folder, named by us
		if err != nil {
			return nil, err
		}
		logf, w = f, io.MultiWriter(p.out, f)
	}
	cmd := exec.Command(s.o.Exe, args...) // #nosec G204 -- the licenseops binary the stack was given, as api or worker
	cmd.Env = s.env(extra)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := localdb.Spawn(cmd); err != nil {
		if logf != nil {
			_ = logf.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		if logf != nil {
			_ = logf.Close()
		}
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// Pid returns the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill kills the process with SIGKILL, as a crash or the OOM killer would,
// and waits until it is gone. Killing an ended process does nothing.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// Stop sends SIGTERM and waits for the process to exit, and kills it if it
// has not after the stack's StopTimeout; only then is there an error.
func (p *Proc) Stop() error {
	if p.Exited() {
		return nil
	}
	p.Signal(syscall.SIGTERM)
	if _, ok := p.Wait(p.stopFor); ok {
		return nil
	}
	p.Kill()
	return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.Name, p.stopFor)
}

// Wait waits up to d for the process to exit and returns its exit code
// (-1 when a signal ended it); ok is false when it still runs.
func (p *Proc) Wait(d time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-time.After(d):
		return 0, false
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// State says how the process ended, or that it runs.
func (p *Proc) State() string {
	if p.Exited() {
		return p.cmd.ProcessState.String()
	}
	return "running"
}

// Err describes a process that has ended, with the tail of its output; nil
// while it runs.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return fmt.Errorf("%s process ended: %s\n%s", p.Name, p.State(), p.Tail(20))
}

// Output returns what the process has written, up to its last 256 KiB.
func (p *Proc) Output() string { return p.out.String() }

// Tail returns the last n lines the process has written.
func (p *Proc) Tail(n int) string { return lastLines(p.out.String(), n) }

// LogPath is the file that holds the process's whole output ("" without
// Options.LogDir).
func (p *Proc) LogPath() string { return p.logPath }

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *Proc) PeakRSS() (int64, error) { return StatusKB(p.Pid(), "VmHWM:") }

// StatusKB reads a "kB" field of /proc/PID/status (VmHWM:, VmRSS:, …), in bytes.
func StatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// Result is what a short-lived command printed and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs a short-lived licenseops command (check, token list, …) with
// the environment of the stack's processes and extra env, and waits for it.
// Its error is one of starting or waiting, not an exit code other than 0.
func (s *Stack) Run(ctx context.Context, env []string, args ...string) (Result, error) {
	if s.o.Exe == "" {
		return Result{}, errors.New("stack: Options.Exe names no licenseops binary to run")
	}
	cmd := exec.CommandContext(ctx, s.o.Exe, args...) // #nosec G204 -- the licenseops binary the stack was given
	cmd.Env = s.env(env)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errOut.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		res.Code, err = ee.ExitCode(), nil
	}
	if err != nil {
		return res, fmt.Errorf("licenseops %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}

// Build builds the Go package pkg (an import path or a directory) into the
// file out with the build tags tags, for tests that run a binary.
func Build(ctx context.Context, out, pkg string, tags ...string) error {
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...) // #nosec G204 -- go build of a package of this module
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
	}
	return nil
}

// freeAddr returns an address of 127.0.0.1 that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
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

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
