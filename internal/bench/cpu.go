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
func benchSampleCPU(api, worker *stack.Proc) benchCPUSample {
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
			s.api = stats[api.Pid()].ticks
		}
		if worker != nil {
			s.worker = stats[worker.Pid()].ticks
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
