// Package bench is the end-to-end benchmark behind `make bench`
// (`licenseops-dev bench`). It measures, on this machine, against private
// Postgres (durable unless --fast-unsafe-postgres) and Redis (or
// DATABASE_URL / REDIS_URL), the scenarios of benchScenarioList:
//
//	(a) bare asynq: no-op tasks enqueued with jobs.Enqueuer and processed
//	    by a bare asynq server at several concurrencies, the best of which
//	    is the baseline: the ceiling of the queue itself;
//	(b) a tenant-wide assign of one SKU through the HTTP API, with the api
//	    and worker as separate processes of the licenseops binary;
//	(c) the same with four SKUs per user (assign two, revoke two);
//	(d) two-user operations submitted every second while (b) runs;
//	(e) a rollout against the Graph simulator, against the bound that the
//	    per-tenant in-flight limit and the directory's latency set;
//	scale:  (b) with 1, 2 and 3 worker processes;
//	watch:  (b) with 10 clients polling the operation every second, against none;
//	report: the api's memory while 5 clients download a report at once.
//
// It prints one table with the targets and writes the figures as JSON, so
// that two runs can be compared. Every scenario ends with `licenseops
// check`. A target's verdict is "met" or "NOT met" only when the run can
// judge it: durable Postgres, the target's size, and a quiet machine (other
// processes used at most half a core during the measurement); else it says
// why not. Timing never fails the bench: it exits 0 unless something broke
// (a scenario, or an invariant the checker found broken).
package bench

import (
	"context"
	"database/sql"
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
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lib/pq"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/localdb"
	"github.com/licenseops/licenseops/internal/redisconf"
	"github.com/licenseops/licenseops/internal/stack"
)

// ErrUsage wraps the errors of bad flags.
var ErrUsage = errors.New("usage")

// Options are the flags of "licenseops-dev bench" and what a test sets instead of the environment.
type Options struct {
	Users            int
	GraphUsers       int
	Concurrency      int
	Only             []string // scenario keys, in the order of benchScenarioList
	Out              string
	GraphLatency     time.Duration
	GraphMaxInFlight int
	GraphRate        int
	// Profile takes a CPU profile of the (first) worker during each
	// rollout, of Profile's length, written next to Out.
	Profile time.Duration
	// BaselineConcurrency are the concurrencies at which (a) processes
	// its tasks; the best is the baseline.
	BaselineConcurrency []int
	// FastUnsafePostgres starts the private Postgres with fsync,
	// synchronous_commit and full_page_writes off, on a memory file system:
	// faster, not what production runs; its figures are labelled and no
	// timing target is judged on them.
	FastUnsafePostgres bool
	// PostgresDir is the folder for the private Postgres's data (default:
	// the temporary directory, on a disk where fsync means something;
	// with FastUnsafePostgres, /dev/shm when it has room).
	PostgresDir string

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

// benchScenario is one scenario of the bench. A new scenario is a run
// function (with its report field), its targets and its rows of the table,
// and one line in benchScenarioList.
type benchScenario struct {
	// Key selects the scenario with --only; it also keys the report's
	// errors and checks.
	Key string
	// About is its line in the usage.
	About string
	// RunBy is the key of the scenario whose run also runs this one (d
	// runs during b): selecting this one runs that one.
	RunBy string
	// Run measures and records the figures in the report.
	Run func(*benchRunner, context.Context) error
	// Targets adds the figures' targets (may be nil).
	Targets func(*benchRunner)
	// Table prints the scenario's rows.
	Table func(*benchRunner, *benchTable)
}

// benchScenarioList is every scenario, in the order they run and appear in
// the table.
func benchScenarioList() []benchScenario {
	return []benchScenario{
		{Key: "a", About: "bare asynq: N no-op tasks enqueued with the api's parallel enqueuer and processed by\n" +
			"a bare asynq server at each --baseline-concurrency; the best is the baseline of the ratios",
			Run: (*benchRunner).runBaseline, Table: (*benchRunner).tableBaseline},
		{Key: "b", About: "rollout: assign one SKU to N users through the HTTP API; api and worker run as\n" +
			"separate processes of the licenseops binary (--exe)",
			Run: (*benchRunner).runRollout, Targets: (*benchRunner).targetsRollout, Table: (*benchRunner).tableRollout},
		{Key: "d", RunBy: "b", About: "interactive: a two-user operation every second while (b) runs",
			Targets: (*benchRunner).targetsInteractive, Table: (*benchRunner).tableInteractive},
		{Key: "c", About: "change: assign two SKUs and revoke two (that the users hold) for N users",
			Run: (*benchRunner).runChange, Targets: (*benchRunner).targetsChange, Table: (*benchRunner).tableChange},
		{Key: "e", About: "Graph simulator: a rollout to --graph-users users of an msgraph customer",
			Run: (*benchRunner).runGraph, Targets: (*benchRunner).targetsGraph, Table: (*benchRunner).tableGraph},
		{Key: "scale", About: "scale-out: (b) with 1, 2 and 3 worker processes",
			Run: (*benchRunner).runScale, Targets: (*benchRunner).targetsScale, Table: (*benchRunner).tableScale},
		{Key: "watch", About: fmt.Sprintf("watching: (b) with %d clients polling GET /v1/operations/{id} every %s, against none", benchWatchers, benchWatchEvery),
			Run: (*benchRunner).runWatch, Targets: (*benchRunner).targetsWatch, Table: (*benchRunner).tableWatch},
		{Key: "report", About: fmt.Sprintf("report download: the api's peak RSS while %d clients download the report of an\n"+
			"N-user operation at once, as JSON, then as CSV", benchDownloaders),
			Run: (*benchRunner).runReport, Targets: (*benchRunner).targetsReport, Table: (*benchRunner).tableReport},
		{Key: "fair", About: "fairness: customer B's rollout of 1,000 users posted while customer A's of N runs,\n" +
			"and a two-user change of B every second during both",
			Run: (*benchRunner).runFair, Targets: (*benchRunner).targetsFair, Table: (*benchRunner).tableFair},
	}
}

// benchKeys are the keys of benchScenarioList, in order.
func benchKeys() []string {
	var keys []string
	for _, sc := range benchScenarioList() {
		keys = append(keys, sc.Key)
	}
	return keys
}

// benchTargetUsers is the size that the targets of the rollouts are for:
// a run with fewer users shows its figures with the verdict "small run".
const benchTargetUsers = 100_000

const benchUsageHead = `Usage: licenseops-dev bench [flags]

Measures licenseops end to end on this machine and prints one table with the
targets; writes the figures as JSON (--out) so that runs can be compared.
Scenarios (--only):
`

const benchUsageTail = `Uses private Postgres (durable: fsync, synchronous_commit and full_page_writes
on, data on a disk) and Redis unless DATABASE_URL and REDIS_URL are set; the
Redis database is flushed between scenarios. Every scenario ends with
"licenseops check". A target is judged (met / NOT met) only on durable
Postgres, at 100,000 users (--graph-users 20,000 for e), and when other
processes used at most half a core during its measurement ("noisy" else).
Exits 0 unless something broke: a missed target is reported, not a failure.

Flags:
`

// ParseFlags reads the flags of "licenseops-dev bench". Its errors wrap
// ErrUsage.
func ParseFlags(args []string) (*Options, error) {
	o := &Options{Args: args, Stdout: os.Stdout, Stderr: os.Stderr}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsageHead)
		for _, sc := range benchScenarioList() {
			fmt.Fprintf(fs.Output(), "  %-7s %s\n", sc.Key, strings.ReplaceAll(sc.About, "\n", "\n          "))
		}
		fmt.Fprint(fs.Output(), benchUsageTail)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.Users, "users", benchTargetUsers, "users of the rollouts (b, c, scale, watch, report; customer A's in fair), and tasks of the baseline (a)")
	fs.IntVar(&o.GraphUsers, "graph-users", 20_000, "users of the Graph simulator rollout (e)")
	fs.IntVar(&o.Concurrency, "concurrency", defaultConcurrency(), "worker concurrency of the worker processes (default: the worker's, LICENSEOPS_WORKER_CONCURRENCY)")
	baseline := fs.String("baseline-concurrency", "20,50,256", "concurrencies of the bare asynq server in (a), comma-separated; the best is the baseline")
	only := fs.String("only", strings.Join(benchKeys(), ","), "scenarios to run, comma-separated; d runs alongside b, so it runs b too")
	fs.StringVar(&o.Out, "out", "", "JSON file for the figures (default bench-results/bench-<UTC time>.json)")
	fs.DurationVar(&o.GraphLatency, "graph-latency", 20*time.Millisecond, "latency of every simulated Graph call in (e)")
	fs.IntVar(&o.GraphMaxInFlight, "graph-max-in-flight", 32, "LICENSEOPS_GRAPH_MAX_IN_FLIGHT of the worker in (e): Graph calls in flight per tenant")
	fs.IntVar(&o.GraphRate, "graph-rate", 100_000, "LICENSEOPS_GRAPH_RATE of the worker in (e), high enough not to bind")
	fs.DurationVar(&o.Profile, "profile", 0, "take a CPU profile of the worker this long (e.g. 10s) from the start of each rollout; written next to --out (go tool pprof -top FILE)")
	fs.BoolVar(&o.FastUnsafePostgres, "fast-unsafe-postgres", false, "run the private Postgres with fsync, synchronous_commit and full_page_writes off, on /dev/shm: labelled in the table and the JSON, and no timing target is judged")
	fs.StringVar(&o.PostgresDir, "postgres-dir", "", "folder for the private Postgres's data (default: the temporary directory; /dev/shm with --fast-unsafe-postgres)")
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
	for v := range strings.SplitSeq(*baseline, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || c < 1 {
			return nil, fmt.Errorf("%w: --baseline-concurrency takes positive numbers, not %q", ErrUsage, v)
		}
		if !slices.Contains(o.BaselineConcurrency, c) {
			o.BaselineConcurrency = append(o.BaselineConcurrency, c)
		}
	}
	keys := benchKeys()
	var picked []string
	for s := range strings.SplitSeq(*only, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if !slices.Contains(keys, s) {
			return nil, fmt.Errorf("%w: --only takes scenarios among %s, not %q", ErrUsage, strings.Join(keys, ","), s)
		}
		picked = append(picked, s)
	}
	for _, k := range keys {
		if slices.Contains(picked, k) {
			o.Only = append(o.Only, k)
		}
	}
	return o, nil
}

// defaultConcurrency is the worker's concurrency as the environment sets it.
func defaultConcurrency() int {
	cfg, _ := app.FromEnv(os.Getenv) // licenseops-dev checks the environment first
	return cfg.Worker.Concurrency
}

// Report is the JSON the bench writes. Durations are in seconds (_s)
// or milliseconds (_ms), rates per second, memory in MiB, CPU in cores.
type Report struct {
	Schema     int                    `json:"schema"`
	StartedAt  time.Time              `json:"started_at"`
	DurationS  float64                `json:"duration_s"`
	Args       []string               `json:"args"`
	Machine    benchMachine           `json:"machine"`
	Settings   benchSettings          `json:"settings"`
	Baseline   *benchBaseline         `json:"baseline,omitempty"`
	Rollout    *benchRollout          `json:"rollout,omitempty"`
	Change     *benchRollout          `json:"change,omitempty"`
	Interact   *benchInteractive      `json:"interactive,omitempty"`
	Graph      *benchGraph            `json:"graph,omitempty"`
	Scale      *benchScale            `json:"scale,omitempty"`
	Watch      *benchWatch            `json:"watch,omitempty"`
	Download   *benchDownload         `json:"report_download,omitempty"`
	Fair       *benchFair             `json:"fairness,omitempty"`
	Checks     map[string]*benchCheck `json:"checks,omitempty"` // by scenario
	Targets    []benchTarget          `json:"targets"`
	Errors     map[string]string      `json:"errors,omitempty"`
	ProcessLog string                 `json:"process_logs,omitempty"`
}

// benchSchema is the version of Report: 2 added the Postgres durability,
// the baseline's runs, noise, verdicts, checks and the scale, watch and
// report scenarios.
const benchSchema = 2

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
	BaselineConc       []int    `json:"baseline_concurrency"`
	EnqueueParallelism int      `json:"enqueue_parallelism"`
	OperationPollMs    int      `json:"operation_poll_ms"`
	InteractivePollMs  int      `json:"interactive_poll_ms"`
	GraphLatencyMs     float64  `json:"graph_latency_ms"`
	GraphMaxInFlight   int      `json:"graph_max_in_flight"`
	GraphRate          int      `json:"graph_rate"`
	Scenarios          []string `json:"scenarios"`
	// Postgres is how durable the measured Postgres is.
	Postgres benchPostgres `json:"postgres"`
	// NoisyCores is the CPU of other processes above which a measurement
	// is noisy.
	NoisyCores float64 `json:"noisy_cores"`
	// Env are the LICENSEOPS_ variables inherited by the api and worker
	// processes (tuning such as LICENSEOPS_DB_MAX_CONNS).
	Env []string `json:"env,omitempty"`
}

// benchPostgres is the durability of the measured Postgres, as it says
// itself (SHOW) and from the file system of its data directory.
type benchPostgres struct {
	// Mode is "durable", "fast-unsafe" (--fast-unsafe-postgres) or
	// "not durable" (a DATABASE_URL or data directory that is not).
	Mode              string `json:"mode"`
	Durable           bool   `json:"durable"`
	FastUnsafeFlag    bool   `json:"fast_unsafe_flag"`
	Private           bool   `json:"private"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	FullPageWrites    string `json:"full_page_writes"`
	DataFS            string `json:"data_fs,omitempty"` // the data directory's file system, when it can be seen
}

// Label is the durability as the table shows it.
func (p benchPostgres) Label() string {
	settings := fmt.Sprintf("fsync %s, synchronous_commit %s, full_page_writes %s", benchOr(p.Fsync, "?"), benchOr(p.SynchronousCommit, "?"), benchOr(p.FullPageWrites, "?"))
	if p.DataFS != "" {
		settings += ", data on " + p.DataFS
	}
	switch p.Mode {
	case "durable":
		return "durable (" + settings + ")"
	case "fast-unsafe":
		return "FAST-UNSAFE (" + settings + ")"
	default:
		return "NOT DURABLE (" + settings + ")"
	}
}

type benchBaseline struct {
	Tasks int `json:"tasks"`
	// The best run's figures: the baseline of the ratios.
	EnqueueS      float64 `json:"enqueue_s"`
	EnqueuePerS   float64 `json:"enqueue_per_s"`
	ProcessS      float64 `json:"process_s"`
	ProcessPerS   float64 `json:"process_per_s"`
	Concurrency   int     `json:"concurrency"`
	EnqueueWorker int     `json:"enqueue_parallelism"`
	// Runs are the measurements at each concurrency, in order.
	Runs []benchBaselineRun `json:"runs"`
	// NoiseCores is the most CPU that other processes used in a run: a
	// noisy run may understate its concurrency, and so the baseline.
	NoiseCores float64 `json:"noise_cores"`
}

type benchBaselineRun struct {
	Concurrency int           `json:"concurrency"`
	EnqueueS    float64       `json:"enqueue_s"`
	EnqueuePerS float64       `json:"enqueue_per_s"`
	ProcessS    float64       `json:"process_s"`
	ProcessPerS float64       `json:"process_per_s"`
	CPU         benchCPUUsage `json:"cpu"` // while processing
}

type benchRollout struct {
	Users   int      `json:"users"`
	Workers int      `json:"workers"`
	Assign  []string `json:"assign"`
	Revoke  []string `json:"revoke,omitempty"`
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
	CompletedS       float64 `json:"completed_s"`
	UsersPerS        float64 `json:"users_per_s"` // users / last_item_s
	RatioToBaseline  float64 `json:"ratio_to_baseline,omitempty"`
	Succeeded        int     `json:"succeeded"`
	Failed           int     `json:"failed"`
	APIPeakRSSMiB    float64 `json:"api_peak_rss_mib"`
	WorkerPeakRSSMiB float64 `json:"worker_peak_rss_mib"` // the largest of the workers
	// CPU is from POST to pending == 0, IntakeCPU from POST to 202.
	CPU       benchCPUUsage `json:"cpu"`
	IntakeCPU benchCPUUsage `json:"intake_cpu"`
	SeedS     float64       `json:"seed_s"`
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

// benchCheck is what `licenseops check` said after a scenario, for the
// customers the scenario made.
type benchCheck struct {
	Customers []string `json:"customers"`
	Clean     bool     `json:"clean"`
	Problems  int      `json:"problems"`
	Seconds   float64  `json:"seconds"`
	Output    string   `json:"output,omitempty"` // when not clean
}

// benchTarget is one figure against its target.
type benchTarget struct {
	ID     string  `json:"id"`
	Figure string  `json:"figure"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target"`
	// Within says whether the value is within the target; Met whether the
	// target is met: within it, and judged (Verdict "met").
	Within  bool   `json:"within"`
	Met     bool   `json:"met"`
	Verdict string `json:"verdict"`
	// NoiseCores is the most CPU that other processes (and the
	// hypervisor) took during the measurements behind the figure; -1 for
	// figures that CPU does not change (memory, the checker).
	NoiseCores float64 `json:"noise_cores"`
}

// The verdicts of a target.
const (
	verdictMet        = "met"
	verdictNotMet     = "NOT met"
	verdictNoisy      = "noisy"
	verdictSmall      = "small run"
	verdictNotDurable = "not durable"
)

// benchJudge says how a target is judged.
type benchJudge struct {
	// AtScale says the run has the size the target is for.
	AtScale bool
	// Timing says the figure is a time or a rate: the durability of
	// Postgres and the noise matter.
	Timing bool
	// Noise is the most CPU other processes took during the measurements
	// behind a timing figure, in cores.
	Noise float64
}

// addTarget judges value against its target and adds it to the report.
func (r *benchRunner) addTarget(id, figure string, value float64, unit, target string, within bool, j benchJudge) {
	t := benchTarget{ID: id, Figure: figure, Value: value, Unit: unit, Target: target, Within: within, NoiseCores: -1}
	if j.Timing {
		t.NoiseCores = j.Noise
	}
	switch {
	case j.Timing && !r.rep.Settings.Postgres.Durable:
		t.Verdict = verdictNotDurable
	case !j.AtScale:
		t.Verdict = verdictSmall
	case j.Timing && j.Noise > benchNoisyCores:
		t.Verdict = verdictNoisy
	case within:
		t.Verdict = verdictMet
	default:
		t.Verdict = verdictNotMet
	}
	t.Met = t.Verdict == verdictMet
	r.rep.Targets = append(r.rep.Targets, t)
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
	r.rep = &Report{Schema: benchSchema, StartedAt: start.UTC(), Args: o.Args, Errors: map[string]string{}, Checks: map[string]*benchCheck{}}
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
	for _, sc := range benchScenarioList() {
		if sc.Run != nil && sc.RunBy == "" && r.selected(sc.Key) {
			run(sc.Key, func(ctx context.Context) error { return sc.Run(r, ctx) })
		}
	}
	r.rep.Machine.LoadEnd = benchLoadAvg()
	r.rep.DurationS = time.Since(start).Seconds()
	r.evaluate()
	if len(r.rep.Checks) == 0 {
		r.rep.Checks = nil
	}
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

// selected says whether the scenario key runs: --only names it, or a
// scenario that runs within it.
func (r *benchRunner) selected(key string) bool {
	if slices.Contains(r.o.Only, key) {
		return true
	}
	for _, sc := range benchScenarioList() {
		if sc.RunBy == key && slices.Contains(r.o.Only, sc.Key) {
			return true
		}
	}
	return false
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
		Users: o.Users, GraphUsers: o.GraphUsers, Concurrency: o.Concurrency, BaselineConc: o.BaselineConcurrency,
		EnqueueParallelism: intake.Config{}.WithDefaults().EnqueueParallelism,
		OperationPollMs:    int(benchOpPoll / time.Millisecond), InteractivePollMs: int(benchInteractivePoll / time.Millisecond),
		GraphLatencyMs: float64(o.GraphLatency) / float64(time.Millisecond), GraphMaxInFlight: o.GraphMaxInFlight, GraphRate: o.GraphRate,
		Scenarios: o.Only, NoisyCores: benchNoisyCores,
	}
	if o.FastUnsafePostgres && o.DatabaseURL != "" {
		return fmt.Errorf("%w: --fast-unsafe-postgres and --postgres-dir are for the private Postgres, not DATABASE_URL", ErrUsage)
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
	var servers localdb.Options
	if o.DatabaseURL == "" {
		r.rep.Machine.Postgres = "private"
		servers.Dir = o.PostgresDir
		if o.FastUnsafePostgres {
			servers.PostgresArgs = []string{"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"}
		} else {
			// Postgres's defaults, over localdb's settings for throwaway
			// test data (the last -c of a setting wins), on a disk:
			// localdb's default folder is /dev/shm, where fsync reaches none.
			servers.PostgresArgs = []string{"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on"}
			if servers.Dir == "" {
				servers.Dir = os.TempDir()
			}
		}
	} else {
		if o.PostgresDir != "" {
			return fmt.Errorf("%w: --fast-unsafe-postgres and --postgres-dir are for the private Postgres, not DATABASE_URL", ErrUsage)
		}
		r.rep.Machine.Postgres = "DATABASE_URL " + app.RedactURL(o.DatabaseURL)
	}
	if o.RedisURL == "" {
		r.rep.Machine.Redis = "private (localdb: no persistence)"
	} else {
		r.rep.Machine.Redis = "REDIS_URL " + redisconf.Redact(o.RedisURL)
	}
	var err error
	if r.logDir, err = os.MkdirTemp("", "licenseops-bench-logs-"); err != nil {
		return err
	}
	r.rep.ProcessLog = r.logDir
	env := benchChildEnv()
	r.rep.Settings.Env = env
	if r.s, err = stack.Start(ctx, stack.Options{
		DatabaseURL: o.DatabaseURL, RedisURL: o.RedisURL, Database: "licenseops_bench", Servers: servers,
		Partner: "bench-" + r.runID, Exe: exe, Env: env, LogDir: r.logDir,
		Logf: func(format string, args ...any) { r.progress(format, args...) },
	}); err != nil {
		return err
	}
	if pgVersion, err := r.s.Store.ServerVersion(ctx); err == nil {
		r.rep.Machine.Postgres = "PostgreSQL " + pgVersion + ", " + r.rep.Machine.Postgres
	}
	if r.rep.Settings.Postgres, err = benchDurability(ctx, r.s.DatabaseURL, o.FastUnsafePostgres, o.DatabaseURL == ""); err != nil {
		return err
	}
	r.progress("Postgres: %s", r.rep.Settings.Postgres.Label())
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

// benchDurability asks the Postgres at dbURL how durable it is and, when it
// is the bench's private one, on which file system its data lies (fsync on
// tmpfs reaches no disk).
func benchDurability(ctx context.Context, dbURL string, fastUnsafe, private bool) (benchPostgres, error) {
	p := benchPostgres{FastUnsafeFlag: fastUnsafe, Private: private}
	conn, err := pq.NewConnector(dbURL)
	if err != nil {
		return p, err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')").
		Scan(&p.Fsync, &p.SynchronousCommit, &p.FullPageWrites); err != nil {
		return p, fmt.Errorf("read Postgres's durability settings: %w", err)
	}
	if private {
		// Superusers (the private server's postgres) may read it.
		var dataDir sql.NullString
		if db.QueryRowContext(ctx, "SELECT current_setting('data_directory', true)").Scan(&dataDir) == nil && dataDir.Valid {
			p.DataFS = benchFSType(dataDir.String)
		}
	}
	p.Durable = p.Fsync == "on" && p.SynchronousCommit != "off" && p.FullPageWrites == "on" && p.DataFS != "tmpfs"
	switch {
	case fastUnsafe:
		p.Mode = "fast-unsafe"
	case p.Durable:
		p.Mode = "durable"
	default:
		p.Mode = "not durable"
	}
	return p, nil
}

// benchFSType names the file system that holds path ("" when unknown).
func benchFSType(path string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(path, &st) != nil {
		return ""
	}
	switch uint64(st.Type) { // #nosec G115 -- a magic number, compared only
	case 0x01021994:
		return "tmpfs"
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794C7630:
		return "overlayfs"
	case 0x2FC12FC1:
		return "zfs"
	default:
		return fmt.Sprintf("file system 0x%x", uint64(st.Type)) // #nosec G115 -- printed only
	}
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

// evaluate lists the figures against their targets: each scenario's, then
// the checker's after it.
func (r *benchRunner) evaluate() {
	for _, sc := range benchScenarioList() {
		if !r.selected(sc.Key) {
			continue
		}
		if sc.Targets != nil {
			sc.Targets(r)
		}
		if c := r.rep.Checks[sc.Key]; c != nil {
			r.addTarget(sc.Key+".check", "licenseops check", float64(c.Problems), "problems", "clean", c.Clean, benchJudge{AtScale: true})
		}
	}
}

// ratioNoise is the noise behind a ratio to the baseline: the most of
// the rollout's and the baseline's runs.
func (r *benchRunner) ratioNoise(ro *benchRollout) float64 {
	n := ro.CPU.Noise()
	if b := r.rep.Baseline; b != nil {
		n = max(n, b.NoiseCores)
	}
	return n
}

// rolloutTargets are the targets of a rollout: intake, its ratio to the
// baseline (share at least), and memory.
func (r *benchRunner) rolloutTargets(key string, ro *benchRollout, share float64) {
	if ro == nil {
		return
	}
	atScale := ro.Users >= benchTargetUsers
	r.addTarget(key+".intake", "intake (POST to 202)", ro.IntakeS, "s", fmt.Sprintf("≤ %g s", benchIntakeLimitS), ro.IntakeS <= benchIntakeLimitS,
		benchJudge{AtScale: atScale, Timing: true, Noise: ro.IntakeCPU.Noise()})
	if b := r.rep.Baseline; b != nil && b.ProcessPerS > 0 {
		ro.RatioToBaseline = ro.UsersPerS / b.ProcessPerS
		r.addTarget(key+".ratio", fmt.Sprintf("(%s) ÷ (a)", key), ro.RatioToBaseline, "", fmt.Sprintf("≥ %.2f", share), ro.RatioToBaseline >= share,
			benchJudge{AtScale: atScale, Timing: true, Noise: r.ratioNoise(ro)})
	}
	r.rss(key, ro, atScale)
}

// The targets of issue 16 (see the README's Performance).
const (
	benchRolloutShare = 1.0 // (b) ÷ (a)
	benchChangeShare  = 0.6 // (c) ÷ (a)
	benchIntakeLimitS = 1.0
	benchRSSLimitMiB  = 256
)

func (r *benchRunner) targetsRollout() { r.rolloutTargets("b", r.rep.Rollout, benchRolloutShare) }
func (r *benchRunner) targetsChange()  { r.rolloutTargets("c", r.rep.Change, benchChangeShare) }

func (r *benchRunner) targetsInteractive() {
	d := r.rep.Interact
	if d == nil {
		return
	}
	j := benchJudge{AtScale: r.o.Users >= benchTargetUsers, Timing: true}
	if ro := r.rep.Rollout; ro != nil {
		j.Noise = ro.CPU.Noise()
	}
	r.addTarget("d.p99", "interactive p99 (POST to finished)", d.P99Ms/1000, "s", "≤ 1 s", d.P99Ms <= 1000, j)
}

func (r *benchRunner) targetsGraph() {
	g := r.rep.Graph
	if g == nil {
		return
	}
	atScale := g.Users >= 20_000
	r.addTarget("e.ratio", "Graph users/s ÷ bound", g.RatioToBound, "", "≥ 0.80", g.RatioToBound >= 0.8, benchJudge{AtScale: atScale, Timing: true, Noise: g.CPU.Noise()})
	r.rss("e", &g.benchRollout, atScale)
}

func (r *benchRunner) rss(key string, ro *benchRollout, atScale bool) {
	add := func(id, figure string, v float64) {
		r.addTarget(id, figure, v, "MiB", fmt.Sprintf("≤ %d MiB", benchRSSLimitMiB), v <= benchRSSLimitMiB, benchJudge{AtScale: atScale})
	}
	add(key+".api_rss", "api peak RSS", ro.APIPeakRSSMiB)
	add(key+".worker_rss", "worker peak RSS", ro.WorkerPeakRSSMiB)
}

// benchTable is the table being printed: a scenario's Table adds its rows.
type benchTable struct {
	rep     *Report
	tw      *tabwriter.Writer
	targets map[string]benchTarget
}

// row prints a row; id names its target, if any, whose target and verdict
// it shows.
func (t *benchTable) row(scenario, figure, value, id string) {
	target, verdict := "", ""
	if tg, ok := t.targets[id]; ok {
		target, verdict = tg.Target, tg.Verdict
		switch {
		case tg.Verdict == verdictNoisy:
			verdict = fmt.Sprintf("noisy (%.2f cores elsewhere)", tg.NoiseCores)
		case !tg.Met && tg.Verdict != verdictNotMet && tg.NoiseCores > benchNoisyCores:
			verdict += ", noisy" // and not judged for another reason too
		}
	}
	fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\n", scenario, figure, value, target, verdict)
}

// failed prints the scenario's error in place of its figures, if it has one.
func (t *benchTable) failed(key, title string) bool {
	if e, ok := t.rep.Errors[key]; ok {
		t.row(title, "FAILED", benchFirstLine(e), "")
		return true
	}
	return false
}

// cpu prints where the CPU went during a measurement.
func (t *benchTable) cpu(u benchCPUUsage) {
	t.row("", benchCPUHeader, benchCPURow(u), "")
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
	pg := rep.Settings.Postgres
	fmt.Fprintf(w, "\nlicenseops bench — %d cores (%s), %d MiB, %s, commit %s\n", m.Cores, m.CPUModel, m.MemTotalMiB, m.GoVersion, benchOr(commit, "unknown"))
	fmt.Fprintf(w, "%s; %s; load average %.2f at start, %.2f at end; %.0fs in all\n", m.Postgres, m.Redis, m.LoadStart[0], m.LoadEnd[0], rep.DurationS)
	fmt.Fprintf(w, "Postgres %s\n", pg.Label())
	if !pg.Durable {
		fmt.Fprintf(w, "*** Postgres is not durable: these figures are not the headline, and no timing target is judged on them. ***\n")
	}
	fmt.Fprintln(w)
	t := &benchTable{rep: rep, tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0), targets: map[string]benchTarget{}}
	for _, tg := range rep.Targets {
		t.targets[tg.ID] = tg
	}
	fmt.Fprintln(t.tw, "SCENARIO\tFIGURE\tVALUE\tTARGET\tVERDICT")
	for _, sc := range benchScenarioList() {
		if !r.selected(sc.Key) {
			continue
		}
		sc.Table(r, t)
		if c := rep.Checks[sc.Key]; c != nil {
			value := "clean"
			if !c.Clean {
				value = fmt.Sprintf("%d problems", c.Problems)
			}
			t.row("", fmt.Sprintf("licenseops check (%s, %.1f s)", benchPlural(len(c.Customers), "customer"), c.Seconds), value, sc.Key+".check")
		}
	}
	_ = t.tw.Flush()
	fmt.Fprintf(w, "\nThe ratios divide users/s by (a)'s best processing rate, in tasks/s. \"Last item recorded\" is max(finished_at)\n"+
		"of the items in Postgres (GET /v1/operations/{id}, polled every %d ms, says when pending is 0). CPU is in cores,\n"+
		"averaged from POST to the last item: \"all of bench\" includes its own Postgres and Redis; \"others\" is every other\n"+
		"process on the machine, with the hypervisor's steal. Verdicts: \"met\" or \"NOT met\" only for a durable Postgres, at\n"+
		"the target's size, when the others used at most %.1f core during the measurement; else \"not durable\", \"small run\"\n"+
		"or \"noisy\" (the figure is shown, not judged).\n",
		rep.Settings.OperationPollMs, benchNoisyCores)
}

func (r *benchRunner) tableBaseline(t *benchTable) {
	rep := r.rep
	title := fmt.Sprintf("(a) bare asynq, %s no-op tasks", benchInt(rep.Settings.Users))
	if t.failed("a", title) || rep.Baseline == nil {
		return
	}
	a := rep.Baseline
	t.row(title, fmt.Sprintf("enqueue (jobs.Enqueuer, %d in parallel)", a.EnqueueWorker), benchRate(a.EnqueuePerS, "tasks/s"), "")
	for i, run := range a.Runs {
		scenario, best := "", ""
		if i == 0 {
			scenario = "    best of concurrencies"
		}
		if run.Concurrency == a.Concurrency {
			best = "  ← best: the baseline"
		}
		t.row(scenario, fmt.Sprintf("processing at concurrency %d", run.Concurrency), benchRate(run.ProcessPerS, "tasks/s")+best, "")
	}
	t.row("", "others (most in a run)", fmt.Sprintf("%.2f cores", a.NoiseCores), "")
}

// tableRolloutRows prints a rollout's rows.
func (r *benchRunner) tableRolloutRows(t *benchTable, key, title, sub string, ro *benchRollout) {
	if t.failed(key, title) || ro == nil {
		return
	}
	t.row(title, "intake: POST to 202", benchSecs(ro.IntakeS), key+".intake")
	t.row(sub, "POST to last item recorded", benchSecs(ro.LastItemS), "")
	t.row("", "end to end", benchRate(ro.UsersPerS, "users/s"), "")
	if _, ok := t.targets[key+".ratio"]; ok {
		t.row("", fmt.Sprintf("(%s) ÷ (a)", key), fmt.Sprintf("%.2f", ro.RatioToBaseline), key+".ratio")
	}
	t.row("", "api peak RSS", fmt.Sprintf("%.0f MiB", ro.APIPeakRSSMiB), key+".api_rss")
	t.row("", "worker peak RSS", fmt.Sprintf("%.0f MiB", ro.WorkerPeakRSSMiB), key+".worker_rss")
	t.cpu(ro.CPU)
	if ro.Failed > 0 {
		t.row("", "users failed", benchInt(ro.Failed), "")
	}
}

func (r *benchRunner) tableRollout(t *benchTable) {
	r.tableRolloutRows(t, "b", "(b) rollout: assign 1 SKU", fmt.Sprintf("    to %s users", benchInt(r.rep.Settings.Users)), r.rep.Rollout)
}

func (r *benchRunner) tableChange(t *benchTable) {
	r.tableRolloutRows(t, "c", "(c) change: assign 2, revoke 2", fmt.Sprintf("    SKUs, %s users", benchInt(r.rep.Settings.Users)), r.rep.Change)
}

func (r *benchRunner) tableInteractive(t *benchTable) {
	d := r.rep.Interact
	if t.failed("b", "(d) interactive") || d == nil {
		return
	}
	t.row("(d) interactive: 2 users", "p50 POST to finished report", benchMs(d.P50Ms), "")
	t.row(fmt.Sprintf("    every 1 s during (b), n=%d", d.Operations), "p99 POST to finished report", benchMs(d.P99Ms), "d.p99")
	if d.Failed > 0 || d.RateLimited > 0 {
		t.row("", "operations failed / requests rate-limited", fmt.Sprintf("%d / %d", d.Failed, d.RateLimited), "")
	}
}

func (r *benchRunner) tableGraph(t *benchTable) {
	title := fmt.Sprintf("(e) Graph simulator, %s users", benchInt(r.rep.Settings.GraphUsers))
	g := r.rep.Graph
	if t.failed("e", title) || g == nil {
		return
	}
	t.row(title, "end to end", benchRate(g.UsersPerS, "users/s"), "")
	t.row(fmt.Sprintf("    %.0f ms latency, %d in flight", g.LatencyMs, g.MaxInFlight), "bound = max in flight ÷ latency", benchRate(g.BoundPerS, "users/s"), "")
	t.row("", "users/s ÷ bound", fmt.Sprintf("%.2f", g.RatioToBound), "e.ratio")
	t.row("", "api peak RSS", fmt.Sprintf("%.0f MiB", g.APIPeakRSSMiB), "e.api_rss")
	t.row("", "worker peak RSS", fmt.Sprintf("%.0f MiB", g.WorkerPeakRSSMiB), "e.worker_rss")
	t.cpu(g.CPU)
}

const benchCPUHeader = "CPU: postgres / worker / api / redis / all of bench / others"

func benchCPURow(u benchCPUUsage) string {
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f / %.2f / %.2f", u.PostgresCores, u.WorkerCores, u.APICores, u.RedisCores, u.BenchTreeCores, u.Noise())
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

// benchPlural is "1 thing" or "n things".
func benchPlural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return benchInt(n) + " " + thing + "s"
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
