package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/storage"
)

var checkCommand = &Command{
	Name: "check", Args: "[--partner P --customer C] [--operation OP]", Group: GroupServer,
	Summary: "verify the invariants (seats, finished operations, all-or-nothing, directory mirror)",
	Help: `Verifies licenseops' invariants in the database and, for customers on an
external directory this process can reach, against the directory: for operators
after an incident, and for the fault tests. Exits 1 and lists what is broken.
`,
	New: func() Runner { return &checkCmd{} },
}

// errProblemsFound makes `licenseops check` exit non-zero after printing.
var errProblemsFound = errors.New("invariants broken")

// checkCmd is `licenseops check`.
type checkCmd struct {
	serverConfig
	partner, customer, operation string
}

func (c *checkCmd) Flags(fs *flag.FlagSet, env *Env) {
	c.load(env)
	fs.StringVar(&c.partner, "partner", "", "partner of --customer")
	fs.StringVar(&c.customer, "customer", "", "check only this customer (needs --partner)")
	fs.StringVar(&c.operation, "operation", "", "check only this operation")
}

func (c *checkCmd) Validate(args []string) error {
	if (c.customer == "") != (c.partner == "") {
		return errors.New("--customer and --partner go together")
	}
	return noArgs(args)
}

func (c *checkCmd) Run(ctx context.Context, env *Env) error {
	if c.err != nil {
		return c.err
	}
	store, err := storage.Open(ctx, storage.Config{URL: c.cfg.DatabaseURL, MaxOpenConns: 4})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.CheckMigrated(ctx); err != nil {
		return err
	}
	problems, err := app.Check(ctx, store, c.cfg, c.partner, c.customer, c.operation)
	if err != nil {
		return err
	}
	return reportProblems(env.Stdout, problems)
}

func reportProblems(w io.Writer, problems []storage.Problem) error {
	if len(problems) == 0 {
		fmt.Fprintln(w, "ok: every invariant holds")
		return nil
	}
	fmt.Fprintf(w, "%s:\n", plural(len(problems), "problem"))
	for _, p := range problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return fmt.Errorf("%s: %w", plural(len(problems), "problem"), errProblemsFound)
}
