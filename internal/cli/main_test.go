package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/app"
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
	c     *apiClient
}

// startAPI starts licenseops in mode ("all" or "api") on private Postgres
// and Redis and returns a global_admin token for it.
func startAPI(t *testing.T, mode app.Mode) *apiEnv {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = testenv.Postgres(t, storage.MigrateURL)
	cfg.RedisURL = testenv.Redis(t)
	cfg.API.Addr = "127.0.0.1:0"
	cfg.Worker.Sweep.Interval = 100 * time.Millisecond
	cfg.Worker.ShutdownTimeout = 2 * time.Second
	cfg.Worker.Concurrency = 32
	ctx := context.Background()
	store, err := storage.Open(ctx, storage.Config{URL: cfg.DatabaseURL})
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.CreateToken(ctx, "p", "rollout-test", "global_admin")
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	proc, err := app.Open(ctx, cfg, mode, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = proc.Close(ctx)
	})
	return &apiEnv{t: t, url: proc.APIURL(), token: token, c: newAPIClient(proc.APIURL(), token)}
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

type testUser struct {
	ID             string  `json:"id"`
	UPN            string  `json:"user_principal_name"`
	DisplayName    string  `json:"display_name"`
	UsageLocation  *string `json:"usage_location,omitempty"`
	AccountEnabled *bool   `json:"account_enabled,omitempty"`
}

func userID(i int) string  { return fmt.Sprintf("u%05d", i) }
func userUPN(i int) string { return fmt.Sprintf("user%05d@contoso.example", i) }

// seed creates the catalog (E3 and E5 exclude each other, E5 is not sold in
// KP, ADDON needs E5), customer c1 (default location PL) with n users and
// the given seats. Users listed in disabled are disabled; in kp live in KP.
func (e *apiEnv) seed(n int, seats map[string]int, disabled, kp []int) []testUser {
	e.t.Helper()
	ctx := context.Background()
	for sku, p := range map[string]map[string]any{
		"E3":    {"name": "Office 365 E3", "excludes": []string{"E5"}},
		"E5":    {"name": "Office 365 E5", "prohibited_locations": []string{"KP"}},
		"ADDON": {"name": "Add-on", "requires": []string{"E5"}},
	} {
		e.must(e.c.call(ctx, "PUT", "/v1/products/"+sku, p, nil, ""))
	}
	e.must(e.c.call(ctx, "POST", "/v1/customers", map[string]any{"id": "c1", "name": "Contoso", "default_usage_location": "PL"}, nil, ""))
	users := make([]testUser, n)
	for i := range users {
		users[i] = testUser{ID: userID(i), UPN: userUPN(i), DisplayName: fmt.Sprintf("User %05d", i)}
	}
	no, kpLoc := false, "KP"
	for _, i := range disabled {
		users[i].AccountEnabled = &no
	}
	for _, i := range kp {
		users[i].UsageLocation = &kpLoc
	}
	e.must(e.c.call(ctx, "POST", "/v1/customers/c1/users/import", map[string]any{"users": users}, nil, ""))
	for sku, total := range seats {
		e.must(e.c.call(ctx, "PUT", "/v1/customers/c1/subscriptions/"+sku, map[string]int{"total": total}, nil, ""))
	}
	return users
}

func (e *apiEnv) operationCount() int {
	e.t.Helper()
	var p operationPage
	e.must(e.c.call(context.Background(), "GET", "/v1/customers/c1/operations", nil, &p, ""))
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
