// Package bench is the end-to-end benchmark behind `make bench`
// (`licenseops-dev bench`). It measures, on this machine, against private
// Postgres and Redis (or DATABASE_URL / REDIS_URL):
//
//	(a) bare asynq: no-op tasks enqueued with jobs.Enqueuer and processed
//	    with the worker's concurrency, the ceiling of the queue itself;
//	(b) a tenant-wide assign of one SKU through the HTTP API, with the api
//	    and worker as separate processes of the licenseops binary;
//	(c) the same with four SKUs per user (assign two, revoke two);
//	(d) two-user operations submitted every second while (b) runs;
//	(e) a rollout against the Graph simulator, against the bound that the
//	    per-tenant in-flight limit and the directory's latency set.
//
// It prints one table with the targets and writes the figures as JSON, so
// that two runs can be compared. Timing never fails the bench: it exits 0
// unless something broke.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/stack"
)

// ErrUsage wraps the errors of bad flags.
var ErrUsage = errors.New("usage")

// Options are the flags of "licenseops-dev bench" and what a test sets instead of the environment.
type Options struct {
	Users            int
	GraphUsers       int
	Concurrency      int
	Only             []string // scenario letters, in order
	Out              string
	GraphLatency     time.Duration
	GraphMaxInFlight int
	GraphRate        int
	// Profile takes a CPU profile of the worker during each rollout (b, c,
	// e), of Profile's length, written next to Out.
	Profile time.Duration

	// DatabaseURL and RedisURL are the servers to use; private ones
	// (localdb) are started for what is empty.
	DatabaseURL string
	RedisURL    string
	// Exe is the licenseops binary run as the api and worker processes
	// (default: the licenseops next to this executable, as `make bench`
	// builds them; a test passes the binary it built).
	Exe    string
	Stdout io.Writer // the table
	Stderr io.Writer // progress
	Args   []string
}

const benchScenarios = "abcdef"

const benchUsage = `Usage: licenseops-dev bench [flags]

Measures licenseops end to end on this machine and prints one table with the
targets; writes the figures as JSON (--out) so that runs can be compared.
  (a) bare asynq: N no-op tasks enqueued with the api's parallel enqueuer and
      processed with the worker's concurrency
  (b) rollout: assign one SKU to N users through the HTTP API; api and worker
      run as separate processes of the licenseops binary (--exe)
  (c) change: assign two SKUs and revoke two (that the users hold) for N users
  (d) interactive: a two-user operation every second while (b) runs
  (e) Graph simulator: a rollout to --graph-users users of an msgraph customer
  (f) fairness: customer B's rollout of 1,000 users started while customer
      A's rollout of N runs, and a two-user change of B every second
Uses private Postgres and Redis unless DATABASE_URL and REDIS_URL are set; the
Redis database is flushed between scenarios. Exits 0 unless something broke:
a missed target is reported, not a failure.

Flags:
`

// ParseFlags reads the flags of "licenseops-dev bench". Its errors wrap
// ErrUsage.
func ParseFlags(args []string) (*Options, error) {
	o := &Options{Args: args, Stdout: os.Stdout, Stderr: os.Stderr}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.Users, "users", 100_000, "users of the rollouts (b), (c) and customer A's in (f), and tasks of the baseline (a)")
	fs.IntVar(&o.GraphUsers, "graph-users", 20_000, "users of the Graph simulator rollout (e)")
	fs.IntVar(&o.Concurrency, "concurrency", defaultConcurrency(), "worker concurrency, for the baseline and the worker process (default: the worker's, LICENSEOPS_WORKER_CONCURRENCY)")
	only := fs.String("only", "a,b,c,d,e,f", "scenarios to run, comma-separated; d runs alongside b, so it runs b too")
	fs.StringVar(&o.Out, "out", "", "JSON file for the figures (default bench-results/bench-<UTC time>.json)")
	fs.DurationVar(&o.GraphLatency, "graph-latency", 20*time.Millisecond, "latency of every simulated Graph call in (e)")
	fs.IntVar(&o.GraphMaxInFlight, "graph-max-in-flight", 32, "LICENSEOPS_GRAPH_MAX_IN_FLIGHT of the worker in (e): Graph calls in flight per tenant")
	fs.IntVar(&o.GraphRate, "graph-rate", 100_000, "LICENSEOPS_GRAPH_RATE of the worker in (e), high enough not to bind")
	fs.DurationVar(&o.Profile, "profile", 0, "take a CPU profile of the worker this long (e.g. 10s) from the start of each rollout; written next to --out (go tool pprof -top FILE)")
	fs.StringVar(&o.Exe, "exe", "", "the licenseops binary to run as api and worker (default: licenseops next to this executable)")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return nil, ErrUsage // the flag package has said what is wrong
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if o.Users < 1 || o.GraphUsers < 1 || o.Concurrency < 1 || o.GraphMaxInFlight < 1 || o.GraphRate < 1 || o.GraphLatency <= 0 {
		return nil, fmt.Errorf("%w: --users, --graph-users, --concurrency, --graph-max-in-flight, --graph-rate and --graph-latency must be positive", ErrUsage)
	}
	if o.Users > 100_000 {
		return nil, fmt.Errorf("%w: --users is at most 100000 (the API's limit of one operation)", ErrUsage)
	}
	for s := range strings.SplitSeq(*only, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if len(s) != 1 || !strings.Contains(benchScenarios, s) {
			return nil, fmt.Errorf("%w: --only takes letters among a,b,c,d,e,f, not %q", ErrUsage, s)
		}
		if !slices.Contains(o.Only, s) {
			o.Only = append(o.Only, s)
		}
	}
	slices.Sort(o.Only)
	return o, nil
}

// defaultConcurrency is the worker's concurrency as the environment sets it.
func defaultConcurrency() int {
	cfg, _ := app.FromEnv(os.Getenv) // licenseops-dev checks the environment first
	return cfg.Worker.Concurrency
}

// Report is the JSON the bench writes. Durations are in seconds (_s)
// or milliseconds (_ms), rates per second, memory in MiB.
type Report struct {
	Schema     int               `json:"schema"`
	StartedAt  time.Time         `json:"started_at"`
	DurationS  float64           `json:"duration_s"`
	Args       []string          `json:"args"`
	Machine    benchMachine      `json:"machine"`
	Settings   benchSettings     `json:"settings"`
	Baseline   *benchBaseline    `json:"baseline,omitempty"`
	Rollout    *benchRollout     `json:"rollout,omitempty"`
	Change     *benchRollout     `json:"change,omitempty"`
	Interact   *benchInteractive `json:"interactive,omitempty"`
	Graph      *benchGraph       `json:"graph,omitempty"`
	Fair       *benchFair        `json:"fairness,omitempty"`
	Targets    []benchTarget     `json:"targets"`
	Errors     map[string]string `json:"errors,omitempty"`
	ProcessLog string            `json:"process_logs,omitempty"`
}

type benchMachine struct {
	Cores       int        `json:"cores"`
	GOMAXPROCS  int        `json:"gomaxprocs"`
	GoVersion   string     `json:"go_version"`
	OSArch      string     `json:"os_arch"`
	CPUModel    string     `json:"cpu_model,omitempty"`
	MemTotalMiB int64      `json:"mem_total_mib,omitempty"`
	Kernel      string     `json:"kernel,omitempty"`
	GitCommit   string     `json:"git_commit,omitempty"`
	GitDirty    bool       `json:"git_dirty"`
	LoadStart   [3]float64 `json:"loadavg_start"`
	LoadEnd     [3]float64 `json:"loadavg_end"`
	Postgres    string     `json:"postgres"`
	Redis       string     `json:"redis"`
}

type benchSettings struct {
	Users              int      `json:"users"`
	GraphUsers         int      `json:"graph_users"`
	Concurrency        int      `json:"concurrency"`
	EnqueueParallelism int      `json:"enqueue_parallelism"`
	OperationPollMs    int      `json:"operation_poll_ms"`
	InteractivePollMs  int      `json:"interactive_poll_ms"`
	GraphLatencyMs     float64  `json:"graph_latency_ms"`
	GraphMaxInFlight   int      `json:"graph_max_in_flight"`
	GraphRate          int      `json:"graph_rate"`
	Scenarios          []string `json:"scenarios"`
	// Env are the LICENSEOPS_ variables inherited by the api and worker
	// processes (tuning such as LICENSEOPS_DB_MAX_CONNS).
	Env []string `json:"env,omitempty"`
}

type benchBaseline struct {
	Tasks         int     `json:"tasks"`
	EnqueueS      float64 `json:"enqueue_s"`
	EnqueuePerS   float64 `json:"enqueue_per_s"`
	ProcessS      float64 `json:"process_s"`
	ProcessPerS   float64 `json:"process_per_s"`
	Concurrency   int     `json:"concurrency"`
	EnqueueWorker int     `json:"enqueue_parallelism"`
}

type benchRollout struct {
	Users  int      `json:"users"`
	Assign []string `json:"assign"`
	Revoke []string `json:"revoke,omitempty"`
	// IntakeS is POST to 202.
	IntakeS float64 `json:"intake_s"`
	// LastItemS is POST to the last item recorded: max(finished_at) of the
	// operation's items in Postgres (the start of the batch transaction
	// that recorded it).
	LastItemS float64 `json:"last_item_s"`
	// PendingZeroS is POST to the first GET /v1/operations/{id} (polled
	// every operation_poll_ms) that answered pending == 0.
	PendingZeroS float64 `json:"pending_zero_s"`
	// CompletedS is POST to the operation's finished_at (the sweeper
	// completes it: settlement and final counts).
	CompletedS       float64       `json:"completed_s"`
	UsersPerS        float64       `json:"users_per_s"` // users / last_item_s
	RatioToBaseline  float64       `json:"ratio_to_baseline,omitempty"`
	Succeeded        int           `json:"succeeded"`
	Failed           int           `json:"failed"`
	APIPeakRSSMiB    float64       `json:"api_peak_rss_mib"`
	WorkerPeakRSSMiB float64       `json:"worker_peak_rss_mib"`
	CPU              benchCPUUsage `json:"cpu"` // from POST to pending == 0
	SeedS            float64       `json:"seed_s"`
}

type benchInteractive struct {
	Operations  int     `json:"operations"`
	UsersPerOp  int     `json:"users_per_operation"`
	IntervalMs  int     `json:"interval_ms"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	MeanMs      float64 `json:"mean_ms"`
	Failed      int     `json:"failed_operations"`
	RateLimited int     `json:"rate_limited_requests"`
}

type benchGraph struct {
	benchRollout
	LatencyMs      float64 `json:"latency_ms"`
	MaxInFlight    int     `json:"max_in_flight"`
	BoundPerS      float64 `json:"bound_per_s"`
	RatioToBound   float64 `json:"ratio_to_bound"`
	GraphRequests  int64   `json:"graph_requests"`
	GraphThrottled int64   `json:"graph_throttled"`
	PeakInFlight   int64   `json:"graph_peak_in_flight"`
	// DirectoryConsumed is the seats the simulator shows consumed at the
	// end: every user got the license in the directory itself.
	DirectoryConsumed int `json:"directory_consumed"`
}

// benchTarget is one figure against its target.
type benchTarget struct {
	ID     string  `json:"id"`
	Figure string  `json:"figure"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
}

// benchRunner holds what the scenarios share.
type benchRunner struct {
	o     *Options
	rep   *Report
	s     *stack.Stack
	runID string
	// itokens are the tokens of the interactive clients (d): the api
	// limits each token to 50 requests/s, and polling every 10 ms needs more.
	itokens []string
	logDir  string

	progressMu sync.Mutex
}

// Run runs the scenarios of o, prints the table and writes the
// JSON. The report is returned even when a scenario broke; the error then
// says which.
func Run(ctx context.Context, o *Options) (*Report, error) {
	start := time.Now()
	r := &benchRunner{o: o, runID: strconv.FormatInt(start.Unix(), 36)}
	r.rep = &Report{Schema: 1, StartedAt: start.UTC(), Args: o.Args, Errors: map[string]string{}}
	if o.Out == "" {
		o.Out = filepath.Join("bench-results", "bench-"+start.UTC().Format("20060102T150405Z")+".json")
	}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	run := func(key string, f func(context.Context) error) {
		if ctx.Err() != nil {
			r.rep.Errors[key] = ctx.Err().Error()
			return
		}
		if err := f(ctx); err != nil {
			r.rep.Errors[key] = err.Error()
			r.progress("(%s) FAILED: %v", key, err)
		}
	}
	sel := func(s string) bool { return slices.Contains(o.Only, s) }
	if sel("a") {
		run("a", r.runBaseline)
	}
	if sel("b") || sel("d") {
		run("b", r.runRollout)
	}
	if sel("c") {
		run("c", r.runChange)
	}
	if sel("e") {
		run("e", r.runGraph)
	}
	if sel("f") {
		run("f", r.runFair)
	}
	r.rep.Machine.LoadEnd = benchLoadAvg()
	r.rep.DurationS = time.Since(start).Seconds()
	r.evaluate()
	if len(r.rep.Errors) == 0 {
		r.rep.Errors = nil
		r.rep.ProcessLog = ""
		_ = os.RemoveAll(r.logDir)
		r.logDir = ""
	}
	r.printTable(o.Stdout)
	var errs []error
	if err := r.writeJSON(); err != nil {
		errs = append(errs, err)
	} else {
		fmt.Fprintf(o.Stdout, "\nFigures written to %s\n", o.Out)
	}
	for _, k := range slices.Sorted(maps.Keys(r.rep.Errors)) {
		errs = append(errs, fmt.Errorf("scenario (%s): %s", k, r.rep.Errors[k]))
	}
	if len(errs) > 0 && r.logDir != "" {
		fmt.Fprintf(o.Stderr, "api and worker logs kept in %s\n", r.logDir)
	}
	return r.rep, errors.Join(errs...)
}

// progress prints a progress line. The worker profiler reports from its own
// goroutine, hence the lock.
func (r *benchRunner) progress(format string, args ...any) {
	r.progressMu.Lock()
	defer r.progressMu.Unlock()
	fmt.Fprintf(r.o.Stderr, "bench %s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// setup starts or connects to the servers, migrates, creates the tokens and
// records the machine.
func (r *benchRunner) setup(ctx context.Context) error {
	o := r.o
	r.rep.Machine = benchMachineInfo()
	r.rep.Settings = benchSettings{
		Users: o.Users, GraphUsers: o.GraphUsers, Concurrency: o.Concurrency,
		EnqueueParallelism: intake.Config{}.WithDefaults().EnqueueParallelism,
		OperationPollMs:    int(benchOpPoll / time.Millisecond), InteractivePollMs: int(benchInteractivePoll / time.Millisecond),
		GraphLatencyMs: float64(o.GraphLatency) / float64(time.Millisecond), GraphMaxInFlight: o.GraphMaxInFlight, GraphRate: o.GraphRate,
		Scenarios: o.Only,
	}
	exe := o.Exe
	if exe == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		exe = filepath.Join(filepath.Dir(self), "licenseops")
		if _, err := os.Stat(exe); err != nil {
			return fmt.Errorf("no licenseops binary to run as api and worker next to this one (%w): `make bench` builds both, or pass --exe", err)
		}
	}
	if o.DatabaseURL == "" {
		r.rep.Machine.Postgres = "private (localdb: fsync off, synchronous_commit off)"
	} else {
		r.rep.Machine.Postgres = "DATABASE_URL " + app.RedactURL(o.DatabaseURL)
	}
	if o.RedisURL == "" {
		r.rep.Machine.Redis = "private (localdb: no persistence)"
	} else {
		r.rep.Machine.Redis = "REDIS_URL " + app.RedactURL(o.RedisURL)
	}
	var err error
	if r.logDir, err = os.MkdirTemp("", "licenseops-bench-logs-"); err != nil {
		return err
	}
	r.rep.ProcessLog = r.logDir
	env := benchChildEnv()
	r.rep.Settings.Env = env
	if r.s, err = stack.Start(ctx, stack.Options{
		DatabaseURL: o.DatabaseURL, RedisURL: o.RedisURL, Database: "licenseops_bench",
		Partner: "bench-" + r.runID, Exe: exe, Env: env, LogDir: r.logDir,
		Logf: func(format string, args ...any) { r.progress(format, args...) },
	}); err != nil {
		return err
	}
	if pgVersion, err := r.s.Store.ServerVersion(ctx); err == nil {
		r.rep.Machine.Postgres = "PostgreSQL " + pgVersion + ", " + r.rep.Machine.Postgres
	}
	for i := range 8 {
		tok, err := r.s.CreateToken(ctx, fmt.Sprintf("bench-interactive-%d", i), "helpdesk_agent")
		if err != nil {
			return err
		}
		r.itokens = append(r.itokens, tok)
	}
	if info, err := r.s.Redis.Info(ctx, "server").Result(); err == nil {
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				r.rep.Machine.Redis = "Redis " + v + ", " + r.rep.Machine.Redis
			}
		}
	}
	return nil
}

// benchChildEnv is what the api and worker processes get of this process's
// LICENSEOPS_ settings (tuning such as LICENSEOPS_DB_MAX_CONNS): all but
// what the bench sets itself, the logging and Graph, which only scenario e
// sets.
func benchChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case !strings.HasPrefix(name, "LICENSEOPS_"), name == "LICENSEOPS_ADDR", name == "LICENSEOPS_METRICS_ADDR",
			name == "LICENSEOPS_WORKER_CONCURRENCY", strings.HasPrefix(name, "LICENSEOPS_LOG_"), strings.HasPrefix(name, "LICENSEOPS_GRAPH_"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (r *benchRunner) close() {
	if r.s != nil {
		_ = r.s.Close()
	}
}

// flushRedis empties the Redis database between scenarios (only the
// database of REDIS_URL, never the whole server). No api or worker runs then.
func (r *benchRunner) flushRedis(ctx context.Context) error {
	return r.s.Redis.FlushDB(ctx).Err()
}

// benchMachineInfo describes the machine and the build.
func benchMachineInfo() benchMachine {
	m := benchMachine{
		Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OSArch: runtime.GOOS + "/" + runtime.GOARCH, LoadStart: benchLoadAvg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.MemTotalMiB = kb >> 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				m.GitCommit = s.Value
			case "vcs.modified":
				m.GitDirty = s.Value == "true"
			}
		}
	}
	if m.GitCommit == "" {
		// A test binary, or a build without VCS stamping (GOFLAGS=-buildvcs=false):
		// ask git, in the working directory, else beside the executable (bin/).
		dirs := []string{"."}
		if exe, err := os.Executable(); err == nil {
			dirs = append(dirs, filepath.Dir(exe))
		}
		for _, dir := range dirs {
			out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output() // #nosec G204 -- git, fixed arguments; dir is "." or our executable's folder
			if err != nil {
				continue
			}
			m.GitCommit = strings.TrimSpace(string(out))
			// Read-only: lists tracked files that differ from the commit.
			// #nosec G204 -- git, fixed arguments; dir is "." or our executable's folder
			if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
				m.GitDirty = len(strings.TrimSpace(string(st))) > 0
			}
			break
		}
	}
	return m
}

// evaluate lists the figures against their targets.
func (r *benchRunner) evaluate() {
	rep := r.rep
	var base float64
	if rep.Baseline != nil {
		base = rep.Baseline.ProcessPerS
	}
	add := func(id, figure string, value float64, unit, target string, met bool) {
		rep.Targets = append(rep.Targets, benchTarget{ID: id, Figure: figure, Value: value, Unit: unit, Target: target, Met: met})
	}
	rollout := func(key string, ro *benchRollout, share float64) {
		if ro == nil {
			return
		}
		add(key+".intake", "intake (POST to 202)", ro.IntakeS, "s", "≤ 2 s", ro.IntakeS <= 2)
		if base > 0 {
			ro.RatioToBaseline = ro.UsersPerS / base
			add(key+".ratio", fmt.Sprintf("(%s) ÷ (a)", key), ro.RatioToBaseline, "", fmt.Sprintf("≥ %.2f", share), ro.RatioToBaseline >= share)
		}
		r.rss(key, ro)
	}
	rollout("b", rep.Rollout, 0.5)
	rollout("c", rep.Change, 0.35)
	if d := rep.Interact; d != nil {
		add("d.p99", "interactive p99 (POST to finished)", d.P99Ms/1000, "s", "≤ 1 s", d.P99Ms <= 1000)
	}
	if g := rep.Graph; g != nil {
		add("e.ratio", "Graph users/s ÷ bound", g.RatioToBound, "", "≥ 0.80", g.RatioToBound >= 0.8)
		r.rss("e", &g.benchRollout)
	}
	r.fairTargets()
}

const benchRSSLimitMiB = 256

func (r *benchRunner) rss(key string, ro *benchRollout) {
	add := func(id, figure string, v float64) {
		r.rep.Targets = append(r.rep.Targets, benchTarget{ID: id, Figure: figure, Value: v, Unit: "MiB",
			Target: fmt.Sprintf("≤ %d MiB", benchRSSLimitMiB), Met: v <= benchRSSLimitMiB})
	}
	add(key+".api_rss", "api peak RSS", ro.APIPeakRSSMiB)
	add(key+".worker_rss", "worker peak RSS", ro.WorkerPeakRSSMiB)
}

// printTable prints the one table of the run.
func (r *benchRunner) printTable(w io.Writer) {
	rep := r.rep
	m := rep.Machine
	commit := m.GitCommit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if m.GitDirty {
		commit += " (uncommitted changes)"
	}
	fmt.Fprintf(w, "\nlicenseops bench — %d cores (%s), %d MiB, %s, commit %s\n", m.Cores, m.CPUModel, m.MemTotalMiB, m.GoVersion, benchOr(commit, "unknown"))
	fmt.Fprintf(w, "%s; %s; load average %.2f at start, %.2f at end; %.0fs in all\n\n",
		m.Postgres, m.Redis, m.LoadStart[0], m.LoadEnd[0], rep.DurationS)
	targets := map[string]benchTarget{}
	for _, t := range rep.Targets {
		targets[t.ID] = t
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tTARGET\t")
	row := func(scenario, figure, value, id string) {
		target, result := "", ""
		if t, ok := targets[id]; ok {
			target, result = t.Target, "met"
			if !t.Met {
				result = "NOT met"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", scenario, figure, value, target, result)
	}
	failed := func(key, title string) bool {
		if e, ok := rep.Errors[key]; ok {
			row(title, "FAILED", benchFirstLine(e), "")
			return true
		}
		return false
	}
	sel := func(s string) bool { return slices.Contains(rep.Settings.Scenarios, s) }
	if sel("a") {
		title := fmt.Sprintf("(a) bare asynq, %s no-op tasks", benchInt(rep.Settings.Users))
		if !failed("a", title) && rep.Baseline != nil {
			a := rep.Baseline
			row(title, fmt.Sprintf("enqueue (jobs.Enqueuer, %d in parallel)", a.EnqueueWorker), benchRate(a.EnqueuePerS, "tasks/s"), "")
			row(fmt.Sprintf("    concurrency %d", a.Concurrency), "processing", benchRate(a.ProcessPerS, "tasks/s"), "")
		}
	}
	rollout := func(key, title, sub string, ro *benchRollout) {
		if failed(key, title) || ro == nil {
			return
		}
		row(title, "intake: POST to 202", benchSecs(ro.IntakeS), key+".intake")
		row(sub, "POST to last item recorded", benchSecs(ro.LastItemS), "")
		row("", "end to end", benchRate(ro.UsersPerS, "users/s"), "")
		if _, ok := targets[key+".ratio"]; ok {
			row("", fmt.Sprintf("(%s) ÷ (a)", key), fmt.Sprintf("%.2f", ro.RatioToBaseline), key+".ratio")
		}
		row("", "api peak RSS", fmt.Sprintf("%.0f MiB", ro.APIPeakRSSMiB), key+".api_rss")
		row("", "worker peak RSS", fmt.Sprintf("%.0f MiB", ro.WorkerPeakRSSMiB), key+".worker_rss")
		row("", benchCPUHeader, benchCPURow(ro.CPU), "")
		if ro.Failed > 0 {
			row("", "users failed", benchInt(ro.Failed), "")
		}
	}
	if sel("b") || sel("d") {
		rollout("b", "(b) rollout: assign 1 SKU", fmt.Sprintf("    to %s users", benchInt(rep.Settings.Users)), rep.Rollout)
	}
	if sel("c") {
		rollout("c", "(c) change: assign 2, revoke 2", fmt.Sprintf("    SKUs, %s users", benchInt(rep.Settings.Users)), rep.Change)
	}
	if sel("d") && !failed("b", "(d) interactive") && rep.Interact != nil {
		d := rep.Interact
		row("(d) interactive: 2 users", "p50 POST to finished report", benchMs(d.P50Ms), "")
		row(fmt.Sprintf("    every 1 s during (b), n=%d", d.Operations), "p99 POST to finished report", benchMs(d.P99Ms), "d.p99")
		if d.Failed > 0 || d.RateLimited > 0 {
			row("", "operations failed / requests rate-limited", fmt.Sprintf("%d / %d", d.Failed, d.RateLimited), "")
		}
	}
	if sel("e") {
		title := fmt.Sprintf("(e) Graph simulator, %s users", benchInt(rep.Settings.GraphUsers))
		if !failed("e", title) && rep.Graph != nil {
			g := rep.Graph
			row(title, "end to end", benchRate(g.UsersPerS, "users/s"), "")
			row(fmt.Sprintf("    %.0f ms latency, %d in flight", g.LatencyMs, g.MaxInFlight), "bound = max in flight ÷ latency", benchRate(g.BoundPerS, "users/s"), "")
			row("", "users/s ÷ bound", fmt.Sprintf("%.2f", g.RatioToBound), "e.ratio")
			row("", "api / worker peak RSS", fmt.Sprintf("%.0f / %.0f MiB", g.APIPeakRSSMiB, g.WorkerPeakRSSMiB), "")
			row("", benchCPUHeader, benchCPURow(g.CPU), "")
		}
	}
	if sel("f") && !failed("f", "(f) fairness") {
		r.fairRows(row)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n(a) in the ratios is (a)'s processing rate. \"Last item recorded\" is max(finished_at) of the items in Postgres\n"+
		"(GET /v1/operations/{id}, polled every %d ms, says when pending is 0). CPU is in cores, averaged from POST to the\n"+
		"last item: \"all of bench\" includes its own Postgres and Redis; \"others\" is every other process on the machine\n"+
		"(other engineers' tests), which slows the figures.\n",
		rep.Settings.OperationPollMs)
}

const benchCPUHeader = "CPU: postgres / worker / api / redis / all of bench / others"

func benchCPURow(u benchCPUUsage) string {
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f / %.2f / %.2f", u.PostgresCores, u.WorkerCores, u.APICores, u.RedisCores, u.BenchTreeCores, u.OtherCores)
}

func (r *benchRunner) writeJSON() error {
	b, err := json.MarshalIndent(r.rep, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(r.o.Out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil { // #nosec G301 -- benchmark figures, no secrets; bench-results/ is in the repo
			return err
		}
	}
	return os.WriteFile(r.o.Out, append(b, '\n'), 0o644) // #nosec G306 -- benchmark figures, no secrets; committed to the repo
}

func benchOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func benchFirstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

// benchInt formats n with thousands separators.
func benchInt(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + benchInt(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func benchRate(v float64, unit string) string {
	return benchInt(int(math.Round(v))) + " " + unit
}

func benchSecs(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
}

func benchMs(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

func benchMiB(b int64) float64 { return float64(b) / (1 << 20) }
