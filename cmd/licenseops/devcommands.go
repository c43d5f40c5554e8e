package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/cli"
)

// The developer commands (demo, bench, graphsim) live in this package until
// they move to a binary of their own, in their old shape: a function of
// the arguments that parses its own flags and marks usage errors with
// errUsage. devCommands puts them in the command table.
var devCommands = []*cli.Command{
	devCommand("demo", "run a tenant-wide rollout on a demo tenant, end to end", runDemo),
	devCommand("graphsim", "serve a Microsoft Graph simulator: --addr, --seed FILE, --latency, --throttle …", runGraphsim),
	devCommand("bench", "end-to-end benchmark on private Postgres and Redis; prints a table, writes JSON", runBench),
}

// errUsage marks the developer commands' usage errors (exit status 2).
var errUsage = errors.New("usage")

func devCommand(name, summary string, run func(context.Context, []string) error) *cli.Command {
	return &cli.Command{
		Name: name, Args: "[flags]", Summary: summary, Group: cli.GroupDev, RawArgs: true,
		New: func() cli.Runner { return &devRunner{run: run} },
	}
}

// devRunner runs a developer command with its arguments.
type devRunner struct {
	run  func(context.Context, []string) error
	args []string
}

func (d *devRunner) Flags(*flag.FlagSet, *cli.Env) {}

func (d *devRunner) Validate(args []string) error {
	d.args = args
	return nil
}

func (d *devRunner) Run(ctx context.Context, env *cli.Env) error {
	if _, err := app.FromEnv(env.Getenv); err != nil {
		return err
	}
	err := d.run(ctx, d.args)
	if errors.Is(err, errUsage) {
		return &cli.UsageError{Err: errors.New(strings.TrimPrefix(err.Error(), errUsage.Error()+": "))}
	}
	return err
}

// loadConfig reads the environment, checked by devRunner before the
// command runs.
func loadConfig() app.Config {
	cfg, _ := app.FromEnv(os.Getenv)
	return cfg
}

// parseFlags parses a developer command's flags; -h prints them and ends
// the command with flag.ErrHelp (exit status 0).
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Printf("Usage:\n  licenseops %s [flags]\n\nFlags:\n", fs.Name())
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return err
	case err != nil:
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
