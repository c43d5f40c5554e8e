// Package demo runs licenseops' main job end to end on a demo tenant: a
// tenant-wide change of licenses through the HTTP API, its progress, the
// confirmation report and the seats before and after. `licenseops-dev demo`
// (`make demo`) runs it.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/licensing"
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
	var accepted struct {
		ID    string `json:"id"`
		Total int    `json:"total"`
	}
	if err := c.Call(ctx, "POST", "/v1/customers/"+Customer+"/license-operations", map[string]any{
		"user_ids": ids, "assign": []string{assignSKU}, "revoke": []string{revokeSKU}, "allow_partial": true,
	}, &accepted); err != nil {
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
func users(n int) []seed.User {
	first := []string{"Anna", "Piotr", "Maria", "Jan", "Katarzyna", "Tomasz", "Agnieszka", "Paweł", "Ewa", "Michał", "Olivia", "Noah", "Emma", "Liam"}
	last := []string{"Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Smith", "Johnson", "Brown", "Garcia"}
	countries := []string{"PL", "PL", "PL", "DE", "US", "GB", "FR"}
	users := make([]seed.User, n)
	for i := range users {
		u := seed.User{
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
var products = map[string]seed.Product{
	revokeSKU:      {Name: "Office 365 E3", PartNumber: "AAA-22222", Excludes: []string{assignSKU}},
	assignSKU:      {Name: "Office 365 E5", PartNumber: "AAA-33333", Excludes: []string{revokeSKU}, ProhibitedLocations: []string{"KP", "IR"}},
	"POWER_BI_PRO": {Name: "Power BI Pro", PartNumber: "AAA-44444"},
	"VISIO_P2":     {Name: "Visio Plan 2", PartNumber: "AAA-55555", Requires: []string{assignSKU}},
}

// seedTenant creates the catalog, the customer, its users and
// subscriptions through the API — or, with a Graph simulator, in the
// simulated directory followed by a directory sync — and returns the user
// IDs. A quarter of the users hold E3 before the rollout swaps it for E5.
func seedTenant(ctx context.Context, c *stack.Client, n int, sim *graphsim.Server, out io.Writer) ([]string, error) {
	us := users(n)
	customer := seed.Customer{ID: Customer, Name: "Contoso Ltd.", DefaultUsageLocation: new("PL")}
	if sim != nil {
		customer.Directory = &licensing.Directory{Kind: licensing.DirectoryMSGraph, TenantID: tenantID}
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
	if err := c.Call(ctx, "POST", "/v1/customers/"+Customer+"/license-operations", map[string]any{
		"user_ids": ids[:n/4], "assign": []string{revokeSKU}, "allow_partial": true,
	}, nil); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Seeded customer %q: %d users, 4 products; giving a quarter of them %s first…\n", Customer, n, revokeSKU)
	return ids, waitQuiet(ctx, c)
}

// seedDirectory puts the demo tenant in the Graph simulator, where a
// quarter of the users hold E3, as a partner's real Microsoft 365 tenant
// would have them.
func seedDirectory(sim *graphsim.Server, users []seed.User) error {
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
func syncDirectory(ctx context.Context, c *stack.Client, n int) error {
	if err := c.Call(ctx, "POST", "/v1/customers/"+Customer+"/sync", nil, nil); err != nil {
		return err
	}
	for {
		var list struct{ Total int }
		if err := c.Call(ctx, "GET", "/v1/customers/"+Customer+"/users?page_size=1", nil, &list); err != nil {
			return err
		}
		var subs struct{ Subscriptions []any }
		if err := c.Call(ctx, "GET", "/v1/customers/"+Customer+"/subscriptions", nil, &subs); err != nil {
			return err
		}
		if list.Total == n && len(subs.Subscriptions) == 4 {
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
func waitQuiet(ctx context.Context, c *stack.Client) error {
	for {
		var list struct {
			Operations []licensing.Operation `json:"operations"`
		}
		if err := c.Call(ctx, "GET", "/v1/customers/"+Customer+"/operations?page_size=10", nil, &list); err != nil {
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

type report struct {
	Operation licensing.Operation `json:"operation"`
	Results   []struct {
		UserID      string   `json:"user_id"`
		DisplayName string   `json:"display_name"`
		Status      string   `json:"status"`
		Assigned    []string `json:"assigned"`
		Revoked     []string `json:"revoked"`
		Licenses    []string `json:"licenses"`
		Error       *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
}

// printReport saves the report as JSON and CSV and prints its summary.
func printReport(ctx context.Context, c *stack.Client, out io.Writer, opID, dir string) error {
	jsonPath, csvPath := filepath.Join(dir, "report-"+opID+".json"), filepath.Join(dir, "report-"+opID+".csv")
	for _, f := range []struct{ path, accept string }{{jsonPath, "application/json"}, {csvPath, "text/csv"}} {
		file, err := os.Create(f.path) // #nosec G304 -- in the operator's --out folder, named after the operation
		if err != nil {
			return err
		}
		err = c.Download(ctx, "/v1/operations/"+opID+"/report", f.accept, file)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	raw, err := os.ReadFile(jsonPath) // #nosec G304 -- the report written above, in the operator's --out folder
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("read report: %w", err)
	}
	counts := map[string]int{}
	for _, r := range rep.Results {
		key := r.Status
		if r.Error != nil {
			key = r.Error.Code
		}
		counts[key]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
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
	for _, r := range rep.Results[:min(8, len(rep.Results))] {
		code := "-"
		if r.Error != nil {
			code = r.Error.Code
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.DisplayName, r.Status, list(r.Assigned), list(r.Revoked), list(r.Licenses), code)
	}
	_ = tw.Flush()
	for _, r := range rep.Results {
		if r.Error != nil {
			fmt.Fprintf(out, "\nExample failure: %s — %s: %s\n", r.DisplayName, r.Error.Code, r.Error.Message)
			break
		}
	}
	fmt.Fprintf(out, "\nFull report (%d rows):\n  %s\n  %s\n", len(rep.Results), jsonPath, csvPath)
	return nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func printSeats(ctx context.Context, c *stack.Client, out io.Writer, title string) error {
	var subs struct {
		Subscriptions []struct {
			SKU       string `json:"sku_id"`
			Total     int    `json:"total"`
			Consumed  int    `json:"consumed"`
			Available int    `json:"available"`
		} `json:"subscriptions"`
	}
	if err := c.Call(ctx, "GET", "/v1/customers/"+Customer+"/subscriptions", nil, &subs); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s:\n", title)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SKU\tTOTAL\tCONSUMED\tAVAILABLE")
	for _, s := range subs.Subscriptions {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", s.SKU, s.Total, s.Consumed, s.Available)
	}
	return tw.Flush()
}
