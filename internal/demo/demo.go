// Package demo runs licenseops' main job end to end on a demo tenant: a
// tenant-wide change of licenses through the HTTP API, its progress, the
// confirmation report and the seats before and after. `licenseops-dev demo`
// (`make demo`) runs it.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/provider/msgraph"
)

// Options configure Run.
type Options struct {
	// Users is the number of users of the demo tenant.
	Users int
	// Directory is where the licenses live: "local" (Postgres) or
	// "graphsim" (a Microsoft Graph simulator in this process).
	Directory string
	// Out is the folder for the report files; "" makes a temporary one.
	Out string
	// DatabaseURL and RedisURL are the servers to use; private ones are
	// started for what is empty.
	DatabaseURL string
	RedisURL    string
	// Config is the configuration of the in-process api and worker
	// (typically app.FromEnv's).
	Config app.Config
	// Stdout receives the demo's story. Progress is a redrawn bar when it
	// is a terminal, plain lines otherwise (a log file, a pipe).
	Stdout io.Writer
	// Log receives the api's and worker's log lines.
	Log *slog.Logger
}

// The demo tenant.
const (
	Customer        = "contoso"
	assignSKU       = "O365_E5"
	revokeSKU       = "O365_E3"
	tenantID        = "6f1c5a2e-0000-4000-8000-00000000c0de"
	graphClientID   = "licenseops-demo"
	graphSecret     = "demo-secret"
	progressLineGap = 2 * time.Second
)

// Run runs the demo.
func Run(ctx context.Context, o Options) error {
	started := time.Now()
	out := o.Stdout
	if out == nil {
		out = os.Stdout
	}
	cfg := o.Config
	var sim *graphsim.Server
	switch o.Directory {
	case "", "local":
	case "graphsim":
		sim = graphsim.NewServer(graphsim.Config{Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond,
			ThrottleRatio: 0.02, RetryAfter: time.Second})
		if err := sim.Start("127.0.0.1:0"); err != nil {
			return err
		}
		defer sim.Close()
		cfg.Graph.BaseURL, cfg.Graph.TokenURL = sim.GraphURL(), sim.TokenURL()
		// The simulator has no Graph quota to respect; the in-flight bound
		// makes the rate latency-bound instead.
		cfg.Graph.RatePerSecond, cfg.Graph.MaxInFlight = 100_000, 64
		cfg.Getenv = func(name string) string {
			switch name {
			case msgraph.EnvClientID:
				return graphClientID
			case msgraph.EnvClientSecret:
				return graphSecret
			}
			return ""
		}
		fmt.Fprintf(out, "Graph simulator at %s (20 ms latency, 2%% throttling)\n", sim.URL())
	default:
		return fmt.Errorf("directory %q: it is local or graphsim", o.Directory)
	}
	s, err := stack.Start(ctx, stack.Options{
		DatabaseURL: o.DatabaseURL, RedisURL: o.RedisURL, Database: "licenseops_demo",
		// A partner of its own, so that a demo on a database used before
		// (DATABASE_URL) starts from an empty tenant.
		Partner:   fmt.Sprintf("demo-partner-%d", time.Now().Unix()),
		InProcess: true, Config: &cfg, Log: o.Log,
		Logf: func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			fmt.Fprintf(out, "%s%s…\n", strings.ToUpper(msg[:1]), msg[1:])
		},
	})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "licenseops api and worker running at %s\n\n", s.URL)

	c := s.Client()
	ids, err := seedTenant(ctx, c, o.Users, sim, out)
	if err != nil {
		return fmt.Errorf("seed demo tenant: %w", err)
	}
	if err := printSeats(ctx, c, out, "Seats before the rollout"); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nAssigning %s and revoking %s for all %d users (allow_partial: %s has fewer seats than users)…\n",
		assignSKU, revokeSKU, len(ids), assignSKU)
	postAt := time.Now()
	accepted, err := c.CreateOperation(ctx, Customer, client.OperationRequest{
		UserIDs: ids, Assign: []string{assignSKU}, Revoke: []string{revokeSKU}, AllowPartial: true,
	}, "")
	if err != nil {
		return err
	}
	intake := time.Since(postAt)
	op, err := watch(ctx, c, accepted.ID, accepted.Total, out, isTerminal(out))
	if err != nil {
		return err
	}
	elapsed := time.Since(postAt)
	fmt.Fprintf(out, "\nOperation %s: %s in %.1fs (intake %dms, %.0f users/s end to end)\n",
		op.ID, op.Status, elapsed.Seconds(), intake.Milliseconds(), float64(op.Total)/elapsed.Seconds())

	dir := o.Out
	if dir == "" {
		if dir, err = os.MkdirTemp("", "licenseops-demo-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil { // the reports name the tenant's users
		return err
	}
	if err := printReport(ctx, c, out, op.ID, dir); err != nil {
		return err
	}
	if err := printSeats(ctx, c, out, "Seats after the rollout"); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nDemo finished in %.1fs.\n", time.Since(started).Seconds())
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// users makes n users: mostly in Poland and nearby, about 1% disabled,
// a few in a country where E5 is not sold, a fifth with no usage location
// (the customer's default applies).
func users(n int) []client.UserImport {
	first := []string{"Anna", "Piotr", "Maria", "Jan", "Katarzyna", "Tomasz", "Agnieszka", "Paweł", "Ewa", "Michał", "Olivia", "Noah", "Emma", "Liam"}
	last := []string{"Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Smith", "Johnson", "Brown", "Garcia"}
	countries := []string{"PL", "PL", "PL", "DE", "US", "GB", "FR"}
	users := make([]client.UserImport, n)
	for i := range users {
		u := client.UserImport{
			ID:                fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			UserPrincipalName: fmt.Sprintf("user%05d@contoso.example", i),
			DisplayName:       fmt.Sprintf("%s %s %05d", first[i%len(first)], last[(i/len(first))%len(last)], i),
			AccountEnabled:    new(i%97 != 0),
		}
		switch {
		case i%211 == 0:
			u.UsageLocation = new("KP")
		case i%5 != 0:
			u.UsageLocation = new(countries[i%len(countries)])
		}
		users[i] = u
	}
	return users
}

// seats are the subscriptions of the demo tenant: E5 has fewer seats than users.
func seats(n int) map[string]int {
	return map[string]int{revokeSKU: n / 4, assignSKU: n - n/10, "POWER_BI_PRO": n / 2, "VISIO_P2": 50}
}

// products is the demo catalog: E3 and E5 exclude each other, E5 is not
// sold in KP and IR, Visio needs E5.
var products = map[string]client.ProductRequest{
	revokeSKU:      {Name: "Office 365 E3", PartNumber: "AAA-22222", Excludes: []string{assignSKU}},
	assignSKU:      {Name: "Office 365 E5", PartNumber: "AAA-33333", Excludes: []string{revokeSKU}, ProhibitedLocations: []string{"KP", "IR"}},
	"POWER_BI_PRO": {Name: "Power BI Pro", PartNumber: "AAA-44444"},
	"VISIO_P2":     {Name: "Visio Plan 2", PartNumber: "AAA-55555", Requires: []string{assignSKU}},
}

// seedTenant creates the catalog, the customer, its users and
// subscriptions through the API — or, with a Graph simulator, in the
// simulated directory followed by a directory sync — and returns the user
// IDs. A quarter of the users hold E3 before the rollout swaps it for E5.
func seedTenant(ctx context.Context, c *client.Client, n int, sim *graphsim.Server, out io.Writer) ([]string, error) {
	us := users(n)
	customer := client.CustomerRequest{ID: Customer, Name: "Contoso Ltd.", DefaultUsageLocation: new("PL")}
	if sim != nil {
		customer.Directory = &client.Directory{Kind: client.DirectoryMSGraph, TenantID: tenantID}
		if err := seedDirectory(sim, us); err != nil {
			return nil, err
		}
		if _, err := seed.Seed(ctx, c, seed.Tenant{Customer: customer, Products: products}); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "Seeded tenant %s in the Graph simulator (%d users, 4 SKUs); syncing it into licenseops…\n", tenantID, n)
		return seed.UserIDs(us), syncDirectory(ctx, c, n)
	}
	ids, err := seed.Seed(ctx, c, seed.Tenant{Customer: customer, Products: products, Users: us, Seats: seats(n)})
	if err != nil {
		return nil, err
	}
	if _, err := c.CreateOperation(ctx, Customer, client.OperationRequest{UserIDs: ids[:n/4], Assign: []string{revokeSKU}, AllowPartial: true}, ""); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Seeded customer %q: %d users, 4 products; giving a quarter of them %s first…\n", Customer, n, revokeSKU)
	return ids, waitQuiet(ctx, c)
}

// seedDirectory puts the demo tenant in the Graph simulator, where a
// quarter of the users hold E3, as a partner's real Microsoft 365 tenant
// would have them.
func seedDirectory(sim *graphsim.Server, users []client.UserImport) error {
	n := len(users)
	ts := graphsim.TenantSeed{ID: tenantID, ClientID: graphClientID, ClientSecret: graphSecret}
	for sku, total := range seats(n) {
		ts.SKUs = append(ts.SKUs, graphsim.SKUSeed{ID: sku, PartNumber: sku, Enabled: total})
	}
	for i, u := range users {
		su := graphsim.UserSeed{ID: u.ID, UserPrincipalName: u.UserPrincipalName, DisplayName: u.DisplayName, AccountEnabled: *u.AccountEnabled,
			UsageLocation: "PL"} // Graph needs a location to hold a license
		if u.UsageLocation != nil {
			su.UsageLocation = *u.UsageLocation
		}
		if i < n/4 && su.AccountEnabled && su.UsageLocation != "KP" {
			su.Licenses = []string{revokeSKU}
		}
		ts.Users = append(ts.Users, su)
	}
	return sim.AddTenant(ts)
}

// syncDirectory syncs the simulated tenant into licenseops and waits until
// its n users and 4 subscriptions are there.
func syncDirectory(ctx context.Context, c *client.Client, n int) error {
	if _, err := c.SyncCustomer(ctx, Customer); err != nil {
		return err
	}
	for {
		list, err := c.ListUsers(ctx, Customer, client.UserListOptions{PageSize: 1})
		if err != nil {
			return err
		}
		subs, err := c.ListSubscriptions(ctx, Customer)
		if err != nil {
			return err
		}
		if list.Total == n && len(subs) == 4 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitQuiet waits until the customer has no unfinished operation.
func waitQuiet(ctx context.Context, c *client.Client) error {
	for {
		list, err := c.ListOperations(ctx, Customer, client.ListOptions{PageSize: 10})
		if err != nil {
			return err
		}
		busy := false
		for _, op := range list.Operations {
			busy = busy || op.FinishedAt == nil
		}
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printReport saves the report as JSON and CSV and prints its summary,
// reading the rows as they stream in.
func printReport(ctx context.Context, c *client.Client, out io.Writer, opID, dir string) error {
	jsonPath, csvPath := filepath.Join(dir, "report-"+opID+".json"), filepath.Join(dir, "report-"+opID+".csv")
	counts := map[string]int{}
	var first []client.ReportRow
	var failure *client.ReportRow
	rows := 0
	err := writeFile(jsonPath, func(w io.Writer) error {
		// The rows first, then the operation, which the stream gives last.
		if _, err := io.WriteString(w, `{"results":[`); err != nil {
			return err
		}
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		op, err := c.Report(ctx, opID, func(r client.ReportRow) error {
			if rows > 0 {
				if _, err := io.WriteString(w, ","); err != nil {
					return err
				}
			}
			rows++
			key := string(r.Status)
			if r.Error != nil {
				key = string(r.Error.Code)
				if failure == nil {
					failure = &r
				}
			}
			counts[key]++
			if len(first) < 8 {
				first = append(first, r)
			}
			return enc.Encode(r)
		})
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, `],"operation":`); err != nil {
			return err
		}
		if err := enc.Encode(op); err != nil {
			return err
		}
		_, err = io.WriteString(w, "}\n")
		return err
	})
	if err == nil {
		err = writeFile(csvPath, func(w io.Writer) error { return c.ReportCSV(ctx, opID, w) })
	}
	if err != nil {
		return fmt.Errorf("save the report: %w", err)
	}
	keys := slices.Collect(maps.Keys(counts))
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	fmt.Fprintln(out, "\nConfirmation report — outcomes:")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%d\n", k, counts[k])
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\nFirst rows (sorted by display name):")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  USER\tSTATUS\tASSIGNED\tREVOKED\tLICENSES NOW\tERROR")
	for _, r := range first {
		code := "-"
		if r.Error != nil {
			code = string(r.Error.Code)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.DisplayName, r.Status, list(r.Assigned), list(r.Revoked), list(r.Licenses), code)
	}
	_ = tw.Flush()
	if failure != nil {
		fmt.Fprintf(out, "\nExample failure: %s — %s: %s\n", failure.DisplayName, failure.Error.Code, failure.Error.Message)
	}
	fmt.Fprintf(out, "\nFull report (%d rows):\n  %s\n  %s\n", rows, jsonPath, csvPath)
	return nil
}

// writeFile creates path (the reports name the tenant's users: for the
// operator only) and writes it with write.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) // #nosec G304 -- in the operator's --out folder, named after the operation
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func printSeats(ctx context.Context, c *client.Client, out io.Writer, title string) error {
	subs, err := c.ListSubscriptions(ctx, Customer)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s:\n", title)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SKU\tTOTAL\tCONSUMED\tAVAILABLE")
	for _, s := range subs {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", s.SKU, s.Total, s.Consumed, s.Available)
	}
	return tw.Flush()
}
