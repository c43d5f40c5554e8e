// Command licenseops is the one binary of licenseops: the HTTP API, the
// worker, the scheduler, migrations, tokens, the checker and the clients of
// the API, chosen by subcommand. The commands are in internal/cli; the
// developer tools (demo, bench, graphsim) are cmd/licenseops-dev.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/licenseops/licenseops/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Stdio())
	stop()
	os.Exit(code)
}
