package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/licenseops/licenseops/internal/app"
)

// loadConfig reads the environment. Commands that serve or open the
// database check it first (run), so a bad value never reaches here silently.
func loadConfig() app.Config {
	cfg, _ := app.FromEnv(os.Getenv)
	return cfg
}

func runServe(ctx context.Context, mode app.Mode, args []string) error {
	fs := flag.NewFlagSet(string(mode), flag.ContinueOnError)
	cfg := loadConfig()
	cfg.BindFlags(fs, mode)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return app.Run(ctx, cfg, mode, cfg.NewLogger(os.Stderr))
}

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	cfg := loadConfig()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	version, err := app.Migrate(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "database migrated to version %d\n", version)
	return nil
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errUsage
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
