package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/licenseops/licenseops/licensing"
)

const operationUsage = `Usage:
  licenseops operation list --customer C [--page N] [--page-size N]
  licenseops operation show OP
  licenseops operation watch OP [--report FILE.csv]
  licenseops operation report OP [--csv FILE]

list shows a customer's operations, newest first. show prints one operation.
watch follows a running operation (a bar on a terminal, plain progress lines
elsewhere), then prints its outcomes by code; it exits like rollout --wait:
0 every user succeeded, 3 some failed, 1 error, 2 usage, 130 Ctrl-C (the
operation goes on). report prints the confirmation report as a table, or with
--csv writes it as CSV to FILE (- for standard output).
`

// operationCmd is `licenseops operation list|show|watch|report`.
func operationCmd(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		cl := newCLI("operation", operationUsage, stdout, stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, operationUsage)
			return exitOK
		}
		return cl.usageError("give a subcommand: list, show, watch or report")
	}
	sub, args := args[0], args[1:]
	cl := newCLI("operation "+sub, operationUsage, stdout, stderr)
	var conn connFlags
	conn.bind(cl.fs, env)
	switch sub {
	case "list":
		customer := cl.fs.String("customer", "", "customer (tenant) ID (required)")
		page := cl.fs.Int("page", 1, "page number")
		size := cl.fs.Int("page-size", 50, "operations per page (1–500)")
		rest, code, done := cl.parse(args)
		if done {
			return code
		}
		if len(rest) > 0 {
			return cl.usageError("unexpected argument %q", rest[0])
		}
		if *customer == "" {
			return cl.usageError("--customer is required")
		}
		c, err := conn.client()
		if err != nil {
			return cl.usageError("%v", err)
		}
		return listOperations(ctx, cl, c, *customer, *page, *size)
	case "show", "watch", "report":
		reportPath := ""
		lineEvery := cl.fs.Duration("progress-interval", defaultLineEvery, "how often a progress line is printed when stdout is not a terminal (watch)")
		if sub == "watch" {
			cl.fs.StringVar(&reportPath, "report", "", "write the confirmation report to this CSV `file` when it finishes")
		}
		if sub == "report" {
			cl.fs.StringVar(&reportPath, "csv", "", "write the report as CSV to this `file` (- for standard output)")
		}
		rest, code, done := cl.parse(args)
		if done {
			return code
		}
		if len(rest) != 1 {
			return cl.usageError("give one operation ID")
		}
		c, err := conn.client()
		if err != nil {
			return cl.usageError("%v", err)
		}
		opID := rest[0]
		switch sub {
		case "show":
			return showOperation(ctx, cl, c, opID)
		case "watch":
			op, err := watch(ctx, c, opID, stdout, progressOptions{label: "operation", terminal: isTerminal(stdout), lineEvery: *lineEvery})
			if err != nil {
				if ctx.Err() != nil {
					printDetached(stderr, opID)
					return exitDetached
				}
				return cl.fail(err)
			}
			return finishOperation(ctx, c, op, reportPath, stdout, stderr, cl.name)
		default:
			return showReport(ctx, cl, c, opID, reportPath)
		}
	default:
		return cl.usageError("unknown subcommand %q: want list, show, watch or report", sub)
	}
}

func listOperations(ctx context.Context, cl *cli, c *apiClient, cid string, page, size int) int {
	v := url.Values{"page": {strconv.Itoa(page)}, "page_size": {strconv.Itoa(size)}}
	var p operationPage
	if err := c.call(ctx, "GET", customerPath(cid)+"/operations?"+v.Encode(), nil, &p, callOptions{}); err != nil {
		return cl.fail(err)
	}
	tw := newTable(cl.stdout)
	fmt.Fprintln(tw, "ID\tSTATUS\tTOTAL\tSUCCEEDED\tFAILED\tPENDING\tCHANGE\tSOURCE\tCREATED BY\tCREATED")
	for _, op := range p.Operations {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", op.ID, op.Status, op.Total, op.Succeeded, op.Failed, op.Pending,
			dash(opChange(op)), op.Source, dash(op.CreatedBy), op.CreatedAt.UTC().Format(time.RFC3339))
	}
	_ = tw.Flush()
	printPageFooter(cl.stdout, p.Page, p.TotalPages, plural(p.Total, "operation"))
	return exitOK
}

func opChange(op licensing.Operation) string {
	var loc string
	if op.UsageLocation != nil {
		loc = *op.UsageLocation
	}
	return describeChangeShort(op.Assign, op.Revoke, loc)
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

func showOperation(ctx context.Context, cl *cli, c *apiClient, opID string) int {
	var op licensing.Operation
	if err := c.call(ctx, "GET", "/v1/operations/"+url.PathEscape(opID), nil, &op, callOptions{}); err != nil {
		return cl.fail(err)
	}
	tw := newTable(cl.stdout)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("id", op.ID)
	row("customer", op.CustomerID)
	row("status", op.Status)
	row("total", strconv.Itoa(op.Total))
	row("succeeded", strconv.Itoa(op.Succeeded))
	row("failed", strconv.Itoa(op.Failed))
	row("pending", strconv.Itoa(op.Pending))
	row("assign", dash(strings.Join(op.Assign, ", ")))
	row("revoke", dash(strings.Join(op.Revoke, ", ")))
	row("usage location", dash(deref(op.UsageLocation)))
	row("allow partial", strconv.FormatBool(op.AllowPartial))
	row("source", op.Source)
	row("created by", dash(op.CreatedBy))
	row("created at", op.CreatedAt.UTC().Format(time.RFC3339))
	finished := "-"
	if op.FinishedAt != nil {
		finished = op.FinishedAt.UTC().Format(time.RFC3339)
	}
	row("finished at", finished)
	_ = tw.Flush()
	return exitOK
}

// showReport prints an operation's report as a table, or writes it as CSV.
func showReport(ctx context.Context, cl *cli, c *apiClient, opID, csvPath string) int {
	switch csvPath {
	case "-":
		body, err := c.stream(ctx, "/v1/operations/"+url.PathEscape(opID)+"/report", "text/csv")
		if err != nil {
			return cl.fail(err)
		}
		defer body.Close()
		if _, err := io.Copy(cl.stdout, body); err != nil {
			return cl.fail(err)
		}
		return exitOK
	case "":
		o := newOutcomes()
		tw := newTable(cl.stdout)
		fmt.Fprintln(tw, "USER ID\tUSER PRINCIPAL NAME\tSTATUS\tASSIGNED\tREVOKED\tLICENSES NOW\tERROR")
		err := readCSVReport(ctx, c, opID, nil, func(col map[string]int, rec []string) {
			id, upn, status := field(col, rec, "user_id"), field(col, rec, "user_principal_name"), field(col, rec, "status")
			code, msg := field(col, rec, "error_code"), field(col, rec, "error_message")
			o.add(id, upn, status, code, msg)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, dash(upn), status, dash(field(col, rec, "assigned")),
				dash(field(col, rec, "revoked")), dash(field(col, rec, "licenses")), dash(code))
		})
		_ = tw.Flush()
		if err != nil {
			return cl.fail(err)
		}
		fmt.Fprintln(cl.stdout)
		o.print(cl.stdout, "Outcomes")
		return exitOK
	default:
		o, err := collectOutcomes(ctx, c, opID, csvPath)
		if err != nil {
			_ = os.Remove(csvPath)
			return cl.fail(err)
		}
		o.print(cl.stdout, "Outcomes")
		fmt.Fprintf(cl.stdout, "Report written to %s (%d rows).\n", csvPath, o.rows)
		return exitOK
	}
}
