package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/licenseops/licenseops/licensing"
)

const rolloutUsage = `Usage:
  licenseops rollout --customer C (--csv FILE | --users-file FILE | --all-users)
                     [--assign SKU]... [--revoke SKU]... [--usage-location CC] [--allow-partial]
                     [--dry-run] [--wait] [--report FILE.csv] [--skip-bad-rows]

Assigns and revokes licenses for many users in one license operation, through
the HTTP API (LICENSEOPS_URL, default ` + defaultAPIURL + `, and LICENSEOPS_TOKEN).

Input:
  --csv FILE         a CSV file with a header row. The user column is the first of
                     id, UserId, ObjectId (user IDs) or UserPrincipalName,
                     user_principal_name, email (looked up through the API, ignoring
                     case); header names ignore case, spaces, '_' and '-'. A byte order
                     mark, quoted fields and ';' or tab separators are fine.
  --users-file FILE  one user ID per line; blank lines and lines starting with # are skipped.
  --all-users        every user of the customer.
  FILE may be - for standard input. A user named twice counts once (the repeats are
  listed). Bad rows (empty ID, invalid ID, unknown user principal name, unknown user)
  are listed with their line numbers and nothing is sent, unless --skip-bad-rows.

Progress:
  --wait waits for the operation to finish; it is the default when standard output is
  a terminal, where progress is a bar (done/total, rate, time left, failures so far).
  Elsewhere progress is a plain line every --progress-interval:
    progress: 1200/5000 done, 3 failed, 950 users/s
  Without --wait on a non-terminal, the command prints the operation ID and returns once
  the operation is queued. --report implies --wait. Ctrl-C while waiting detaches and
  cancels nothing; reattach with: licenseops operation watch OP

Dry run:
  --dry-run queues nothing. It shows per SKU how many selected users would newly get it
  or lose it, seats needed against available (with the buy-more link when short), and
  which users would fail which product rule (counted by code, first users of each).

Exit status:
  0    every user succeeded (dry run: every user would succeed); or queued, when not waiting
  1    error: bad input, bad rows, an API error (shown with its code and message); nothing
       was queued unless the error came after "Queued operation"
  2    usage: wrong flags or arguments
  3    the operation finished but some users failed (dry run: some would fail, or seats are
       short); see the outcomes and the report
  130  interrupted: Ctrl-C while waiting; the operation goes on
`

// rolloutCmd is `licenseops rollout`. It returns the exit status.
func rolloutCmd(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	cl := newCLI("rollout", rolloutUsage, stdout, stderr)
	fs := cl.fs
	var conn connFlags
	conn.bind(fs, env)
	var assign, revoke stringList
	customer := fs.String("customer", "", "customer (tenant) ID (required)")
	csvPath := fs.String("csv", "", "CSV `file` of users")
	usersFile := fs.String("users-file", "", "`file` of user IDs, one per line")
	allUsers := fs.Bool("all-users", false, "select every user of the customer")
	fs.Var(&assign, "assign", "`SKU` to assign (repeatable)")
	fs.Var(&revoke, "revoke", "`SKU` to revoke (repeatable)")
	location := fs.String("usage-location", "", "set this usage location (ISO 3166-1 alpha-2, e.g. PL) on every user")
	allowPartial := fs.Bool("allow-partial", false, "when seats are short, assign those there are; the users without a seat fail with CountViolation")
	dryRun := fs.Bool("dry-run", false, "show what would change and what would fail; queue nothing")
	wait := fs.Bool("wait", false, "wait for the operation to finish (default: when stdout is a terminal)")
	report := fs.String("report", "", "write the confirmation report to this CSV `file` (implies --wait)")
	skipBad := fs.Bool("skip-bad-rows", false, "send the good rows even when some rows are bad")
	lineEvery := fs.Duration("progress-interval", defaultLineEvery, "how often a progress line is printed when stdout is not a terminal")
	rest, code, done := cl.parse(args)
	if done {
		return code
	}
	if len(rest) > 0 {
		return cl.usageError("unexpected argument %q", rest[0])
	}
	waitSet := false
	fs.Visit(func(f *flag.Flag) { waitSet = waitSet || f.Name == "wait" })
	terminal := isTerminal(stdout)
	if !waitSet {
		*wait = terminal
	}
	if *report != "" {
		*wait = true
	}
	if *customer == "" {
		return cl.usageError("--customer is required")
	}
	if !licensing.ValidID(*customer) {
		return cl.usageError("--customer %q is not a valid ID", *customer)
	}
	if n := countTrue(*csvPath != "", *usersFile != "", *allUsers); n != 1 {
		return cl.usageError("give exactly one of --csv, --users-file and --all-users")
	}
	if len(assign) == 0 && len(revoke) == 0 {
		return cl.usageError("nothing to do: give at least one --assign or --revoke SKU")
	}
	for _, a := range assign {
		for _, r := range revoke {
			if a == r {
				return cl.usageError("SKU %s is both assigned and revoked; choose one", a)
			}
		}
	}
	if *location != "" {
		*location = strings.ToUpper(strings.TrimSpace(*location))
		if !licensing.ValidCountry(*location) {
			return cl.usageError("--usage-location %q is not an ISO 3166-1 alpha-2 country code (for example PL, US, DE)", *location)
		}
	}
	if *lineEvery <= 0 {
		return cl.usageError("--progress-interval must be positive")
	}
	if *report != "" {
		// Found out now, not after the operation ran.
		if st, err := os.Stat(filepath.Dir(*report)); err != nil || !st.IsDir() {
			return cl.usageError("--report %s: the folder %s does not exist", *report, filepath.Dir(*report))
		}
	}
	c, err := conn.client()
	if err != nil {
		return cl.usageError("%v", err)
	}

	// Read, resolve and validate the selection.
	readStart := time.Now()
	in, dir, err := readSelection(ctx, c, *customer, *csvPath, *usersFile, *allUsers, nil)
	if err != nil {
		return cl.fail(err)
	}
	if *dryRun || dir != nil {
		// The dry run needs each user's licenses, location and account
		// state; and with the user list at hand anyway, users that do not
		// exist are found here, with their line numbers, before sending.
		if dir, err = selectionDirectory(ctx, c, *customer, in, dir); err != nil {
			return cl.fail(err)
		}
	}
	readTime := time.Since(readStart)
	printInputSummary(stdout, in, readTime)
	if !checkProblems(stdout, stderr, in, *skipBad) {
		return exitError
	}
	ids := in.ids()
	if len(ids) == 0 {
		fmt.Fprintln(stderr, "licenseops rollout: no users selected; nothing was sent")
		return exitError
	}
	change := licensing.Change{Assign: nonNil(assign), Revoke: nonNil(revoke), UsageLocation: *location}
	if *dryRun {
		return dryRunReport(ctx, cl, c, *customer, in, dir, change, *allowPartial)
	}

	// Send it: one operation, whatever the size. Ctrl-C must not cut the
	// request short, or nobody would know whether the operation exists.
	sendCtx := context.WithoutCancel(ctx)
	sendStart := time.Now()
	acc, err := postOperation(sendCtx, c, *customer, ids, change, *allowPartial)
	if apiCode(err) == string(licensing.CodeUnknownUsers) {
		unknown, uerr := unknownUsers(sendCtx, c, *customer, in, err)
		if uerr != nil {
			return cl.fail(uerr)
		}
		in.drop(unknown, "no such user in customer "+*customer)
		if !checkProblems(stdout, stderr, in, *skipBad) {
			return exitError
		}
		if ids = in.ids(); len(ids) == 0 {
			fmt.Fprintln(stderr, "licenseops rollout: no users left; nothing was sent")
			return exitError
		}
		fmt.Fprintf(stdout, "Sending the other %d users.\n", len(ids))
		acc, err = postOperation(sendCtx, c, *customer, ids, change, *allowPartial)
	}
	if err != nil {
		cl.fail(err)
		if apiCode(err) != "" {
			fmt.Fprintln(stderr, "Nothing was queued.")
		} else {
			fmt.Fprintf(stderr, "The API did not answer; see whether the operation was created with: licenseops operation list --customer %s\n", *customer)
		}
		return exitError
	}
	sendTime := time.Since(sendStart)
	fmt.Fprintf(stdout, "Queued operation %s for %d users (%s) in %s: read and validated in %s, sent in %s.\n",
		acc.ID, acc.Total, describeChange(change), round(readTime+sendTime), round(readTime), round(sendTime))
	if !*wait {
		fmt.Fprintf(stdout, "Not waiting for it. Watch it with:\n  licenseops operation watch %s\n", acc.ID)
		return exitOK
	}
	op, err := watch(ctx, c, acc.ID, stdout, progressOptions{terminal: terminal, lineEvery: *lineEvery})
	if err != nil {
		if ctx.Err() != nil {
			printDetached(stderr, acc.ID)
			return exitDetached
		}
		cl.fail(err)
		fmt.Fprintf(stderr, "The operation may still be running; watch it with: licenseops operation watch %s\n", acc.ID)
		return exitError
	}
	return finishOperation(ctx, c, op, *report, stdout, stderr, "rollout")
}

// readSelection reads the users of one source: a CSV, a users file, every
// user, or IDs given as arguments. UPNs are resolved; the user list is
// returned when it was read in full.
func readSelection(ctx context.Context, c *apiClient, cid, csvPath, usersFile string, allUsers bool, args []string) (*userInput, *directory, error) {
	switch {
	case allUsers:
		dir, err := fetchDirectory(ctx, c, cid, nil)
		if err != nil {
			return nil, nil, err
		}
		return allUsersInput(dir), dir, nil
	case csvPath != "" || usersFile != "":
		path, read := csvPath, readUserCSV
		if usersFile != "" {
			path, read = usersFile, readUsersFile
		}
		var r io.Reader = os.Stdin
		if path != "-" {
			f, err := os.Open(path) // #nosec G304 -- the operator names the input file on the command line
			if err != nil {
				return nil, nil, err
			}
			defer f.Close()
			r = f
		}
		in, err := read(r, path)
		if err != nil {
			return nil, nil, err
		}
		dir, err := in.resolve(ctx, c, cid, nil)
		return in, dir, err
	default:
		in := &userInput{source: "arguments", column: "user IDs", lineOf: map[string]int{}}
		for i, id := range args {
			in.rows++
			in.addID(id, i+1)
		}
		return in, nil, nil
	}
}

// lookupMax: a selection up to this size is read one user at a time; a
// larger one reads the whole user list (500 users per request).
const lookupMax = 50

// selectionDirectory returns the selected users' details (from dir when
// the user list was read already); users that do not exist become bad rows.
func selectionDirectory(ctx context.Context, c *apiClient, cid string, in *userInput, dir *directory) (*directory, error) {
	ids := in.ids()
	var unknown []string
	switch {
	case dir == nil && len(ids) <= lookupMax:
		var err error
		if dir, unknown, err = lookupUsers(ctx, c, cid, ids); err != nil {
			return nil, err
		}
	default:
		if dir == nil {
			var err error
			if dir, err = fetchDirectory(ctx, c, cid, nil); err != nil {
				return nil, err
			}
		}
		for _, id := range ids {
			if _, ok := dir.byID[id]; !ok {
				unknown = append(unknown, id)
			}
		}
	}
	in.drop(unknown, "no such user in customer "+cid)
	return dir, nil
}

// unknownUsers lists the selected users that do not exist, after the API
// refused the operation with UnknownUsers: from the error's details when
// they name all of them, else by reading the user list.
func unknownUsers(ctx context.Context, c *apiClient, cid string, in *userInput, apiErr error) ([]string, error) {
	var ae *apiError
	errors.As(apiErr, &ae)
	var d struct {
		UserIDs []string `json:"user_ids"`
		Count   int      `json:"count"`
	}
	if json.Unmarshal(ae.Details, &d) == nil && len(d.UserIDs) > 0 && len(d.UserIDs) >= d.Count {
		return d.UserIDs, nil
	}
	dir, err := fetchDirectory(ctx, c, cid, nil)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, id := range in.ids() {
		if _, ok := dir.byID[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	return unknown, nil
}

type acceptedOp struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

// postOperation creates the license operation. The idempotency key makes
// a retried request (after a 429) safe.
func postOperation(ctx context.Context, c *apiClient, cid string, ids []string, ch licensing.Change, allowPartial bool) (acceptedOp, error) {
	body := struct {
		UserIDs       []string `json:"user_ids"`
		Assign        []string `json:"assign"`
		Revoke        []string `json:"revoke"`
		UsageLocation string   `json:"usage_location,omitempty"`
		AllowPartial  bool     `json:"allow_partial"`
	}{ids, ch.Assign, ch.Revoke, ch.UsageLocation, allowPartial}
	var acc acceptedOp
	err := c.call(ctx, "POST", customerPath(cid)+"/license-operations", body, &acc, callOptions{idempotencyKey: "rollout-" + uuid.NewString()})
	return acc, err
}

func printInputSummary(w io.Writer, in *userInput, took time.Duration) {
	fmt.Fprintf(w, "Read %s (%s): %s, %s", in.source, in.column, plural(in.rows, "row"), plural(len(in.entries), "user"))
	if n := len(in.duplicates); n > 0 {
		fmt.Fprintf(w, ", %s", plural(n, "duplicate"))
	}
	if n := len(in.bad); n > 0 {
		fmt.Fprintf(w, ", %s", plural(n, "bad row"))
	}
	fmt.Fprintf(w, " in %s.\n", round(took))
}

// maxListed bounds the bad rows and duplicates listed.
const maxListed = 20

// checkProblems lists duplicates (stdout) and bad rows (stderr) and
// reports whether the selection may be sent.
func checkProblems(stdout, stderr io.Writer, in *userInput, skipBad bool) bool {
	sort.SliceStable(in.bad, func(i, j int) bool { return in.bad[i].line < in.bad[j].line })
	sort.SliceStable(in.duplicates, func(i, j int) bool { return in.duplicates[i].line < in.duplicates[j].line })
	if !in.duplicatesShown {
		dups := *in
		dups.bad = nil
		dups.printProblems(stdout, maxListed)
		in.duplicatesShown = true
	}
	if len(in.bad) == 0 {
		return true
	}
	bad := *in
	bad.duplicates = nil
	bad.printProblems(stderr, maxListed)
	if skipBad {
		fmt.Fprintf(stderr, "Skipping the %d bad rows (--skip-bad-rows).\n", len(in.bad))
		in.bad = nil
		return true
	}
	fmt.Fprintln(stderr, "Nothing was sent: correct the rows, or pass --skip-bad-rows to send the others.")
	return false
}

func describeChange(ch licensing.Change) string {
	var parts []string
	if len(ch.Assign) > 0 {
		parts = append(parts, "assign "+strings.Join(ch.Assign, ", "))
	}
	if len(ch.Revoke) > 0 {
		parts = append(parts, "revoke "+strings.Join(ch.Revoke, ", "))
	}
	if ch.UsageLocation != "" {
		parts = append(parts, "usage location "+ch.UsageLocation)
	}
	return strings.Join(parts, "; ")
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func countTrue(b ...bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// dryRunReport shows what the change would do to the selection, and
// returns exitOK when nothing would fail, exitPartial when something would.
func dryRunReport(ctx context.Context, cl *cli, c *apiClient, cid string, in *userInput, dir *directory, ch licensing.Change, allowPartial bool) int {
	w := cl.stdout
	ids := in.ids()
	var cust licensing.Customer
	if err := c.call(ctx, "GET", customerPath(cid), nil, &cust, callOptions{}); err != nil {
		return cl.fail(err)
	}
	var products struct {
		Products []licensing.Product `json:"products"`
	}
	if err := c.call(ctx, "GET", "/v1/products", nil, &products, callOptions{}); err != nil {
		return cl.fail(err)
	}
	catalog := make(licensing.Catalog, len(products.Products))
	for _, p := range products.Products {
		catalog[p.SKU] = p
	}
	subs, err := fetchSubscriptions(ctx, c, cid)
	if err != nil {
		return cl.fail(err)
	}
	var sum licenseSummary
	if err := c.call(ctx, "POST", customerPath(cid)+"/license-summary", map[string]any{"user_ids": ids}, &sum, callOptions{}); err != nil {
		return cl.fail(err)
	}
	subOf := make(map[string]subscriptionInfo, len(subs))
	for _, s := range subs {
		subOf[s.SKU] = s
	}
	var missing []string
	for _, sku := range append(append([]string{}, ch.Assign...), ch.Revoke...) {
		if _, ok := subOf[sku]; !ok {
			missing = append(missing, sku)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(cl.stderr, "licenseops rollout: customer %s has no subscription for %s; the rollout would be refused (UnknownSkus)\n", cid, strings.Join(missing, ", "))
		return exitError
	}
	holders := make(map[string]int, len(sum.Products))
	for _, p := range sum.Products {
		holders[p.SKU] = len(p.AssignedUserIDs)
	}
	selected := len(sum.Users)

	fmt.Fprintf(w, "\nDry run for customer %s: %d selected users; %s. Nothing is queued.\n\n", cid, selected, describeChange(ch))
	tw := newTable(w)
	fmt.Fprintln(tw, "SKU\tCHANGE\tUSERS AFFECTED\tUNCHANGED\tSEATS NEEDED\tAVAILABLE\tSHORT")
	type shortage struct {
		sku         string
		short       int
		buyMoreLink string
	}
	var shortages []shortage
	for _, sku := range ch.Assign {
		s, held := subOf[sku], holders[sku]
		gain := selected - held
		short := max(0, gain-s.Available)
		fmt.Fprintf(tw, "%s\tassign\t%d would get it\t%d hold it\t%d\t%d\t%d\n", sku, gain, held, gain, s.Available, short)
		if short > 0 {
			shortages = append(shortages, shortage{sku, short, deref(s.BuyMoreURL)})
		}
	}
	for _, sku := range ch.Revoke {
		held := holders[sku]
		fmt.Fprintf(tw, "%s\trevoke\t%d would lose it\t%d do not hold it\t-\t-\t-\n", sku, held, selected-held)
	}
	_ = tw.Flush()
	for _, s := range shortages {
		fmt.Fprintf(w, "%s is %d seats short", s.sku, s.short)
		if s.buyMoreLink != "" {
			fmt.Fprintf(w, "; buy more: %s", s.buyMoreLink)
		}
		if allowPartial {
			fmt.Fprintf(w, ". With --allow-partial, up to %d users would fail with CountViolation.\n", s.short)
		} else {
			fmt.Fprintln(w, ". Without --allow-partial the rollout would be refused with CountViolation.")
		}
	}

	// The product rules, evaluated here exactly as the worker evaluates
	// them, against each user's current state.
	failures := newOutcomes()
	for _, id := range ids {
		u := dir.byID[id]
		if u == nil {
			continue
		}
		_, e := licensing.Evaluate(licensing.UserState{Held: u.Licenses, UsageLocation: deref(u.UsageLocation), AccountEnabled: u.AccountEnabled},
			ch, deref(cust.DefaultUsageLocation), catalog)
		if e != nil {
			failures.add(u.ID, u.UserPrincipalName, "failed", string(e.Code), e.Message)
		} else {
			failures.add(u.ID, u.UserPrincipalName, "would succeed", "", "")
		}
	}
	fmt.Fprintln(w)
	ruleFailures := failures.rows - failures.counts["would succeed"]
	if ruleFailures == 0 {
		fmt.Fprintf(w, "Product rules: all %s pass.\n", plural(failures.rows, "user"))
	} else {
		fmt.Fprintf(w, "Product rules: %d of %d users would fail (checked here with the catalog, as the worker checks them).\n", ruleFailures, failures.rows)
		failures.print(w, "Outcomes by rule")
	}
	if ruleFailures == 0 && len(shortages) == 0 {
		fmt.Fprintln(w, "\nEvery selected user would succeed.")
		return exitOK
	}
	fmt.Fprintln(w, "\nSome users would fail (see above).")
	return exitPartial
}
