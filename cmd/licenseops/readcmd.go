package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
)

const usersUsage = `Usage:
  licenseops users list --customer C [--q TEXT] [--page N] [--page-size N]

Lists a customer's users sorted by display name, with their usage location,
account state and licenses. --q keeps the users whose display name or user
principal name contains TEXT (ignoring case).
`

// usersCmd is `licenseops users list`.
func usersCmd(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "list" {
		cl := newCLI("users", usersUsage, stdout, stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, usersUsage)
			return exitOK
		}
		return cl.usageError("give a subcommand: list")
	}
	cl := newCLI("users list", usersUsage, stdout, stderr)
	var conn connFlags
	conn.bind(cl.fs, env)
	customer := cl.fs.String("customer", "", "customer (tenant) ID (required)")
	q := cl.fs.String("q", "", "only users whose display name or user principal name contains this")
	page := cl.fs.Int("page", 1, "page number")
	size := cl.fs.Int("page-size", 50, "users per page (1–500)")
	rest, code, done := cl.parse(args[1:])
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
	p, err := fetchUsersPage(ctx, c, *customer, *q, *page, *size)
	if err != nil {
		return cl.fail(err)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "ID\tUSER PRINCIPAL NAME\tDISPLAY NAME\tLOCATION\tENABLED\tLICENSES")
	for _, u := range p.Users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.UserPrincipalName, u.DisplayName, dash(deref(u.UsageLocation)),
			yesNo(u.AccountEnabled), dash(strings.Join(u.Licenses, ",")))
	}
	_ = tw.Flush()
	printPageFooter(stdout, p.Page, p.TotalPages, plural(p.Total, "user"))
	return exitOK
}

func printPageFooter(w io.Writer, page, pages int, total string) {
	fmt.Fprintf(w, "page %d of %d (%s)", page, pages, total)
	if page < pages {
		fmt.Fprintf(w, "; next: --page %d", page+1)
	}
	fmt.Fprintln(w)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

const summaryUsage = `Usage:
  licenseops summary --customer C (--csv FILE | --users-file FILE | USER_ID...)

The Manage-licenses view of a selection: for every subscription of the
customer, whether all, some or none of the selected users hold it, and the
seats. --csv and --users-file read users as rollout does (see
licenseops rollout -h).
`

// summaryCmd is `licenseops summary`.
func summaryCmd(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	cl := newCLI("summary", summaryUsage, stdout, stderr)
	var conn connFlags
	conn.bind(cl.fs, env)
	customer := cl.fs.String("customer", "", "customer (tenant) ID (required)")
	csvPath := cl.fs.String("csv", "", "CSV `file` of users")
	usersFile := cl.fs.String("users-file", "", "`file` of user IDs, one per line")
	skipBad := cl.fs.Bool("skip-bad-rows", false, "summarize the good rows even when some rows are bad")
	ids, code, done := cl.parse(args)
	if done {
		return code
	}
	if *customer == "" {
		return cl.usageError("--customer is required")
	}
	if countTrue(*csvPath != "", *usersFile != "", len(ids) > 0) != 1 {
		return cl.usageError("give exactly one of --csv, --users-file and user IDs")
	}
	c, err := conn.client()
	if err != nil {
		return cl.usageError("%v", err)
	}
	in, _, err := readSelection(ctx, c, *customer, *csvPath, *usersFile, false, ids)
	if err != nil {
		return cl.fail(err)
	}
	if in.source != "arguments" || len(in.bad) > 0 || len(in.duplicates) > 0 {
		printInputSummary(stdout, in, 0)
	}
	if !checkProblems(stdout, stderr, in, *skipBad) {
		return exitError
	}
	if len(in.entries) == 0 {
		fmt.Fprintln(stderr, "licenseops summary: no users selected")
		return exitError
	}
	var sum licenseSummary
	if err := c.call(ctx, "POST", customerPath(*customer)+"/license-summary", map[string]any{"user_ids": in.ids()}, &sum, callOptions{}); err != nil {
		return cl.fail(err)
	}
	fmt.Fprintf(stdout, "%d users selected in customer %s.\n", len(sum.Users), *customer)
	tw := newTable(stdout)
	fmt.Fprintln(tw, "SKU\tNAME\tSTATE\tHOLDERS\tTOTAL\tAVAILABLE\tBUY MORE")
	for _, p := range sum.Products {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.SKU, p.Name, p.State,
			strconv.Itoa(len(p.AssignedUserIDs))+"/"+strconv.Itoa(len(sum.Users)), p.Total, p.Available, dash(deref(p.BuyMoreURL)))
	}
	_ = tw.Flush()
	return exitOK
}
