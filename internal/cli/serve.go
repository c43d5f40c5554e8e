package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/licenseops/licenseops/internal/app"
)

var serveCommands = []*Command{
	{Name: "migrate", Group: GroupServer, Summary: "apply database migrations (safe to run from several processes)",
		Help: "Creates the database when it does not exist yet, then migrates it to the newest version.\n",
		New:  func() Runner { return &migrateCmd{} }},
	serveCommand(app.ModeAPI, "serve the HTTP API"),
	serveCommand(app.ModeWorker, "process license operations from the queue"),
	serveCommand(app.ModeScheduler, "enqueue the runs of cleanup policies on their schedules (run one or more)"),
	serveCommand(app.ModeAll, "api and worker in one process (small installs)"),
}

func serveCommand(mode app.Mode, summary string) *Command {
	return &Command{
		Name: string(mode), Args: "[flags]", Group: GroupServer, Summary: summary,
		Help: "Runs until SIGINT or SIGTERM, then shuts down in order. Configured by the\n" +
			"environment (DATABASE_URL, REDIS_URL, LICENSEOPS_*); the flags override it.\n",
		New: func() Runner { return &serveCmd{mode: mode} },
	}
}

// serverConfig is the configuration of the commands that open the
// database: the environment, checked before anything runs.
type serverConfig struct {
	cfg app.Config
	err error
}

func (s *serverConfig) load(env *Env) {
	s.cfg, s.err = app.FromEnv(env.Getenv)
}

// serveCmd is `licenseops api|worker|scheduler|all`.
type serveCmd struct {
	mode app.Mode
	serverConfig
}

func (s *serveCmd) Flags(fs *flag.FlagSet, env *Env) {
	s.load(env)
	s.cfg.BindFlags(fs, s.mode)
}

func (s *serveCmd) Validate(args []string) error { return noArgs(args) }

func (s *serveCmd) Run(ctx context.Context, env *Env) error {
	if s.err != nil {
		return s.err
	}
	return app.Run(ctx, s.cfg, s.mode, s.cfg.NewLogger(env.Stderr))
}

// migrateCmd is `licenseops migrate`.
type migrateCmd struct{ serverConfig }

func (m *migrateCmd) Flags(_ *flag.FlagSet, env *Env) { m.load(env) }

func (m *migrateCmd) Validate(args []string) error { return noArgs(args) }

func (m *migrateCmd) Run(ctx context.Context, env *Env) error {
	if m.err != nil {
		return m.err
	}
	version, err := app.Migrate(ctx, m.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "database migrated to version %d\n", version)
	return nil
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
}
