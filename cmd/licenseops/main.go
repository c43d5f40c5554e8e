// Command licenseops is the one binary of licenseops: the HTTP API, the
// worker, migrations, tokens and the API client, chosen by subcommand. The
// developer tools (demo, bench, graphsim) are cmd/licenseops-dev.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/licensing"
)

const usage = `licenseops assigns and revokes software licenses for many users at once.

Usage:
  licenseops <command> [flags]

Commands:
  migrate              apply database migrations (safe to run from several processes)
  api                  serve the HTTP API
  worker               process license operations from the queue
  scheduler            enqueue the runs of cleanup policies on their schedules (run one or more)
  all                  api and worker in one process (small installs)
  token create         create an API token: --partner P --role R [--name N]; prints the token alone
  token list           list tokens [--partner P]
  token revoke ID      revoke a token
  check                verify the invariants (seats, finished operations, all-or-nothing, directory mirror):
                       [--partner P --customer C] [--operation OP]; exits 1 and lists what is broken

API client commands (LICENSEOPS_URL, default http://127.0.0.1:8080, and LICENSEOPS_TOKEN):
  rollout              assign/revoke licenses for the users of a CSV, a file of IDs or the whole
                       customer: --customer C (--csv F | --users-file F | --all-users)
                       [--assign SKU]... [--revoke SKU]... [--dry-run] [--wait] [--report F.csv]
  operation list|show|watch|report   read license operations and their reports
  users list           list a customer's users: --customer C [--q TEXT] [--page N --page-size N]
  summary              which of the selected users hold which licenses, and the seats

Exit status: 0 success; 1 error (bad input, API error); 2 usage; 3 (rollout, operation watch)
the operation finished but some users failed; 130 detached from an operation with Ctrl-C.

Configuration (environment):
  DATABASE_URL         Postgres URL (default postgres://postgres@127.0.0.1:5432/licenseops?sslmode=disable)
  REDIS_URL            Redis URL (default redis://127.0.0.1:6379/0)
Run "licenseops <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app.QuietRedisLogs()
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		var le *licensing.Error
		if errors.As(err, &le) {
			fmt.Fprintln(os.Stderr, "licenseops:", le.Message)
		} else if !errors.Is(err, errUsage) && !errors.As(err, new(exitStatus)) {
			fmt.Fprintln(os.Stderr, "licenseops:", err)
		}
		os.Exit(exitCode(err))
	}
}

var errUsage = errors.New("usage")

func exitCode(err error) int {
	if es, ok := errors.AsType[exitStatus](err); ok { // client commands report their own
		return int(es)
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "rollout", "operation", "users", "summary", "help", "-h", "--help":
		// API clients: the server settings are not theirs to judge.
	default:
		if _, err := app.FromEnv(os.Getenv); err != nil {
			return err
		}
	}
	switch cmd {
	case "migrate":
		return runMigrate(ctx, rest)
	case "api":
		return runServe(ctx, app.ModeAPI, rest)
	case "worker":
		return runServe(ctx, app.ModeWorker, rest)
	case "scheduler":
		return runServe(ctx, app.ModeScheduler, rest)
	case "all":
		return runServe(ctx, app.ModeAll, rest)
	case "token":
		return runToken(ctx, rest)
	case "check":
		return runCheck(ctx, rest)
	case "rollout":
		return runClientCommand(ctx, rolloutCmd, rest)
	case "operation":
		return runClientCommand(ctx, operationCmd, rest)
	case "users":
		return runClientCommand(ctx, usersCmd, rest)
	case "summary":
		return runClientCommand(ctx, summaryCmd, rest)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	default:
		fmt.Fprintf(os.Stderr, "licenseops: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}
