package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

const operationHelp = `list shows a customer's operations, newest first. show prints one operation.
watch follows a running operation (a bar on a terminal, plain progress lines
elsewhere), then prints its outcomes by code; it exits like rollout --wait:
0 every user succeeded, 3 some failed, 1 error, 2 usage, 130 Ctrl-C (the
operation goes on). report prints the confirmation report as a table, or with
--csv writes it as CSV to FILE (- for standard output). undo queues an
operation that gives each user OP changed back what that user had (users
changed again since fail ChangedSince); --wait follows it like watch.
`

var operationCommands = []*Command{
	{
		Name: "operation list", Args: "--customer C [--page N] [--page-size N]", Group: GroupClient,
		Summary: "list a customer's license operations, newest first",
		Help:    operationHelp,
		New:     func() Runner { return &operationListCmd{} },
	},
	{
		Name: "operation show", Args: "OP", Group: GroupClient,
		Summary: "show one license operation",
		Help:    operationHelp,
		New:     func() Runner { return &operationCmd{sub: "show"} },
	},
	{
		Name: "operation watch", Args: "OP [--report FILE.csv]", Group: GroupClient,
		Summary: "follow an operation to its end, then print its outcomes",
		Help:    operationHelp,
		New:     func() Runner { return &operationCmd{sub: "watch"} },
	},
	{
		Name: "operation cancel", Args: "OP", Group: GroupClient,
		Summary: "stop an operation: users not yet changed stay as they are",
		Help: `cancel stops an operation that is scheduled, queued or running. Users it has not
changed yet are not changed (status cancelled in the report) and their seats return;
users it changed already keep the change (undo reverses those). A change in flight to
an external directory completes and is recorded first. Cancelling a cancelled
operation is harmless; a finished one cannot be cancelled (exit status 1, Conflict).
`,
		New: func() Runner { return &operationCmd{sub: "cancel"} },
	},
	{
		Name: "operation report", Args: "OP [--csv FILE]", Group: GroupClient,
		Summary: "print an operation's report, or write it as CSV",
		Help:    operationHelp,
		New:     func() Runner { return &operationCmd{sub: "report"} },
	},
	{
		Name: "operation undo", Args: "OP [--allow-partial] [--wait]", Group: GroupClient,
		Summary: "undo a finished operation: give each user back what it had",
		Help:    operationHelp,
		New:     func() Runner { return &operationUndoCmd{} },
	},
}

// operationUndoCmd is `licenseops operation undo OP`.
type operationUndoCmd struct {
	conn         connFlags
	opID         string
	allowPartial bool
	wait         optionalBool
	lineEvery    time.Duration
}

func (o *operationUndoCmd) Flags(fs *flag.FlagSet, env *Env) {
	o.conn.bind(fs, env)
	fs.BoolVar(&o.allowPartial, "allow-partial", false, "start the undo when seats to give back are short (those users fail CountViolation)")
	fs.Var(&o.wait, "wait", "wait for the undo to finish (default: when stdout is a terminal)")
	fs.DurationVar(&o.lineEvery, "progress-interval", defaultLineEvery, "how often a progress line is printed when stdout is not a terminal")
}

func (o *operationUndoCmd) Validate(args []string) (err error) {
	o.opID, err = oneOperation(args, o.lineEvery, &o.conn)
	return err
}

func (o *operationUndoCmd) Run(ctx context.Context, env *Env) error {
	c := o.conn.client()
	acc, err := c.UndoOperation(ctx, o.opID, client.UndoOptions{AllowPartial: o.allowPartial})
	if err != nil {
		return interrupted(flagWording(err))
	}
	fmt.Fprintf(env.Stdout, "Queued undo %s of operation %s for %s.\n", acc.ID, o.opID, plural(acc.Total, "user"))
	if !o.wait.value(env.terminal(env.Stdout)) {
		fmt.Fprintf(env.Stdout, "Not waiting for it. Watch it with:\n  licenseops operation watch %s\n", acc.ID)
		return nil
	}
	op, err := watch(ctx, env, c, acc.ID, progressOptions{label: "undo", name: "operation undo", lineEvery: o.lineEvery})
	if err != nil {
		return err
	}
	return finishOperation(ctx, c, op, "", env.Stdout)
}

// operationListCmd is `licenseops operation list`.
type operationListCmd struct {
	conn       connFlags
	customer   string
	page, size int
}

func (o *operationListCmd) Flags(fs *flag.FlagSet, env *Env) {
	o.conn.bind(fs, env)
	fs.StringVar(&o.customer, "customer", "", "customer (tenant) ID (required)")
	fs.IntVar(&o.page, "page", 1, "page number")
	fs.IntVar(&o.size, "page-size", 50, "operations per page (1–500)")
}

func (o *operationListCmd) Validate(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	if o.customer == "" {
		return errors.New("--customer is required")
	}
	return o.conn.validate()
}

func (o *operationListCmd) Run(ctx context.Context, env *Env) error {
	p, err := o.conn.client().ListOperations(ctx, o.customer, client.ListOptions{Page: o.page, PageSize: o.size})
	if err != nil {
		return interrupted(err)
	}
	tw := newTable(env.Stdout)
	fmt.Fprintln(tw, "ID\tSTATUS\tTOTAL\tSUCCEEDED\tFAILED\tPENDING\tCHANGE\tSOURCE\tCREATED BY\tCREATED")
	for _, op := range p.Operations {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", op.ID, op.Status, op.Total, op.Succeeded, op.Failed, op.Pending,
			dash(opChange(op)), op.Source, dash(op.CreatedBy), op.CreatedAt.UTC().Format(time.RFC3339))
	}
	_ = tw.Flush()
	printPageFooter(env.Stdout, p.Page, p.TotalPages, plural(p.Total, "operation"))
	return nil
}

// operationCmd is `licenseops operation show|watch|report OP`.
type operationCmd struct {
	sub        string
	conn       connFlags
	opID       string
	reportPath string
	lineEvery  time.Duration
}

func (o *operationCmd) Flags(fs *flag.FlagSet, env *Env) {
	o.conn.bind(fs, env)
	fs.DurationVar(&o.lineEvery, "progress-interval", defaultLineEvery, "how often a progress line is printed when stdout is not a terminal (watch)")
	switch o.sub {
	case "watch":
		fs.StringVar(&o.reportPath, "report", "", "write the confirmation report to this CSV `file` when it finishes")
	case "report":
		fs.StringVar(&o.reportPath, "csv", "", "write the report as CSV to this `file` (- for standard output)")
	}
}

func (o *operationCmd) Validate(args []string) (err error) {
	o.opID, err = oneOperation(args, o.lineEvery, &o.conn)
	return err
}

// oneOperation checks the arguments of a command on one operation: its ID,
// the progress interval and the connection flags; it returns the ID.
func oneOperation(args []string, lineEvery time.Duration, conn *connFlags) (string, error) {
	if len(args) != 1 {
		return "", errors.New("give one operation ID")
	}
	if lineEvery <= 0 {
		return "", errors.New("--progress-interval must be positive")
	}
	return args[0], conn.validate()
}

func (o *operationCmd) Run(ctx context.Context, env *Env) error {
	c := o.conn.client()
	switch o.sub {
	case "show":
		return showOperation(ctx, env.Stdout, c, o.opID)
	case "watch":
		op, err := watch(ctx, env, c, o.opID, progressOptions{label: "operation", name: "operation watch", lineEvery: o.lineEvery})
		if err != nil {
			return err
		}
		return finishOperation(ctx, c, op, o.reportPath, env.Stdout)
	case "cancel":
		return cancelOperation(ctx, env.Stdout, c, o.opID)
	default:
		return showReport(ctx, env.Stdout, c, o.opID, o.reportPath)
	}
}

func opChange(op licensing.Operation) string {
	var loc string
	if op.UsageLocation != nil {
		loc = *op.UsageLocation
	}
	short := describeChangeShort(op.Assign, op.Revoke, loc)
	if len(op.Replace) > 0 {
		short = strings.TrimSpace(short + " " + strings.ReplaceAll(describeReplace(op.Replace), ", ", " "))
	}
	return short
}

func describeChangeShort(assign, revoke []string, loc string) string {
	var parts []string
	for _, s := range assign {
		parts = append(parts, "+"+s)
	}
	for _, s := range revoke {
		parts = append(parts, "-"+s)
	}
	if loc != "" {
		parts = append(parts, "@"+loc)
	}
	return strings.Join(parts, " ")
}

func showOperation(ctx context.Context, w io.Writer, c *client.Client, opID string) error {
	op, err := c.GetOperation(ctx, opID)
	if err != nil {
		return interrupted(err)
	}
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("id", op.ID)
	row("customer", op.CustomerID)
	row("status", op.Status)
	row("total", strconv.Itoa(op.Total))
	row("succeeded", strconv.Itoa(op.Succeeded))
	row("failed", strconv.Itoa(op.Failed))
	row("cancelled", strconv.Itoa(op.Cancelled))
	row("pending", strconv.Itoa(op.Pending))
	row("assign", dash(strings.Join(op.Assign, ", ")))
	row("revoke", dash(strings.Join(op.Revoke, ", ")))
	if len(op.Replace) > 0 {
		row("replace", describeReplace(op.Replace))
	}
	if op.CopyFrom != nil {
		row("copy from", *op.CopyFrom+map[bool]string{true: " (exact)"}[op.Exact])
	}
	if len(op.DisabledPlans) > 0 {
		row("service plans", describePlans(op.DisabledPlans))
	}
	row("usage location", dash(deref(op.UsageLocation)))
	row("allow partial", strconv.FormatBool(op.AllowPartial))
	row("source", op.Source)
	row("undo of", dash(deref(op.UndoOf)))
	row("not before", timeOrDash(op.NotBefore))
	row("created by", dash(op.CreatedBy))
	row("created at", op.CreatedAt.UTC().Format(time.RFC3339))
	row("finished at", timeOrDash(op.FinishedAt))
	return tw.Flush()
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// cancelOperation is `licenseops operation cancel OP`.
func cancelOperation(ctx context.Context, w io.Writer, c *client.Client, opID string) error {
	op, err := c.CancelOperation(ctx, opID)
	if err != nil {
		return interrupted(err)
	}
	if op.FinishedAt == nil {
		fmt.Fprintf(w, "Cancel of operation %s recorded: %d cancelled; %s in flight to the directory finish first. Follow it with:\n  licenseops operation watch %s\n",
			op.ID, op.Cancelled, plural(op.Pending, "user"), op.ID)
		return nil
	}
	fmt.Fprintf(w, "Operation %s cancelled: %d succeeded, %d failed, %d cancelled of %d.\n", op.ID, op.Succeeded, op.Failed, op.Cancelled, op.Total)
	if op.Succeeded > 0 {
		fmt.Fprintf(w, "The %s changed before the cancel keep the change; to reverse it: licenseops operation undo %s\n",
			plural(op.Succeeded, "user"), op.ID)
	}
	return nil
}

// showReport prints an operation's report as a table, or writes it as CSV.
func showReport(ctx context.Context, w io.Writer, c *client.Client, opID, csvPath string) error {
	switch csvPath {
	case "-":
		return interrupted(c.ReportCSV(ctx, opID, w))
	case "":
		o := newOutcomes()
		tw := newTable(w)
		fmt.Fprintln(tw, "USER ID\tUSER PRINCIPAL NAME\tSTATUS\tASSIGNED\tREVOKED\tLICENSES NOW\tERROR")
		err := readCSVReport(ctx, c, opID, nil, func(col map[string]int, rec []string) {
			id, upn, status := field(col, rec, "user_id"), field(col, rec, "user_principal_name"), field(col, rec, "status")
			code, msg := field(col, rec, "error_code"), field(col, rec, "error_message")
			o.add(id, upn, status, code, msg)
			o.addNote(id, upn, field(col, rec, "note"))
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, dash(upn), status, dash(field(col, rec, "assigned")),
				dash(field(col, rec, "revoked")), dash(field(col, rec, "licenses")), dash(code))
		})
		_ = tw.Flush()
		if err != nil {
			return interrupted(err)
		}
		fmt.Fprintln(w)
		o.print(w, "Outcomes")
		return nil
	default:
		o, err := collectOutcomes(ctx, c, opID, csvPath)
		if err != nil {
			_ = os.Remove(csvPath)
			return interrupted(err)
		}
		o.print(w, "Outcomes")
		fmt.Fprintf(w, "Report written to %s (%s).\n", csvPath, plural(o.rows, "row"))
		return nil
	}
}
