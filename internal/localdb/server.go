package localdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a Postgres or Redis server: one that this process started (see
// StartPostgres, StartRedis and Start), which it can stop, kill and start
// again, or one it only knows the address of (see External).
type Server struct {
	kind  string // "postgres" or "redis"
	addr  string
	owned bool
	from  string // where a server that is not owned comes from

	// Owned servers only.
	path     string              // binary
	args     []string            // the usual arguments
	cred     *syscall.Credential // user to run as, nil for ours
	dir      string              // working directory
	logPath  string              // stdout and stderr of the server
	stopSig  syscall.Signal      // asks for a fast, clean shutdown
	deathSig syscall.Signal      // sent when this process dies
	ready    func(context.Context) error

	mu       sync.Mutex
	extra    []string
	proc     *process // nil when not running
	onChange func()   // called after the process went away or came back
}

// process is a started server process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
}

// External returns a server that this process did not start, at addr
// (host:port), for code that handles private and given servers alike. from
// says where it comes from (for example "TEST_DATABASE_URL"), for error
// messages. It is not owned: Stop, Kill, Start and Restore return an error.
func External(kind, addr, from string) *Server {
	return &Server{kind: kind, addr: addr, from: from}
}

func (s *Server) errNotOwned() error {
	return fmt.Errorf("localdb: the %s server at %s comes from %s and was not started by this process, which never stops or starts it (check Owned first)", s.kind, s.addr, s.from)
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Owned reports whether this process started the server, so that Stop, Kill,
// Start and Restore work on it.
func (s *Server) Owned() bool { return s.owned }

// OnChange sets a function to call after every Stop, Kill, Start and Restore
// of the server (failed ones too), for example to drop pooled connections
// that a restart broke.
func (s *Server) OnChange(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = f
}

func (s *Server) changed() {
	s.mu.Lock()
	f := s.onChange
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

// SetArgs sets extra command-line arguments, appended to the usual ones from
// the next Start on: for example s.SetArgs("--appendonly", "yes") then
// s.Stop() and s.Start() restarts Redis with an append-only file, or
// s.SetArgs("-c", "max_connections=20") changes a Postgres setting. SetArgs()
// with no arguments goes back to the usual command line.
func (s *Server) SetArgs(extra ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra = slices.Clone(extra)
}

// Stop shuts the server down cleanly and waits for it to exit: SIGINT (fast
// shutdown) for Postgres, SIGTERM for Redis. Clients are disconnected. Stopping
// a stopped server does nothing.
func (s *Server) Stop() error {
	return s.change(s.stopLocked)
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it to
// exit. For Postgres the backend processes are killed too, so that Start can
// run crash recovery at once. Killing a stopped server does nothing.
func (s *Server) Kill() error {
	return s.change(s.killLocked)
}

// restartRetry is how long Start retries a server that exits at once: right
// after Kill, Postgres refuses to start while a dying backend still holds the
// old shared memory.
const restartRetry = 15 * time.Second

// Start starts the stopped or killed server again, on the same port and with
// the same data directory (plus the arguments given to SetArgs), and waits
// until it accepts connections. Data that Redis did not persist (by default it
// persists nothing) is gone.
func (s *Server) Start() error {
	return s.change(func() error { return s.startLocked(context.Background(), restartRetry) })
}

// Restore makes the server run with its usual command line: it starts it if
// it is stopped, and restarts it without them if SetArgs gave it extra
// arguments. It does nothing to a server that runs with the usual ones.
func (s *Server) Restore() error {
	if s.owned {
		s.mu.Lock()
		usual := s.runningLocked() && len(s.extra) == 0
		s.mu.Unlock()
		if usual {
			return nil // and no OnChange call
		}
	}
	return s.change(func() error {
		err := s.stopLocked()
		s.extra = nil
		if err == nil {
			err = s.startLocked(context.Background(), restartRetry)
		}
		return err
	})
}

// change runs f with the lock held, for an owned server, then calls the
// OnChange function.
func (s *Server) change(f func() error) error {
	if !s.owned {
		return s.errNotOwned()
	}
	s.mu.Lock()
	err := f()
	s.mu.Unlock()
	s.changed()
	return err
}

// Running reports whether the server process is up. It is always true for a
// server that is not owned: we cannot know.
func (s *Server) Running() bool {
	if !s.owned {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runningLocked()
}

func (s *Server) runningLocked() bool {
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

var errExited = errors.New("exited before accepting connections")

// readyTimeout is how long a started server may take to accept connections.
const readyTimeout = 30 * time.Second

// startLocked starts the process and waits until it is ready. When it exits
// before that, it is started again until retryFor has passed.
func (s *Server) startLocked(ctx context.Context, retryFor time.Duration) error {
	if s.runningLocked() {
		return fmt.Errorf("localdb: %s server is already running", s.kind)
	}
	s.proc = nil
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		p, err := s.launch()
		if err != nil {
			return err
		}
		err = s.waitReady(ctx, p)
		if err == nil {
			s.proc = p
			return nil
		}
		killGroup(p)
		if !errors.Is(err, errExited) || time.Since(start) >= retryFor {
			return fmt.Errorf("localdb: start %s on %s: %w\n%s", s.kind, s.addr, err, s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) launch() (*process, error) {
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	// #nosec G204 -- the postgres or redis-server binary found in PATH or Debian's folder; arguments are set in code
	cmd := exec.Command(s.path, append(slices.Clone(s.args), s.extra...)...)
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(s.cred, s.deathSig)
	if err := Spawn(cmd); err != nil {
		return nil, fmt.Errorf("localdb: start %s: %w", s.kind, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // callers read cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

// waitReady waits until the server answers, until it exits or until ctx ends.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	start := time.Now()
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%w (%v)", errExited, p.cmd.ProcessState)
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.ready(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not accepting connections after %v: %v", time.Since(start).Round(time.Millisecond), err)
			}
			return fmt.Errorf("%w (last try: %v)", context.Cause(ctx), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(s.stopSig) // if it fails, the kill below stops it
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
	}
	s.proc = p
	_ = s.killLocked() // always nil
	return fmt.Errorf("localdb: %s did not stop within 30s and was killed", s.kind)
}

func (s *Server) killLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	// Postgres backends make themselves session leaders, out of the
	// postmaster's process group: find them before they are orphaned.
	children := childrenOf(p.cmd.Process.Pid)
	killGroup(p)
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL) // it may have exited already
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range children {
		for alive(c) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// killGroup kills the process and its process group and waits for it.
func killGroup(p *process) {
	// Either may find it gone already; <-p.done is what counts.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// logTail returns the end of the server log, for error messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	return fmt.Sprintf("last lines of %s:\n%s", s.logPath, tail(b, 20))
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sysProcAttr returns the attributes of a server process, which receives
// deathSig when this process dies.
func sysProcAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		// A process group of its own: Kill reaches its children, and
		// the terminal's ^C does not (this process gets it and stops
		// the servers, or dies of it and the parent-death signal
		// follows).
		Setpgid: true,
		// The child sets the parent-death signal after switching
		// to cred, which would clear it, and keeps it across exec:
		// so the server itself, not a wrapper such as runuser (which
		// forks and waits), dies with this process.
		Pdeathsig:  deathSig,
		Credential: cred,
	}
}

type spawnRequest struct {
	cmd *exec.Cmd
	err chan error
}

var (
	spawnOnce sync.Once
	spawns    chan spawnRequest
)

// Spawn starts cmd from a thread that lives as long as the process. The
// parent-death signal (SysProcAttr.Pdeathsig) is sent when the thread that
// started the child exits, not the process, and the Go runtime may end
// threads before the process: children that must die with their parent
// are started here.
func Spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawns = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread never exits
			for r := range spawns {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnRequest{cmd: cmd, err: make(chan error, 1)}
	spawns <- r
	return <-r.err
}

// run runs cmd (started by Spawn) and returns its combined output.
func run(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := Spawn(cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return out.Bytes(), err
}

// childrenOf returns the pids of the children of pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(c); ok && ppid == pid {
			kids = append(kids, c)
		}
	}
	return kids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads the parent pid and state of pid from /proc.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may contain anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localdb: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startOwned starts a new server on a free port of 127.0.0.1, on a new port for
// each attempt in case another process took the port between freePort and the
// server's bind.
func startOwned(ctx context.Context, newServer func(addr string, port int) *Server) (*Server, error) {
	var err error
	for range 3 {
		var port int
		port, err = FreePort()
		if err != nil {
			return nil, err
		}
		s := newServer(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port)
		s.owned = true
		s.mu.Lock()
		err = s.startLocked(ctx, 0)
		s.mu.Unlock()
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}
