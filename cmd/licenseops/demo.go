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

	"github.com/licenseops/licenseops/internal/localdb"
	"github.com/licenseops/licenseops/storage"
)

// runDemo runs the main job end to end on a demo tenant: a tenant-wide
// rollout through the HTTP API, with a progress bar and the confirmation report.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	users := fs.Int("users", 20_000, "users in the demo tenant")
	out := fs.String("out", "", "folder for the report files (default: a new temporary folder)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	started := time.Now()
	cfg := loadConfig(nil)
	cfg.Addr = "127.0.0.1:0"
	cfg.LogLevel = "warn"
	if cfg.LogFormat == "" {
		cfg.LogFormat = "text"
	}
	log := cfg.newLogger(os.Stderr)

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
	if _, err := migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL, MaxOpenConns: 2})
	if err != nil {
		return err
	}
	partner := fmt.Sprintf("demo-partner-%d", time.Now().Unix())
	token, err := store.CreateToken(ctx, partner, "demo", "global_admin")
	store.Close()
	if err != nil {
		return err
	}
	app, err := NewApp(ctx, cfg, "all", log)
	if err != nil {
		return err
	}
	if err := app.Start(); err != nil {
		_ = app.Close(context.Background())
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = app.Close(shutdownCtx)
	}()
	fmt.Printf("licenseops api and worker running at %s\n\n", app.APIURL())

	c := newAPIClient(app.APIURL(), token)
	ids, err := seedDemoTenant(ctx, c, *users)
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
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
	demoCustomer = "contoso"
	demoSKU      = "O365_E5"
)

// seedDemoTenant creates the catalog, the customer, its users and
// subscriptions through the API, and returns the user IDs.
func seedDemoTenant(ctx context.Context, c *apiClient, n int) ([]string, error) {
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
	if err := c.do(ctx, "POST", "/v1/customers", map[string]any{
		"id": demoCustomer, "name": "Contoso Ltd.", "default_usage_location": "PL",
	}, nil); err != nil {
		return nil, err
	}
	type user struct {
		ID             string  `json:"id"`
		UPN            string  `json:"user_principal_name"`
		DisplayName    string  `json:"display_name"`
		UsageLocation  *string `json:"usage_location,omitempty"`
		AccountEnabled bool    `json:"account_enabled"`
	}
	first := []string{"Anna", "Piotr", "Maria", "Jan", "Katarzyna", "Tomasz", "Agnieszka", "Paweł", "Ewa", "Michał", "Olivia", "Noah", "Emma", "Liam"}
	last := []string{"Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Smith", "Johnson", "Brown", "Garcia"}
	countries := []string{"PL", "PL", "PL", "DE", "US", "GB", "FR"}
	users := make([]user, n)
	ids := make([]string, n)
	for i := range users {
		u := user{
			ID:             fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			DisplayName:    fmt.Sprintf("%s %s %05d", first[i%len(first)], last[(i/len(first))%len(last)], i),
			AccountEnabled: i%97 != 0, // about 1% disabled accounts
		}
		u.UPN = fmt.Sprintf("user%05d@contoso.example", i)
		switch {
		case i%211 == 0: // a few users in a country where E5 is not sold
			loc := "KP"
			u.UsageLocation = &loc
		case i%5 != 0: // the rest mostly have a location; others fall back to the customer default
			loc := countries[i%len(countries)]
			u.UsageLocation = &loc
		}
		users[i], ids[i] = u, u.ID
	}
	if err := c.do(ctx, "POST", "/v1/customers/"+demoCustomer+"/users/import", map[string]any{"users": users}, nil); err != nil {
		return nil, err
	}
	seats := map[string]int{"O365_E3": n / 4, "O365_E5": n - n/10, "POWER_BI_PRO": n / 2, "VISIO_P2": 50}
	for sku, total := range seats {
		if err := c.do(ctx, "PUT", "/v1/customers/"+demoCustomer+"/subscriptions/"+sku, map[string]int{"total": total}, nil); err != nil {
			return nil, err
		}
	}
	// A quarter of the tenant already holds E3: the rollout swaps it for E5.
	if err := c.do(ctx, "POST", "/v1/customers/"+demoCustomer+"/license-operations", map[string]any{
		"user_ids": ids[:n/4], "assign": []string{"O365_E3"}, "allow_partial": true,
	}, &struct{}{}); err != nil {
		return nil, err
	}
	fmt.Printf("Seeded customer %q: %d users, 4 products; giving a quarter of them O365_E3 first…\n", demoCustomer, n)
	if err := waitQuiet(ctx, c); err != nil {
		return nil, err
	}
	return ids, nil
}

// waitQuiet waits until the customer has no unfinished operation.
func waitQuiet(ctx context.Context, c *apiClient) error {
	for {
		var list struct {
			Operations []storage.Operation `json:"operations"`
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
func watchOperation(ctx context.Context, c *apiClient, id string, total int, w io.Writer) (storage.Operation, error) {
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
		var op storage.Operation
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
	Operation storage.Operation `json:"operation"`
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
	raw, err := os.ReadFile(jsonPath)
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
	tw.Flush()
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
	tw.Flush()
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
