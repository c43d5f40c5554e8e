package bench

// What the bench reads about its processes and the machine from /proc.

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/internal/stack"
)

// benchCPUSample is the CPU time used so far, in clock ticks (USER_HZ): by the
// whole machine, by this process and its descendants (the api and worker
// processes, and the private Postgres and Redis when the bench started them),
// by the api and the workers alone, and by the kernel's own threads.
type benchCPUSample struct {
	at                 time.Time
	procs, total       uint64 // machine, all CPUs (/proc/stat): user+nice+system, and everything
	steal, irq         uint64 // machine: stolen by the hypervisor; interrupts and softirqs
	ours, api, workers uint64
	postgres, redis    uint64 // the bench's own servers (when private)
	kernel             uint64 // kernel threads (kthreadd's children): writeback, journal, …
	haveMachine        bool
	haveUs             bool
}

// benchNoisyCores is how much CPU the rest of the machine may use during a
// measurement before its targets get the verdict "noisy" instead of met or
// not: half a core.
const benchNoisyCores = 0.5

// benchCPUUsage is a benchCPUSample difference as average cores in use.
type benchCPUUsage struct {
	MachineBusyCores float64 `json:"machine_busy_cores"` // every process on the machine, interrupts and steal
	BenchTreeCores   float64 `json:"bench_tree_cores"`   // the bench, its api and workers, and its own Postgres and Redis (if private)
	// OtherCores is every other process on the machine (other people's
	// tests and builds): with StealCores, the noise of the measurement.
	OtherCores float64 `json:"other_cores"`
	// StealCores is time the hypervisor gave to other machines.
	StealCores float64 `json:"steal_cores"`
	// KernelCores is the kernel's threads and interrupts, much of it on
	// the bench's behalf (writing Postgres's WAL, the loopback network):
	// not counted as noise.
	KernelCores   float64 `json:"kernel_cores"`
	APICores      float64 `json:"api_cores"`
	WorkerCores   float64 `json:"worker_cores"`   // all worker processes
	PostgresCores float64 `json:"postgres_cores"` // the private Postgres (0 with DATABASE_URL)
	RedisCores    float64 `json:"redis_cores"`    // the private Redis (0 with REDIS_URL)
	Cores         int     `json:"cores"`
	Seconds       float64 `json:"seconds"` // the length of the measurement
}

// Noise is the CPU that the rest of the machine took during the
// measurement, in cores: other processes and steal.
func (u benchCPUUsage) Noise() float64 { return u.OtherCores + u.StealCores }

// Noisy says whether the rest of the machine used more than
// benchNoisyCores during the measurement.
func (u benchCPUUsage) Noisy() bool { return u.Noise() > benchNoisyCores }

// benchSampleCPU reads the CPU counters; api may be nil, and workers empty.
func benchSampleCPU(api *stack.Proc, workers ...*stack.Proc) benchCPUSample {
	s := benchCPUSample{at: time.Now()}
	s.procs, s.total, s.steal, s.irq, s.haveMachine = benchMachineCPU()
	stats := benchProcStats()
	if len(stats) > 0 {
		s.haveUs = true
		self := os.Getpid()
		children := map[int][]int{}
		for pid, st := range stats {
			children[st.ppid] = append(children[st.ppid], pid)
			if pid == benchKthreadd || st.ppid == benchKthreadd {
				s.kernel += st.ticks
			}
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
			s.api = stats[api.Pid()].ticks
		}
		for _, w := range workers {
			if w != nil {
				s.workers += stats[w.Pid()].ticks
			}
		}
	}
	return s
}

// benchKthreadd is the kernel's thread daemon, the parent of every kernel thread.
const benchKthreadd = 2

// usageSince turns two samples into average cores in use between them.
func (s benchCPUSample) usageSince(start benchCPUSample) benchCPUUsage {
	u := benchCPUUsage{Cores: runtime.NumCPU(), Seconds: s.at.Sub(start.at).Seconds()}
	// Ticks of wall time per CPU between the samples.
	wall := u.Seconds * benchClockTicks
	if s.haveMachine && start.haveMachine && s.total > start.total {
		wall = float64(s.total-start.total) / float64(u.Cores)
	}
	if wall <= 0 {
		return u
	}
	cores := func(a, b uint64) float64 { return float64(benchSub(a, b)) / wall }
	var procs float64
	if s.haveMachine && start.haveMachine {
		procs = cores(s.procs, start.procs)
		u.StealCores = cores(s.steal, start.steal)
		u.KernelCores = cores(s.irq, start.irq)
		u.MachineBusyCores = procs + u.StealCores + u.KernelCores
	}
	if s.haveUs && start.haveUs {
		u.BenchTreeCores = cores(s.ours, start.ours)
		u.APICores = cores(s.api, start.api)
		u.WorkerCores = cores(s.workers, start.workers)
		u.PostgresCores = cores(s.postgres, start.postgres)
		u.RedisCores = cores(s.redis, start.redis)
		kthreads := cores(s.kernel, start.kernel)
		u.KernelCores += kthreads
		procs -= kthreads
	}
	u.OtherCores = max(procs-u.BenchTreeCores, 0)
	return u
}

// benchWindow measures the CPU of the machine from its start to stop.
type benchWindow struct {
	api     *stack.Proc
	workers []*stack.Proc
	start   benchCPUSample
}

// benchStartWindow starts measuring; api may be nil, and workers empty.
func benchStartWindow(api *stack.Proc, workers ...*stack.Proc) *benchWindow {
	return &benchWindow{api: api, workers: workers, start: benchSampleCPU(api, workers...)}
}

// stop returns the CPU used since the start.
func (w *benchWindow) stop() benchCPUUsage {
	return benchSampleCPU(w.api, w.workers...).usageSince(w.start)
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

// benchMachineCPU reads the first line of /proc/stat, ticks of all CPUs:
// spent in processes (user, nice, system), in all, stolen by the
// hypervisor, and in interrupts (irq, softirq).
func benchMachineCPU() (procs, total, steal, irq uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, 0, 0, false
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, 0, 0, false
	}
	for i, v := range fields[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		total += n
		switch i {
		case 0, 1, 2: // user, nice, system
			procs += n
		case 5, 6: // irq, softirq
			irq += n
		case 7:
			steal += n
		}
	}
	return procs, total, steal, irq, true
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
