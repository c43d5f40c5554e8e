package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
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
	problems, err := check(ctx, store, cfg, *partner, *customer, *operation)
	if err != nil {
		return err
	}
	return reportProblems(os.Stdout, problems)
}

// check runs the database invariants and, for customers on an external
// directory this process can reach, compares Postgres with the directory.
func check(ctx context.Context, store *storage.Store, cfg *Config, partnerID, customerID, operationID string) ([]storage.Problem, error) {
	scope := storage.CheckScope{OperationID: operationID}
	var customers []licensing.Customer
	if customerID != "" {
		var pk int64
		if err := store.DB().GetContext(ctx, &pk, `SELECT partner_key FROM partners WHERE id = $1`, partnerID); err != nil {
			return nil, fmt.Errorf("partner %q not found", partnerID)
		}
		c, err := store.GetCustomer(ctx, pk, customerID)
		if err != nil {
			return nil, err
		}
		scope.CustomerKey, customers = c.Key, []licensing.Customer{c}
	}
	problems, err := store.Check(ctx, scope)
	if err != nil {
		return nil, err
	}
	dirs, err := directories(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil || len(dirs) == 0 {
		return problems, err
	}
	if customers == nil {
		var keys []int64
		if err := store.DB().SelectContext(ctx, &keys, `SELECT customer_key FROM customers WHERE directory_kind <> 'local'`); err != nil {
			return nil, err
		}
		for _, k := range keys {
			c, err := store.CustomerByKey(ctx, k)
			if err != nil {
				return nil, err
			}
			customers = append(customers, c)
		}
	}
	for _, c := range customers {
		dir := dirs[c.Directory.Kind]
		if dir == nil {
			continue
		}
		p, err := compareDirectory(ctx, store, dir, c)
		if err != nil {
			return nil, err
		}
		problems = append(problems, p...)
	}
	return problems, nil
}

// compareDirectory reports users whose licenses differ between the
// directory and the mirror in Postgres (users with a change in flight are
// skipped: they differ by design until it is recorded).
func compareDirectory(ctx context.Context, store *storage.Store, dir provider.Directory, c licensing.Customer) ([]storage.Problem, error) {
	mirror := map[string][]string{}
	rows, err := store.DB().QueryContext(ctx, `
		SELECT a.user_id, a.sku_id FROM assignments a JOIN users u ON u.customer_key = a.customer_key AND u.id = a.user_id
		WHERE a.customer_key = $1 AND u.applying_operation IS NULL ORDER BY a.user_id, a.sku_id`, c.Key)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var u, s string
		if err := rows.Scan(&u, &s); err != nil {
			_ = rows.Close()
			return nil, err
		}
		mirror[u] = append(mirror[u], s)
	}
	// A read error ends Next early: the mirror would be incomplete.
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var problems []storage.Problem
	err = dir.ListUsers(ctx, c.Directory.TenantID, func(page []provider.User) error {
		for _, u := range page {
			held := slices.Sorted(slices.Values(u.Licenses))
			if !slices.Equal(held, mirror[u.ID]) && (len(held) > 0 || len(mirror[u.ID]) > 0) && len(problems) < 50 {
				problems = append(problems, storage.Problem{Invariant: "Postgres disagrees with the directory",
					Detail: fmt.Sprintf("%s user %s: directory %v, Postgres %v", c.ID, u.ID, held, mirror[u.ID])})
			}
		}
		return nil
	})
	return problems, err
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
