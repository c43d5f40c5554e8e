package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/localdb"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider/graphsim"
	"github.com/licenseops/licenseops/provider/msgraph"
	"github.com/licenseops/licenseops/storage"
)

// runDemo runs the main job end to end on a demo tenant: a tenant-wide
// rollout through the HTTP API, with a progress bar and the confirmation report.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	users := fs.Int("users", 20_000, "users in the demo tenant")
	directory := fs.String("directory", "local", "where the licenses live: local (Postgres) or graphsim (a Microsoft Graph simulator at 20 ms latency, with some throttling)")
	out := fs.String("out", "", "folder for the report files (default: a new temporary folder)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	started := time.Now()
	cfg := loadConfig()
	cfg.API.Addr = "127.0.0.1:0"
	cfg.LogLevel = "warn"
	if cfg.LogFormat == "" {
		cfg.LogFormat = "text"
	}
	log := cfg.NewLogger(os.Stderr)

	if os.Getenv("DATABASE_URL") == "" || os.Getenv("REDIS_URL") == "" {
		fmt.Println("Starting private Postgres and Redis (set DATABASE_URL and REDIS_URL to use your own)…")
		servers, err := localdb.Start(ctx, localdb.Options{})
		if err != nil {
			return err
		}
		defer servers.Stop()
		if os.Getenv("DATABASE_URL") == "" {
			cfg.DatabaseURL = servers.PostgresURL("licenseops_demo")
		}
		if os.Getenv("REDIS_URL") == "" {
			cfg.RedisURL = servers.RedisURL(0)
		}
	}
	if _, err := app.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL, MaxOpenConns: 2})
	if err != nil {
		return err
	}
	partner := fmt.Sprintf("demo-partner-%d", time.Now().Unix())
	token, err := store.CreateToken(ctx, partner, "demo", "global_admin")
	_ = store.Close() // only the token was needed
	if err != nil {
		return err
	}
	var sim *graphsim.Server
	switch *directory {
	case "local":
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
				return demoGraphClientID
			case msgraph.EnvClientSecret:
				return demoGraphSecret
			}
			return ""
		}
		fmt.Printf("Graph simulator at %s (20 ms latency, 2%% throttling)\n", sim.URL())
	default:
		return fmt.Errorf("%w: --directory must be local or graphsim", errUsage)
	}
	proc, err := app.Open(ctx, cfg, app.ModeAll, log)
	if err != nil {
		return err
	}
	if err := proc.Start(); err != nil {
		_ = proc.Close(context.Background())
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = proc.Close(shutdownCtx)
	}()
	fmt.Printf("licenseops api and worker running at %s\n\n", proc.APIURL())

	c := newAPIClient(proc.APIURL(), token)
	ids, err := seedDemoTenant(ctx, c, *users, sim)
	if err != nil {
		return fmt.Errorf("seed demo tenant: %w", err)
	}
	if err := printSeats(ctx, c, "Seats before the rollout"); err != nil {
		return err
	}

	fmt.Printf("\nRolling out %s to all %d users (allow_partial: %s has fewer seats than users)…\n", demoSKU, len(ids), demoSKU)
	postAt := time.Now()
	var accepted struct {
		ID    string `json:"id"`
		Total int    `json:"total"`
	}
	if err := c.do(ctx, "POST", "/v1/customers/"+demoCustomer+"/license-operations", map[string]any{
		"user_ids": ids, "assign": []string{demoSKU}, "revoke": []string{"O365_E3"}, "allow_partial": true,
	}, &accepted); err != nil {
		return err
	}
	intake := time.Since(postAt)
	op, err := watchOperation(ctx, c, accepted.ID, accepted.Total, os.Stdout)
	if err != nil {
		return err
	}
	elapsed := time.Since(postAt)
	fmt.Printf("\nOperation %s: %s in %.1fs (intake %dms, %.0f users/s end to end)\n",
		op.ID, op.Status, elapsed.Seconds(), intake.Milliseconds(), float64(op.Total)/elapsed.Seconds())

	dir := *out
	if dir == "" {
		if dir, err = os.MkdirTemp("", "licenseops-demo-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil { // the reports name the tenant's users
		return err
	}
	if err := printReport(ctx, c, op.ID, dir); err != nil {
		return err
	}
	if err := printSeats(ctx, c, "Seats after the rollout"); err != nil {
		return err
	}
	fmt.Printf("\nDemo finished in %.1fs.\n", time.Since(started).Seconds())
	return nil
}

const (
	demoCustomer      = "contoso"
	demoSKU           = "O365_E5"
	demoTenantID      = "6f1c5a2e-0000-4000-8000-00000000c0de"
	demoGraphClientID = "licenseops-demo"
	demoGraphSecret   = "demo-secret"
)

// demoUser is a user of the demo tenant, in the shape of the users import API.
type demoUser struct {
	ID             string  `json:"id"`
	UPN            string  `json:"user_principal_name"`
	DisplayName    string  `json:"display_name"`
	UsageLocation  *string `json:"usage_location,omitempty"`
	AccountEnabled bool    `json:"account_enabled"`
}

// demoUsers makes n users: mostly in Poland and nearby, about 1% disabled,
// a few in a country where E5 is not sold, a fifth with no usage location
// (the customer's default applies).
func demoUsers(n int) []demoUser {
	first := []string{"Anna", "Piotr", "Maria", "Jan", "Katarzyna", "Tomasz", "Agnieszka", "Paweł", "Ewa", "Michał", "Olivia", "Noah", "Emma", "Liam"}
	last := []string{"Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Smith", "Johnson", "Brown", "Garcia"}
	countries := []string{"PL", "PL", "PL", "DE", "US", "GB", "FR"}
	users := make([]demoUser, n)
	for i := range users {
		u := demoUser{
			ID:             fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			UPN:            fmt.Sprintf("user%05d@contoso.example", i),
			DisplayName:    fmt.Sprintf("%s %s %05d", first[i%len(first)], last[(i/len(first))%len(last)], i),
			AccountEnabled: i%97 != 0,
		}
		switch {
		case i%211 == 0:
			loc := "KP"
			u.UsageLocation = &loc
		case i%5 != 0:
			loc := countries[i%len(countries)]
			u.UsageLocation = &loc
		}
		users[i] = u
	}
	return users
}

// demoSeats are the subscriptions of the demo tenant: E5 has fewer seats than users.
func demoSeats(n int) map[string]int {
	return map[string]int{"O365_E3": n / 4, "O365_E5": n - n/10, "POWER_BI_PRO": n / 2, "VISIO_P2": 50}
}

// seedDemoTenant creates the catalog, the customer, its users and
// subscriptions through the API — or, with a Graph simulator, in the
// simulated directory followed by a directory sync — and returns the user
// IDs. A quarter of the users hold E3 before the rollout swaps it for E5.
func seedDemoTenant(ctx context.Context, c *apiClient, n int, sim *graphsim.Server) ([]string, error) {
	products := []map[string]any{
		{"sku": "O365_E3", "name": "Office 365 E3", "part_number": "AAA-22222", "excludes": []string{"O365_E5"}},
		{"sku": "O365_E5", "name": "Office 365 E5", "part_number": "AAA-33333", "excludes": []string{"O365_E3"}, "prohibited_locations": []string{"KP", "IR"}},
		{"sku": "POWER_BI_PRO", "name": "Power BI Pro", "part_number": "AAA-44444"},
		{"sku": "VISIO_P2", "name": "Visio Plan 2", "part_number": "AAA-55555", "requires": []string{"O365_E5"}},
	}
	for _, p := range products {
		sku := p["sku"].(string)
		delete(p, "sku")
		if err := c.do(ctx, "PUT", "/v1/products/"+sku, p, nil); err != nil {
			return nil, err
		}
	}
	users := demoUsers(n)
	ids := make([]string, n)
	for i, u := range users {
		ids[i] = u.ID
	}
	if sim != nil {
		return ids, seedDemoDirectory(ctx, c, users, sim)
	}
	if err := c.do(ctx, "POST", "/v1/customers", map[string]any{
		"id": demoCustomer, "name": "Contoso Ltd.", "default_usage_location": "PL",
	}, nil); err != nil {
		return nil, err
	}
	if err := c.do(ctx, "POST", "/v1/customers/"+demoCustomer+"/users/import", map[string]any{"users": users}, nil); err != nil {
		return nil, err
	}
	for sku, total := range demoSeats(n) {
		if err := c.do(ctx, "PUT", "/v1/customers/"+demoCustomer+"/subscriptions/"+sku, map[string]int{"total": total}, nil); err != nil {
			return nil, err
		}
	}
	if err := c.do(ctx, "POST", "/v1/customers/"+demoCustomer+"/license-operations", map[string]any{
		"user_ids": ids[:n/4], "assign": []string{"O365_E3"}, "allow_partial": true,
	}, &struct{}{}); err != nil {
		return nil, err
	}
	fmt.Printf("Seeded customer %q: %d users, 4 products; giving a quarter of them O365_E3 first…\n", demoCustomer, n)
	return ids, waitQuiet(ctx, c)
}

// seedDemoDirectory puts the demo tenant in the Graph simulator and syncs
// it into licenseops, as a partner would with a real Microsoft 365 tenant.
func seedDemoDirectory(ctx context.Context, c *apiClient, users []demoUser, sim *graphsim.Server) error {
	n := len(users)
	seed := graphsim.TenantSeed{ID: demoTenantID, ClientID: demoGraphClientID, ClientSecret: demoGraphSecret}
	for sku, total := range demoSeats(n) {
		seed.SKUs = append(seed.SKUs, graphsim.SKUSeed{ID: sku, PartNumber: sku, Enabled: total})
	}
	for i, u := range users {
		su := graphsim.UserSeed{ID: u.ID, UserPrincipalName: u.UPN, DisplayName: u.DisplayName, AccountEnabled: u.AccountEnabled}
		if u.UsageLocation != nil {
			su.UsageLocation = *u.UsageLocation
		} else {
			su.UsageLocation = "PL" // Graph needs a location to hold a license
		}
		if i < n/4 && u.AccountEnabled && su.UsageLocation != "KP" {
			su.Licenses = []string{"O365_E3"}
		}
		seed.Users = append(seed.Users, su)
	}
	if err := sim.AddTenant(seed); err != nil {
		return err
	}
	if err := c.do(ctx, "POST", "/v1/customers", map[string]any{
		"id": demoCustomer, "name": "Contoso Ltd.", "default_usage_location": "PL",
		"directory": map[string]string{"kind": "msgraph", "tenant_id": demoTenantID},
	}, nil); err != nil {
		return err
	}
	fmt.Printf("Seeded tenant %s in the Graph simulator (%d users, 4 SKUs); syncing it into licenseops…\n", demoTenantID, n)
	if err := c.do(ctx, "POST", "/v1/customers/"+demoCustomer+"/sync", nil, nil); err != nil {
		return err
	}
	for {
		var list struct{ Total int }
		if err := c.do(ctx, "GET", "/v1/customers/"+demoCustomer+"/users?page_size=1", nil, &list); err != nil {
			return err
		}
		var subs struct{ Subscriptions []any }
		if err := c.do(ctx, "GET", "/v1/customers/"+demoCustomer+"/subscriptions", nil, &subs); err != nil {
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
func waitQuiet(ctx context.Context, c *apiClient) error {
	for {
		var list struct {
			Operations []licensing.Operation `json:"operations"`
		}
		if err := c.do(ctx, "GET", "/v1/customers/"+demoCustomer+"/operations?page_size=10", nil, &list); err != nil {
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

// watchOperation polls an operation and draws a progress bar until it finishes.
func watchOperation(ctx context.Context, c *apiClient, id string, total int, w io.Writer) (licensing.Operation, error) {
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("rollout"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("users"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
	for {
		var op licensing.Operation
		if err := c.do(ctx, "GET", "/v1/operations/"+id, nil, &op); err != nil {
			return op, err
		}
		_ = bar.Set(op.Succeeded + op.Failed)
		bar.Describe(fmt.Sprintf("rollout (%d failed)", op.Failed))
		if op.FinishedAt != nil {
			_ = bar.Finish()
			fmt.Fprintln(w)
			return op, nil
		}
		select {
		case <-ctx.Done():
			return op, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type demoReport struct {
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
func printReport(ctx context.Context, c *apiClient, opID, dir string) error {
	jsonPath, csvPath := filepath.Join(dir, "report-"+opID+".json"), filepath.Join(dir, "report-"+opID+".csv")
	for _, f := range []struct{ path, accept string }{{jsonPath, "application/json"}, {csvPath, "text/csv"}} {
		file, err := os.Create(f.path)
		if err != nil {
			return err
		}
		err = c.download(ctx, "/v1/operations/"+opID+"/report", f.accept, file)
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
	var rep demoReport
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
	fmt.Println("\nConfirmation report — outcomes:")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%d\n", k, counts[k])
	}
	_ = tw.Flush()
	fmt.Println("\nFirst rows (sorted by display name):")
	tw = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  USER\tSTATUS\tASSIGNED\tREVOKED\tLICENSES NOW\tERROR")
	shown := 0
	for _, r := range rep.Results {
		if shown == 8 {
			break
		}
		code := "-"
		if r.Error != nil {
			code = r.Error.Code
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.DisplayName, r.Status, list(r.Assigned), list(r.Revoked), list(r.Licenses), code)
		shown++
	}
	_ = tw.Flush()
	for _, r := range rep.Results {
		if r.Error != nil {
			fmt.Printf("\nExample failure: %s — %s: %s\n", r.DisplayName, r.Error.Code, r.Error.Message)
			break
		}
	}
	fmt.Printf("\nFull report (%d rows):\n  %s\n  %s\n", len(rep.Results), jsonPath, csvPath)
	return nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func printSeats(ctx context.Context, c *apiClient, title string) error {
	var subs struct {
		Subscriptions []struct {
			SKU       string `json:"sku_id"`
			Total     int    `json:"total"`
			Consumed  int    `json:"consumed"`
			Available int    `json:"available"`
		} `json:"subscriptions"`
	}
	if err := c.do(ctx, "GET", "/v1/customers/"+demoCustomer+"/subscriptions", nil, &subs); err != nil {
		return err
	}
	fmt.Printf("\n%s:\n", title)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SKU\tTOTAL\tCONSUMED\tAVAILABLE")
	for _, s := range subs.Subscriptions {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", s.SKU, s.Total, s.Consumed, s.Available)
	}
	return tw.Flush()
}
