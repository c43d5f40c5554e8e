package main

import (
	"context"
	"flag"
	"os"

	"github.com/licenseops/licenseops/provider/graphsim"
)

// runGraphsim serves the Graph simulator, for tests, demos and benchmarks
// against a directory that behaves like Microsoft Graph (latency,
// throttling, faults, write quotas) without a real tenant.
func runGraphsim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	seed := fs.String("seed", "", "JSON file with tenants, their app credentials, SKUs and users")
	var cfg graphsim.Config
	cfg.RegisterFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c := loadConfig()
	return graphsim.Run(ctx, *addr, *seed, cfg, c.NewLogger(os.Stderr))
}
