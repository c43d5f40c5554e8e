package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/storage"
)

// errProblemsFound makes `licenseops check` exit non-zero after printing.
var errProblemsFound = errors.New("invariants broken")

// runCheck verifies licenseops' invariants and prints what is broken: for
// operators after an incident, and for the fault tests.
func runCheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	partner := fs.String("partner", "", "partner of --customer")
	customer := fs.String("customer", "", "check only this customer (needs --partner)")
	operation := fs.String("operation", "", "check only this operation")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*customer == "") != (*partner == "") {
		return fmt.Errorf("%w: --customer and --partner go together", errUsage)
	}
	cfg := loadConfig()
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL, MaxOpenConns: 4})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.CheckMigrated(ctx); err != nil {
		return err
	}
	problems, err := app.Check(ctx, store, cfg, *partner, *customer, *operation)
	if err != nil {
		return err
	}
	return reportProblems(os.Stdout, problems)
}

func reportProblems(w io.Writer, problems []storage.Problem) error {
	if len(problems) == 0 {
		fmt.Fprintln(w, "ok: every invariant holds")
		return nil
	}
	fmt.Fprintf(w, "%d problem(s):\n", len(problems))
	for _, p := range problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return errProblemsFound
}
