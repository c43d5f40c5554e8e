// Command licenseops-dev holds the developer tools of licenseops, apart from
// the production binary so that it links none of their machinery (private
// servers, the Graph simulator): the demo, the benchmark and the simulator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/bench"
	"github.com/licenseops/licenseops/internal/demo"
	"github.com/licenseops/licenseops/provider/graphsim"
)

const usage = `licenseops-dev runs the developer tools of licenseops.

Usage:
  licenseops-dev <command> [flags]

Commands:
  demo       run a tenant-wide change of licenses on a demo tenant, end to end
             (make demo): --users N, --directory local|graphsim, --out DIR
  bench      end-to-end benchmark, api and workers as processes of the licenseops
             binary, on a durable Postgres unless --fast-unsafe-postgres (make
             bench); prints a table with each target's verdict, writes JSON
  graphsim   serve a Microsoft Graph simulator: --addr, --seed FILE, --latency, --throttle …

demo and bench start private Postgres and Redis unless DATABASE_URL and
REDIS_URL are set; the other LICENSEOPS_ settings configure licenseops as
they do for the licenseops command.
Run "licenseops-dev <command> -h" for the flags of a command.
`

// errUsage is a command line that does not parse: exit status 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app.QuietRedisLogs()
	err := run(ctx, os.Args[1:])
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, bench.ErrUsage):
		if msg := err.Error(); msg != errUsage.Error() && msg != bench.ErrUsage.Error() {
			fmt.Fprintln(os.Stderr, "licenseops-dev:", msg)
		}
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "licenseops-dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	case "demo", "bench", "graphsim":
	default:
		fmt.Fprintf(os.Stderr, "licenseops-dev: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
	cfg, err := app.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	switch cmd {
	case "demo":
		return runDemo(ctx, cfg, rest)
	case "bench":
		o, err := bench.ParseFlags(rest)
		if err != nil {
			return err
		}
		o.DatabaseURL, o.RedisURL = os.Getenv("DATABASE_URL"), os.Getenv("REDIS_URL")
		_, err = bench.Run(ctx, o)
		return err
	default:
		return runGraphsim(ctx, cfg, rest)
	}
}

// runDemo runs the main job end to end on a demo tenant: a tenant-wide
// change through the HTTP API, with its progress and the confirmation report.
func runDemo(ctx context.Context, cfg app.Config, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	o := demo.Options{Stdout: os.Stdout}
	fs.IntVar(&o.Users, "users", 20_000, "users in the demo tenant")
	fs.StringVar(&o.Directory, "directory", "local", "where the licenses live: local (Postgres) or graphsim (a Microsoft Graph simulator at 20 ms latency, with some throttling)")
	fs.StringVar(&o.Out, "out", "", "folder for the report files (default: a new temporary folder)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.Users < 1 {
		return fmt.Errorf("%w: --users must be positive", errUsage)
	}
	if o.Directory != "local" && o.Directory != "graphsim" {
		return fmt.Errorf("%w: --directory must be local or graphsim", errUsage)
	}
	cfg.LogLevel = "warn"
	if cfg.LogFormat == "" {
		cfg.LogFormat = "text"
	}
	o.Config, o.Log = cfg, cfg.NewLogger(os.Stderr)
	o.DatabaseURL, o.RedisURL = os.Getenv("DATABASE_URL"), os.Getenv("REDIS_URL")
	return demo.Run(ctx, o)
}

// runGraphsim serves the Graph simulator, for tests, demos and benchmarks
// against a directory that behaves like Microsoft Graph (latency,
// throttling, faults, write quotas) without a real tenant.
func runGraphsim(ctx context.Context, cfg app.Config, args []string) error {
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	seedFile := fs.String("seed", "", "JSON file with tenants, their app credentials, SKUs and users")
	var gcfg graphsim.Config
	gcfg.RegisterFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return graphsim.Run(ctx, *addr, *seedFile, gcfg, cfg.NewLogger(os.Stderr))
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage // the flag package has said what is wrong
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}
