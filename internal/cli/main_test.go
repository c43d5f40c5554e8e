package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/app"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/storage"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// apiEnv is a running licenseops (api, or api and worker) with a token,
// for driving the client commands in-process.
type apiEnv struct {
	t     *testing.T
	url   string
	token string
	c     *client.Client
}

// startAPI starts licenseops in mode (app.ModeAll, or app.ModeAPI for an
// api whose operations no worker takes) on private Postgres and Redis and
// returns it with a global_admin token.
func startAPI(t *testing.T, mode app.Mode) *apiEnv {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.Worker.Sweep.Interval = 100 * time.Millisecond
	cfg.Worker.ShutdownTimeout = 2 * time.Second
	cfg.Worker.Concurrency = 32
	s, err := stack.Start(context.Background(), stack.Options{
		DatabaseURL: testenv.Postgres(t, storage.MigrateURL), RedisURL: testenv.Redis(t),
		Partner: "p", InProcess: true, Mode: mode, Config: &cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &apiEnv{t: t, url: s.URL, token: s.Token, c: client.New(s.URL, s.Token)}
}

func (e *apiEnv) env(name string) string {
	switch name {
	case "LICENSEOPS_URL":
		return e.url
	case "LICENSEOPS_TOKEN":
		return e.token
	}
	return ""
}

// cliEnv is an Env of buffers with e's URL and token.
func (e *apiEnv) cliEnv(stdout, stderr io.Writer) *Env {
	return &Env{Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr, Getenv: e.env}
}

// run runs a command in-process as main does (cmd names it: "rollout",
// "operation list") and returns its exit status and output.
func (e *apiEnv) run(cmd string, args ...string) (int, string, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, append(strings.Fields(cmd), args...), e.cliEnv(&stdout, &stderr))
	return code, stdout.String(), stderr.String()
}

func (e *apiEnv) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func userID(i int) string  { return fmt.Sprintf("u%05d", i) }
func userUPN(i int) string { return fmt.Sprintf("user%05d@contoso.example", i) }

// seed creates the catalog (E3 and E5 exclude each other, E5 is not sold in
// KP, ADDON needs E5), customer c1 (default location PL) with n users and
// the given seats. Users listed in disabled are disabled; in kp live in KP.
func (e *apiEnv) seed(n int, seats map[string]int, disabled, kp []int) {
	e.t.Helper()
	users := make([]client.UserImport, n)
	for i := range users {
		users[i] = client.UserImport{ID: userID(i), UserPrincipalName: userUPN(i), DisplayName: fmt.Sprintf("User %05d", i)}
	}
	for _, i := range disabled {
		users[i].AccountEnabled = new(false)
	}
	for _, i := range kp {
		users[i].UsageLocation = new("KP")
	}
	_, err := seed.Seed(context.Background(), e.c, seed.Tenant{
		Customer: client.CustomerRequest{ID: "c1", Name: "Contoso", DefaultUsageLocation: new("PL")},
		Products: map[string]client.ProductRequest{
			"E3":    {Name: "Office 365 E3", Excludes: []string{"E5"}},
			"E5":    {Name: "Office 365 E5", ProhibitedLocations: []string{"KP"}},
			"ADDON": {Name: "Add-on", Requires: []string{"E5"}},
		},
		Users: users,
		Seats: seats,
	})
	e.must(err)
}

// setSeats sets customer c1's seats of sku.
func (e *apiEnv) setSeats(sku string, total int) {
	e.t.Helper()
	_, err := e.c.PutSubscription(context.Background(), "c1", sku, total)
	e.must(err)
}

func (e *apiEnv) operationCount() int {
	e.t.Helper()
	p, err := e.c.ListOperations(context.Background(), "c1", client.ListOptions{})
	e.must(err)
	return p.Total
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCSVFile(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = rec[i]
		}
		out = append(out, m)
	}
	return out
}

func wantCode(t *testing.T, what string, got, want int, stdout, stderr string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", what, got, want, stdout, stderr)
	}
}
