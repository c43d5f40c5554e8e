// Package cli is the command line of licenseops: every subcommand of the
// licenseops binary, each in one shape (Command and Runner), so that main
// is a few lines and tests run commands in-process exactly as main does.
//
// A command is an entry of the command table (Commands): its name, the
// synopsis of its arguments, a one-line summary for the top-level usage, a
// longer help text, and New, which returns a Runner. Main parses the flags
// that the Runner binds, lets it validate them and the positional
// arguments, runs it, and turns the error it returns into an exit status
// (ExitCode) after printing it, always, on standard error.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/licenseops/licenseops/internal/app"
)

// Env is what a command reads and writes besides its arguments: the
// process's streams and environment. Tests build one of their own.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// IsTerminal reports whether w is a terminal, where progress is a
	// redrawn bar rather than plain lines. Nil: w is an *os.File on a terminal.
	IsTerminal func(w io.Writer) bool
	// PollInterval is how often a watched operation is read (0: 300 ms).
	PollInterval time.Duration
	// StallAfter is how long a watched operation may make no progress
	// before the command warns that no worker may be running (0: 15 s).
	StallAfter time.Duration

	// commands is the table Main dispatched from (for help).
	commands []*Command
}

// Stdio is the Env of the process: its streams and environment.
func Stdio() *Env {
	return &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

func (e *Env) terminal(w io.Writer) bool {
	if e.IsTerminal != nil {
		return e.IsTerminal(w)
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Group is a section of the top-level usage.
type Group int

// The sections of the top-level usage, in order.
const (
	GroupServer Group = iota // serving and operating the database
	GroupClient              // clients of the HTTP API
	GroupHelp                // help itself
)

func (g Group) title() string {
	switch g {
	case GroupClient:
		return "API client commands (LICENSEOPS_URL, default " + defaultAPIURL + ", and LICENSEOPS_TOKEN):"
	case GroupHelp:
		return ""
	}
	return "Commands:"
}

// Command is one entry of the command table.
type Command struct {
	// Name selects the command: one word ("rollout") or a group and a
	// subcommand ("token create").
	Name string
	// Args is the synopsis of what follows the name, for example
	// "--customer C (--csv FILE | --users-file FILE | --all-users)".
	Args string
	// Summary is the command's line in the top-level usage.
	Summary string
	// Help is the text -h shows between the synopsis and the flags.
	Help  string
	Group Group
	// New returns the command's options, fresh for each run.
	New func() Runner
}

// Runner is one run of a command: its options are bound to flags, parsed,
// validated with the positional arguments, then run.
type Runner interface {
	// Flags binds the options to fs; env holds the environment that some
	// defaults come from.
	Flags(fs *flag.FlagSet, env *Env)
	// Validate checks the options and the positional arguments once the
	// flags are parsed. Its errors are usage errors (exit status 2) unless
	// they carry an exit status of their own.
	Validate(args []string) error
	// Run does the work, writing to env's streams. Its error is printed
	// by Main, and its exit status is ExitCode's.
	Run(ctx context.Context, env *Env) error
}

// Commands is the command table: every command of licenseops, in the order
// of the top-level usage, which is generated from it.
func Commands() []*Command {
	var t []*Command
	t = append(t, serveCommands...)
	t = append(t, tokenCommands...)
	t = append(t, checkCommand, rolloutCommand)
	t = append(t, operationCommands...)
	t = append(t, webhookCommands...)
	t = append(t, usersListCommand, summaryCommand, helpCommand)
	return t
}

var helpCommand = &Command{
	Name: "help", Args: "[COMMAND]", Group: GroupHelp,
	Summary: "show the usage of licenseops, or of a command",
	New:     func() Runner { return &helpCmd{} },
}

// Main runs the command that args name with env and returns the exit
// status. Every error is printed on env.Stderr, prefixed with the command's
// name; usage errors are followed by the command's synopsis.
func Main(ctx context.Context, args []string, env *Env) int {
	app.QuietRedisLogs()
	table := Commands()
	env.commands = table
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, topUsage(table))
		return ExitUsage
	}
	cmd, rest, err := lookup(table, args)
	if err != nil {
		return report(env, cmd, "", err)
	}
	return report(env, cmd, cmd.Name, runCommand(ctx, cmd, rest, env))
}

// lookup finds the command args name; rest are its arguments. An unknown
// name, or a group ("token") without a known subcommand, is a UsageError;
// "GROUP -h" is helpShown.
func lookup(table []*Command, args []string) (cmd *Command, rest []string, err error) {
	name := args[0]
	switch name {
	case "-h", "--help":
		name = "help"
	}
	var group []*Command
	for _, c := range table {
		if c.Name == name {
			return c, args[1:], nil
		}
		if strings.HasPrefix(c.Name, name+" ") {
			group = append(group, c)
		}
	}
	if len(group) == 0 {
		return nil, nil, &UsageError{Err: fmt.Errorf("unknown command %q", name), top: true}
	}
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		for _, c := range group {
			if c.Name == name+" "+args[1] {
				return c, args[2:], nil
			}
		}
		return nil, nil, &UsageError{Err: fmt.Errorf("unknown subcommand %q: want %s", args[1], subcommands(group)), group: group}
	}
	if len(args) > 1 && (args[1] == "-h" || args[1] == "--help") {
		return nil, nil, &helpShown{group: group}
	}
	return nil, nil, &UsageError{Err: fmt.Errorf("give a subcommand: %s", subcommands(group)), group: group}
}

// subcommands lists the last words of group's names: "list, show or watch".
func subcommands(group []*Command) string {
	names := make([]string, len(group))
	for i, c := range group {
		names[i] = c.Name[strings.LastIndexByte(c.Name, ' ')+1:]
	}
	return orList(names)
}

// runCommand parses, validates and runs one command.
func runCommand(ctx context.Context, cmd *Command, args []string, env *Env) error {
	r := cmd.New()
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r.Flags(fs, env)
	positional, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(env.Stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return &UsageError{Err: err}
	}
	if err := r.Validate(positional); err != nil {
		if ExitCode(err) == ExitError {
			return &UsageError{Err: err}
		}
		return err
	}
	return r.Run(ctx, env)
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments (so `operation report OP --csv FILE` works) and
// returns the positional arguments; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// synopsis is "licenseops NAME ARGS".
func (c *Command) synopsis() string {
	return strings.TrimSpace("licenseops " + c.Name + " " + c.Args)
}

// printHelp shows a command's synopsis, help and flags.
func printHelp(w io.Writer, cmd *Command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage:\n  %s\n", cmd.synopsis())
	if cmd.Help != "" {
		fmt.Fprintf(w, "\n%s", cmd.Help)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// printGroupHelp shows the synopses of a group's commands.
func printGroupHelp(w io.Writer, group []*Command) {
	fmt.Fprintln(w, "Usage:")
	for _, c := range group {
		fmt.Fprintf(w, "  %s\n", c.synopsis())
	}
	fmt.Fprintln(w)
	printCommandList(w, group)
	group0, _, _ := strings.Cut(group[0].Name, " ")
	fmt.Fprintf(w, "Run 'licenseops %s <subcommand> -h' for its flags.\n", group0)
}

// printCommandList lists commands with their summaries.
func printCommandList(w io.Writer, cmds []*Command) {
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-20s %s\n", c.Name, c.Summary)
	}
}

// topUsage is the top-level usage, listing the commands of the table.
func topUsage(table []*Command) string {
	var b strings.Builder
	b.WriteString("licenseops assigns and revokes software licenses for many users at once.\n\n")
	b.WriteString("Usage:\n  licenseops <command> [flags]\n")
	for _, g := range []Group{GroupServer, GroupClient} {
		var cmds []*Command
		for _, c := range table {
			if c.Group == g {
				cmds = append(cmds, c)
			}
		}
		if len(cmds) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s\n", g.title())
		printCommandList(&b, cmds)
	}
	b.WriteString(`
Exit status: 0 success; 1 error (bad input, API error); 2 usage; 3 (rollout, operation watch)
the operation finished but some users failed; 130 detached from an operation with Ctrl-C.

Configuration (environment):
  DATABASE_URL         Postgres URL (default ` + app.DefaultDatabaseURL + `)
  REDIS_URL            Redis URL (default ` + app.DefaultRedisURL + `); also
                       redis-sentinel://h1:26379,h2:26379/mymaster/0, redis-cluster://h1:6379,h2:6379
  LICENSEOPS_REDIS_SENTINELS and _MASTER, or LICENSEOPS_REDIS_CLUSTER, instead of REDIS_URL;
  LICENSEOPS_REDIS_PASSWORD, _USERNAME, _SENTINEL_PASSWORD, _TLS=true (README: Operations)
Run "licenseops <command> -h" for the flags of a command.
`)
	return b.String()
}

// helpCmd is `licenseops help [COMMAND]`.
type helpCmd struct {
	topic []string
}

func (h *helpCmd) Flags(*flag.FlagSet, *Env) {}

func (h *helpCmd) Validate(args []string) error {
	h.topic = args
	return nil
}

func (h *helpCmd) Run(ctx context.Context, env *Env) error {
	if len(h.topic) == 0 {
		fmt.Fprint(env.Stdout, topUsage(env.commands))
		return nil
	}
	cmd, _, err := lookup(env.commands, h.topic)
	if err != nil {
		var hs *helpShown
		var ue *UsageError
		switch {
		case errors.As(err, &hs):
			printGroupHelp(env.Stdout, hs.group)
			return nil
		case errors.As(err, &ue) && ue.group != nil:
			printGroupHelp(env.Stdout, ue.group)
			return nil
		}
		return err
	}
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	cmd.New().Flags(fs, env)
	printHelp(env.Stdout, cmd, fs)
	return nil
}
