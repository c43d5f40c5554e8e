package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/licenseops/licenseops/licensing"
)

// Exit statuses of the client commands (rollout, operation, users, summary).
// Scripts branch on them, so they never change meaning.
const (
	exitOK       = 0   // done; for a rollout: every user succeeded
	exitError    = 1   // bad input, API error, I/O error
	exitUsage    = 2   // wrong flags or arguments
	exitPartial  = 3   // the operation finished, but some users failed (or, in a dry run, would fail)
	exitDetached = 130 // Ctrl-C while watching: the operation keeps running
)

// exitStatus carries a client command's exit status through run to main.
type exitStatus int

func (e exitStatus) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// clientCommand is the shape of every command that talks to the HTTP API:
// in-process callable, with its own environment and output streams, so
// tests run it exactly as main does.
type clientCommand func(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int

// runClientCommand runs cmd with the process's environment and streams and
// turns its exit status into run's error.
func runClientCommand(ctx context.Context, cmd clientCommand, args []string) error {
	if code := cmd(ctx, args, os.Getenv, os.Stdout, os.Stderr); code != exitOK {
		return exitStatus(code)
	}
	return nil
}

const defaultAPIURL = "http://127.0.0.1:8080"

// connFlags are the flags every client command has.
type connFlags struct {
	url, token string
	env        func(string) string
}

func (f *connFlags) bind(fs *flag.FlagSet, env func(string) string) {
	u := env("LICENSEOPS_URL")
	if u == "" {
		u = defaultAPIURL
	}
	f.env = env
	fs.StringVar(&f.url, "url", u, "base URL of the licenseops API (env LICENSEOPS_URL)")
	// The environment's token is read after parsing, so that -h never prints it.
	fs.StringVar(&f.token, "token", "", "API token (default: env LICENSEOPS_TOKEN)")
}

// client checks the flags and returns an API client.
func (f *connFlags) client() (*apiClient, error) {
	if f.token == "" {
		f.token = f.env("LICENSEOPS_TOKEN")
	}
	if f.token == "" {
		return nil, errors.New("no API token: set LICENSEOPS_TOKEN or pass --token (create one with licenseops token create)")
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q is not an http(s) URL", f.url)
	}
	return newAPIClient(strings.TrimRight(f.url, "/"), f.token), nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	if !licensing.ValidID(v) {
		return fmt.Errorf("%q is not a valid SKU ID", v)
	}
	*l = append(*l, v)
	return nil
}

// cli is what a client command writes to, with the helpers every one of them needs.
type cli struct {
	name           string // "rollout", "operation watch", …
	usage          string // the command's usage text (flags are appended)
	fs             *flag.FlagSet
	stdout, stderr io.Writer
}

func newCLI(name, usage string, stdout, stderr io.Writer) *cli {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &cli{name: name, usage: usage, fs: fs, stdout: stdout, stderr: stderr}
}

// parse parses flags that may come before, between or after positional
// arguments (so `operation report OP --csv FILE` works), and returns the
// positional arguments. done is true when the command should return code at once.
func (c *cli) parse(args []string) (positional []string, code int, done bool) {
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printUsage(c.stdout)
				return nil, exitOK, true
			}
			return nil, c.usageError("%v", err), true
		}
		args = c.fs.Args()
		if len(args) == 0 {
			return positional, 0, false
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), 0, false
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func (c *cli) printUsage(w io.Writer) {
	fmt.Fprint(w, c.usage)
	fmt.Fprintln(w, "\nFlags:")
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// usageError reports wrong usage with the command's synopsis and returns exitUsage.
func (c *cli) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "licenseops %s: %s\n\n", c.name, fmt.Sprintf(format, args...))
	synopsis, _, _ := strings.Cut(c.usage, "\n\n")
	cmd, _, _ := strings.Cut(c.name, " ")
	fmt.Fprintf(c.stderr, "%s\nRun 'licenseops %s -h' for help.\n", synopsis, cmd)
	return exitUsage
}

// fail reports err (an API error with its code, message and details, or
// any other error) and returns exitError.
func (c *cli) fail(err error) int {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(c.stderr, "licenseops %s: interrupted\n", c.name)
		return exitDetached
	}
	printError(c.stderr, "licenseops "+c.name, err)
	return exitError
}

// printError shows an error the way a person can act on: an API error with
// its code and message and, for the codes that have them, its details.
func printError(w io.Writer, prefix string, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		var ue *url.Error // what http.Client returns when no answer came
		if errors.As(err, &ue) {
			fmt.Fprintf(w, "%s: cannot reach the API: %v (set LICENSEOPS_URL or --url)\n", prefix, err)
			return
		}
		fmt.Fprintf(w, "%s: %v\n", prefix, err)
		return
	}
	fmt.Fprintf(w, "%s: %s (HTTP %d): %s\n", prefix, ae.Code, ae.Status, ae.Message)
	switch ae.Code {
	case string(licensing.CodeCountViolation):
		var d struct {
			SKUs []struct {
				SKU        string `json:"sku_id"`
				Needed     int    `json:"needed"`
				Available  int    `json:"available"`
				BuyMoreURL string `json:"buy_more_url"`
			} `json:"skus"`
		}
		if json.Unmarshal(ae.Details, &d) == nil && len(d.SKUs) > 0 {
			tw := newTable(w)
			fmt.Fprintln(tw, "  SKU\tNEEDED\tAVAILABLE\tSHORT\tBUY MORE")
			for _, s := range d.SKUs {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\n", s.SKU, s.Needed, s.Available, s.Needed-s.Available, dash(s.BuyMoreURL))
			}
			_ = tw.Flush()
		}
	case string(licensing.CodeUnknownUsers), string(licensing.CodeUnknownSkus):
		var d struct {
			UserIDs []string `json:"user_ids"`
			SKUIDs  []string `json:"sku_ids"`
			Count   int      `json:"count"`
		}
		if json.Unmarshal(ae.Details, &d) == nil {
			ids := append(d.UserIDs, d.SKUIDs...)
			if len(ids) > 0 {
				fmt.Fprintf(w, "  unknown: %s\n", strings.Join(ids, ", "))
			}
			if d.Count > len(ids) {
				fmt.Fprintf(w, "  … and %d more\n", d.Count-len(ids))
			}
		}
	case string(licensing.CodeUnauthenticated):
		fmt.Fprintln(w, "  set LICENSEOPS_TOKEN or --token to a token from `licenseops token create`")
	}
}

// apiCode is the contract's error code of err, or "".
func apiCode(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// isTerminal reports whether w is a terminal, where progress is a redrawn
// bar rather than plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Types of the API's answers that the commands read.
type (
	userPage struct {
		Users      []licensing.User `json:"users"`
		Page       int              `json:"page"`
		PageSize   int              `json:"page_size"`
		Total      int              `json:"total"`
		TotalPages int              `json:"total_pages"`
	}
	operationPage struct {
		Operations []licensing.Operation `json:"operations"`
		Page       int                   `json:"page"`
		Total      int                   `json:"total"`
		TotalPages int                   `json:"total_pages"`
	}
	subscriptionInfo struct {
		SKU        string  `json:"sku_id"`
		Name       string  `json:"name"`
		Total      int     `json:"total"`
		Consumed   int     `json:"consumed"`
		Available  int     `json:"available"`
		BuyMoreURL *string `json:"buy_more_url"`
	}
	licenseSummary struct {
		Users []struct {
			ID  string `json:"id"`
			UPN string `json:"user_principal_name"`
		} `json:"users"`
		Products []struct {
			SKU             string   `json:"sku_id"`
			Name            string   `json:"name"`
			Total           int      `json:"total"`
			Available       int      `json:"available"`
			State           string   `json:"state"`
			AssignedUserIDs []string `json:"assigned_user_ids"`
			BuyMoreURL      *string  `json:"buy_more_url"`
		} `json:"products"`
	}
)

func customerPath(cid string) string { return "/v1/customers/" + url.PathEscape(cid) }

// usersPageSize is the largest page the API serves: fewest round trips.
const usersPageSize = 500

func fetchUsersPage(ctx context.Context, c *apiClient, cid, q string, page, size int) (userPage, error) {
	v := url.Values{"page": {strconv.Itoa(page)}, "page_size": {strconv.Itoa(size)}}
	if q != "" {
		v.Set("q", q)
	}
	var p userPage
	err := c.call(ctx, "GET", customerPath(cid)+"/users?"+v.Encode(), nil, &p, callOptions{})
	return p, err
}

// directory is the user list of a customer, read once page by page.
type directory struct {
	byID  map[string]*licensing.User
	byUPN map[string]*licensing.User // lower-cased UPN; nil value: ambiguous
	order []*licensing.User          // as the API sorts them
}

func newDirectory(n int) *directory {
	return &directory{byID: make(map[string]*licensing.User, n), byUPN: make(map[string]*licensing.User, n)}
}

func (d *directory) add(users []licensing.User) {
	for i := range users {
		u := &users[i]
		if _, ok := d.byID[u.ID]; ok {
			continue // a user shifted pages while we read
		}
		d.byID[u.ID] = u
		d.order = append(d.order, u)
		k := strings.ToLower(u.UserPrincipalName)
		if _, dup := d.byUPN[k]; dup {
			d.byUPN[k] = nil
		} else {
			d.byUPN[k] = u
		}
	}
}

// directoryParallelism is how many pages of the user list are read at
// once: a page deep in a 100,000-user list costs the database tens of
// milliseconds, so reading them one by one would take seconds more than the
// token's rate limit requires.
const directoryParallelism = 4

// fetchDirectory reads every page of the customer's users, starting after
// first when the caller already has page 1.
func fetchDirectory(ctx context.Context, c *apiClient, cid string, first *userPage) (*directory, error) {
	if first == nil {
		p, err := fetchUsersPage(ctx, c, cid, "", 1, usersPageSize)
		if err != nil {
			return nil, err
		}
		first = &p
	}
	pages := make([][]licensing.User, max(first.TotalPages, 1))
	pages[0] = first.Users
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(directoryParallelism, len(pages)-1) {
		wg.Go(func() {
			for page := range next {
				p, err := fetchUsersPage(ctx, c, cid, "", page, usersPageSize)
				if err != nil {
					cancel(err)
					continue
				}
				pages[page-1] = p.Users
			}
		})
	}
feed:
	for page := 2; page <= len(pages); page++ {
		select {
		case next <- page:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	d := newDirectory(first.Total)
	for _, users := range pages {
		d.add(users)
	}
	return d, nil
}

func fetchSubscriptions(ctx context.Context, c *apiClient, cid string) ([]subscriptionInfo, error) {
	var out struct {
		Subscriptions []subscriptionInfo `json:"subscriptions"`
	}
	err := c.call(ctx, "GET", customerPath(cid)+"/subscriptions", nil, &out, callOptions{})
	return out.Subscriptions, err
}

// outcomes counts a report's rows by outcome (the error code of a failed
// user, else its status) and keeps the first few users of each failure.
type outcomes struct {
	rows     int
	counts   map[string]int
	examples map[string][]reportExample
}

type reportExample struct{ user, message string }

const examplesPerCode = 3

func newOutcomes() *outcomes {
	return &outcomes{counts: map[string]int{}, examples: map[string][]reportExample{}}
}

func (o *outcomes) add(userID, upn, status, code, message string) {
	o.rows++
	key := status
	if code != "" {
		key = code
	}
	o.counts[key]++
	if code != "" && len(o.examples[key]) < examplesPerCode {
		who := userID
		if upn != "" {
			who = upn + " (" + userID + ")"
		}
		o.examples[key] = append(o.examples[key], reportExample{who, message})
	}
}

func (o *outcomes) keys() []string {
	keys := make([]string, 0, len(o.counts))
	for k := range o.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if o.counts[keys[i]] != o.counts[keys[j]] {
			return o.counts[keys[i]] > o.counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// print shows the counts by outcome with the first users of each failure
// code, then one example message per code.
func (o *outcomes) print(w io.Writer, title string) {
	fmt.Fprintf(w, "%s (%s):\n", title, plural(o.rows, "user"))
	tw := newTable(w)
	fmt.Fprintln(tw, "  OUTCOME\tUSERS\tFIRST USERS")
	for _, k := range o.keys() {
		var who []string
		for _, ex := range o.examples[k] {
			who = append(who, ex.user)
		}
		if n := o.counts[k]; n > len(who) && len(who) > 0 {
			who = append(who, "…")
		}
		if len(who) == 0 {
			fmt.Fprintf(tw, "  %s\t%d\n", k, o.counts[k]) // no trailing padding
			continue
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", k, o.counts[k], strings.Join(who, ", "))
	}
	_ = tw.Flush()
	for _, k := range o.keys() {
		if ex := o.examples[k]; len(ex) > 0 {
			fmt.Fprintf(w, "  %s: %s\n", k, ex[0].message)
		}
	}
}

// readCSVReport streams an operation's CSV report through fn, row by row,
// copying the raw CSV to copyTo when it is not nil.
func readCSVReport(ctx context.Context, c *apiClient, opID string, copyTo io.Writer, fn func(col map[string]int, rec []string)) error {
	body, err := c.stream(ctx, "/v1/operations/"+url.PathEscape(opID)+"/report", "text/csv")
	if err != nil {
		return err
	}
	defer body.Close()
	var r io.Reader = body
	if copyTo != nil {
		r = io.TeeReader(body, copyTo)
	}
	cr := newCSVReader(r, ',')
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("read the report: %w", err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"user_id", "status", "error_code"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("the report has no %s column", need)
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the report: %w", err)
		}
		fn(col, rec)
	}
}

// field returns rec's value of a named column, or "".
func field(col map[string]int, rec []string, name string) string {
	if i, ok := col[name]; ok && i < len(rec) {
		return rec[i]
	}
	return ""
}

// collectOutcomes reads the report of a finished operation into outcomes,
// and writes the CSV to reportPath when it is set.
func collectOutcomes(ctx context.Context, c *apiClient, opID, reportPath string) (*outcomes, error) {
	var file *os.File
	var copyTo io.Writer
	if reportPath != "" {
		f, err := os.Create(reportPath) // #nosec G304 -- the operator names the report file on the command line
		if err != nil {
			return nil, err
		}
		file, copyTo = f, f
	}
	o := newOutcomes()
	err := readCSVReport(ctx, c, opID, copyTo, func(col map[string]int, rec []string) {
		o.add(field(col, rec, "user_id"), field(col, rec, "user_principal_name"), field(col, rec, "status"),
			field(col, rec, "error_code"), field(col, rec, "error_message"))
	})
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	return o, err
}
