package main

// The api and worker processes of "licenseops bench", and what the bench
// reads about them (and about the machine) from /proc.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchProc is one api or worker process started by the bench.
type benchProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error // set when done is closed
}

// benchStopTimeout is how long a process may take to stop after SIGTERM
// before it is killed. A worker with nothing to do stops at once; one with
// tasks in hand waits up to LICENSEOPS_SHUTDOWN_TIMEOUT (20 s).
const benchStopTimeout = 30 * time.Second

// startBenchProc starts exe with args and env, its output going to
// logDir/name.log. The process gets SIGKILL when the bench dies (Pdeathsig),
// and a process group of its own, so that a ^C reaches the bench, which
// stops it in order.
func startBenchProc(exe, name, logDir string, env []string, args ...string) (*benchProc, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- in the bench's own log folder, named by us
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...) // #nosec G204 -- our own executable (or the test's build of it) as api or worker
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := benchSpawn(cmd); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &benchProc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = f.Close() // only the child wrote to it
		close(p.done)
	}()
	return p, nil
}

var (
	benchSpawnOnce sync.Once
	benchSpawns    chan func()
)

// benchSpawn starts cmd from a thread that never exits: the parent-death
// signal fires when the thread that forked the child exits, not the
// process, and the Go runtime may end threads before the process ends.
func benchSpawn(cmd *exec.Cmd) error {
	benchSpawnOnce.Do(func() {
		benchSpawns = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked, so the thread lives as long as the process
			for f := range benchSpawns {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	benchSpawns <- func() { errc <- cmd.Start() }
	return <-errc
}

// pid returns the process ID.
func (p *benchProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *benchProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes a process that ended on its own, with the tail of its log.
func (p *benchProc) failure() error {
	return fmt.Errorf("%s process ended: %v\n%s", p.name, p.waitErr, benchTail(p.logPath, 20))
}

// stop sends SIGTERM, and SIGKILL if the process has not ended after
// benchStopTimeout. It returns an error only when the process had to be killed.
func (p *benchProc) stop() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(benchStopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.name, benchStopTimeout)
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *benchProc) peakRSS() (int64, error) {
	return benchStatusKB(p.pid(), "VmHWM:")
}

// benchStatusKB reads a "kB" field of /proc/PID/status, in bytes.
func benchStatusKB(pid int, field string) (int64, error) {
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

// benchTail returns the last n lines of a file.
func benchTail(path string, n int) string {
	b, _ := os.ReadFile(path) // #nosec G304 -- a process log that startBenchProc named
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// benchFreeAddr returns a free 127.0.0.1 address for the api to listen on.
// (The api is given a port rather than :0 because at log level warn it
// does not print the address it listens on.)
func benchFreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// benchWaitReady polls url until it answers 200, the process ends, or timeout.
func benchWaitReady(ctx context.Context, p *benchProc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return p.failure()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after %s (last: %v)\n%s", p.name, url, timeout, err, benchTail(p.logPath, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// benchCPUSample is the CPU time used so far, in clock ticks (USER_HZ): by the
// whole machine, by this process and its descendants (the api and worker
// processes, and the private Postgres and Redis when the bench started them),
// and by the api and worker alone.
type benchCPUSample struct {
	at                  time.Time
	busy, total         uint64 // machine, all CPUs (/proc/stat)
	ours, api, worker   uint64
	postgres, redis     uint64 // the bench's own servers (when private)
	haveMachine, haveUs bool
}

// benchCPUUsage is a benchCPUSample difference as average cores in use.
type benchCPUUsage struct {
	MachineBusyCores float64 `json:"machine_busy_cores"` // every process on the machine
	BenchTreeCores   float64 `json:"bench_tree_cores"`   // the bench, its api and worker, and its own Postgres and Redis (if private)
	OtherCores       float64 `json:"other_cores"`        // everything else on the machine: other engineers' load
	APICores         float64 `json:"api_cores"`
	WorkerCores      float64 `json:"worker_cores"`
	PostgresCores    float64 `json:"postgres_cores"` // the private Postgres (0 with DATABASE_URL)
	RedisCores       float64 `json:"redis_cores"`    // the private Redis (0 with REDIS_URL)
	Cores            int     `json:"cores"`
}

// benchSampleCPU reads the CPU counters; api and worker may be nil.
func benchSampleCPU(api, worker *benchProc) benchCPUSample {
	s := benchCPUSample{at: time.Now()}
	s.busy, s.total, s.haveMachine = benchMachineCPU()
	stats := benchProcStats()
	if len(stats) > 0 {
		s.haveUs = true
		self := os.Getpid()
		children := map[int][]int{}
		for pid, st := range stats {
			children[st.ppid] = append(children[st.ppid], pid)
		}
		queue := []int{self}
		for len(queue) > 0 {
			pid := queue[0]
			queue = queue[1:]
			if st, ok := stats[pid]; ok {
				s.ours += st.ticks
				switch {
				case st.comm == "postgres":
					s.postgres += st.ticks
				case strings.HasPrefix(st.comm, "redis-server"):
					s.redis += st.ticks
				}
			}
			queue = append(queue, children[pid]...)
		}
		if api != nil {
			s.api = stats[api.pid()].ticks
		}
		if worker != nil {
			s.worker = stats[worker.pid()].ticks
		}
	}
	return s
}

// usageSince turns two samples into average cores in use between them.
func (s benchCPUSample) usageSince(start benchCPUSample) benchCPUUsage {
	u := benchCPUUsage{Cores: runtime.NumCPU()}
	// Ticks of wall time per CPU between the samples.
	wall := s.at.Sub(start.at).Seconds() * benchClockTicks
	if s.haveMachine && start.haveMachine && s.total > start.total {
		perCPU := float64(s.total-start.total) / float64(u.Cores)
		wall = perCPU
		u.MachineBusyCores = float64(s.busy-start.busy) / perCPU
	}
	if wall <= 0 {
		return u
	}
	if s.haveUs && start.haveUs {
		u.BenchTreeCores = float64(benchSub(s.ours, start.ours)) / wall
		u.APICores = float64(benchSub(s.api, start.api)) / wall
		u.WorkerCores = float64(benchSub(s.worker, start.worker)) / wall
		u.PostgresCores = float64(benchSub(s.postgres, start.postgres)) / wall
		u.RedisCores = float64(benchSub(s.redis, start.redis)) / wall
	}
	u.OtherCores = max(u.MachineBusyCores-u.BenchTreeCores, 0)
	return u
}

func benchSub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// benchClockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go supports.
const benchClockTicks = 100

// benchMachineCPU reads the first line of /proc/stat: busy and total ticks of all CPUs.
func benchMachineCPU() (busy, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, false
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, false
	}
	var idle uint64
	for i, v := range fields[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return total - idle, total, true
}

type benchProcStat struct {
	ppid  int
	comm  string
	ticks uint64 // utime + stime + cutime + cstime
}

// benchProcStats reads /proc/*/stat. Counting cutime and cstime (the CPU of
// children that ended and were waited for) keeps the sum over a process
// tree steady when a child (a Postgres backend, say) ends between samples.
func benchProcStats() map[int]benchProcStat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make(map[int]benchProcStat, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces.
		i := strings.LastIndexByte(string(b), ')')
		j := strings.IndexByte(string(b), '(')
		if i < 0 || j < 0 || j > i {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[0] is field 3 (state): ppid is field 4, utime..cstime are 14..17.
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var ticks uint64
		for _, v := range f[11:15] {
			n, _ := strconv.ParseUint(v, 10, 64)
			ticks += n
		}
		out[pid] = benchProcStat{ppid: ppid, comm: string(b[j+1 : i]), ticks: ticks}
	}
	return out
}

// benchLoadAvg returns the 1, 5 and 15 minute load averages.
func benchLoadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}
